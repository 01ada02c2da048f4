//! TC ingress programs: flooding (head-end replication) and the hand-offs
//! XDP cannot finish itself.
//!
//! An XDP program that needs a frame cloned, or resolved by the kernel's
//! neighbour table, writes a [`Meta`] in front of it and passes it; the TC
//! program of the same device reads the metadata and:
//! - `META_FLOOD`: sends a copy to every access port of the VNI (never the
//!   one the frame came in on) and, for frames from an access port, one
//!   encapsulated copy to every remote VTEP of the VNI's flood list, each
//!   with its own outer header;
//! - `META_NEIGH`: sends the already encapsulated frame to the uplink through
//!   `bpf_redirect_neigh`, so the kernel resolves the next hop and nothing is
//!   lost;
//! - `META_DELIVER`: delivers the frame to an access port on the skb path.
//!
//! Frames without metadata are not vtep's: TC_ACT_OK. The entry points
//! (`src/main.rs`) read the metadata with [`meta`] and hand it to
//! [`dispatch_uplink`] or [`dispatch_access`]; an `Err` is a drop, which
//! they count.

use core::{ffi::c_void, mem::size_of};

use aya_ebpf::{
    bindings::{__sk_buff, TC_ACT_OK, TC_ACT_SHOT, xdp_action::XDP_PASS},
    helpers::generated::{bpf_loop, bpf_redirect, bpf_redirect_neigh, bpf_skb_change_head},
    programs::{TcContext, XdpContext},
};
use vtep_common::{
    FloodList, MAX_FLOOD, MAX_VNI_PORTS, META_DELIVER, META_FLOOD, META_MAGIC, META_NEIGH, Meta,
    Reason, Underlay, VtepAddr,
    header::{ENCAP_V4_LEN, IPV4_LEN, UDP_LEN, VXLAN_LEN, flow_hash, flow_keys, source_port},
};

use crate::{
    encap::{Route, inner_sum, next_hop, outer_header, set_udp_checksum},
    maps::{Dir, FLOOD, PORT_TX, VNI_PORTS, count, count_vni, underlay},
    parse::{Skb, set_meta},
};

/// The metadata `vtep_uplink` or `vtep_access` left in front of the frame.
#[inline(always)]
pub fn meta(ctx: &TcContext) -> Option<Meta> {
    // SAFETY: reading fields of the context the kernel gave us.
    let (meta, data) = unsafe {
        (
            (*ctx.skb.skb).data_meta as usize,
            (*ctx.skb.skb).data as usize,
        )
    };
    if meta + size_of::<Meta>() > data {
        return None;
    }
    // SAFETY: [meta, meta + size_of::<Meta>()) checked against data above.
    let m = unsafe { (meta as *const Meta).read_unaligned() };
    if m.magic != META_MAGIC {
        return None;
    }
    Some(m)
}

/// The uplink's TC work for metadata `m`: flood a decapsulated BUM frame
/// to the VNI's access ports, or deliver one on the skb path.
#[inline(always)]
pub fn dispatch_uplink(ctx: &TcContext, m: Meta) -> Result<i32, Reason> {
    match m.action {
        META_FLOOD => {
            // Counted once, as decapsulated, by the XDP program.
            flood_local(ctx, m.vni, 0, None);
            Ok(TC_ACT_SHOT)
        }
        META_DELIVER => Ok(deliver(m.ifindex)),
        _ => Err(Reason::UnknownMeta),
    }
}

