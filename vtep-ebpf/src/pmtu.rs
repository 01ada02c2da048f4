//! Access-port XDP: the path-MTU error for a frame too large for the
//! underlay once encapsulated.
//!
//! As the kernel's vxlan driver does for a bridged frame
//! (`skb_tunnel_check_pmtu`), the frame is turned, where it is, into an
//! ICMP "fragmentation needed" (IPv4 with DF) or ICMPv6 "packet too big"
//! carrying the inner MTU, from the frame's destination to its source, and
//! sent back out of the access port it came from: the sender's
//! path-MTU discovery converges, TCP lowers its segment size. Which frames
//! get one and its bytes are `vtep_common::icmp`'s; a frame that gets none
//! (IPv4 without DF, an ICMP error, a broadcast…) is only dropped.
//!
//! The frame is counted `mtu-exceeded` either way; an answered one also
//! `pmtu-sent`.

use aya_ebpf::{
    bindings::xdp_action::XDP_PASS,
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use vtep_common::{
    META_DELIVER, Reason,
    header::ETH_LEN,
    icmp::{
        Answer, V4_GROW, V4_HDR, V4_REGION, V6_GROW, V6_HDR, V6_REGION, answer, finish_v4,
        finish_v6, write_v4, write_v6,
    },
};

use crate::{
    maps::{PORT_TX, count},
    parse::{Xdp, packet_csum, ptr_at_mut, set_meta},
};

/// Answers a frame of `vni` that encap refused as too large (it counted
/// `mtu-exceeded`) with its path-MTU error, back out of the access port it
/// came in on: redirected there (`Ok`), or, a port not in `PORT_TX` (no
/// XDP at its far end), handed to the TC program for the skb path
/// (`skb-delivery`), as local delivery goes ([`crate::flood::to_port`]).
/// Either way counted `mtu-exceeded` and `pmtu-sent` here. A frame that
/// gets no error comes back as [`Reason::MtuExceeded`] (dropped).
///
/// `uplink_mtu` is the underlay's IP MTU and `overhead` what encapsulation
/// adds to an inner IP packet (50 bytes over IPv4, 70 over IPv6): the
/// inner MTU is their difference.
///
/// Not `XDP_TX`: a veth sends an `XDP_TX` frame into its peer's ring but
/// wakes the peer only if that has an XDP program of its own, which a
/// workload's end has not (seen on Linux 6.18: the errors sat in the ring);
/// a redirect through the devmap flushes, as for every frame vtep switches
/// to a port.
///
/// The checksum is summed here, not in [`rewrite`]: `packet_csum` is a
/// subprogram too, and the stacks of a chain of three (the access program,
/// `rewrite`, `packet_csum`) would not fit the verifier's 512 bytes.
#[inline(always)]
pub fn too_big(
    ctx: &XdpContext,
    vni: u32,
    uplink_mtu: u16,
    overhead: usize,
) -> Result<u32, Reason> {
    let mtu = u32::from(uplink_mtu).saturating_sub(overhead as u32);
    // Only a packet the MTU refuses gets an error (encap also refuses one
    // a route of lower MTU refuses): an error announcing an MTU the packet
    // fits would have it sent again as it was. Checked here, outside
    // `rewrite`: inside, LLVM would drop the bounds checks of the header
    // reads the length implies, which the verifier still wants.
    let ip_len = (ctx.data_end() - ctx.data()).saturating_sub(ETH_LEN);
    if ip_len <= mtu as usize {
        return Err(Reason::MtuExceeded);
    }
    let a = decode(rewrite(ctx, mtu));
    let (hdr, quote) = match a {
        Answer::None => return Err(Reason::MtuExceeded),
        Answer::V4 { quote } => (V4_HDR, quote),
        Answer::V6 { quote } => (V6_HDR, quote),
    };
    let sum = packet_csum(ctx, hdr as u32, u32::from(quote)).ok_or(Reason::MtuExceeded)?;
    let finished = match a {
        Answer::V4 { .. } => ptr_at_mut::<[u8; V4_HDR]>(ctx.data(), ctx.data_end(), 0)
            // SAFETY: bounds checked by ptr_at_mut after the adjustments;
            // a byte array has no alignment to respect.
            .map(|h| finish_v4(unsafe { &mut *h }, sum)),
        Answer::V6 { .. } => ptr_at_mut::<[u8; V6_HDR]>(ctx.data(), ctx.data_end(), 0)
            // SAFETY: as above.
            .map(|h| finish_v6(unsafe { &mut *h }, sum)),
        Answer::None => None,
    };
    finished.ok_or(Reason::MtuExceeded)?;
    count(Reason::MtuExceeded);
    count(Reason::PmtuSent);
    let port = ctx.ingress_ifindex() as u32;
    if let Ok(action) = PORT_TX.redirect(port, u64::from(XDP_PASS)) {
        return Ok(action);
    }
    set_meta(ctx, META_DELIVER, vni, port).ok_or(Reason::RedirectFailed)?;
    Err(Reason::SkbDelivery)
}

/// An [`Answer`] as a subprogram returns it: in a register (an enum would
/// come back through the caller's stack, which the verifier refuses): 0
/// for none, else the quote's length, [`V6_BIT`] set for IPv6.
#[inline(always)]
fn encode(a: Answer) -> u32 {
    match a {
        Answer::None => 0,
        Answer::V4 { quote } => u32::from(quote),
        Answer::V6 { quote } => V6_BIT | u32::from(quote),
    }
}

/// See [`encode`].
const V6_BIT: u32 = 1 << 16;

#[inline(always)]
fn decode(code: u32) -> Answer {
    let quote = code as u16;
    match (quote, code & V6_BIT != 0) {
        (0, _) => Answer::None,
        (_, false) => Answer::V4 { quote },
        (_, true) => Answer::V6 { quote },
    }
}

/// Rewrites the frame into its path-MTU error for inner MTU `mtu`, all but
/// the ICMP checksum: what it answered ([`encode`]d), none when the frame
/// gets no error or the rewrite failed (the frame is dropped then,
/// whatever state it is in).
///
/// A subprogram of its own: the access program's stack is near its limit,
/// and none of this is live across anything of encap's.
#[inline(never)]
fn rewrite(ctx: &XdpContext, mtu: u32) -> u32 {
    encode(rewrite_as(ctx, mtu))
}

#[inline(always)]
fn rewrite_as(ctx: &XdpContext, mtu: u32) -> Answer {
    let a = answer(&Xdp(ctx), mtu);
    let grow = match a {
        Answer::None => return Answer::None,
        Answer::V4 { .. } => V4_GROW,
        Answer::V6 { .. } => V6_GROW,
    };
    let len = ctx.data_end() - ctx.data();
    // SAFETY: the helper checks the adjustment against the headroom.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(grow as i32)) } != 0 {
        return Answer::None;
    }
    // An oversize frame is longer than its error: the tail is cut.
    let delta = a.frame_len() as i64 - (len + grow) as i64;
    // SAFETY: the helper checks the new end against the frame.
    if unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta as i32) } != 0 {
        return Answer::None;
    }
    let written = match a {
        Answer::V4 { quote } => ptr_at_mut::<[u8; V4_REGION]>(ctx.data(), ctx.data_end(), 0)
            // SAFETY: bounds checked by ptr_at_mut after the adjustments; a
            // byte array has no alignment to respect.
            .map(|r| write_v4(unsafe { &mut *r }, mtu, quote)),
        Answer::V6 { quote } => ptr_at_mut::<[u8; V6_REGION]>(ctx.data(), ctx.data_end(), 0)
            // SAFETY: as above.
            .map(|r| write_v6(unsafe { &mut *r }, mtu, quote)),
        Answer::None => None,
    };
    if written.is_none() {
        return Answer::None;
    }
    a
}
