//! Pure header logic: lengths, checks, checksums, the outer header of an
//! IPv4 encapsulation and the flow hash behind the outer UDP source port.
//!
//! These functions work on scalars and fixed arrays, never on packet memory,
//! so the eBPF programs call them after their bounds-checked reads, the
//! userspace engine calls them on slices, and the host tests call them
//! directly. The two that read a frame, the uplink classifier
//! [`parse_vxlan`] and [`flow_keys`], read it through [`Frame`]: one
//! implementation for the XDP and TC programs and the AF_XDP engine.

use network_types::{eth::EthHdr, ip::Ipv4Hdr, udp::UdpHdr, vlan::VlanHdr, vxlan::VxlanHdr};

use crate::{
    AF_INET, AF_INET6, TTL_AUTO_GROUP, TTL_AUTO_UNICAST, UNDERLAY_F_LABEL_FIXED,
    UNDERLAY_F_LABEL_INHERIT, UNDERLAY_F_TOS_INHERIT, UNDERLAY_F_UDP6_ZERO_CSUM_RX, Underlay,
    VtepAddr, ecn, frame::Frame, reason::Reason,
};

pub const ETH_LEN: usize = 14;
pub const VLAN_LEN: usize = 4;
pub const IPV4_LEN: usize = 20;
pub const IPV6_LEN: usize = 40;
pub const UDP_LEN: usize = 8;
pub const VXLAN_LEN: usize = 8;
/// Outer Ethernet + IPv4 + UDP + VXLAN: what an IPv4 encapsulation adds.
pub const ENCAP_V4_LEN: usize = ETH_LEN + IPV4_LEN + UDP_LEN + VXLAN_LEN;
/// What the inner MTU loses to an IPv4 underlay (outer Ethernet excluded:
/// the MTU counts from the IP header).
pub const ENCAP_V4_MTU_OVERHEAD: usize = IPV4_LEN + UDP_LEN + VXLAN_LEN + ETH_LEN;
/// Outer Ethernet + IPv6 + UDP + VXLAN: what an IPv6 encapsulation adds.
pub const ENCAP_V6_LEN: usize = ETH_LEN + IPV6_LEN + UDP_LEN + VXLAN_LEN;
/// What the inner MTU loses to an IPv6 underlay: 70 bytes, the kernel's
/// `vxlan_headroom` for IPv6 (outer Ethernet excluded, inner included).
pub const ENCAP_V6_MTU_OVERHEAD: usize = IPV6_LEN + UDP_LEN + VXLAN_LEN + ETH_LEN;
/// The 20 bits of an IPv6 flow label.
pub const IPV6_FLOWLABEL_MASK: u32 = 0x000f_ffff;

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const ETH_P_IPV6: u16 = 0x86dd;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

/// VXLAN flags byte with the I flag (VNI present).
pub const VXLAN_FLAG_I: u8 = 0x08;
/// IPv4 "don't fragment" in the flags/offset field (host order).
pub const IPV4_DF: u16 = 0x4000;
/// IPv4 "more fragments".
pub const IPV4_MF: u16 = 0x2000;
/// IPv4 fragment offset mask.
pub const IPV4_OFFSET_MASK: u16 = 0x1fff;

/// Group bit: broadcast and multicast destinations are flooded.
#[inline(always)]
pub const fn is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}

#[inline(always)]
pub const fn is_zero(mac: &[u8; 6]) -> bool {
    mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5] == 0
}

/// A source MAC vtep accepts (and may learn): unicast and not all zeros.
#[inline(always)]
pub const fn is_valid_source(mac: &[u8; 6]) -> bool {
    !is_multicast(mac) && !is_zero(mac)
}

/// Folds a 32-bit one's-complement sum into 16 bits.
#[inline(always)]
pub const fn csum_fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Adds two 32-bit partial one's-complement sums, carrying around.
#[inline(always)]
pub const fn csum_add(a: u32, b: u32) -> u32 {
    // Without a branch on the carry: in eBPF each such branch over an
    // unknown value doubles the paths the verifier walks.
    let s = a as u64 + b as u64;
    ((s & 0xffff_ffff) + (s >> 32)) as u32
}

/// The partial one's-complement sum of `data` added to `sum`, over
/// native-endian 16-bit words (an odd last byte padded with zero): what the
/// kernel's `csum_partial` and `bpf_csum_diff` compute. `data` must start at
/// an even offset of what is summed.
#[inline(always)]
pub fn csum_partial(data: &[u8], mut sum: u32) -> u32 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum = csum_add(sum, u32::from(u16::from_ne_bytes([w[0], w[1]])));
    }
    if let [last] = words.remainder() {
        sum = csum_add(sum, csum_tail_byte(*last));
    }
    sum
}

/// The partial sum of one last, odd byte of a summed range.
#[inline(always)]
pub const fn csum_tail_byte(b: u8) -> u32 {
    u16::from_ne_bytes([b, 0]) as u32
}

/// Offset of the UDP checksum field in an [`encap_v4_header`].
pub const ENCAP_V4_UDP_CSUM: usize = ETH_LEN + IPV4_LEN + 6;

/// The outer UDP checksum of a VXLAN packet with header `hdr` (as
/// [`encap_v4_header`] builds it, checksum field zero) around an inner frame
/// whose partial sum ([`csum_partial`]) is `inner`: the bytes to store at
/// [`ENCAP_V4_UDP_CSUM`]. Covers the IPv4 pseudo-header, the UDP and VXLAN
/// headers and the inner frame; a result of zero is sent as `0xffff`
/// (RFC 768), since zero means "no checksum".
#[inline(always)]
pub fn udp_checksum_v4(hdr: &[u8; ENCAP_V4_LEN], inner: u32) -> [u8; 2] {
    let ip = ETH_LEN;
    let udp = ETH_LEN + IPV4_LEN;
    // Pseudo-header: addresses, protocol, UDP length (the UDP header's own
    // length field carries the same value).
    let mut sum = csum_partial(&hdr[ip + 12..ip + 20], inner);
    sum = csum_partial(&[0, IPPROTO_UDP], sum);
    sum = csum_partial(&hdr[udp + 4..udp + 6], sum);
    sum = csum_partial(&hdr[udp..ENCAP_V4_LEN], sum);
    match !csum_fold(sum) {
        0 => [0xff, 0xff],
        c => c.to_ne_bytes(),
    }
}

/// Offset of the UDP checksum field in an [`encap_v6_header`].
pub const ENCAP_V6_UDP_CSUM: usize = ETH_LEN + IPV6_LEN + 6;

/// The outer UDP checksum of a VXLAN packet over IPv6 with header `hdr`
/// (as [`encap_v6_header`] builds it, checksum field zero) around an inner
/// frame whose partial sum ([`csum_partial`]) is `inner`: the bytes to store
/// at [`ENCAP_V6_UDP_CSUM`]. Covers the IPv6 pseudo-header (RFC 8200 §8.1:
/// addresses, upper-layer length, next header), the UDP and VXLAN headers
/// and the inner frame. A result of zero is sent as `0xffff`: over IPv6 a
/// zero means "no checksum", which only `udp6zerocsumrx` receivers accept.
#[inline(always)]
pub fn udp_checksum_v6(hdr: &[u8; ENCAP_V6_LEN], inner: u32) -> [u8; 2] {
    let ip = ETH_LEN;
    let udp = ETH_LEN + IPV6_LEN;
    let mut sum = csum_partial(&hdr[ip + 8..ip + 40], inner);
    // Upper-layer length (32 bits, its high half zero: the UDP length field
    // carries the same value) and next header (three zero bytes first).
    sum = csum_partial(&hdr[udp + 4..udp + 6], sum);
    sum = csum_partial(&[0, IPPROTO_UDP], sum);
    sum = csum_partial(&hdr[udp..ENCAP_V6_LEN], sum);
    match !csum_fold(sum) {
        0 => [0xff, 0xff],
        c => c.to_ne_bytes(),
    }
}

/// The IPv4 header checksum of a 20-byte header, to be stored big-endian.
/// The checksum field itself (bytes 10..12) is skipped.
#[inline(always)]
pub fn ipv4_checksum(hdr: &[u8; IPV4_LEN]) -> u16 {
    let mut sum = 0u32;
    let mut i = 0;
    while i < IPV4_LEN {
        if i != 10 {
            sum += u32::from(u16::from_be_bytes([hdr[i], hdr[i + 1]]));
        }
        i += 2;
    }
    !csum_fold(sum)
}

/// The fields of an inner frame that choose its flow, and so the outer UDP
/// source port (RFC 7348 §5: a hash of the inner headers, so that ECMP in the
/// underlay keeps a flow on one path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowKeys {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// Host order.
    pub ether_type: u16,
    /// IPv4 addresses (network order) when the frame is IPv4, else 0.
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub proto: u8,
    /// L4 ports (host order) when TCP or UDP and not a fragment, else 0.
    pub src_port: u16,
    pub dst_port: u16,
}

