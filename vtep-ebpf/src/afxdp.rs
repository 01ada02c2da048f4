//! Steering for the AF_XDP engine.
//!
//! With `engine = "afxdp"` the uplink and the access ports run these small
//! programs instead of the XDP engine's: they hand vtep's frames to the
//! AF_XDP socket of their interface and queue (`XSKS`), where the userspace
//! engine decapsulates, encapsulates, learns and floods with the same
//! tables. Everything else passes to the host; a frame whose socket is
//! missing (the engine is not running) passes too. Nothing is counted
//! here: the engine counts what it gets.

use aya_ebpf::{bindings::xdp_action::XDP_PASS, programs::XdpContext};
use vtep_common::{
    VtepAddr, XSK_MAX_QUEUES,
    header::{Uplink, parse_vxlan},
};

use crate::{
    maps::{VNI_GROUP, XSK_SLOTS, XSKS, underlay},
    parse::Xdp,
};

/// Redirects the frame to the AF_XDP socket of its interface and queue, or
/// passes it when there is none.
#[inline(always)]
fn to_socket(ctx: &XdpContext) -> u32 {
    let ifindex = ctx.ingress_ifindex() as u32;
    // SAFETY: a live map value, read only.
    let Some(slot) = (unsafe { XSK_SLOTS.get(ifindex) }) else {
        return XDP_PASS;
    };
    let queue = ctx.rx_queue_index();
    if queue >= XSK_MAX_QUEUES {
        return XDP_PASS;
    }
    XSKS.redirect(*slot * XSK_MAX_QUEUES + queue, u64::from(XDP_PASS))
        .unwrap_or(XDP_PASS)
}

/// Uplink: what the uplink classifier calls VXLAN for this VTEP, well
/// formed or not, goes to the engine (which classifies it again, and counts
/// what is wrong with it), over either family, and to a group when it is the
/// group of its VNI; the host keeps everything else, later fragments
/// included.
#[inline(always)]
pub fn xsk_uplink(ctx: &XdpContext) -> u32 {
    let Some(ul) = underlay() else {
        return XDP_PASS;
    };
    match parse_vxlan(&Xdp(ctx), ul) {
        Uplink::Pass => XDP_PASS,
        // A group that is not its VNI's may be a group of the host's own
        // (a kernel vxlan device): the host's, as before groups were vtep's.
        Uplink::Vxlan(d) if d.group.is_some() && !is_vni_group(d.vni, d.group) => XDP_PASS,
        Uplink::Vxlan(_) | Uplink::Drop(_) => to_socket(ctx),
    }
}

/// Whether `group` is the group of `vni` (`VNI_GROUP`).
#[inline(always)]
fn is_vni_group(vni: u32, group: Option<VtepAddr>) -> bool {
    // SAFETY: a live map value, read only.
    unsafe { VNI_GROUP.get(vni) }.is_some_and(|g| Some(*g) == group)
}

/// Access port: every frame goes to the engine.
#[inline(always)]
pub fn xsk_access(ctx: &XdpContext) -> u32 {
    to_socket(ctx)
}
