//! Path-MTU errors: the ICMP "fragmentation needed" (type 3 code 4) or
//! ICMPv6 "packet too big" (type 2) vtep sends back to a workload whose
//! frame is too large for the underlay once encapsulated, as the kernel's
//! vxlan driver does for a bridged frame (`skb_tunnel_check_pmtu` and
//! `iptunnel_pmtud_build_icmp{,v6}` in net/ipv4/ip_tunnel_core.c), so that
//! the sender's path-MTU discovery converges on the inner MTU.
//!
//! The error is built where the frame is, by both engines:
//! - [`answer`] decides whether the frame gets one, and how much of it the
//!   error quotes;
//! - the frame grows at the front by [`V4_GROW`] / [`V6_GROW`] bytes (XDP:
//!   `bpf_xdp_adjust_head`; a byte slice: the frame moved up) and is cut
//!   at the back to [`Answer::frame_len`] (XDP: `bpf_xdp_adjust_tail`);
//! - [`write_v4`] / [`write_v6`] rewrite the fixed-size region at the front
//!   (the new Ethernet, IP and ICMP headers over the room made and the
//!   original Ethernet header; the quote, from the original IP header on,
//!   stays where it is);
//! - [`finish_v4`] / [`finish_v6`] store the ICMP checksum, given the
//!   partial sum of the quoted bytes ([`crate::header::csum_partial`], or
//!   the XDP side's `packet_csum` over the frame).
//!
//! [`build`] does all of it over a byte slice (the AF_XDP engine, the
//! tests).
//!
//! What the kernel answers, vtep answers, with the same bytes: an IPv4
//! packet only with DF set (and no fragment bits), never to a source or
//! for a destination that is not unicast, never for an ICMP error, and
//! only when the inner MTU is at least 576; an IPv6 packet whatever its
//! size, never to an unspecified, loopback or multicast source, never for
//! a non-first fragment, an ICMPv6 error or a redirect, and only when the
//! inner MTU is at least 1280. The error goes from the original
//! destination to the original source (Ethernet addresses swapped too),
//! IPv4 with TTL 255, TOS 0, ID 0 and DF, IPv6 with the original's hop
//! limit, traffic class and flow label 0; it quotes the original packet up
//! to 576 bytes of IPv4 error (548 quoted) or 1280 of IPv6 (1232 quoted).

use crate::{
    frame::Frame,
    header::{
        ETH_LEN, ETH_P_IP, ETH_P_IPV6, IPV4_DF, IPV4_LEN, IPV6_LEN, csum_add, csum_fold,
        csum_partial, ipv4_checksum,
    },
};

/// An ICMP or ICMPv6 header (type, code, checksum, 4 bytes of MTU).
pub const ICMP_LEN: usize = 8;
/// IPv4 protocol number of ICMP.
pub const IPPROTO_ICMP: u8 = 1;
/// IPv6 next-header number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;
/// ICMP "destination unreachable".
pub const ICMP_DEST_UNREACH: u8 = 3;
/// Its code "fragmentation needed and DF set".
pub const ICMP_FRAG_NEEDED: u8 = 4;
/// ICMPv6 "packet too big".
pub const ICMPV6_PKT_TOOBIG: u8 = 2;
/// ICMPv6 "redirect" (NDISC), never answered.
pub const NDISC_REDIRECT: u8 = 137;

/// Longest IPv4 error, in IP bytes (and the least inner MTU that gets one).
pub const ICMP_V4_MAX: usize = 576;
/// Longest IPv6 error, in IP bytes: the IPv6 minimum MTU (and the least
/// inner MTU that gets one).
pub const ICMP_V6_MAX: usize = 1280;

