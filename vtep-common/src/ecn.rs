//! ECN and the DS field across the tunnel (RFC 6040), as the kernel's
//! vxlan driver does it (`ip_tunnel_ecn_encap`, `INET_ECN_decapsulate`).
//!
//! The two low bits of the IPv4 TOS / IPv6 traffic class are the ECN
//! field; the six high bits are the DSCP. Pure functions of those bytes,
//! shared by both engines.

use crate::{
    frame::Frame,
    header::{ETH_LEN, ETH_P_IP, ETH_P_IPV6, IPV4_LEN, IPV6_LEN, csum_fold},
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

/// The inner packet's ECN field as decapsulation leaves it: where its IP
/// header is and the codepoint to write there ([`decap_mark`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EcnMark {
    /// Offset of the inner IP header in the frame.
    pub offset: usize,
    /// IPv6 (else IPv4).
    pub v6: bool,
    /// The new ECN codepoint.
    pub ecn: u8,
}

/// Bytes of an inner IPv4 header [`set_ecn_v4`] rewrites: up to and
/// including the header checksum.
pub const ECN_V4_SPAN: usize = 12;
/// Bytes of an inner IPv6 header [`set_ecn_v6`] rewrites: the version and
/// traffic class.
pub const ECN_V6_SPAN: usize = 2;

/// RFC 6040 decapsulation of the inner frame at `inner` (`inner_len`
/// bytes) of `frame`, whose outer header carried `outer_ecn`: what to
/// rewrite, if anything, as the kernel's `vxlan_rcv` does.
///
/// The inner frame is IP by its EtherType (untagged: a tagged inner frame
/// is left alone, as the kernel leaves it), and then its IP header must be
/// whole inside the inner frame (20 / 40 bytes), else `truncated`, as the
/// kernel's `pskb_inet_may_pull` drops it. The DS field is read where the
/// EtherType says, whatever the version nibble (as `IP_ECN_decapsulate`).
/// A non-IP inner frame (ARP) gets no ECN processing. `Err(EcnError)`: an
/// outer CE over a Not-ECT inner packet.
#[inline(always)]
pub fn decap_mark<F: Frame + ?Sized>(
    frame: &F,
    inner: usize,
    inner_len: usize,
    outer_ecn: u8,
) -> Result<Option<EcnMark>, Reason> {
    let Some(et) = frame.read_at::<[u8; 2]>(inner + 12) else {
        return Ok(None);
    };
    let (v6, need) = match u16::from_be_bytes(et) {
        ETH_P_IP => (false, IPV4_LEN),
        ETH_P_IPV6 => (true, IPV6_LEN),
        _ => return Ok(None),
    };
    if inner_len < ETH_LEN + need {
        return Err(Reason::Truncated);
    }
    let offset = inner + ETH_LEN;
    let b = frame.read_at::<[u8; 2]>(offset).ok_or(Reason::Truncated)?;
    let inner_ecn = if v6 { b[1] >> 4 } else { b[1] };
    Ok(decap(outer_ecn, inner_ecn)?.map(|ecn| EcnMark { offset, v6, ecn }))
}

/// Sets the ECN field of an IPv4 header whose first 12 bytes are `hdr`,
/// updating its header checksum incrementally (RFC 1624 eqn. 3,
/// `HC' = ~(~HC + ~m + m')`, as the kernel's `IP_ECN_set_ce` does).
#[inline(always)]
pub fn set_ecn_v4(hdr: &mut [u8; ECN_V4_SPAN], ecn: u8) {
    let old = u16::from_be_bytes([hdr[0], hdr[1]]);
    hdr[1] = (hdr[1] & !ECN_MASK) | (ecn & ECN_MASK);
    let new = u16::from_be_bytes([hdr[0], hdr[1]]);
    let hc = u16::from_be_bytes([hdr[10], hdr[11]]);
    let sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    let csum = !csum_fold(sum);
    hdr[10..12].copy_from_slice(&csum.to_be_bytes());
}

/// Sets the ECN field of an IPv6 header whose first 2 bytes are `hdr`
/// (the traffic class straddles them; IPv6 has no header checksum).
#[inline(always)]
pub fn set_ecn_v6(hdr: &mut [u8; ECN_V6_SPAN], ecn: u8) {
    hdr[1] = (hdr[1] & !(ECN_MASK << 4)) | ((ecn & ECN_MASK) << 4);
}