#[inline(always)]
const fn mix(h: u32, w: u32) -> u32 {
    (h.rotate_left(5) ^ w).wrapping_mul(0x9e37_79b1)
}

/// murmur3's 32-bit finaliser: every input bit reaches every output bit.
#[inline(always)]
const fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

/// The flow hash of an inner frame.
#[inline(always)]
pub const fn flow_hash(k: &FlowKeys) -> u32 {
    let d = &k.dst_mac;
    let s = &k.src_mac;
    let mut h = 0x5654_4550u32;
    h = mix(h, u32::from_be_bytes([d[0], d[1], d[2], d[3]]));
    h = mix(h, u32::from_be_bytes([d[4], d[5], s[0], s[1]]));
    h = mix(h, u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    h = mix(h, ((k.ether_type as u32) << 8) | k.proto as u32);
    h = mix(h, u32::from_be_bytes(k.src_ip));
    h = mix(h, u32::from_be_bytes(k.dst_ip));
    h = mix(h, ((k.src_port as u32) << 16) | k.dst_port as u32);
    fmix32(h)
}

/// Maps a flow hash into `min..=max` the way the kernel's
/// `udp_flow_src_port` does: a multiply and a shift, no division.
#[inline(always)]
pub const fn source_port(hash: u32, min: u16, max: u16) -> u16 {
    if max <= min {
        return min;
    }
    let span = (max - min) as u64 + 1;
    min + ((hash as u64 * span) >> 32) as u16
}

/// The outer IPv6 flow label of a flow whose hash ([`flow_hash`]) is
/// `hash` (RFC 6438: the label carries the inner flow's entropy, so that
/// ECMP and LAG in the underlay can use it without reading UDP). The hash
/// is folded, as the kernel's `ip6_make_flowlabel` does, so that the label
/// and the outer source port (its high bits) are not the same bits; never 0,
/// which would mean "no label" (RFC 6437).
#[inline(always)]
pub const fn flow_label(hash: u32) -> u32 {
    let h = hash ^ (hash >> 12);
    match h.rotate_left(16) & IPV6_FLOWLABEL_MASK {
        0 => 1,
        l => l,
    }
}

/// What the outer header of an IPv4 encapsulation carries.
/// `repr(C)`, aligned to 4: the addresses sit at 4-aligned offsets, so
/// LLVM copies them as words (on the BPF target, an unaligned copy is byte
/// by byte, each byte a register, most of them spilled to the stack).
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncapV4 {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// Network order.
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub ttl: u8,
    /// The outer TOS byte (DSCP and ECN), as [`crate::ecn::outer_dsfield`]
    /// computes it.
    pub tos: u8,
    /// Host order.
    pub src_port: u16,
    pub dst_port: u16,
    pub vni: u32,
    /// Length of the inner frame, inner Ethernet header included.
    pub inner_len: u16,
}

/// The 50 bytes an IPv4 encapsulation puts in front of the inner frame:
/// Ethernet (IPv4), IPv4 (TOS, DF, no options, checksum filled in), UDP
/// (checksum 0) and VXLAN (I flag, VNI).
#[inline(always)]
pub fn encap_v4_header(e: &EncapV4) -> [u8; ENCAP_V4_LEN] {
    let mut h = [0u8; ENCAP_V4_LEN];
    encap_v4_header_into(&mut h, e);
    h
}

/// [`encap_v4_header`] written into `h` (every byte of it), wherever it is:
/// a per-CPU scratch buffer of an eBPF program, whose stack has no room.
#[inline(always)]
pub fn encap_v4_header_into(h: &mut [u8; ENCAP_V4_LEN], e: &EncapV4) {
    h[0..6].copy_from_slice(&e.dst_mac);
    h[6..12].copy_from_slice(&e.src_mac);
    h[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());

    let ip_len = (IPV4_LEN + UDP_LEN + VXLAN_LEN) as u16 + e.inner_len;
    // Built in place (no 20-byte copy on an eBPF stack), checksum last.
    let ip = ETH_LEN;
    h[ip..ip + 2].copy_from_slice(&[0x45, e.tos]);
    h[ip + 2..ip + 4].copy_from_slice(&ip_len.to_be_bytes());
    h[ip + 4..ip + 6].copy_from_slice(&[0, 0]);
    h[ip + 6..ip + 8].copy_from_slice(&IPV4_DF.to_be_bytes());
    h[ip + 8..ip + 12].copy_from_slice(&[e.ttl, IPPROTO_UDP, 0, 0]);
    h[ip + 12..ip + 16].copy_from_slice(&e.src_ip);
    h[ip + 16..ip + 20].copy_from_slice(&e.dst_ip);
    let mut sum = 0u32;
    let mut i = ip;
    while i < ip + IPV4_LEN {
        sum += u32::from(u16::from_be_bytes([h[i], h[i + 1]]));
        i += 2;
    }
    h[ip + 10..ip + 12].copy_from_slice(&(!csum_fold(sum)).to_be_bytes());

    let u = ETH_LEN + IPV4_LEN;
    let udp_len = (UDP_LEN + VXLAN_LEN) as u16 + e.inner_len;
    h[u..u + 2].copy_from_slice(&e.src_port.to_be_bytes());
    h[u + 2..u + 4].copy_from_slice(&e.dst_port.to_be_bytes());
    h[u + 4..u + 6].copy_from_slice(&udp_len.to_be_bytes());
    h[u + 6..u + 8].copy_from_slice(&[0, 0]);
    vxlan_into(h, u + UDP_LEN, e.vni);
}

/// The VXLAN header at `v` of `h`: I flag, `vni`, reserved bytes zero.
#[inline(always)]
fn vxlan_into(h: &mut [u8], v: usize, vni: u32) {
    let vni = (vni & 0x00ff_ffff).to_be_bytes();
    h[v..v + VXLAN_LEN].copy_from_slice(&[VXLAN_FLAG_I, 0, 0, 0, vni[1], vni[2], vni[3], 0]);
}

/// What the outer header of an IPv6 encapsulation carries.
/// `repr(C)`, aligned to 4: the addresses sit at 4-aligned offsets, so
/// LLVM copies them as words (on the BPF target, an unaligned copy is byte
/// by byte, each byte a register, most of them spilled to the stack).
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncapV6 {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    /// Network order.
    pub src_ip: [u8; 16],
    pub dst_ip: [u8; 16],
    pub hop_limit: u8,
    /// The traffic class (DSCP and ECN), as [`crate::ecn::outer_dsfield`]
    /// computes it.
    pub tclass: u8,
    /// The flow label, host order, 20 bits (higher bits ignored).
    pub flowlabel: u32,
    /// Host order.
    pub src_port: u16,
    pub dst_port: u16,
    pub vni: u32,
    /// Length of the inner frame, inner Ethernet header included.
    pub inner_len: u16,
}

/// The 70 bytes an IPv6 encapsulation puts in front of the inner frame:
/// Ethernet (IPv6), IPv6 (traffic class, flow label, next header UDP, no
/// extension headers), UDP (checksum 0: [`udp_checksum_v6`] fills it in)
/// and VXLAN (I flag, VNI).
#[inline(always)]
pub fn encap_v6_header(e: &EncapV6) -> [u8; ENCAP_V6_LEN] {
    let mut h = [0u8; ENCAP_V6_LEN];
    encap_v6_header_into(&mut h, e);
    h
}

/// [`encap_v6_header`] written into `h` (every byte of it), wherever it is.
#[inline(always)]
pub fn encap_v6_header_into(h: &mut [u8; ENCAP_V6_LEN], e: &EncapV6) {
    h[0..6].copy_from_slice(&e.dst_mac);
    h[6..12].copy_from_slice(&e.src_mac);
    h[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());

    let ip = ETH_LEN;
    let vtcfl = (6u32 << 28) | (u32::from(e.tclass) << 20) | (e.flowlabel & IPV6_FLOWLABEL_MASK);
    h[ip..ip + 4].copy_from_slice(&vtcfl.to_be_bytes());
    let payload_len = (UDP_LEN + VXLAN_LEN) as u16 + e.inner_len;
    h[ip + 4..ip + 6].copy_from_slice(&payload_len.to_be_bytes());
    h[ip + 6] = IPPROTO_UDP;
    h[ip + 7] = e.hop_limit;
    h[ip + 8..ip + 24].copy_from_slice(&e.src_ip);
    h[ip + 24..ip + 40].copy_from_slice(&e.dst_ip);

    let u = ETH_LEN + IPV6_LEN;
    h[u..u + 2].copy_from_slice(&e.src_port.to_be_bytes());
    h[u + 2..u + 4].copy_from_slice(&e.dst_port.to_be_bytes());
    h[u + 4..u + 6].copy_from_slice(&payload_len.to_be_bytes());
    h[u + 6..u + 8].copy_from_slice(&[0, 0]);
    vxlan_into(h, u + UDP_LEN, e.vni);
}

/// What an outer header takes from the inner frame and its next hop,
/// beside the underlay's configuration: the input of [`encap_v4`] and
/// [`encap_v6`], which every engine (XDP, TC flooding, AF_XDP, the
/// reference model) builds its outer headers with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outer {
    /// The next hop's MAC (or a group's MAC) and the uplink's.
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub vni: u32,
    /// Length of the inner frame, inner Ethernet header included.
    pub inner_len: u16,
    /// The inner flow's hash ([`flow_hash`]): source port and flow label.
    pub hash: u32,
    /// Whether the inner frame is IP ([`ecn::inner_ip`]), and its DS
    /// field (0 when not). Two plain fields, not an `Option<u8>`: an eBPF
    /// program stores this struct, and a `None`'s undefined payload byte is
    /// a register the verifier refuses to see stored uninitialised.
    pub inner_ip: bool,
    pub inner_ds: u8,
    /// The inner IPv6 packet's flow label (0 for other frames).
    pub inner_label: u32,
}

