//! The benchmark lab's eBPF programs (the `vtep-lab` object, not part of the
//! gateway): the live-frames generator behind `vtep pktgen`, the counting
//! sink at the far end of `cargo xtask bench`, a trivial XDP program (the
//! floor of BPF_PROG_TEST_RUN), the harness that times a datapath program
//! over many runs of one frame, and a forwarder that only redirects between
//! two ports (the ceiling of an XDP gateway in the lab).
//!
//! The generator sends one template frame again and again; for `flows` > 1
//! it rewrites, per packet, the inner IPv4 source address, the inner UDP
//! source port and (for VXLAN frames) the outer UDP source port from a
//! per-CPU sequence number, and over an IPv6 outer the outer UDP checksum
//! (IPv6 receivers want one). [`flow_fields`] computes those fields; the
//! program and the host tests share it.

use crate::header::{
    ENCAP_V6_LEN, ENCAP_V6_UDP_CSUM, ETH_LEN, IPPROTO_UDP, IPV4_LEN, IPV6_LEN, csum_fold,
};

/// Map names of the lab object.
pub mod names {
    /// `GenConfig`, one entry.
    pub const GEN_CONFIG: &str = "LAB_GEN";
    /// Per-CPU sequence number of the generator (u64).
    pub const GEN_SEQ: &str = "LAB_SEQ";
    /// Per-CPU `SinkCounters`, one entry.
    pub const SINK: &str = "LAB_SINK";
    /// Program array: the program the cost harness times (index 0).
    pub const COST_TARGET: &str = "LAB_COST_PROG";
    /// Length of the frame the cost harness restores (u32, one entry).
    pub const COST_LEN: &str = "LAB_COST_LEN";
    /// Devmap of the forwarder: ingress ifindex → egress device.
    pub const FWD: &str = "LAB_FWD";
    /// AF_XDP forwarder: ifindex → slot (u32, 0 or 1).
    pub const XSK_SLOTS: &str = "LAB_XSK_SLOTS";
    /// AF_XDP forwarder's sockets: `slot * XSK_MAX_QUEUES + queue`.
    pub const XSKS: &str = "LAB_XSKS";
}

/// Ports of the AF_XDP forwarder (its two interfaces).
pub const XSK_PORTS: u32 = 2;

/// Program names of the lab object.
pub mod programs {
    /// XDP_TX of the template frame, flow fields rewritten (live frames).
    pub const GEN: &str = "lab_gen";
    /// Counts packets and bytes per CPU, then XDP_DROP.
    pub const SINK: &str = "lab_sink";
    /// XDP_DROP and nothing else: the floor.
    pub const DROP: &str = "lab_drop";
    /// Restores the frame's length, then tail-calls `LAB_COST_PROG[0]`.
    pub const COST: &str = "lab_cost";
    /// Redirects every frame to the paired port (`LAB_FWD`), untouched.
    pub const FWD: &str = "lab_fwd";
    /// Redirects every frame to its port's and queue's AF_XDP socket
    /// (`LAB_XSKS`), for the AF_XDP forwarder.
    pub const XSK: &str = "lab_xsk";
}

/// What the generator rewrites.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GenConfig {
    /// Number of flows; 0 or 1 sends the template unchanged.
    pub flows: u32,
    /// [`GEN_PLAIN`], or [`GEN_VXLAN_V4`] / [`GEN_VXLAN_V6`]: VXLAN with
    /// the inner headers after the 50- / 70-byte outer header, the outer
    /// UDP source port varied too (and over IPv6 its checksum).
    pub vxlan: u32,
    /// Inner IPv4 source of flow 0 (network order).
    pub src_ip: [u8; 4],
    /// One's-complement sum (unfolded) of the inner IPv4 header's 16-bit
    /// words except the source address and the checksum.
    pub ip_sum: u32,
    /// Inner UDP source port of flow 0 (host order).
    pub src_port: u16,
    /// Outer UDP source ports: `outer_port_min + flow % outer_port_span`.
    pub outer_port_min: u16,
    pub outer_port_span: u16,
    pub _pad: u16,
    /// Over an IPv6 outer: the one's-complement sum (unfolded, 16-bit
    /// big-endian words) of what the outer UDP checksum covers, except the
    /// words a flow changes ([`udp6_sum_without_flow`]).
    pub udp_sum: u32,
}

/// [`GenConfig::vxlan`]: plain Ethernet/IPv4/UDP.
pub const GEN_PLAIN: u32 = 0;
/// [`GenConfig::vxlan`]: VXLAN over IPv4 (outer UDP checksum 0).
pub const GEN_VXLAN_V4: u32 = 1;
/// [`GenConfig::vxlan`]: VXLAN over IPv6 (outer UDP checksum rewritten).
pub const GEN_VXLAN_V6: u32 = 2;

