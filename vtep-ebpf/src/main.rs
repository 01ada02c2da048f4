//! vtep's datapath: the entry points of its programs. The work is in the
//! library (`vtep_ebpf`, `src/lib.rs`); its maps are in `vtep_ebpf::maps`.
//!
//! | program            | hook                 | job                                              |
//! |--------------------|----------------------|--------------------------------------------------|
//! | `vtep_uplink`      | XDP, uplink          | decap, learn, redirect to an access port         |
//! | `vtep_uplink_tc`   | TC ingress, uplink   | flood decap'd BUM locally; flood-copy hand-off   |
//! | `vtep_access`      | XDP, access port     | learn, switch locally, encap to a remote VTEP    |
//! | `vtep_access_tc`   | TC ingress, access   | flood (head-end replication), neighbour hand-off |
//! | `vtep_xsk_uplink`  | XDP, uplink          | AF_XDP engine: steer VXLAN for us to its socket  |
//! | `vtep_xsk_access`  | XDP, access port     | AF_XDP engine: steer every frame to its socket   |
//!
//! The XDP programs decide; what XDP cannot do (clone a frame, wait for a
//! neighbour) they hand to their TC companion through XDP metadata
//! ([`vtep_common::Meta`]).
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::{
        TC_ACT_OK,
        xdp_action::{XDP_DROP, XDP_PASS},
    },
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use vtep_common::Reason;
use vtep_ebpf::{
    afxdp, decap, encap,
    flood::{self, tc_verdict},
    maps::count,
};

/// Uplink XDP: VXLAN for this VTEP is decapsulated here.
#[xdp]
pub fn vtep_uplink(ctx: XdpContext) -> u32 {
    xdp_verdict(decap::try_uplink(&ctx))
}

/// Access-port XDP: frames from workloads are switched or encapsulated here.
#[xdp]
pub fn vtep_access(ctx: XdpContext) -> u32 {
    xdp_verdict(encap::try_access(&ctx))
}

/// AF_XDP engine, uplink: steers vtep's frames to the engine's sockets.
#[xdp]
pub fn vtep_xsk_uplink(ctx: XdpContext) -> u32 {
    afxdp::xsk_uplink(&ctx)
}

/// AF_XDP engine, access port: steers every frame to the engine's sockets.
#[xdp]
pub fn vtep_xsk_access(ctx: XdpContext) -> u32 {
    afxdp::xsk_access(&ctx)
}

/// Uplink TC ingress: floods what `vtep_uplink` decapsulated and passed,
/// and sends on the flood copies `vtep_access_tc` had no neighbour for.
#[classifier]
pub fn vtep_uplink_tc(ctx: TcContext) -> i32 {
    if flood::is_neigh_handoff(&ctx) {
        return tc_verdict(flood::neigh_handoff(&ctx));
    }
    let Some(m) = flood::meta(&ctx) else {
        return TC_ACT_OK;
    };
    tc_verdict(flood::dispatch_uplink(&ctx, m))
}

/// Access-port TC ingress: floods, and finishes what `vtep_access` passed.
#[classifier]
pub fn vtep_access_tc(ctx: TcContext) -> i32 {
    let Some(m) = flood::meta(&ctx) else {
        return TC_ACT_OK;
    };
    tc_verdict(flood::dispatch_access(&ctx, m))
}

/// The verdict of an XDP program: its own (a redirect, `Ok`), or the one
/// its reason's outcome says (`Err`), the reason counted once, here: a drop
/// is `XDP_DROP`; a frame passed to the host or handed to the TC program is
/// `XDP_PASS`. (A not-learned reason is never a verdict: such a frame is
/// still forwarded, and its reason counted where learning gave up.)
#[inline(always)]
fn xdp_verdict(r: Result<u32, Reason>) -> u32 {
    match r {
        Ok(action) => action,
        Err(reason) => {
            count(reason);
            if reason.is_drop() { XDP_DROP } else { XDP_PASS }
        }
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