/// Applies `mark` to a frame in a byte slice (the AF_XDP engine, the
/// reference model); false when the header is not all there. The XDP
/// program applies it to packet memory with [`set_ecn_v4`] /
/// [`set_ecn_v6`] on its own bounds-checked pointers.
#[inline(always)]
pub fn apply_mark(frame: &mut [u8], mark: &EcnMark) -> bool {
    let at = mark.offset;
    if mark.v6 {
        match frame.get_mut(at..at + ECN_V6_SPAN) {
            Some(b) => {
                let mut h = [b[0], b[1]];
                set_ecn_v6(&mut h, mark.ecn);
                b.copy_from_slice(&h);
                true
            }
            None => false,
        }
    } else {
        match frame.get_mut(at..at + ECN_V4_SPAN) {
            Some(b) => {
                let mut h = [0u8; ECN_V4_SPAN];
                h.copy_from_slice(b);
                set_ecn_v4(&mut h, mark.ecn);
                b.copy_from_slice(&h);
                true
            }
            None => false,
        }
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

    /// An inner IPv4 packet marked CE by an outer CE keeps a valid header
    /// checksum, for every TOS and any checksum it had.
    #[test]
    fn set_ecn_v4_updates_the_checksum() {
        use crate::header::ipv4_checksum;
        for tos in [0x00u8, 0x01, 0x02, 0xb9, 0xfe, 0xff] {
            for id in [0u16, 0x1234, 0xffff, 0xbaf1] {
                let mut h = [0u8; 20];
                h[0] = 0x45;
                h[1] = tos;
                h[2..4].copy_from_slice(&84u16.to_be_bytes());
                h[4..6].copy_from_slice(&id.to_be_bytes());
                h[8] = 64;
                h[9] = 1;
                h[12..20].copy_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
                let c = ipv4_checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                for ecn in [NOT_ECT, ECT_1, ECT_0, CE] {
                    let mut g = h;
                    let mut head = [0u8; ECN_V4_SPAN];
                    head.copy_from_slice(&g[..12]);
                    set_ecn_v4(&mut head, ecn);
                    g[..12].copy_from_slice(&head);
                    assert_eq!(g[1], (tos & !ECN_MASK) | ecn);
                    let want = ipv4_checksum(&g);
                    let got = u16::from_be_bytes([g[10], g[11]]);
                    // 0x0000 and 0xffff are the same one's-complement sum.
                    assert!(
                        got == want || (got | want == 0xffff && got & want == 0),
                        "tos {tos:#x} id {id:#x} ecn {ecn}: {got:#x} != {want:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn set_ecn_v6_touches_only_the_ecn_bits() {
        let mut h = [0x6b, 0x9a];
        set_ecn_v6(&mut h, CE);
        assert_eq!(h, [0x6b, 0xba]);
        set_ecn_v6(&mut h, NOT_ECT);
        assert_eq!(h, [0x6b, 0x8a]);
    }

    /// The inner frame decides: IP by EtherType, whole, else left alone or
    /// `truncated`; the mark written where the header is.
    #[test]
    fn decap_mark_reads_the_inner_frame() {
        let mut f = [0u8; 14 + 40];
        f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        f[14] = 0x45;
        f[15] = ECT_0;
        assert_eq!(
            decap_mark(&f[..], 0, 34, CE),
            Ok(Some(EcnMark {
                offset: 14,
                v6: false,
                ecn: CE
            }))
        );
        assert_eq!(decap_mark(&f[..], 0, 33, CE), Err(Reason::Truncated));
        assert_eq!(decap_mark(&f[..], 0, 34, ECT_0), Ok(None));
        f[15] = NOT_ECT;
        assert_eq!(decap_mark(&f[..], 0, 34, CE), Err(Reason::EcnError));
        f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        f[14..16].copy_from_slice(&[0x60, 0x20]); // ECT(0)
        assert_eq!(
            decap_mark(&f[..], 0, 54, ECT_1),
            Ok(Some(EcnMark {
                offset: 14,
                v6: true,
                ecn: ECT_1
            }))
        );
        assert_eq!(decap_mark(&f[..], 0, 53, CE), Err(Reason::Truncated));
        f[12..14].copy_from_slice(&crate::header::ETH_P_ARP.to_be_bytes());
        assert_eq!(decap_mark(&f[..], 0, 54, CE), Ok(None));
        let mut g = f;
        g[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        assert!(apply_mark(
            &mut g[..],
            &EcnMark {
                offset: 14,
                v6: true,
                ecn: CE
            }
        ));
        assert_eq!(&g[14..16], &[0x60, 0x30]);
        assert!(!apply_mark(
            &mut g[..15],
            &EcnMark {
                offset: 14,
                v6: true,
                ecn: CE
            }
        ));
    }
}