/// Bytes an IPv4 error adds in front of the original IP packet.
pub const V4_GROW: usize = IPV4_LEN + ICMP_LEN;
/// Bytes an IPv6 error adds in front of the original IP packet.
pub const V6_GROW: usize = IPV6_LEN + ICMP_LEN;
/// The headers of an IPv4 error: Ethernet, IPv4, ICMP. The quote follows.
pub const V4_HDR: usize = ETH_LEN + V4_GROW;
/// The headers of an IPv6 error: Ethernet, IPv6, ICMPv6.
pub const V6_HDR: usize = ETH_LEN + V6_GROW;
/// Most bytes of the original IP packet an IPv4 error quotes.
pub const V4_QUOTE_MAX: usize = ICMP_V4_MAX - V4_GROW;
/// Most bytes of the original IP packet an IPv6 error quotes.
pub const V6_QUOTE_MAX: usize = ICMP_V6_MAX - V6_GROW;
/// What [`write_v4`] rewrites: the room made in front, then the original
/// Ethernet and IPv4 headers (the latter read, not written).
pub const V4_REGION: usize = V4_GROW + ETH_LEN + IPV4_LEN;
/// What [`write_v6`] rewrites (see [`V4_REGION`]).
pub const V6_REGION: usize = V6_GROW + ETH_LEN + IPV6_LEN;
/// Offset of the ICMP checksum in an IPv4 error frame.
pub const V4_CSUM: usize = ETH_LEN + IPV4_LEN + 2;
/// Offset of the ICMPv6 checksum in an IPv6 error frame.
pub const V6_CSUM: usize = ETH_LEN + IPV6_LEN + 2;

/// IPv4 TTL of an error, as the kernel's.
pub const ICMP_V4_TTL: u8 = 255;

/// IPv6 extension headers [`answer`] walks past at most; a longer chain
/// gets no error (the frame is dropped all the same).
pub const MAX_EXT_HEADERS: usize = 6;

/// What to send back for a frame too large for the underlay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Nothing: the frame is only dropped.
    None,
    /// An ICMP "fragmentation needed" quoting `quote` bytes of the
    /// original IPv4 packet.
    V4 { quote: u16 },
    /// An ICMPv6 "packet too big" quoting `quote` bytes of the original
    /// IPv6 packet.
    V6 { quote: u16 },
}

impl Answer {
    /// The error frame's length in bytes (0 for [`Answer::None`]).
    #[inline(always)]
    pub const fn frame_len(self) -> usize {
        match self {
            Answer::None => 0,
            Answer::V4 { quote } => V4_HDR + quote as usize,
            Answer::V6 { quote } => V6_HDR + quote as usize,
        }
    }
}

/// ICMP types that are errors (`icmp_is_err`): never answered with one.
#[inline(always)]
const fn icmp_is_err(t: u8) -> bool {
    matches!(t, 3 | 4 | 5 | 11 | 12)
}

/// Whether an IPv4 address is multicast (224/4) or the limited broadcast.
#[inline(always)]
const fn v4_not_unicast(a: [u8; 4]) -> bool {
    a[0] & 0xf0 == 0xe0 || u32::from_be_bytes(a) == u32::MAX
}

/// What the Ethernet frame `frame` (an access port's, untagged), too large
/// for an underlay whose inner MTU is `mtu`, gets back: see the module's
/// rules.
#[inline(always)]
pub fn answer<F: Frame + ?Sized>(frame: &F, mtu: u32) -> Answer {
    let Some(ether_type) = frame.read_at::<[u8; 2]>(ETH_LEN - 2) else {
        return Answer::None;
    };
    let ip_len = frame.len().saturating_sub(ETH_LEN);
    match u16::from_be_bytes(ether_type) {
        ETH_P_IP => answer_v4(frame, mtu, ip_len),
        ETH_P_IPV6 => answer_v6(frame, mtu, ip_len),
        _ => Answer::None,
    }
}