impl Outer {
    /// What the outer header of the inner frame at offset 0 of `frame`
    /// (`inner_len` bytes, in `vni`) takes from it: its flow hash and its IP
    /// header's DS field and flow label; the MACs are the caller's. `None`
    /// when the frame is too short for flow keys.
    #[inline(always)]
    pub fn of<F: Frame + ?Sized>(frame: &F, vni: u32, inner_len: u16) -> Option<Self> {
        let keys = flow_keys(frame, 0)?;
        Some(
            Outer {
                vni,
                inner_len,
                hash: flow_hash(&keys),
                ..Outer::default()
            }
            .with_inner_ip(frame, 0),
        )
    }

    /// The DS / ECN fields of the inner frame at `offset` of `frame`
    /// ([`ecn::inner_ip`]) copied into `self`.
    #[inline(always)]
    pub fn with_inner_ip<F: Frame + ?Sized>(mut self, frame: &F, offset: usize) -> Self {
        if let Some(ip) = ecn::inner_ip(frame, offset) {
            self.inner_ip = true;
            self.inner_ds = ip.ds;
            self.inner_label = ip.flowlabel;
        }
        self
    }
}

/// The outer flow label toward an IPv6 remote: the configured one
/// (`UNDERLAY_F_LABEL_FIXED`), the inner IPv6 packet's
/// (`UNDERLAY_F_LABEL_INHERIT`; 0 for other frames), else the flow hash's
/// ([`flow_label`], RFC 6438).
#[inline(always)]
pub const fn outer_flowlabel(ul: &Underlay, hash: u32, inner_label: u32) -> u32 {
    if ul.flags & UNDERLAY_F_LABEL_FIXED != 0 {
        ul.flowlabel & IPV6_FLOWLABEL_MASK
    } else if ul.flags & UNDERLAY_F_LABEL_INHERIT != 0 {
        inner_label & IPV6_FLOWLABEL_MASK
    } else {
        flow_label(hash)
    }
}

/// The outer DS field (TOS / traffic class) for `o` under `ul`: RFC 6040
/// ECN, DSCP fixed or inherited ([`ecn::outer_dsfield`]).
#[inline(always)]
pub const fn outer_ds(ul: &Underlay, o: &Outer) -> u8 {
    let inner = if o.inner_ip { Some(o.inner_ds) } else { None };
    ecn::outer_dsfield(inner, ul.tos, ul.flags & UNDERLAY_F_TOS_INHERIT != 0)
}

/// The IPv4 outer header fields toward `remote` (a VTEP or a group): from
/// `ul.local`, TTL [`Underlay::ttl_to`], TOS [`outer_ds`], source port from
/// the flow hash. `None` when the underlay has no IPv4 address.
#[inline(always)]
pub fn encap_v4(ul: &Underlay, remote: [u8; 4], o: &Outer) -> Option<EncapV4> {
    let mut e = EncapV4::default();
    encap_v4_into(&mut e, ul, remote, o).then_some(e)
}

/// [`encap_v4`] written into `e`, field by field, wherever it is (an eBPF
/// program's per-CPU scratch buffer): `false`, `e` untouched, when the
/// underlay has no IPv4 address.
#[inline(always)]
pub fn encap_v4_into(e: &mut EncapV4, ul: &Underlay, remote: [u8; 4], o: &Outer) -> bool {
    let Some(local) = ul.local.as_v4() else {
        return false;
    };
    e.dst_mac = o.dst_mac;
    e.src_mac = o.src_mac;
    e.src_ip = local;
    e.dst_ip = remote;
    e.ttl = ul.ttl_to(&VtepAddr::v4(remote));
    e.tos = outer_ds(ul, o);
    e.src_port = source_port(o.hash, ul.srcport_min, ul.srcport_max);
    e.dst_port = ul.port;
    e.vni = o.vni;
    e.inner_len = o.inner_len;
    true
}

/// The IPv6 outer header fields toward `remote` (a VTEP or a group): from
/// `ul.local6`, hop limit [`Underlay::ttl_to`], traffic class [`outer_ds`],
/// flow label [`outer_flowlabel`], source port from the flow hash. `None`
/// when the underlay has no IPv6 address.
#[inline(always)]
pub fn encap_v6(ul: &Underlay, remote: &[u8; 16], o: &Outer) -> Option<EncapV6> {
    let mut e = EncapV6::default();
    encap_v6_into(&mut e, ul, remote, o).then_some(e)
}

/// [`encap_v6`] written into `e`, as [`encap_v4_into`].
#[inline(always)]
pub fn encap_v6_into(e: &mut EncapV6, ul: &Underlay, remote: &[u8; 16], o: &Outer) -> bool {
    if ul.local6.family != AF_INET6 {
        return false;
    }
    e.dst_mac = o.dst_mac;
    e.src_mac = o.src_mac;
    e.src_ip = ul.local6.addr;
    e.dst_ip = *remote;
    // Multicast is ff00::/8: the first byte decides (`ttl_to` without
    // building a `VtepAddr` copy of the address).
    e.hop_limit = if ul.ttl != 0 {
        ul.ttl
    } else if remote[0] == 0xff {
        TTL_AUTO_GROUP
    } else {
        TTL_AUTO_UNICAST
    };
    e.tclass = outer_ds(ul, o);
    e.flowlabel = outer_flowlabel(ul, o.hash, o.inner_label);
    e.src_port = source_port(o.hash, ul.srcport_min, ul.srcport_max);
    e.dst_port = ul.port;
    e.vni = o.vni;
    e.inner_len = o.inner_len;
    true
}

/// Checks an outer IPv4 header that is addressed to this VTEP.
///
/// `vihl` is the version/IHL byte, `frag` the flags/offset field and
/// `tot_len` the total length (both host order), `avail` the bytes of the
/// frame from the IP header on. Returns the IP header length.
#[inline(always)]
pub const fn check_ipv4(vihl: u8, frag: u16, tot_len: u16, avail: usize) -> Result<usize, Reason> {
    if vihl >> 4 != 4 || vihl & 0x0f < 5 {
        return Err(Reason::BadIpHeader);
    }
    let ihl = (vihl & 0x0f) as usize * 4;
    if frag & (IPV4_MF | IPV4_OFFSET_MASK) != 0 {
        return Err(Reason::Fragment);
    }
    let tot = tot_len as usize;
    if tot < ihl + UDP_LEN + VXLAN_LEN + ETH_LEN || tot > avail {
        return Err(Reason::Truncated);
    }
    Ok(ihl)
}

/// Checks the UDP length of a VXLAN packet against the IP payload length.
#[inline(always)]
pub const fn check_udp_len(udp_len: u16, ip_payload: usize) -> Result<(), Reason> {
    let u = udp_len as usize;
    if u < UDP_LEN + VXLAN_LEN + ETH_LEN || u > ip_payload {
        return Err(Reason::Truncated);
    }
    Ok(())
}

/// The VNI of a VXLAN header, if its I flag is set.
#[inline(always)]
pub const fn vxlan_vni(flags: u8, vni: [u8; 3]) -> Result<u32, Reason> {
    if flags & VXLAN_FLAG_I == 0 {
        return Err(Reason::BadFlags);
    }
    Ok(u32::from_be_bytes([0, vni[0], vni[1], vni[2]]))
}

/// What [`parse_vxlan`] finds in a VXLAN packet for this VTEP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decap {
    pub vni: u32,
    /// Outer source address (the remote VTEP), of either family.
    pub remote: VtepAddr,
    /// The outer destination when it is a multicast group (the packet was
    /// sent to a VNI's `group`); `None` when it is this VTEP's own address.
    pub group: Option<VtepAddr>,
    /// The ECN bits of the outer IPv4 TOS / IPv6 traffic class, for
    /// RFC 6040 decapsulation ([`crate::ecn::decap`]).
    pub outer_ecn: u8,
    /// Offset of the inner Ethernet header.
    pub inner_offset: usize,
    /// Length of the inner frame (from the UDP length, not the frame: an
    /// Ethernet pad after the IP packet is not part of it).
    pub inner_len: usize,
}

/// What a frame on the uplink is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Uplink {
    /// VXLAN for this VTEP, well formed.
    Vxlan(Decap),
    /// Not VXLAN for this VTEP: the host's own traffic, to pass untouched.
    Pass,
    /// VXLAN for this VTEP, but malformed: drop and count.
    Drop(Reason),
}

