//! ECN and the DS field across the tunnel (RFC 6040), as the kernel's
//! vxlan driver does it (`ip_tunnel_ecn_encap`, `INET_ECN_decapsulate`).
//!
//! The two low bits of the IPv4 TOS / IPv6 traffic class are the ECN
//! field; the six high bits are the DSCP. Pure functions of those bytes,
//! shared by both engines.

use crate::{
    frame::Frame,
    header::{ETH_LEN, ETH_P_IP, ETH_P_IPV6},
    reason::Reason,
};

/// ECN codepoints (RFC 3168).
pub const NOT_ECT: u8 = 0b00;
pub const ECT_1: u8 = 0b01;
pub const ECT_0: u8 = 0b10;
pub const CE: u8 = 0b11;
/// The ECN bits of a DS field.
pub const ECN_MASK: u8 = 0b11;

/// The outer DS field of an encapsulated packet.
///
/// `inner` is the inner packet's DS field (IPv4 TOS or IPv6 traffic
/// class), `None` when the inner frame is not IP (ARP, for example).
/// `tos` is the configured outer DS field; with `inherit` the inner DS
/// field is copied instead (the kernel's `tos inherit`; 0 for non-IP).
/// The ECN bits are the inner packet's, except that an inner CE becomes
/// ECT(0) (RFC 6040 normal mode, the kernel's `INET_ECN_encapsulate`): a
/// non-IP inner frame gives Not-ECT.
#[inline(always)]
pub const fn outer_dsfield(inner: Option<u8>, tos: u8, inherit: bool) -> u8 {
    let inner_ds = match inner {
        Some(ds) => ds,
        None => 0,
    };
    let dscp = if inherit { inner_ds } else { tos } & !ECN_MASK;
    let ecn = match inner_ds & ECN_MASK {
        CE => ECT_0,
        e => e,
    };
    dscp | ecn
}

/// What decapsulation does to the inner packet's ECN field, given the
/// outer and inner ECN codepoints (RFC 6040 §4.2, figure 4, and the
/// kernel's `__INET_ECN_decapsulate`).
///
/// `Ok(None)`: the inner packet is delivered unchanged. `Ok(Some(ecn))`:
/// its ECN field becomes `ecn` (an outer CE over an ECN-capable inner
/// packet marks it CE; an outer ECT(1) over an inner ECT(0) makes it
/// ECT(1), as current kernels do). `Err(EcnError)`: an outer CE over a
/// Not-ECT inner packet, which the kernel drops.
#[inline(always)]
pub const fn decap(outer: u8, inner: u8) -> Result<Option<u8>, Reason> {
    let (outer, inner) = (outer & ECN_MASK, inner & ECN_MASK);
    match (outer, inner) {
        (CE, NOT_ECT) => Err(Reason::EcnError),
        (CE, CE) => Ok(None),
        (CE, _) => Ok(Some(CE)),
        (ECT_1, ECT_0) => Ok(Some(ECT_1)),
        _ => Ok(None),
    }
}

/// The IP header of an inner (or any) Ethernet frame, as far as the
/// tunnel copies or rewrites it: its DS field, and for IPv6 its flow label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InnerIp {
    /// Offset of the IP header in the frame.
    pub offset: usize,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// The DS field: IPv4 TOS, IPv6 traffic class.
    pub ds: u8,
    /// The IPv6 flow label (20 bits, host order); 0 for IPv4.
    pub flowlabel: u32,
}