#[inline(always)]
fn answer_v4<F: Frame + ?Sized>(frame: &F, mtu: u32, ip_len: usize) -> Answer {
    if mtu < ICMP_V4_MAX as u32 {
        return Answer::None;
    }
    let Some(ip) = frame.read_at::<[u8; IPV4_LEN]>(ETH_LEN) else {
        return Answer::None;
    };
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < IPV4_LEN {
        return Answer::None;
    }
    // DF and nothing else: not a fragment, no reserved bit.
    if u16::from_be_bytes([ip[6], ip[7]]) != IPV4_DF {
        return Answer::None;
    }
    let src = [ip[12], ip[13], ip[14], ip[15]];
    let dst = [ip[16], ip[17], ip[18], ip[19]];
    if v4_not_unicast(dst) || v4_not_unicast(src) || src[0] == 0 || src[0] == 127 {
        return Answer::None;
    }
    if ip[9] == IPPROTO_ICMP {
        // Type and code (two bytes: a one-byte read at a variable offset
        // is bounds-checked in a form the verifier does not follow).
        match frame.read_at::<[u8; 2]>(ETH_LEN + ihl) {
            Some([t, _]) if !icmp_is_err(t) => {}
            _ => return Answer::None,
        }
    }
    Answer::V4 {
        quote: ip_len.min(V4_QUOTE_MAX) as u16,
    }
}

#[inline(always)]
fn answer_v6<F: Frame + ?Sized>(frame: &F, mtu: u32, ip_len: usize) -> Answer {
    // The whole header is quoted and its addresses swapped.
    if mtu < ICMP_V6_MAX as u32 || ip_len < IPV6_LEN {
        return Answer::None;
    }
    // Version, next header; the source address.
    let (Some(ip), Some(src)) = (
        frame.read_at::<[u8; 8]>(ETH_LEN),
        frame.read_at::<[u8; 16]>(ETH_LEN + 8),
    ) else {
        return Answer::None;
    };
    if ip[0] >> 4 != 6 {
        return Answer::None;
    }
    // Unspecified, loopback, multicast.
    let high_zero = src[..15].iter().all(|b| *b == 0);
    if (high_zero && src[15] <= 1) || src[0] == 0xff {
        return Answer::None;
    }
    let mut next = ip[6];
    let mut at = ETH_LEN + IPV6_LEN;
    let mut walked = 0;
    loop {
        match next {
            // Hop-by-hop, routing, destination options: (len + 1) * 8.
            0 | 43 | 60 => {
                let Some(h) = frame.read_at::<[u8; 2]>(at) else {
                    return Answer::None;
                };
                next = h[0];
                at += (usize::from(h[1]) + 1) * 8;
            }
            // Fragment: only the first fragment gets an error.
            44 => {
                let Some(h) = frame.read_at::<[u8; 4]>(at) else {
                    return Answer::None;
                };
                if u16::from_be_bytes([h[2], h[3]]) & !0x7 != 0 {
                    return Answer::None;
                }
                next = h[0];
                at += 8;
            }
            // Authentication header: (len + 2) * 4.
            51 => {
                let Some(h) = frame.read_at::<[u8; 2]>(at) else {
                    return Answer::None;
                };
                next = h[0];
                at += (usize::from(h[1]) + 2) * 4;
            }
            // No next header.
            59 => return Answer::None,
            _ => break,
        }
        walked += 1;
        if walked > MAX_EXT_HEADERS {
            return Answer::None;
        }
    }
    if next == IPPROTO_ICMPV6 {
        // Type and code, as for IPv4.
        match frame.read_at::<[u8; 2]>(at) {
            Some([t, _]) if t >= 128 && t != NDISC_REDIRECT => {}
            _ => return Answer::None,
        }
    }
    Answer::V6 {
        quote: ip_len.min(V6_QUOTE_MAX) as u16,
    }
}