/// Offsets of the fields a flow changes, in a frame whose inner (or only)
/// Ethernet header is at `base` (untagged IPv4 without options, UDP).
pub const fn inner_ip_csum(base: usize) -> usize {
    base + ETH_LEN + 10
}
pub const fn inner_ip_src(base: usize) -> usize {
    base + ETH_LEN + 12
}
pub const fn inner_udp_sport(base: usize) -> usize {
    base + ETH_LEN + IPV4_LEN
}
/// The outer UDP source port of a VXLAN-over-IPv6 frame.
pub const OUTER6_UDP_SPORT: usize = ETH_LEN + IPV6_LEN;

/// Per-CPU counters of the sink.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkCounters {
    pub packets: u64,
    pub bytes: u64,
}

/// The header fields of one flow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowFields {
    /// Inner IPv4 source (network order).
    pub src_ip: [u8; 4],
    /// Inner IPv4 header checksum, to store big-endian.
    pub ip_csum: u16,
    /// Inner UDP source port (host order).
    pub src_port: u16,
    /// Outer UDP source port (host order; VXLAN only).
    pub outer_src_port: u16,
    /// Outer UDP checksum over IPv6, to store big-endian (zero is sent as
    /// `0xffff`, RFC 8200 §8.1); meaningless for other templates.
    pub outer_udp_csum: u16,
}

/// Host addresses of a /24 a flow's source cycles through (.1 to .254).
pub const FLOW_HOSTS: u32 = 254;

/// The fields of flow `i` (`i < cfg.flows`): the source address walks the
/// hosts of its /24 (from the template's), the source port counts up from
/// the template's, so every flow is a different (address, port) pair.
#[inline(always)]
pub fn flow_fields(cfg: &GenConfig, i: u32) -> FlowFields {
    let first = u32::from(cfg.src_ip[3]).clamp(1, FLOW_HOSTS);
    let host = (first - 1 + i % FLOW_HOSTS) % FLOW_HOSTS + 1;
    let src_ip = [cfg.src_ip[0], cfg.src_ip[1], cfg.src_ip[2], host as u8];
    let sum = cfg.ip_sum
        + u32::from(u16::from_be_bytes([src_ip[0], src_ip[1]]))
        + u32::from(u16::from_be_bytes([src_ip[2], src_ip[3]]));
    let span = u32::from(cfg.outer_port_span).max(1);
    let ip_csum = !csum_fold(sum);
    let src_port = cfg.src_port.wrapping_add(i as u16);
    let outer_src_port = cfg.outer_port_min.wrapping_add((i % span) as u16);
    let udp = cfg.udp_sum
        + u32::from(outer_src_port)
        + u32::from(ip_csum)
        + u32::from(u16::from_be_bytes([src_ip[0], src_ip[1]]))
        + u32::from(u16::from_be_bytes([src_ip[2], src_ip[3]]))
        + u32::from(src_port);
    let outer_udp_csum = match !csum_fold(udp) {
        0 => 0xffff,
        c => c,
    };
    FlowFields {
        src_ip,
        ip_csum,
        src_port,
        outer_src_port,
        outer_udp_csum,
    }
}

/// [`GenConfig::udp_sum`] of a VXLAN-over-IPv6 frame (70-byte outer header,
/// then an untagged inner IPv4/UDP frame): the IPv6 pseudo-header, the UDP
/// header and everything after it, as 16-bit big-endian words, without the
/// checksum field and the words [`flow_fields`] rewrites. `None` when the
/// frame is too short for those fields.
pub fn udp6_sum_without_flow(frame: &[u8]) -> Option<u32> {
    let sport = inner_udp_sport(ENCAP_V6_LEN);
    if frame.len() < sport + 2 || frame.len() < ENCAP_V6_LEN {
        return None;
    }
    let skip = |i: usize| {
        i == OUTER6_UDP_SPORT
            || i == ENCAP_V6_UDP_CSUM
            || i == inner_ip_csum(ENCAP_V6_LEN)
            || i == inner_ip_src(ENCAP_V6_LEN)
            || i == inner_ip_src(ENCAP_V6_LEN) + 2
            || i == sport
    };
    let word = |i: usize| {
        u32::from(u16::from_be_bytes([
            frame[i],
            frame.get(i + 1).copied().unwrap_or(0),
        ]))
    };
    // Pseudo-header: source and destination addresses, the upper-layer
    // length (the UDP length field's value), next header.
    let mut sum = 0u32;
    let mut i = ETH_LEN + 8;
    while i < ETH_LEN + IPV6_LEN {
        sum += word(i);
        i += 2;
    }
    sum += word(OUTER6_UDP_SPORT + 4) + u32::from(IPPROTO_UDP);
    let mut i = OUTER6_UDP_SPORT;
    while i < frame.len() {
        if !skip(i) {
            sum += word(i);
        }
        i += 2;
    }
    Some(sum)
}