/// The IP header of the untagged Ethernet frame at `offset` of `frame`,
/// when it is IPv4 or IPv6 and its first four bytes are there (version
/// checked); `None` for anything else (ARP, a tagged frame, a runt).
#[inline(always)]
pub fn inner_ip<F: Frame + ?Sized>(frame: &F, offset: usize) -> Option<InnerIp> {
    let ether_type = u16::from_be_bytes(frame.read_at::<[u8; 2]>(offset + 12)?);
    let ip = offset + ETH_LEN;
    let b = frame.read_at::<[u8; 4]>(ip)?;
    match ether_type {
        ETH_P_IP if b[0] >> 4 == 4 => Some(InnerIp {
            offset: ip,
            v6: false,
            ds: b[1],
            flowlabel: 0,
        }),
        ETH_P_IPV6 if b[0] >> 4 == 6 => Some(InnerIp {
            offset: ip,
            v6: true,
            ds: (b[0] << 4) | (b[1] >> 4),
            flowlabel: (u32::from(b[1] & 0x0f) << 16) | (u32::from(b[2]) << 8) | u32::from(b[3]),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel selftest's `test_ecn_encap` table (inner → outer), with
    /// tos 0, and a non-IP inner frame.
    #[test]
    fn encap_copies_ecn_and_turns_ce_into_ect0() {
        for (inner, outer) in [(0x00, 0x00), (0x01, 0x01), (0x02, 0x02), (0x03, 0x02)] {
            assert_eq!(
                outer_dsfield(Some(inner), 0, false),
                outer,
                "inner {inner:#x}"
            );
        }
        assert_eq!(outer_dsfield(None, 0, false), NOT_ECT);
        assert_eq!(outer_dsfield(None, 0xb8, false), 0xb8);
        assert_eq!(outer_dsfield(None, 0xb8, true), 0x00);
    }

    #[test]
    fn encap_takes_dscp_from_config_or_inner() {
        // tos 0xb8 (EF) with an inner CE: EF and ECT(0).
        assert_eq!(outer_dsfield(Some(0x03), 0xb8, false), 0xba);
        // The configured ECN bits are ignored.
        assert_eq!(outer_dsfield(Some(0x00), 0xbb, false), 0xb8);
        // inherit: the inner DSCP (AF41 = 0x88), its ECN bits by the rule.
        assert_eq!(outer_dsfield(Some(0x8b), 0, true), 0x8a);
        assert_eq!(outer_dsfield(Some(0x89), 0xb8, true), 0x89);
    }

    #[test]
    fn inner_ip_reads_ds_and_flow_label() {
        let mut f = [0u8; 40];
        f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        f[14] = 0x45;
        f[15] = 0xb9;
        assert_eq!(
            inner_ip(&f[..], 0),
            Some(InnerIp {
                offset: 14,
                v6: false,
                ds: 0xb9,
                flowlabel: 0
            })
        );
        f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        f[14..18].copy_from_slice(&[0x6b, 0x9a, 0xbc, 0xde]);
        assert_eq!(
            inner_ip(&f[..], 0),
            Some(InnerIp {
                offset: 14,
                v6: true,
                ds: 0xb9,
                flowlabel: 0xabcde
            })
        );
        // A version that disagrees with the EtherType, ARP, a runt: none.
        f[14] = 0x45;
        assert_eq!(inner_ip(&f[..], 0), None);
        f[12..14].copy_from_slice(&crate::header::ETH_P_ARP.to_be_bytes());
        assert_eq!(inner_ip(&f[..], 0), None);
        assert_eq!(inner_ip(&f[..16], 0), None);
    }

    /// The kernel selftest's `test_ecn_decap` table, "inner outer →
    /// result", and `test_ecn_decap_error` (inner 00, outer 03: dropped).
    #[test]
    fn decap_follows_rfc6040() {
        let table: [(u8, u8, u8); 15] = [
            (0, 0, 0),
            (0, 1, 0),
            (0, 2, 0),
            (1, 0, 1),
            (1, 1, 1),
            (1, 2, 1),
            (1, 3, 3),
            (2, 0, 2),
            (2, 1, 1),
            (2, 2, 2),
            (2, 3, 3),
            (3, 0, 3),
            (3, 1, 3),
            (3, 2, 3),
            (3, 3, 3),
        ];
        for (inner, outer, result) in table {
            let got = match decap(outer, inner) {
                Ok(Some(e)) => e,
                Ok(None) => inner,
                Err(r) => panic!("inner {inner} outer {outer}: {}", r.name()),
            };
            assert_eq!(got, result, "inner {inner} outer {outer}");
        }
        assert_eq!(decap(CE, NOT_ECT), Err(Reason::EcnError));
        // Only the ECN bits count.
        assert_eq!(decap(0xb8 | CE, 0x88 | ECT_0), Ok(Some(CE)));
    }
}