/// Writes the headers of an IPv4 error quoting `quote` bytes, with inner
/// MTU `mtu`, ICMP checksum 0 (see [`finish_v4`]). `region` is the front of
/// the grown frame: [`V4_GROW`] bytes of room, then the original Ethernet
/// and IPv4 headers; its first [`V4_HDR`] bytes are rewritten, the
/// original IPv4 header (the start of the quote) is left as it is.
///
/// Nothing is copied aside (the XDP program has no stack to spare): the
/// new Ethernet header is written first, from the original one, which the
/// new IP header then overwrites; the addresses come from the original IP
/// header, which nothing overwrites.
#[inline(always)]
pub fn write_v4(region: &mut [u8; V4_REGION], mtu: u32, quote: u16) {
    const IP: usize = V4_GROW + ETH_LEN;
    swap_ethernet(region, V4_GROW);
    let (new, old) = region.split_at_mut(IP);
    let ip = &mut new[ETH_LEN..ETH_LEN + IPV4_LEN];
    ip[0..2].copy_from_slice(&[0x45, 0]);
    ip[2..4].copy_from_slice(&((V4_GROW as u16) + quote).to_be_bytes());
    ip[4..6].copy_from_slice(&[0, 0]);
    ip[6..8].copy_from_slice(&IPV4_DF.to_be_bytes());
    ip[8..12].copy_from_slice(&[ICMP_V4_TTL, IPPROTO_ICMP, 0, 0]);
    ip[12..16].copy_from_slice(&old[16..20]);
    ip[16..20].copy_from_slice(&old[12..16]);
    if let Ok(hdr) = <&[u8; IPV4_LEN]>::try_from(&*ip) {
        let c = ipv4_checksum(hdr);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let icmp = &mut new[ETH_LEN + IPV4_LEN..V4_HDR];
    icmp[0..6].copy_from_slice(&[ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, 0, 0, 0, 0]);
    icmp[6..8].copy_from_slice(&(mtu.min(u32::from(u16::MAX)) as u16).to_be_bytes());
}

/// Writes the headers of an IPv6 error (see [`write_v4`]): `region` is
/// [`V6_GROW`] bytes of room, then the original Ethernet and IPv6 headers.
#[inline(always)]
pub fn write_v6(region: &mut [u8; V6_REGION], mtu: u32, quote: u16) {
    const IP: usize = V6_GROW + ETH_LEN;
    swap_ethernet(region, V6_GROW);
    let (new, old) = region.split_at_mut(IP);
    let ip = &mut new[ETH_LEN..ETH_LEN + IPV6_LEN];
    ip[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    ip[4..6].copy_from_slice(&((ICMP_LEN as u16) + quote).to_be_bytes());
    ip[6] = IPPROTO_ICMPV6;
    ip[7] = old[7];
    ip[8..24].copy_from_slice(&old[24..40]);
    ip[24..40].copy_from_slice(&old[8..24]);
    let icmp = &mut new[ETH_LEN + IPV6_LEN..V6_HDR];
    icmp[0..4].copy_from_slice(&[ICMPV6_PKT_TOOBIG, 0, 0, 0]);
    icmp[4..8].copy_from_slice(&mtu.to_be_bytes());
}

/// Writes at the front of `region` the Ethernet header back to the sender
/// of the original one at `at`: to its source, from its destination, the
/// same EtherType.
#[inline(always)]
fn swap_ethernet(region: &mut [u8], at: usize) {
    let (new, old) = region.split_at_mut(at);
    new[0..6].copy_from_slice(&old[6..12]);
    new[6..12].copy_from_slice(&old[0..6]);
    new[12..14].copy_from_slice(&old[12..14]);
}

/// Stores the ICMP checksum of an IPv4 error whose headers are `hdr` (as
/// [`write_v4`] left them) and whose quoted bytes sum to `quote_sum`.
#[inline(always)]
pub fn finish_v4(hdr: &mut [u8; V4_HDR], quote_sum: u32) {
    let sum = csum_partial(&hdr[ETH_LEN + IPV4_LEN..V4_HDR], quote_sum);
    hdr[V4_CSUM..V4_CSUM + 2].copy_from_slice(&(!csum_fold(sum)).to_ne_bytes());
}

/// Stores the ICMPv6 checksum of an IPv6 error whose headers are `hdr` (as
/// [`write_v6`] left them) and whose quoted bytes sum to `quote_sum`: over
/// the pseudo-header (addresses, ICMPv6 length, next header) too.
#[inline(always)]
pub fn finish_v6(hdr: &mut [u8; V6_HDR], quote_sum: u32) {
    let ip = ETH_LEN;
    let mut sum = csum_partial(&hdr[ip + 8..ip + 40], quote_sum);
    // Upper-layer length (32 bits; the payload length's 16 suffice, the
    // high half is zero) and the next header, in a word of zeros.
    sum = csum_partial(&hdr[ip + 4..ip + 6], sum);
    sum = csum_add(sum, u32::from(u16::from_ne_bytes([0, IPPROTO_ICMPV6])));
    sum = csum_partial(&hdr[ETH_LEN + IPV6_LEN..V6_HDR], sum);
    hdr[V6_CSUM..V6_CSUM + 2].copy_from_slice(&(!csum_fold(sum)).to_ne_bytes());
}

/// Turns the frame in the first `len` bytes of `buf` (too large for an
/// underlay whose inner MTU is `mtu`) into its path-MTU error, in place:
/// the error's length, or `None` when the frame gets none ([`answer`]) or
/// `buf` has no room for it (the error is up to [`V4_GROW`] / [`V6_GROW`]
/// bytes longer than a short frame). Nothing is changed when `None`.
pub fn build(buf: &mut [u8], len: usize, mtu: u32) -> Option<usize> {
    let frame = buf.get(..len)?;
    let a = answer(frame, mtu);
    let (grow, quote) = match a {
        Answer::None => return None,
        Answer::V4 { quote } => (V4_GROW, quote),
        Answer::V6 { quote } => (V6_GROW, quote),
    };
    let out = a.frame_len();
    // The region written is inside the error: the quote holds at least
    // the original IP header.
    if buf.len() < out {
        return None;
    }
    let q = usize::from(quote);
    buf.copy_within(0..ETH_LEN + q, grow);
    let hdr = out - q;
    let quote_sum = csum_partial(&buf[hdr..out], 0);
    match a {
        Answer::V4 { quote } => {
            let region: &mut [u8; V4_REGION] = (&mut buf[..V4_REGION]).try_into().ok()?;
            write_v4(region, mtu, quote);
            finish_v4((&mut buf[..V4_HDR]).try_into().ok()?, quote_sum);
        }
        Answer::V6 { quote } => {
            let region: &mut [u8; V6_REGION] = (&mut buf[..V6_REGION]).try_into().ok()?;
            write_v6(region, mtu, quote);
            finish_v6((&mut buf[..V6_HDR]).try_into().ok()?, quote_sum);
        }
        Answer::None => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{vec, vec::Vec};

    use super::*;

    const WORKLOAD: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];
    const PEER: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x01];
    const A4: [u8; 4] = [192, 0, 2, 1];
    const B4: [u8; 4] = [192, 0, 2, 2];
    const A6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ];
    const B6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    ];
    /// Inner MTU of a 1500-byte IPv4 underlay.
    const MTU: u32 = 1450;

    /// RFC 1071 over big-endian words, written apart from the code under
    /// test: a correct checksum makes the sum over the message fold to
    /// 0xffff.
    fn rfc1071(bytes: &[u8]) -> u16 {
        let mut sum: u64 = 0;
        for c in bytes.chunks(2) {
            let hi = u64::from(c[0]) << 8;
            let lo = c.get(1).map_or(0, |b| u64::from(*b));
            sum += hi | lo;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    fn eth(ether_type: u16, payload: &[u8]) -> Vec<u8> {
        [&PEER[..], &WORKLOAD, &ether_type.to_be_bytes(), payload].concat()
    }

    /// An IPv4 packet of `total` bytes, protocol `proto`, fragment field
    /// `frag`, its payload a counting pattern (first byte `first`).
    fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, frag: u16, total: usize, first: u8) -> Vec<u8> {
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[1] = 0x02; // ECT(0): the error's TOS is 0 all the same
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        let c = ipv4_checksum(p[..20].try_into().unwrap());
        p[10..12].copy_from_slice(&c.to_be_bytes());
        for (i, b) in p[20..].iter_mut().enumerate() {
            *b = first.wrapping_add(i as u8);
        }
        p
    }

    fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, total: usize, first: u8) -> Vec<u8> {
        let mut p = vec![0u8; total];
        p[0..4].copy_from_slice(&[0x6b, 0x81, 0x23, 0x45]);
        p[4..6].copy_from_slice(&((total - IPV6_LEN) as u16).to_be_bytes());
        p[6] = next;
        p[7] = 61;
        p[8..24].copy_from_slice(&src);
        p[24..40].copy_from_slice(&dst);
        for (i, b) in p[40..].iter_mut().enumerate() {
            *b = first.wrapping_add(i as u8);
        }
        p
    }

    fn built(frame: &[u8], mtu: u32) -> Option<Vec<u8>> {
        let mut buf = frame.to_vec();
        buf.resize(frame.len().max(2048), 0xee);
        let n = build(&mut buf, frame.len(), mtu)?;
        buf.truncate(n);
        Some(buf)
    }

    #[test]
    fn ipv4_frag_needed_exact_bytes() {
        let ip = ipv4(A4, B4, 6, IPV4_DF, 1480, 0);
        let frame = eth(ETH_P_IP, &ip);
        let got = built(&frame, MTU).expect("an error");
        assert_eq!(got.len(), ETH_LEN + 576);
        assert_eq!(&got[0..6], &WORKLOAD, "to the sender");
        assert_eq!(&got[6..12], &PEER, "from the MAC it sent to");
        assert_eq!(&got[12..14], &[0x08, 0x00]);
        let mut want_ip = [
            0x45, 0, 0x02, 0x40, 0, 0, 0x40, 0, 255, 1, 0, 0, 192, 0, 2, 2, 192, 0, 2, 1,
        ];
        assert_eq!(&got[14..24], &want_ip[..10]);
        assert_eq!(&got[26..34], &want_ip[12..]);
        // Header checksum, independently.
        let c = !rfc1071(&want_ip);
        want_ip[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(&got[14..34], &want_ip);
        assert_eq!(&got[34..36], &[3, 4]);
        assert_eq!(&got[38..42], &[0, 0, 0x05, 0xaa], "MTU 1450");
        assert_eq!(&got[42..], &ip[..548], "the quote: the first 548 bytes");
        assert_eq!(rfc1071(&got[34..]), 0xffff, "ICMP checksum");
        assert_eq!(rfc1071(&got[14..34]), 0xffff, "IP checksum");
    }

    #[test]
    fn ipv4_short_quote_is_the_whole_packet() {
        // An inner MTU of 600 and a packet of 601: all of it is quoted.
        let ip = ipv4(A4, B4, 17, IPV4_DF, 541, 7);
        let frame = eth(ETH_P_IP, &ip);
        let got = built(&frame, 576).expect("an error");
        assert_eq!(got.len(), ETH_LEN + V4_GROW + 541);
        assert_eq!(&got[42..], &ip[..]);
        assert_eq!(&got[16..18], &(28u16 + 541).to_be_bytes());
        assert_eq!(&got[40..42], &576u16.to_be_bytes());
        // An odd quote: the checksum pads the last byte.
        assert_eq!(rfc1071(&got[34..]), 0xffff);
    }

    #[test]
    fn ipv4_without_answer() {
        let none = |ip: Vec<u8>, mtu: u32| {
            let frame = eth(ETH_P_IP, &ip);
            assert_eq!(answer(&frame[..], mtu), Answer::None);
            let mut buf = frame.clone();
            buf.resize(2048, 0);
            assert_eq!(build(&mut buf, frame.len(), mtu), None);
            assert_eq!(&buf[..frame.len()], &frame[..], "left as it was");
        };
        none(ipv4(A4, B4, 6, 0, 1480, 0), MTU); // no DF
        none(ipv4(A4, B4, 6, IPV4_DF | 0x2000, 1480, 0), MTU); // DF + MF
        none(ipv4(A4, B4, 6, IPV4_DF | 0x8000, 1480, 0), MTU); // reserved bit
        none(ipv4(A4, B4, 6, IPV4_DF, 1480, 0), 575); // MTU under 576
        none(ipv4(A4, [239, 1, 1, 1], 17, IPV4_DF, 1480, 0), MTU);
        none(ipv4(A4, [255; 4], 17, IPV4_DF, 1480, 0), MTU);
        none(ipv4([0, 0, 0, 0], B4, 17, IPV4_DF, 1480, 0), MTU);
        none(ipv4([127, 0, 0, 1], B4, 17, IPV4_DF, 1480, 0), MTU);
        none(ipv4([224, 0, 0, 1], B4, 17, IPV4_DF, 1480, 0), MTU);
        for t in [3, 4, 5, 11, 12] {
            none(ipv4(A4, B4, IPPROTO_ICMP, IPV4_DF, 1480, t), MTU);
        }
        // A bad header.
        let mut bad = ipv4(A4, B4, 6, IPV4_DF, 1480, 0);
        bad[0] = 0x44;
        none(bad, MTU);
        // Not IP at all.
        let arp = eth(0x0806, &[0; 1480]);
        assert_eq!(answer(&arp[..], MTU), Answer::None);
        // An echo request gets one.
        let ping = eth(ETH_P_IP, &ipv4(A4, B4, IPPROTO_ICMP, IPV4_DF, 1480, 8));
        assert_eq!(answer(&ping[..], MTU), Answer::V4 { quote: 548 });
        // An MTU of exactly 576 does.
        let f = eth(ETH_P_IP, &ipv4(A4, B4, 6, IPV4_DF, 1480, 0));
        assert_eq!(answer(&f[..], 576), Answer::V4 { quote: 548 });
    }

    #[test]
    fn ipv6_packet_too_big_exact_bytes() {
        let ip = ipv6(A6, B6, 6, 1500, 0);
        let frame = eth(ETH_P_IPV6, &ip);
        let got = built(&frame, 1430).expect("an error");
        assert_eq!(got.len(), ETH_LEN + 1280);
        assert_eq!(&got[0..6], &WORKLOAD);
        assert_eq!(&got[6..12], &PEER);
        assert_eq!(&got[12..14], &[0x86, 0xdd]);
        assert_eq!(&got[14..18], &[0x60, 0, 0, 0], "class and label 0");
        assert_eq!(&got[18..20], &(1280u16 - 40).to_be_bytes());
        assert_eq!(got[20], 58);
        assert_eq!(got[21], 61, "the original's hop limit");
        assert_eq!(&got[22..38], &B6);
        assert_eq!(&got[38..54], &A6);
        assert_eq!(&got[54..56], &[2, 0]);
        assert_eq!(&got[58..62], &1430u32.to_be_bytes());
        assert_eq!(&got[62..], &ip[..1232]);
        // Checksum over pseudo-header + message, independently.
        let len = (got.len() - 54) as u32;
        let pseudo = [
            &got[22..54],
            &len.to_be_bytes()[..],
            &[0, 0, 0, 58],
            &got[54..],
        ]
        .concat();
        assert_eq!(rfc1071(&pseudo), 0xffff, "ICMPv6 checksum");
    }

    #[test]
    fn ipv6_odd_quote_checksum() {
        let ip = ipv6(A6, B6, 17, 1301, 9);
        let frame = eth(ETH_P_IPV6, &ip);
        let got = built(&frame, 1280).expect("an error");
        assert_eq!(got.len(), ETH_LEN + 1280);
        let ip = ipv6(A6, B6, 17, 1201, 9);
        let got = built(&eth(ETH_P_IPV6, &ip), 1280).expect("an error");
        assert_eq!(got.len(), ETH_LEN + V6_GROW + 1201);
        let len = (got.len() - 54) as u32;
        let pseudo = [
            &got[22..54],
            &len.to_be_bytes()[..],
            &[0, 0, 0, 58],
            &got[54..],
        ]
        .concat();
        assert_eq!(rfc1071(&pseudo), 0xffff);
    }

    #[test]
    fn ipv6_without_answer() {
        let none = |ip: Vec<u8>, mtu: u32| {
            let frame = eth(ETH_P_IPV6, &ip);
            assert_eq!(answer(&frame[..], mtu), Answer::None, "{:?}", &ip[..8]);
        };
        none(ipv6(A6, B6, 6, 1500, 0), 1279);
        none(ipv6([0; 16], B6, 6, 1500, 0), 1430);
        let mut lo = [0; 16];
        lo[15] = 1;
        none(ipv6(lo, B6, 6, 1500, 0), 1430);
        let mut mc = A6;
        mc[0] = 0xff;
        none(ipv6(mc, B6, 6, 1500, 0), 1430);
        for t in [1, 2, 3, 4, 127, NDISC_REDIRECT] {
            none(ipv6(A6, B6, IPPROTO_ICMPV6, 1500, t), 1430);
        }
        none(ipv6(A6, B6, 59, 1500, 0), 1430);
        // A non-first fragment (offset 8 bytes).
        let mut frag = ipv6(A6, B6, 44, 1500, 0);
        frag[40..48].copy_from_slice(&[17, 0, 0, 8, 0, 0, 0, 1]);
        none(frag.clone(), 1430);
        // The first one (M set) gets an error.
        frag[40..48].copy_from_slice(&[17, 0, 0, 1, 0, 0, 0, 1]);
        let f = eth(ETH_P_IPV6, &frag);
        assert!(matches!(answer(&f[..], 1430), Answer::V6 { quote: 1232 }));
        // Hop-by-hop then an echo request: answered; then an error: not.
        let mut hbh = ipv6(A6, B6, 0, 1500, 0);
        hbh[40..48].copy_from_slice(&[58, 0, 1, 4, 0, 0, 0, 0]);
        hbh[48] = 128;
        let f = eth(ETH_P_IPV6, &hbh);
        assert!(matches!(answer(&f[..], 1430), Answer::V6 { .. }));
        hbh[48] = 1;
        none(hbh, 1430);
        // Too long a chain of destination options.
        let mut chain = ipv6(A6, B6, 60, 1500, 0);
        for i in 0..=MAX_EXT_HEADERS {
            chain[40 + 8 * i..48 + 8 * i].copy_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        none(chain, 1430);
        // An echo request gets one.
        let f = eth(ETH_P_IPV6, &ipv6(A6, B6, IPPROTO_ICMPV6, 1500, 128));
        assert!(matches!(answer(&f[..], 1430), Answer::V6 { .. }));
    }

    #[test]
    fn build_needs_room() {
        // An oversize frame is longer than its error (more than the MTU,
        // at least 576 or 1280, against a quote of 548 or 1232 bytes): a
        // buffer that holds only the frame is enough.
        let frame = eth(ETH_P_IP, &ipv4(A4, B4, 6, IPV4_DF, 577, 0));
        let mut buf = frame.clone();
        assert_eq!(build(&mut buf, frame.len(), 576), Some(ETH_LEN + 576));
        let frame = eth(ETH_P_IPV6, &ipv6(A6, B6, 6, 1281, 0));
        let mut buf = frame.clone();
        assert_eq!(build(&mut buf, frame.len(), 1280), Some(ETH_LEN + 1280));
        // A shorter one, quoted whole, needs 28 bytes more.
        let frame = eth(ETH_P_IP, &ipv4(A4, B4, 6, IPV4_DF, 541, 0));
        let mut buf = frame.clone();
        assert_eq!(build(&mut buf, frame.len(), 576), None);
        assert_eq!(buf, frame, "left as it was");
        buf.resize(frame.len() + V4_GROW, 0);
        assert_eq!(build(&mut buf, frame.len(), 576), Some(V4_HDR + 541));
    }

    #[test]
    fn in_place_steps_match_build() {
        // The XDP way (room in front, write the region, sum the quote
        // where it is) gives what build gives.
        let ip = ipv4(A4, B4, 6, IPV4_DF, 1480, 3);
        let frame = eth(ETH_P_IP, &ip);
        let want = built(&frame, MTU).unwrap();
        let a = answer(&frame[..], MTU);
        let Answer::V4 { quote } = a else {
            panic!("{a:?}")
        };
        let mut grown = [vec![0xaa; V4_GROW], frame.clone()].concat();
        grown.truncate(a.frame_len());
        write_v4((&mut grown[..V4_REGION]).try_into().unwrap(), MTU, quote);
        let sum = csum_partial(&grown[V4_HDR..], 0);
        finish_v4((&mut grown[..V4_HDR]).try_into().unwrap(), sum);
        assert_eq!(grown, want);
    }
}