/// IPv6 extension headers ([RFC 8200 §4](https://www.rfc-editor.org/rfc/rfc8200#section-4))
/// the uplink classifier knows the length of.
pub const IPPROTO_HOPOPTS: u8 = 0;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_FRAGMENT: u8 = 44;
pub const IPPROTO_AH: u8 = 51;
pub const IPPROTO_DSTOPTS: u8 = 60;

/// Most IPv6 extension headers the uplink classifier follows to find the
/// UDP header. A longer chain passes to the host: its upper layer is not
/// found, so it cannot be told VXLAN (and the verifier needs a bound).
pub const MAX_IPV6_EXT: usize = 4;

/// The uplink classifier of both engines: outer Ethernet (one optional
/// 802.1Q/802.1ad tag), then IPv4 or IPv6 to one of this VTEP's addresses
/// (`ul.local`, `ul.local6`) or to a multicast group, UDP to `ul.port`,
/// VXLAN. The XDP program calls it to decapsulate, the AF_XDP steering
/// program to pick the frames its engine gets, and the engine itself.
///
/// A packet is "VXLAN for us" once its destination and UDP port say so;
/// from then on anything wrong with it is a drop under a named reason,
/// before that a pass (the host's own traffic). A group-addressed packet
/// is accepted here whatever the group (the caller checks that it is the
/// group of its VNI, [`Decap::group`]), but only in a family this VTEP has
/// an address of: a remote VTEP of the other family could not be answered.
#[inline(always)]
pub fn parse_vxlan<F: Frame + ?Sized>(frame: &F, ul: &Underlay) -> Uplink {
    let Some(eth) = frame.read_at::<EthHdr>(0) else {
        return Uplink::Pass;
    };
    let mut off = ETH_LEN;
    let mut ether_type = u16::from_be(eth.ether_type);
    if ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD {
        let Some(tag) = frame.read_at::<VlanHdr>(off) else {
            return Uplink::Pass;
        };
        ether_type = u16::from_be(tag.ether_type);
        off += VLAN_LEN;
    }
    match ether_type {
        ETH_P_IP if ul.local.family == AF_INET => parse_v4(frame, off, ul),
        ETH_P_IPV6 if ul.local6.family == AF_INET6 => parse_v6(frame, off, ul),
        _ => Uplink::Pass,
    }
}

/// The VXLAN header at `vx`, and what the outer headers found: the last
/// step of both families.
#[inline(always)]
fn vxlan_at<F: Frame + ?Sized>(
    frame: &F,
    vx: usize,
    udp_len: u16,
    remote: VtepAddr,
    group: Option<VtepAddr>,
    outer_ecn: u8,
) -> Uplink {
    let Some(h) = frame.read_at::<VxlanHdr>(vx) else {
        return Uplink::Drop(Reason::Truncated);
    };
    match vxlan_vni(h.flags, h.vni) {
        Ok(vni) => Uplink::Vxlan(Decap {
            vni,
            remote,
            group,
            outer_ecn,
            inner_offset: vx + VXLAN_LEN,
            inner_len: udp_len as usize - UDP_LEN - VXLAN_LEN,
        }),
        Err(r) => Uplink::Drop(r),
    }
}

/// IPv4 at `off`: to `ul.local` or to a group (224.0.0.0/4).
#[inline(always)]
fn parse_v4<F: Frame + ?Sized>(frame: &F, off: usize, ul: &Underlay) -> Uplink {
    let Some(ip) = frame.read_at::<Ipv4Hdr>(off) else {
        return Uplink::Pass;
    };
    let dst = VtepAddr::v4(ip.dst_addr);
    let group = dst.is_multicast();
    if ip.proto != IPPROTO_UDP || !(group || dst == ul.local) {
        return Uplink::Pass;
    }
    let frag = u16::from_be_bytes(ip.frags);
    // A non-first fragment carries no UDP header: not ours to judge.
    if frag & IPV4_OFFSET_MASK != 0 {
        return Uplink::Pass;
    }
    // The port decides whether this is VXLAN; read it where the IHL says.
    let ihl = usize::from(ip.ihl());
    if ip.version() == 4 && ihl >= IPV4_LEN {
        let Some(udp) = frame.read_at::<UdpHdr>(off + ihl) else {
            return Uplink::Pass;
        };
        if u16::from_be_bytes(udp.dst) != ul.port {
            return Uplink::Pass;
        }
    }
    // From here on the packet is VXLAN for us: anything wrong is a drop.
    let tot_len = u16::from_be_bytes(ip.tot_len);
    let avail = frame.len().saturating_sub(off);
    let ihl = match check_ipv4(ip.vihl, frag, tot_len, avail) {
        Ok(ihl) => ihl,
        Err(r) => return Uplink::Drop(r),
    };
    let remote = VtepAddr::v4(ip.src_addr);
    // A group is no VTEP: learning behind it would send unicast there.
    if remote.is_multicast() {
        return Uplink::Drop(Reason::BadIpHeader);
    }
    let Some(udp) = frame.read_at::<UdpHdr>(off + ihl) else {
        return Uplink::Drop(Reason::Truncated);
    };
    let udp_len = u16::from_be_bytes(udp.len);
    if let Err(r) = check_udp_len(udp_len, tot_len as usize - ihl) {
        return Uplink::Drop(r);
    }
    let group = if group { Some(dst) } else { None };
    let ecn = ip.tos & crate::ecn::ECN_MASK;
    vxlan_at(frame, off + ihl + UDP_LEN, udp_len, remote, group, ecn)
}

/// IPv6 at `off`: to `ul.local6` or to a group (ff00::/8).
///
/// Extension headers: up to [`MAX_IPV6_EXT`] are followed to find the
/// UDP header. Hop-by-Hop Options (first only, RFC 8200 §4.1), Destination
/// Options and a Routing header with no segments left are walked: VXLAN
/// behind them is decapsulated (their options are not acted on, as an end
/// host ignores the ones it does not know). A first fragment (atomic ones
/// included: vtep does not reassemble), an Authentication Header (vtep
/// would skip its check) and a Hop-by-Hop header out of place are not:
/// VXLAN behind them is dropped (`ipv6-ext-header`), never decapsulated.
/// Anything else — a later fragment, a Routing header with segments left
/// (this VTEP is a waypoint, not the destination), ESP, No Next Header, a
/// chain longer than the bound, a header cut short — hides the upper
/// layer, so the packet cannot be told VXLAN and passes to the host.
#[inline(always)]
fn parse_v6<F: Frame + ?Sized>(frame: &F, off: usize, ul: &Underlay) -> Uplink {
    // Version, traffic class, flow label, payload length, next header, hop
    // limit; then the source and destination addresses.
    let Some(fixed) = frame.read_at::<[u8; 8]>(off) else {
        return Uplink::Pass;
    };
    let Some(dst) = frame.read_at::<[u8; 16]>(off + 24) else {
        return Uplink::Pass;
    };
    let dst = VtepAddr::v6(dst);
    let group = dst.is_multicast();
    if !(group || dst == ul.local6) {
        return Uplink::Pass;
    }
    let mut nh = fixed[6];
    let mut ext = 0usize;
    let mut unwalked = false;
    for i in 0..MAX_IPV6_EXT {
        if nh == IPPROTO_UDP {
            break;
        }
        let Some(h) = frame.read_at::<[u8; 4]>(off + IPV6_LEN + ext) else {
            return Uplink::Pass;
        };
        let len = match nh {
            IPPROTO_HOPOPTS | IPPROTO_DSTOPTS | IPPROTO_ROUTING => (usize::from(h[1]) + 1) * 8,
            IPPROTO_FRAGMENT => 8,
            IPPROTO_AH => (usize::from(h[1]) + 2) * 4,
            _ => return Uplink::Pass,
        };
        match nh {
            IPPROTO_HOPOPTS if i != 0 => unwalked = true,
            IPPROTO_ROUTING if h[3] != 0 => return Uplink::Pass,
            IPPROTO_FRAGMENT => {
                // A later fragment carries no UDP header.
                if u16::from_be_bytes([h[2], h[3]]) & 0xfff8 != 0 {
                    return Uplink::Pass;
                }
                unwalked = true;
            }
            IPPROTO_AH => unwalked = true,
            _ => {}
        }
        nh = h[0];
        ext += len;
    }
    if nh != IPPROTO_UDP {
        return Uplink::Pass;
    }
    let l4 = off + IPV6_LEN + ext;
    let Some(udp) = frame.read_at::<UdpHdr>(l4) else {
        return Uplink::Pass;
    };
    if u16::from_be_bytes(udp.dst) != ul.port {
        return Uplink::Pass;
    }
    // From here on the packet is VXLAN for us: anything wrong is a drop.
    if fixed[0] >> 4 != 6 {
        return Uplink::Drop(Reason::BadIpHeader);
    }
    if unwalked {
        return Uplink::Drop(Reason::Ipv6ExtHeader);
    }
    let payload = usize::from(u16::from_be_bytes([fixed[4], fixed[5]]));
    let avail = frame.len().saturating_sub(off + IPV6_LEN);
    if payload > avail || payload < ext + UDP_LEN + VXLAN_LEN + ETH_LEN {
        return Uplink::Drop(Reason::Truncated);
    }
    let udp_len = u16::from_be_bytes(udp.len);
    if let Err(r) = check_udp_len(udp_len, payload - ext) {
        return Uplink::Drop(r);
    }
    let Some(src) = frame.read_at::<[u8; 16]>(off + 8) else {
        return Uplink::Drop(Reason::Truncated);
    };
    let remote = VtepAddr::v6(src);
    if remote.is_multicast() {
        return Uplink::Drop(Reason::BadIpHeader);
    }
    // RFC 6935: a zero checksum only where the operator allows it, as the
    // kernel's `udp6zerocsumrx`. A non-zero one is not verified (the
    // inner frame's own checksums stand behind it).
    if udp.check == [0, 0] && ul.flags & UNDERLAY_F_UDP6_ZERO_CSUM_RX == 0 {
        return Uplink::Drop(Reason::Udp6ZeroCsum);
    }
    let group = if group { Some(dst) } else { None };
    let ecn = (fixed[1] >> 4) & crate::ecn::ECN_MASK;
    vxlan_at(frame, l4 + UDP_LEN, udp_len, remote, group, ecn)
}