/// An access port's TC work for metadata `m`: flood to the VNI's other
/// ports and its remote VTEPs, send an encapsulated frame through the
/// kernel's neighbour resolution, or deliver on the skb path.
#[inline(always)]
pub fn dispatch_access(ctx: &TcContext, m: Meta) -> Result<i32, Reason> {
    match m.action {
        META_FLOOD => {
            flood_local(ctx, m.vni, m.ifindex, Some(Dir::Local));
            flood_remote(ctx, m.vni);
            Ok(TC_ACT_SHOT)
        }
        META_NEIGH => {
            let ul = underlay().ok_or(Reason::NoUnderlay)?;
            // SAFETY: no next-hop parameters: the kernel routes the packet
            // and resolves the neighbour itself.
            Ok(
                unsafe { bpf_redirect_neigh(ul.uplink_ifindex, core::ptr::null_mut(), 0, 0) }
                    as i32,
            )
        }
        META_DELIVER => Ok(deliver(m.ifindex)),
        _ => Err(Reason::UnknownMeta),
    }
}

/// The verdict of a TC program: its own (`Ok`), or the one its reason's
/// outcome says (`Err`: `TC_ACT_SHOT` for a drop, else `TC_ACT_OK`), the
/// reason counted once, here. Called by the entry points and by the test
/// fixture's programs (`src/fixture.rs`).
#[inline(always)]
pub fn tc_verdict(r: Result<i32, Reason>) -> i32 {
    match r {
        Ok(action) => action,
        Err(reason) => {
            count(reason);
            if reason.is_drop() {
                TC_ACT_SHOT
            } else {
                TC_ACT_OK
            }
        }
    }
}

/// The XDP side of local delivery: redirects the frame (already what the
/// port must get) to access port `port` through the `PORT_TX` devmap, or,
/// for a port not in it (no XDP at its far end), hands it to the TC
/// program with `META_DELIVER`, which [`deliver`]s it on the skb path.
/// Counts `len` bytes for `vni` in direction `dir` either way.
#[inline(always)]
pub fn to_port(ctx: &XdpContext, vni: u32, port: u32, dir: Dir, len: u64) -> Result<u32, Reason> {
    if let Ok(action) = PORT_TX.redirect(port, u64::from(XDP_PASS)) {
        count_vni(vni, dir, len);
        return Ok(action);
    }
    set_meta(ctx, META_DELIVER, vni, port).ok_or(Reason::RedirectFailed)?;
    count_vni(vni, dir, len);
    Err(Reason::SkbDelivery)
}

/// The TC side of local delivery (see [`to_port`]).
#[inline(always)]
fn deliver(ifindex: u32) -> i32 {
    // SAFETY: plain helper call; the kernel checks the ifindex.
    unsafe { bpf_redirect(ifindex, 0) as i32 }
}

/// Sends a copy of the frame to each access port of `vni` except `except`
/// (the port it came in on), each copy counted in direction `dir` (none for
/// a decapsulated frame: it was counted once, as `Rx`, when it was
/// decapsulated). The frame itself stays for the caller.
#[inline(always)]
fn flood_local(ctx: &TcContext, vni: u32, except: u32, dir: Option<Dir>) {
    // SAFETY: a live map value, read only.
    let Some(ports) = (unsafe { VNI_PORTS.get(vni) }) else {
        return;
    };
    let len = u64::from(ctx.len());
    for i in 0..MAX_VNI_PORTS {
        if i as u32 >= ports.len {
            break;
        }
        let ifindex = ports.ifindex[i];
        if ifindex != except {
            clone_to(ctx, ifindex, vni, dir, len);
        }
    }
}

#[inline(always)]
fn clone_to(ctx: &TcContext, ifindex: u32, vni: u32, dir: Option<Dir>, len: u64) {
    if ctx.clone_redirect(ifindex, 0).is_err() {
        count(Reason::FloodFailed);
    } else if let Some(dir) = dir {
        count_vni(vni, dir, len);
    }
}