/// [`GenConfig::ip_sum`] of a 20-byte IPv4 header.
pub fn ip_sum_without_source(hdr: &[u8; crate::header::IPV4_LEN]) -> u32 {
    let mut sum = 0u32;
    let mut i = 0;
    while i < hdr.len() {
        // 10..12 checksum, 12..16 source address.
        if !(10..16).contains(&i) {
            sum += u32::from(u16::from_be_bytes([hdr[i], hdr[i + 1]]));
        }
        i += 2;
    }
    sum
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: #[repr(C)], Copy, every padding byte an explicit field.
    unsafe impl aya::Pod for super::GenConfig {}
    // SAFETY: #[repr(C)] and Copy, u64 counters only (no padding).
    unsafe impl aya::Pod for super::SinkCounters {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::ipv4_checksum;

    fn header(src: [u8; 4]) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0] = 0x45;
        h[2..4].copy_from_slice(&64u16.to_be_bytes());
        h[8] = 64;
        h[9] = 17;
        h[12..16].copy_from_slice(&src);
        h[16..20].copy_from_slice(&[198, 51, 100, 2]);
        h
    }

    #[test]
    fn flow_checksum_matches_a_full_checksum() {
        let template = header([198, 51, 100, 1]);
        let cfg = GenConfig {
            flows: 1024,
            src_ip: [198, 51, 100, 1],
            ip_sum: ip_sum_without_source(&template),
            src_port: 10_000,
            outer_port_min: 49_152,
            outer_port_span: 16_384,
            ..GenConfig::default()
        };
        for i in [0, 1, 253, 254, 255, 1023] {
            let f = flow_fields(&cfg, i);
            assert_eq!(f.ip_csum, ipv4_checksum(&header(f.src_ip)), "flow {i}");
            assert!((1..=254).contains(&f.src_ip[3]), "flow {i}: {:?}", f.src_ip);
            assert_eq!(f.src_port, 10_000 + i as u16);
            assert_eq!(f.outer_src_port, 49_152 + i as u16);
        }
        assert_eq!(flow_fields(&cfg, 0).src_ip, [198, 51, 100, 1]);
        assert_eq!(flow_fields(&cfg, 254).src_ip, [198, 51, 100, 1]);
    }

    #[test]
    fn flow_udp6_checksum_matches_a_full_checksum() {
        use crate::header::{EncapV6, csum_partial, encap_v6_header, udp_checksum_v6};

        // A 64-byte inner frame behind a 70-byte IPv6 outer header.
        let mut inner = [0u8; 64];
        inner[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        inner[ETH_LEN..ETH_LEN + IPV4_LEN].copy_from_slice(&header([198, 51, 100, 1]));
        let u = ETH_LEN + IPV4_LEN;
        inner[u + 2..u + 4].copy_from_slice(&9u16.to_be_bytes());
        inner[u + 4..u + 6].copy_from_slice(&30u16.to_be_bytes());
        let outer = encap_v6_header(&EncapV6 {
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_mac: [2, 0, 0, 0, 0, 1],
            src_ip: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            dst_ip: [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            hop_limit: 64,
            tclass: 0,
            flowlabel: 0x12345,
            src_port: 49_152,
            dst_port: 4789,
            vni: 100,
            inner_len: inner.len() as u16,
        });
        let frame = [&outer[..], &inner].concat();
        let cfg = GenConfig {
            flows: 1024,
            vxlan: GEN_VXLAN_V6,
            src_ip: [198, 51, 100, 1],
            ip_sum: ip_sum_without_source(&header([198, 51, 100, 1])),
            src_port: 10_000,
            outer_port_min: 49_152,
            outer_port_span: 16_384,
            udp_sum: udp6_sum_without_flow(&frame).expect("long enough"),
            ..GenConfig::default()
        };
        for i in [0, 1, 253, 254, 1023] {
            let f = flow_fields(&cfg, i);
            // The frame as the program rewrites it, summed independently.
            let mut g = frame.clone();
            let b = ENCAP_V6_LEN;
            g[OUTER6_UDP_SPORT..OUTER6_UDP_SPORT + 2]
                .copy_from_slice(&f.outer_src_port.to_be_bytes());
            g[inner_ip_src(b)..inner_ip_src(b) + 4].copy_from_slice(&f.src_ip);
            g[inner_ip_csum(b)..inner_ip_csum(b) + 2].copy_from_slice(&f.ip_csum.to_be_bytes());
            g[inner_udp_sport(b)..inner_udp_sport(b) + 2]
                .copy_from_slice(&f.src_port.to_be_bytes());
            let hdr: [u8; ENCAP_V6_LEN] = g[..ENCAP_V6_LEN].try_into().expect("70 bytes");
            let want = udp_checksum_v6(&hdr, csum_partial(&g[ENCAP_V6_LEN..], 0));
            assert_eq!(f.outer_udp_csum.to_be_bytes(), want, "flow {i}");
        }
        assert_eq!(udp6_sum_without_flow(&frame[..100]), None);
    }

    #[test]
    fn flows_are_distinct() {
        let cfg = GenConfig {
            flows: 1024,
            src_ip: [192, 0, 2, 10],
            src_port: 1024,
            ..GenConfig::default()
        };
        let mut seen: [(u8, u16); 1024] = [(0, 0); 1024];
        for (i, s) in seen.iter_mut().enumerate() {
            let f = flow_fields(&cfg, i as u32);
            *s = (f.src_ip[3], f.src_port);
        }
        seen.sort_unstable();
        assert!(seen.windows(2).all(|w| w[0] != w[1]));
    }
}