/// The Ethernet header of a frame from an access port, checked as both
/// engines check it before the port's VNI is looked up: a whole Ethernet
/// header (`truncated`), and untagged (`unknown-vlan`: VLAN-tagged access
/// ports are not configured yet).
#[inline(always)]
pub fn access_eth<F: Frame + ?Sized>(frame: &F) -> Result<EthHdr, Reason> {
    let eth = frame.read_at::<EthHdr>(0).ok_or(Reason::Truncated)?;
    let ether_type = u16::from_be(eth.ether_type);
    if ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD {
        return Err(Reason::UnknownVlan);
    }
    Ok(eth)
}

/// The flow keys of the Ethernet frame at `offset` of `frame`: MACs, and
/// for IPv4 the addresses, protocol and L4 ports (not of fragments); `None`
/// when there is no whole Ethernet header.
#[inline(always)]
pub fn flow_keys<F: Frame + ?Sized>(frame: &F, offset: usize) -> Option<FlowKeys> {
    let eth = frame.read_at::<EthHdr>(offset)?;
    let mut k = FlowKeys {
        dst_mac: eth.dst_addr,
        src_mac: eth.src_addr,
        ether_type: u16::from_be(eth.ether_type),
        ..FlowKeys::default()
    };
    if k.ether_type != ETH_P_IP {
        return Some(k);
    }
    let Some(ip) = frame.read_at::<Ipv4Hdr>(offset + ETH_LEN) else {
        return Some(k);
    };
    k.proto = ip.proto;
    k.src_ip = ip.src_addr;
    k.dst_ip = ip.dst_addr;
    let frag = u16::from_be_bytes(ip.frags);
    let ihl = usize::from(ip.ihl());
    if (k.proto == IPPROTO_TCP || k.proto == IPPROTO_UDP)
        && frag & (IPV4_MF | IPV4_OFFSET_MASK) == 0
        && ihl >= IPV4_LEN
        && let Some(p) = frame.read_at::<[u8; 4]>(offset + ETH_LEN + ihl)
    {
        k.src_port = u16::from_be_bytes([p[0], p[1]]);
        k.dst_port = u16::from_be_bytes([p[2], p[3]]);
    }
    Some(k)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{vec, vec::Vec};

    use super::*;

    const LOCAL: [u8; 4] = [198, 18, 0, 1];
    const REMOTE: [u8; 4] = [198, 18, 0, 2];
    const LOCAL6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const REMOTE6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const GROUP6: [u8; 16] = [0xff, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00];

    /// A dual-stack underlay on port 4789.
    fn ul() -> Underlay {
        Underlay {
            local: VtepAddr::v4(LOCAL),
            local6: VtepAddr::v6(LOCAL6),
            port: 4789,
            ..Underlay::default()
        }
    }

    /// VXLAN over IPv6 from REMOTE6 to `dst`, with extension headers
    /// `ext` (each: next-header code of the header, its bytes; the chain's
    /// last next header is UDP), traffic class `tc`, UDP checksum `csum`.
    fn encap6(dst: [u8; 16], ext: &[(u8, Vec<u8>)], tc: u8, csum: u16, inner: &[u8]) -> Vec<u8> {
        let mut f = vec![0x02, 0xaa, 0, 0, 0, 1, 0x02, 0xbb, 0, 0, 0, 1, 0x86, 0xdd];
        let udp_len = (UDP_LEN + VXLAN_LEN + inner.len()) as u16;
        let ext_len: usize = ext.iter().map(|(_, b)| b.len()).sum();
        f.extend_from_slice(&[0x60 | (tc >> 4), (tc << 4) | 0x0a, 0xbc, 0xde]);
        f.extend_from_slice(&(udp_len + ext_len as u16).to_be_bytes());
        f.push(ext.first().map_or(IPPROTO_UDP, |(nh, _)| *nh));
        f.push(64);
        f.extend_from_slice(&REMOTE6);
        f.extend_from_slice(&dst);
        for (i, (_, bytes)) in ext.iter().enumerate() {
            let mut b = bytes.clone();
            b[0] = ext.get(i + 1).map_or(IPPROTO_UDP, |(nh, _)| *nh);
            f.extend_from_slice(&b);
        }
        f.extend_from_slice(&50000u16.to_be_bytes());
        f.extend_from_slice(&4789u16.to_be_bytes());
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&csum.to_be_bytes());
        f.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 100, 0]);
        f.extend_from_slice(inner);
        f
    }

    fn inner() -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
        f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
        f.extend_from_slice(&ETH_P_IP.to_be_bytes());
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&28u16.to_be_bytes());
        ip[8] = 64;
        ip[9] = IPPROTO_UDP;
        ip[12..16].copy_from_slice(&[192, 0, 2, 1]);
        ip[16..20].copy_from_slice(&[192, 0, 2, 2]);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0]);
        f
    }

    fn encap(inner: &[u8]) -> Vec<u8> {
        let h = encap_v4_header(&EncapV4 {
            dst_mac: [0x02, 0xaa, 0, 0, 0, 1],
            src_mac: [0x02, 0xbb, 0, 0, 0, 1],
            src_ip: REMOTE,
            dst_ip: LOCAL,
            ttl: 64,
            tos: 0,
            src_port: 50000,
            dst_port: 4789,
            vni: 100,
            inner_len: inner.len() as u16,
        });
        let mut f = h.to_vec();
        f.extend_from_slice(inner);
        f
    }

    #[test]
    fn ipv4_checksum_matches_a_known_header() {
        // RFC 1071-style example header; checksum 0xb861.
        let hdr: [u8; 20] = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_checksum(&hdr), 0xb861);
    }

    #[test]
    fn encap_header_is_exact() {
        let inner = inner();
        let f = encap(&inner);
        assert_eq!(f.len(), ENCAP_V4_LEN + inner.len());
        // Ethernet
        assert_eq!(&f[0..6], &[0x02, 0xaa, 0, 0, 0, 1]);
        assert_eq!(&f[6..12], &[0x02, 0xbb, 0, 0, 0, 1]);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        // IPv4: version/IHL, length, DF, TTL, UDP, addresses, valid checksum
        let ip: [u8; 20] = f[14..34].try_into().unwrap();
        assert_eq!(ip[0], 0x45);
        assert_eq!(
            u16::from_be_bytes([ip[2], ip[3]]) as usize,
            20 + 8 + 8 + inner.len()
        );
        assert_eq!(u16::from_be_bytes([ip[6], ip[7]]), IPV4_DF);
        assert_eq!(ip[8], 64);
        assert_eq!(ip[9], IPPROTO_UDP);
        assert_eq!(&ip[12..16], &REMOTE);
        assert_eq!(&ip[16..20], &LOCAL);
        assert_eq!(u16::from_be_bytes([ip[10], ip[11]]), ipv4_checksum(&ip));
        // UDP: ports, length, checksum 0
        assert_eq!(&f[34..36], &50000u16.to_be_bytes());
        assert_eq!(&f[36..38], &4789u16.to_be_bytes());
        assert_eq!(
            u16::from_be_bytes([f[38], f[39]]) as usize,
            8 + 8 + inner.len()
        );
        assert_eq!(&f[40..42], &[0, 0]);
        // VXLAN: I flag, VNI 100, reserved zero
        assert_eq!(&f[42..50], &[0x08, 0, 0, 0, 0, 0, 100, 0]);
    }

    /// RFC 1071 over a whole buffer, big-endian words: the reference the
    /// native-endian partial sums must agree with.
    fn textbook_checksum(bytes: &[u8]) -> u16 {
        let mut sum = 0u32;
        for w in bytes.chunks(2) {
            let hi = u32::from(w[0]) << 8;
            sum += hi | w.get(1).copied().map_or(0, u32::from);
        }
        !csum_fold(sum)
    }

    #[test]
    fn udp_checksum_matches_the_textbook_sum() {
        // Odd and even inner lengths, around the 512-byte chunks of eBPF.
        for pad in [0usize, 1, 2, 3, 511, 1001] {
            let mut inner = inner();
            inner.extend((0..pad).map(|i| (i * 7 + 3) as u8));
            let frame = encap(&inner);
            let hdr: &[u8; ENCAP_V4_LEN] = frame[..ENCAP_V4_LEN].try_into().unwrap();
            let got = udp_checksum_v4(hdr, csum_partial(&inner, 0));

            let udp = &frame[ETH_LEN + IPV4_LEN..];
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&REMOTE);
            pseudo.extend_from_slice(&LOCAL);
            pseudo.extend_from_slice(&[0, IPPROTO_UDP]);
            pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            pseudo.extend_from_slice(udp);
            let want = match textbook_checksum(&pseudo) {
                0 => 0xffff,
                c => c,
            };
            assert_eq!(u16::from_be_bytes(got), want, "pad {pad}");

            // A receiver sums everything, checksum included, to 0xffff.
            pseudo[12 + 6..12 + 8].copy_from_slice(&got);
            assert_eq!(textbook_checksum(&pseudo), 0, "pad {pad}");
        }
    }

    #[test]
    fn csum_partial_chains_at_even_offsets() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 13) as u8).collect();
        let whole = csum_partial(&data, 0);
        let split = csum_partial(&data[512..], csum_partial(&data[..512], 0));
        assert_eq!(csum_fold(whole), csum_fold(split));
        let tail = csum_add(csum_partial(&data[..1000], 0), csum_tail_byte(data[1000]));
        assert_eq!(csum_fold(whole), csum_fold(tail));
    }

    #[test]
    fn parse_roundtrips_encap() {
        let inner = inner();
        let f = encap(&inner);
        match parse_vxlan(&f[..], &ul()) {
            Uplink::Vxlan(d) => {
                assert_eq!(d.vni, 100);
                assert_eq!(d.remote, VtepAddr::v4(REMOTE));
                assert_eq!(d.group, None);
                assert_eq!(d.outer_ecn, 0);
                assert_eq!(d.inner_offset, ENCAP_V4_LEN);
                assert_eq!(&f[d.inner_offset..d.inner_offset + d.inner_len], &inner[..]);
            }
            other => panic!("expected VXLAN, got {other:?}"),
        }
    }

    /// Table of malformed and foreign packets: the verdict each must get.
    #[test]
    fn parse_verdicts() {
        let good = encap(&inner());
        let cases: Vec<(&str, Vec<u8>, Uplink)> = {
            let mut v = Vec::new();
            let mut f = good.clone();
            f[42] = 0;
            v.push(("no I flag", f, Uplink::Drop(Reason::BadFlags)));
            let mut f = good.clone();
            f[14] = 0x65;
            v.push((
                "IP version 6 in IPv4 ethertype",
                f,
                Uplink::Drop(Reason::BadIpHeader),
            ));
            let mut f = good.clone();
            f[14] = 0x44;
            v.push(("IHL 4", f, Uplink::Drop(Reason::BadIpHeader)));
            let mut f = good.clone();
            f[20] |= 0x20; // MF
            v.push(("first fragment", f, Uplink::Drop(Reason::Fragment)));
            let mut f = good.clone();
            f[21] = 1; // offset 8: not ours to judge
            v.push(("later fragment", f, Uplink::Pass));
            let f = good[..good.len() - 4].to_vec();
            v.push(("cut short", f, Uplink::Drop(Reason::Truncated)));
            let mut f = good.clone();
            f[38] = 0;
            f[39] = 10;
            v.push(("UDP length too small", f, Uplink::Drop(Reason::Truncated)));
            let mut f = good.clone();
            f[36..38].copy_from_slice(&53u16.to_be_bytes());
            v.push(("other UDP port", f, Uplink::Pass));
            let mut f = good.clone();
            f[30..34].copy_from_slice(&[198, 18, 0, 9]);
            v.push(("other destination", f, Uplink::Pass));
            let mut f = good.clone();
            f[23] = IPPROTO_TCP;
            v.push(("TCP", f, Uplink::Pass));
            let mut f = good.clone();
            f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
            v.push(("ARP", f, Uplink::Pass));
            v.push(("runt", good[..10].to_vec(), Uplink::Pass));
            v
        };
        for (name, frame, want) in cases {
            assert_eq!(parse_vxlan(&frame[..], &ul()), want, "case {name}");
        }
    }

    #[test]
    fn parse_skips_ip_options_and_vlan() {
        let inner = inner();
        let plain = encap(&inner);
        // Insert 4 bytes of options (NOP NOP NOP EOL), IHL 6, and a VLAN tag.
        let mut f = plain[..12].to_vec();
        f.extend_from_slice(&ETH_P_8021Q.to_be_bytes());
        f.extend_from_slice(&[0x00, 0x0a]);
        f.extend_from_slice(&ETH_P_IP.to_be_bytes());
        let mut ip = plain[14..34].to_vec();
        ip[0] = 0x46;
        let tot = u16::from_be_bytes([ip[2], ip[3]]) + 4;
        ip[2..4].copy_from_slice(&tot.to_be_bytes());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[1, 1, 1, 0]);
        f.extend_from_slice(&plain[34..]);
        match parse_vxlan(&f[..], &ul()) {
            Uplink::Vxlan(d) => {
                assert_eq!(d.inner_offset, ENCAP_V4_LEN + 4 + 4);
                assert_eq!(&f[d.inner_offset..], &inner[..]);
            }
            other => panic!("expected VXLAN, got {other:?}"),
        }
    }

    #[test]
    fn ethernet_padding_is_not_inner_data() {
        let inner = inner();
        let mut f = encap(&inner);
        f.extend_from_slice(&[0; 6]);
        let Uplink::Vxlan(d) = parse_vxlan(&f[..], &ul()) else {
            panic!("expected VXLAN");
        };
        assert_eq!(d.inner_len, inner.len());
    }

    #[test]
    fn parse_v6_roundtrips() {
        let inner = inner();
        let opts = vec![0, 0, 1, 4, 0, 0, 0, 0]; // PadN
        let routing = vec![0, 0, 4, 0, 0, 0, 0, 0]; // segments left 0
        for ext in [
            vec![],
            vec![(IPPROTO_HOPOPTS, opts.clone())],
            vec![
                (IPPROTO_HOPOPTS, opts.clone()),
                (IPPROTO_ROUTING, routing),
                (IPPROTO_DSTOPTS, opts),
            ],
        ] {
            let ext_len: usize = ext.iter().map(|(_, b)| b.len()).sum();
            let f = encap6(LOCAL6, &ext, 0xb9, 0x1234, &inner);
            match parse_vxlan(&f[..], &ul()) {
                Uplink::Vxlan(d) => {
                    assert_eq!(d.vni, 100);
                    assert_eq!(d.remote, VtepAddr::v6(REMOTE6));
                    assert_eq!(d.group, None);
                    assert_eq!(d.outer_ecn, 0b01);
                    assert_eq!(d.inner_offset, ETH_LEN + IPV6_LEN + ext_len + 16);
                    assert_eq!(&f[d.inner_offset..d.inner_offset + d.inner_len], &inner[..]);
                }
                other => panic!("{} ext headers: expected VXLAN, got {other:?}", ext.len()),
            }
        }
    }

    #[test]
    fn parse_accepts_groups_of_a_family_it_has() {
        let inner = inner();
        let f = encap6(GROUP6, &[], 0, 1, &inner);
        let Uplink::Vxlan(d) = parse_vxlan(&f[..], &ul()) else {
            panic!("expected VXLAN to the group");
        };
        assert_eq!(d.group, Some(VtepAddr::v6(GROUP6)));
        assert_eq!(d.remote, VtepAddr::v6(REMOTE6));
        let v4_only = Underlay {
            local6: VtepAddr::NONE,
            ..ul()
        };
        assert_eq!(parse_vxlan(&f[..], &v4_only), Uplink::Pass);

        let mut f = encap(&inner);
        f[30..34].copy_from_slice(&[239, 1, 1, 1]);
        f[15] = 0x03; // CE
        let Uplink::Vxlan(d) = parse_vxlan(&f[..], &ul()) else {
            panic!("expected VXLAN to the group");
        };
        assert_eq!(d.group, Some(VtepAddr::v4([239, 1, 1, 1])));
        assert_eq!(d.outer_ecn, 0b11);
        let v6_only = Underlay {
            local: VtepAddr::NONE,
            ..ul()
        };
        assert_eq!(parse_vxlan(&f[..], &v6_only), Uplink::Pass);
        // A group is no VTEP: not a source.
        f[26..30].copy_from_slice(&[239, 1, 1, 2]);
        assert_eq!(
            parse_vxlan(&f[..], &ul()),
            Uplink::Drop(Reason::BadIpHeader)
        );
    }

    /// Malformed and foreign IPv6 packets: the verdict each must get.
    #[test]
    fn parse_v6_verdicts() {
        let inner = inner();
        let opts = || vec![0, 0, 1, 4, 0, 0, 0, 0];
        let good = encap6(LOCAL6, &[], 0, 1, &inner);
        let ip = ETH_LEN;
        let mut v: Vec<(&str, Vec<u8>, Uplink)> = Vec::new();
        v.push((
            "cut inside the header",
            good[..ip + 30].to_vec(),
            Uplink::Pass,
        ));
        v.push((
            "cut short",
            good[..good.len() - 1].to_vec(),
            Uplink::Drop(Reason::Truncated),
        ));
        let mut f = good.clone();
        f[ip + 4..ip + 6].copy_from_slice(&2000u16.to_be_bytes());
        v.push((
            "payload length past the frame",
            f,
            Uplink::Drop(Reason::Truncated),
        ));
        let mut f = good.clone();
        f[ip + 4..ip + 6].copy_from_slice(&20u16.to_be_bytes());
        v.push((
            "payload length too small",
            f,
            Uplink::Drop(Reason::Truncated),
        ));
        let mut f = good.clone();
        f[ip + 6] = IPPROTO_TCP;
        v.push(("TCP", f, Uplink::Pass));
        let mut f = good.clone();
        f[ip + 6] = 59; // No Next Header
        v.push(("no next header", f, Uplink::Pass));
        let mut f = good.clone();
        f[ip] = 0x40;
        v.push((
            "version 4 in IPv6 ethertype",
            f,
            Uplink::Drop(Reason::BadIpHeader),
        ));
        let mut f = good.clone();
        f[ip + 24 + 15] = 9;
        v.push(("other destination", f, Uplink::Pass));
        let mut f = good.clone();
        f[ip + 40 + 2..ip + 40 + 4].copy_from_slice(&53u16.to_be_bytes());
        v.push(("other UDP port", f, Uplink::Pass));
        let mut f = good.clone();
        f[ip + 40 + 6..ip + 40 + 8].copy_from_slice(&[0, 0]);
        v.push(("zero checksum", f, Uplink::Drop(Reason::Udp6ZeroCsum)));
        let mut f = good.clone();
        f[ip + 40 + 4..ip + 40 + 6].copy_from_slice(&10u16.to_be_bytes());
        v.push(("UDP length too small", f, Uplink::Drop(Reason::Truncated)));
        let mut f = good.clone();
        f[ip + 48] = 0;
        v.push(("no I flag", f, Uplink::Drop(Reason::BadFlags)));
        let mut f = good.clone();
        f[ip + 8] = 0xff;
        v.push(("group source", f, Uplink::Drop(Reason::BadIpHeader)));
        let first_frag = vec![0, 0, 0, 1, 0, 0, 0, 7]; // offset 0, M
        v.push((
            "first fragment",
            encap6(LOCAL6, &[(IPPROTO_FRAGMENT, first_frag)], 0, 1, &inner),
            Uplink::Drop(Reason::Ipv6ExtHeader),
        ));
        let atomic = vec![0, 0, 0, 0, 0, 0, 0, 7];
        v.push((
            "atomic fragment",
            encap6(LOCAL6, &[(IPPROTO_FRAGMENT, atomic)], 0, 1, &inner),
            Uplink::Drop(Reason::Ipv6ExtHeader),
        ));
        let later = vec![0, 0, 0, 0x08, 0, 0, 0, 7]; // offset 1
        v.push((
            "later fragment",
            encap6(LOCAL6, &[(IPPROTO_FRAGMENT, later)], 0, 1, &inner),
            Uplink::Pass,
        ));
        let ah = vec![0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2]; // 12 bytes
        v.push((
            "authentication header",
            encap6(LOCAL6, &[(IPPROTO_AH, ah)], 0, 1, &inner),
            Uplink::Drop(Reason::Ipv6ExtHeader),
        ));
        v.push((
            "hop-by-hop out of place",
            encap6(
                LOCAL6,
                &[(IPPROTO_DSTOPTS, opts()), (IPPROTO_HOPOPTS, opts())],
                0,
                1,
                &inner,
            ),
            Uplink::Drop(Reason::Ipv6ExtHeader),
        ));
        v.push((
            "routing with segments left",
            encap6(
                LOCAL6,
                &[(IPPROTO_ROUTING, vec![0, 0, 4, 1, 0, 0, 0, 0])],
                0,
                1,
                &inner,
            ),
            Uplink::Pass,
        ));
        let five: Vec<(u8, Vec<u8>)> = (0..5).map(|_| (IPPROTO_DSTOPTS, opts())).collect();
        v.push((
            "chain longer than the walk",
            encap6(LOCAL6, &five, 0, 1, &inner),
            Uplink::Pass,
        ));
        let four: Vec<(u8, Vec<u8>)> = (0..4).map(|_| (IPPROTO_DSTOPTS, opts())).collect();
        let f = encap6(LOCAL6, &four, 0, 1, &inner);
        assert!(
            matches!(parse_vxlan(&f[..], &ul()), Uplink::Vxlan(_)),
            "four headers walk"
        );
        let mut f = encap6(LOCAL6, &[(IPPROTO_DSTOPTS, opts())], 0, 1, &inner);
        f.truncate(ip + 40 + 3);
        v.push(("cut inside an extension header", f, Uplink::Pass));
        for (name, frame, want) in v {
            assert_eq!(parse_vxlan(&frame[..], &ul()), want, "case {name}");
        }
        // With udp6zerocsumrx, a zero checksum is accepted.
        let mut f = good.clone();
        f[ip + 40 + 6..ip + 40 + 8].copy_from_slice(&[0, 0]);
        let rx = Underlay {
            flags: UNDERLAY_F_UDP6_ZERO_CSUM_RX,
            ..ul()
        };
        assert!(matches!(parse_vxlan(&f[..], &rx), Uplink::Vxlan(_)));
        // An IPv4 underlay passes IPv6 VXLAN to the host.
        let v4_only = Underlay {
            local6: VtepAddr::NONE,
            ..ul()
        };
        assert_eq!(parse_vxlan(&good[..], &v4_only), Uplink::Pass);
    }

    #[test]
    fn source_port_stays_in_range() {
        for (min, max) in [(49152u16, 65535u16), (1000, 1000), (0, 1), (4000, 4010)] {
            for h in [0u32, 1, 0x7fff_ffff, 0xffff_ffff, 0x1234_5678] {
                let p = source_port(h, min, max);
                assert!(p >= min && p <= max, "{p} outside {min}..={max}");
            }
        }
        assert_eq!(source_port(0xffff_ffff, 49152, 65535), 65535);
        assert_eq!(source_port(0, 49152, 65535), 49152);
    }

    #[test]
    fn flow_hash_spreads_flows() {
        let base = flow_keys(&inner()[..], 0).unwrap();
        assert_eq!(base.src_port, 12345);
        assert_eq!(base.dst_port, 53);
        let mut ports = std::collections::BTreeSet::new();
        for sp in 0..1024u16 {
            let mut k = base;
            k.src_port = sp;
            ports.insert(source_port(flow_hash(&k), 49152, 65535));
        }
        // 1024 flows over 16384 ports: nearly all distinct if the hash mixes.
        assert!(ports.len() > 980, "only {} distinct ports", ports.len());
        // Same flow, same port.
        assert_eq!(
            flow_hash(&base),
            flow_hash(&flow_keys(&inner()[..], 0).unwrap())
        );
    }

    #[test]
    fn mac_classes() {
        assert!(is_multicast(&[0xff; 6]));
        assert!(is_multicast(&[0x01, 0, 0x5e, 0, 0, 1]));
        assert!(!is_multicast(&[0x02, 0, 0, 0, 0, 1]));
        assert!(!is_valid_source(&[0; 6]));
        assert!(is_valid_source(&[0x02, 0, 0, 0, 0, 1]));
    }

    fn build6(inner: &[u8], tclass: u8, flowlabel: u32) -> Vec<u8> {
        let h = encap_v6_header(&EncapV6 {
            dst_mac: [0x02, 0xaa, 0, 0, 0, 1],
            src_mac: [0x02, 0xbb, 0, 0, 0, 1],
            src_ip: LOCAL6,
            dst_ip: REMOTE6,
            hop_limit: 64,
            tclass,
            flowlabel,
            src_port: 50000,
            dst_port: 4789,
            vni: 0x12_3456,
            inner_len: inner.len() as u16,
        });
        let mut f = h.to_vec();
        f.extend_from_slice(inner);
        f
    }

    #[test]
    fn encap_v6_header_is_exact() {
        let inner = inner();
        let f = build6(&inner, 0xb9, 0xa_bcde);
        assert_eq!(f.len(), ENCAP_V6_LEN + inner.len());
        assert_eq!(ENCAP_V6_LEN, 70);
        assert_eq!(&f[0..6], &[0x02, 0xaa, 0, 0, 0, 1]);
        assert_eq!(&f[6..12], &[0x02, 0xbb, 0, 0, 0, 1]);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        // Version 6, traffic class 0xb9, flow label 0xabcde.
        assert_eq!(&f[14..18], &[0x6b, 0x9a, 0xbc, 0xde]);
        let payload = 8 + 8 + inner.len();
        assert_eq!(u16::from_be_bytes([f[18], f[19]]) as usize, payload);
        assert_eq!(f[20], IPPROTO_UDP);
        assert_eq!(f[21], 64);
        assert_eq!(&f[22..38], &LOCAL6);
        assert_eq!(&f[38..54], &REMOTE6);
        assert_eq!(&f[54..56], &50000u16.to_be_bytes());
        assert_eq!(&f[56..58], &4789u16.to_be_bytes());
        assert_eq!(u16::from_be_bytes([f[58], f[59]]) as usize, payload);
        assert_eq!(&f[60..62], &[0, 0]);
        assert_eq!(&f[62..70], &[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        // Label bits above 20 do not leak into the traffic class.
        let g = build6(&inner, 0, 0xfff0_0001);
        assert_eq!(&g[14..18], &[0x60, 0x00, 0x00, 0x01]);
    }

    #[test]
    fn encap_v4_header_carries_tos() {
        let h = encap_v4_header(&EncapV4 {
            tos: 0xb8 | ecn::ECT_0,
            ..EncapV4::default()
        });
        assert_eq!(h[ETH_LEN + 1], 0xba);
        let ip: [u8; 20] = h[14..34].try_into().unwrap();
        assert_eq!(u16::from_be_bytes([ip[10], ip[11]]), ipv4_checksum(&ip));
    }

    #[test]
    fn udp_checksum_v6_matches_the_textbook_sum() {
        for pad in [0usize, 1, 2, 3, 511, 1001] {
            let mut inner = inner();
            inner.extend((0..pad).map(|i| (i * 11 + 5) as u8));
            let frame = build6(&inner, 0x02, 0x1_2345);
            let hdr: &[u8; ENCAP_V6_LEN] = frame[..ENCAP_V6_LEN].try_into().unwrap();
            let got = udp_checksum_v6(hdr, csum_partial(&inner, 0));

            // RFC 8200 §8.1 pseudo-header, written out.
            let udp = &frame[ETH_LEN + IPV6_LEN..];
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&LOCAL6);
            pseudo.extend_from_slice(&REMOTE6);
            pseudo.extend_from_slice(&(udp.len() as u32).to_be_bytes());
            pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_UDP]);
            pseudo.extend_from_slice(udp);
            let want = match textbook_checksum(&pseudo) {
                0 => 0xffff,
                c => c,
            };
            assert_eq!(u16::from_be_bytes(got), want, "pad {pad}");
            pseudo[40 + 6..40 + 8].copy_from_slice(&got);
            assert_eq!(textbook_checksum(&pseudo), 0, "pad {pad}");
        }
    }

    #[test]
    fn udp_checksum_v6_sends_zero_as_ffff() {
        // Find an inner frame whose checksum computes to 0 by choosing its
        // last two bytes: the sum with them zero, complemented, is the
        // word that makes the total 0xffff.
        let mut inner = inner();
        inner.extend_from_slice(&[0, 0]);
        let frame = build6(&inner, 0, 0);
        let hdr: &[u8; ENCAP_V6_LEN] = frame[..ENCAP_V6_LEN].try_into().unwrap();
        let c = u16::from_be_bytes(udp_checksum_v6(hdr, csum_partial(&inner, 0)));
        let n = inner.len();
        inner[n - 2..].copy_from_slice(&c.to_be_bytes());
        // The UDP length is unchanged, so the header still fits.
        let got = udp_checksum_v6(hdr, csum_partial(&inner, 0));
        assert_eq!(got, [0xff, 0xff]);
    }

    #[test]
    fn flow_label_is_20_bits_and_never_zero() {
        let mut seen = std::collections::BTreeSet::new();
        for h in [0u32, 1, 0xffff_ffff, 0x1234_5678, 0x0000_1000, 0x8000_0000] {
            let l = flow_label(h);
            assert!(l != 0 && l <= IPV6_FLOWLABEL_MASK, "{h:#x} -> {l:#x}");
            seen.insert(l);
        }
        assert!(seen.len() >= 5);
        // Spreads flows, like the source port.
        let base = flow_keys(&inner()[..], 0).unwrap();
        let labels: std::collections::BTreeSet<u32> = (0..1024u16)
            .map(|sp| {
                flow_label(flow_hash(&FlowKeys {
                    src_port: sp,
                    ..base
                }))
            })
            .collect();
        assert!(labels.len() > 1000, "only {} distinct labels", labels.len());
    }

    fn underlay6() -> Underlay {
        Underlay {
            local: VtepAddr::v4(LOCAL),
            local6: VtepAddr::v6(LOCAL6),
            port: 4789,
            srcport_min: 49152,
            srcport_max: 65535,
            tos: 0x20,
            flowlabel: 0x5_5555,
            ..Underlay::default()
        }
    }

    #[test]
    fn underlay_builders_apply_ttl_tos_and_label_policy() {
        let ul = underlay6();
        let o = Outer {
            vni: 7,
            inner_len: 100,
            hash: 0xdead_beef,
            inner_ip: true,
            inner_ds: 0x03,
            inner_label: 0x1_2345,
            ..Outer::default()
        };
        let v4 = encap_v4(&ul, REMOTE, &o).unwrap();
        assert_eq!((v4.src_ip, v4.ttl, v4.tos), (LOCAL, 64, 0x22));
        assert_eq!(v4.src_port, source_port(0xdead_beef, 49152, 65535));
        let g4 = encap_v4(&ul, [239, 1, 1, 1], &o).unwrap();
        assert_eq!(g4.ttl, 1);
        let v6 = encap_v6(&ul, &REMOTE6, &o).unwrap();
        assert_eq!((v6.src_ip, v6.hop_limit, v6.tclass), (LOCAL6, 64, 0x22));
        assert_eq!(v6.flowlabel, flow_label(0xdead_beef));
        let mut group6 = [0u8; 16];
        group6[0] = 0xff;
        group6[1] = 0x05;
        group6[15] = 0x01;
        assert_eq!(encap_v6(&ul, &group6, &o).unwrap().hop_limit, 1);

        let fixed = Underlay {
            flags: UNDERLAY_F_LABEL_FIXED | UNDERLAY_F_TOS_INHERIT,
            ttl: 9,
            ..ul
        };
        let v6 = encap_v6(&fixed, &group6, &o).unwrap();
        assert_eq!((v6.flowlabel, v6.hop_limit, v6.tclass), (0x5_5555, 9, 0x02));
        let inherit = Underlay {
            flags: UNDERLAY_F_LABEL_INHERIT,
            ..ul
        };
        assert_eq!(
            encap_v6(&inherit, &REMOTE6, &o).unwrap().flowlabel,
            0x1_2345
        );
        // ARP: Not-ECT, label inherited as 0.
        let arp = Outer {
            inner_ip: false,
            inner_ds: 0,
            inner_label: 0,
            ..o
        };
        let v6 = encap_v6(&inherit, &REMOTE6, &arp).unwrap();
        assert_eq!((v6.tclass, v6.flowlabel), (0x20, 0));

        let v4_only = Underlay {
            local6: VtepAddr::NONE,
            ..ul
        };
        assert!(encap_v6(&v4_only, &REMOTE6, &o).is_none());
        let v6_only = Underlay {
            local: VtepAddr::NONE,
            ..ul
        };
        assert!(encap_v4(&v6_only, REMOTE, &o).is_none());
    }

    #[test]
    fn outer_reads_the_inner_ip() {
        let o = Outer::default().with_inner_ip(&inner()[..], 0);
        assert_eq!((o.inner_ip, o.inner_ds, o.inner_label), (true, 0, 0));
        let mut f = inner();
        f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
        let o = Outer::default().with_inner_ip(&f[..], 0);
        assert!(!o.inner_ip);
    }

    #[test]
    fn header_into_overwrites_every_byte() {
        let e6 = EncapV6 {
            src_ip: LOCAL6,
            dst_ip: REMOTE6,
            vni: 9,
            inner_len: 60,
            ..EncapV6::default()
        };
        let mut h6 = [0xaa; ENCAP_V6_LEN];
        encap_v6_header_into(&mut h6, &e6);
        let mut z6 = [0; ENCAP_V6_LEN];
        encap_v6_header_into(&mut z6, &e6);
        assert_eq!(h6, z6);
        let e4 = EncapV4 {
            src_ip: LOCAL,
            dst_ip: REMOTE,
            vni: 9,
            inner_len: 60,
            ..EncapV4::default()
        };
        let mut h4 = [0xaa; ENCAP_V4_LEN];
        encap_v4_header_into(&mut h4, &e4);
        assert_eq!(h4, encap_v4_header(&e4));
    }
}