/// Sends one encapsulated copy of the frame to every remote VTEP in the
/// flood list of `vni`. The frame grows an outer header once; each copy
/// rewrites it before it is cloned.
///
/// The copies are made by [`flood_copy`] under `bpf_loop`: the verifier
/// checks that body once, not once per possible member of the list, which
/// keeps this program far inside its budget however many paths one copy
/// has (next hop from the FIB, the daemon's map, none; with or without a
/// UDP checksum).
#[inline(always)]
fn flood_remote(ctx: &TcContext, vni: u32) {
    // SAFETY: a live map value, read only.
    let Some(list) = (unsafe { FLOOD.get(vni) }) else {
        return;
    };
    if list.len == 0 {
        return;
    }
    let Some(ul) = underlay() else {
        count(Reason::NoUnderlay);
        return;
    };
    let Some(local) = ul.local.as_v4() else {
        count(Reason::NoUnderlay);
        return;
    };
    let keys = flow_keys(&Skb(ctx), 0).unwrap_or_default();
    let src_port = source_port(flow_hash(&keys), ul.srcport_min, ul.srcport_max);
    let inner_len = ctx.len() as u16;
    // One sum of the inner frame serves every copy.
    let sum = match inner_sum(ul, ctx, 0, ctx.len()) {
        Ok(s) => s,
        Err(r) => {
            count(r);
            return;
        }
    };
    // SAFETY: the helper checks the new length; flags must be 0.
    if unsafe { bpf_skb_change_head(ctx.skb.skb, ENCAP_V4_LEN as u32, 0) } != 0 {
        count(Reason::FloodFailed);
        return;
    }
    let mut copies = Copies {
        skb: ctx.skb.skb,
        ul,
        list,
        sum,
        local,
        vni,
        src_port,
        inner_len,
    };
    let members = list.len.min(MAX_FLOOD as u32);
    // SAFETY: `flood_copy` takes a `Copies`, and `copies` outlives the call.
    unsafe {
        bpf_loop(
            members,
            flood_copy as *mut c_void,
            (&mut copies as *mut Copies).cast(),
            0,
        )
    };
}

/// What every encapsulated flood copy shares, for [`flood_copy`].
/// Pointers first: the verifier follows a pointer kept on the stack only in
/// a whole, aligned 8-byte slot.
#[repr(C)]
struct Copies {
    skb: *mut __sk_buff,
    ul: *const Underlay,
    list: *const FloodList,
    /// The inner frame's partial sum, with `udp_checksum = true`.
    sum: Option<u32>,
    local: [u8; 4],
    vni: u32,
    src_port: u16,
    inner_len: u16,
}

/// The `bpf_loop` body of [`flood_remote`]: rewrites the outer header for
/// member `i` of the flood list and sends a copy to it. Returns 0 to go
/// on, 1 to stop (past the end of the list).
extern "C" fn flood_copy(i: u64, copies: *mut c_void) -> i64 {
    // SAFETY: `flood_remote` passes a live `Copies` whose pointers are a
    // context and map values that live through the program.
    let (c, ul, list) = unsafe {
        let c = &*(copies as *const Copies);
        (c, &*c.ul, &*c.list)
    };
    let ctx = TcContext::new(c.skb);
    if i >= u64::from(list.len) {
        return 1;
    }
    let Some(remote) = list.vteps.get(i as usize).and_then(VtepAddr::as_v4) else {
        return 0;
    };
    let ip_len = (IPV4_LEN + UDP_LEN + VXLAN_LEN) as u16 + c.inner_len;
    let hop = match next_hop(c.skb.cast(), ul, remote, ip_len, c.src_port) {
        Ok(Route::Resolved(hop)) => hop,
        Ok(Route::NoNeighbour) | Err(_) => {
            count(Reason::FloodFailed);
            return 0;
        }
    };
    let mut hdr = outer_header(ul, c.local, remote, &hop, c.src_port, c.vni, c.inner_len);
    set_udp_checksum(&mut hdr, c.sum);
    if ctx.store(0, &hdr, 0).is_err() {
        count(Reason::FloodFailed);
        return 0;
    }
    let outer_len = u64::from(c.inner_len) + ENCAP_V4_LEN as u64;
    clone_to(&ctx, hop.ifindex, c.vni, Some(Dir::Tx), outer_len);
    0
}
