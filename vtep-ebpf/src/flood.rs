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
//! Frames without metadata are not vtep's: TC_ACT_OK.

use core::mem::size_of;

use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::generated::{bpf_redirect, bpf_redirect_neigh, bpf_skb_change_head},
    programs::TcContext,
};
use vtep_common::{
    MAX_FLOOD, MAX_VNI_PORTS, META_DELIVER, META_FLOOD, META_MAGIC, META_NEIGH, Meta, Reason,
    header::{ENCAP_V4_LEN, IPV4_LEN, UDP_LEN, VXLAN_LEN, flow_hash, source_port},
};

use crate::{
    encap::{Route, next_hop, outer_header},
    maps::{Dir, FLOOD, VNI_PORTS, count, count_vni, underlay},
    parse::flow_keys,
};

/// The metadata `vtep_uplink` or `vtep_access` left in front of the frame.
#[inline(always)]
fn meta(ctx: &TcContext) -> Option<Meta> {
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

pub fn try_uplink_tc(ctx: &TcContext) -> Result<i32, ()> {
    let Some(m) = meta(ctx) else {
        return Ok(TC_ACT_OK);
    };
    match m.action {
        META_FLOOD => {
            flood_local(ctx, m.vni, 0);
            Ok(TC_ACT_SHOT)
        }
        META_DELIVER => Ok(deliver(m.ifindex)),
        _ => Ok(TC_ACT_SHOT),
    }
}

pub fn try_access_tc(ctx: &TcContext) -> Result<i32, ()> {
    let Some(m) = meta(ctx) else {
        return Ok(TC_ACT_OK);
    };
    match m.action {
        META_FLOOD => {
            flood_local(ctx, m.vni, m.ifindex);
            flood_remote(ctx, m.vni);
            Ok(TC_ACT_SHOT)
        }
        META_NEIGH => {
            let Some(ul) = underlay() else {
                count(Reason::NoUnderlay);
                return Ok(TC_ACT_SHOT);
            };
            // SAFETY: no next-hop parameters: the kernel routes the packet
            // and resolves the neighbour itself.
            Ok(
                unsafe { bpf_redirect_neigh(ul.uplink_ifindex, core::ptr::null_mut(), 0, 0) }
                    as i32,
            )
        }
        META_DELIVER => Ok(deliver(m.ifindex)),
        _ => Ok(TC_ACT_SHOT),
    }
}

#[inline(always)]
fn deliver(ifindex: u32) -> i32 {
    // SAFETY: plain helper call; the kernel checks the ifindex.
    unsafe { bpf_redirect(ifindex, 0) as i32 }
}

/// Sends a copy of the frame to each access port of `vni` except `except`
/// (the port it came in on). The frame itself stays for the caller.
#[inline(always)]
fn flood_local(ctx: &TcContext, vni: u32, except: u32) {
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
            clone_to(ctx, ifindex, vni, Dir::Local, len);
        }
    }
}

#[inline(always)]
fn clone_to(ctx: &TcContext, ifindex: u32, vni: u32, dir: Dir, len: u64) {
    if ctx.clone_redirect(ifindex, 0).is_err() {
        count(Reason::FloodFailed);
    } else {
        count_vni(vni, dir, len);
    }
}

/// Sends one encapsulated copy of the frame to every remote VTEP in the
/// flood list of `vni`. The frame grows an outer header once; each copy
/// rewrites it before it is cloned.
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
    let keys = flow_keys(ctx, 0).unwrap_or_default();
    let src_port = source_port(flow_hash(&keys), ul.srcport_min, ul.srcport_max);
    let inner_len = ctx.len() as u16;
    let ip_len = (IPV4_LEN + UDP_LEN + VXLAN_LEN) as u16 + inner_len;
    // SAFETY: the helper checks the new length; flags must be 0.
    if unsafe { bpf_skb_change_head(ctx.skb.skb, ENCAP_V4_LEN as u32, 0) } != 0 {
        count(Reason::FloodFailed);
        return;
    }
    let outer_len = u64::from(inner_len) + ENCAP_V4_LEN as u64;
    for i in 0..MAX_FLOOD {
        if i as u32 >= list.len {
            break;
        }
        let Some(remote) = list.vteps[i].as_v4() else {
            continue;
        };
        let hop = match next_hop(ctx.skb.skb.cast(), ul, remote, ip_len, src_port) {
            Ok(Route::Resolved(hop)) => hop,
            Ok(Route::NoNeighbour) | Err(_) => {
                count(Reason::FloodFailed);
                continue;
            }
        };
        let hdr = outer_header(ul, local, remote, &hop, src_port, vni, inner_len);
        if ctx.store(0, &hdr, 0).is_err() {
            count(Reason::FloodFailed);
            continue;
        }
        clone_to(ctx, hop.ifindex, vni, Dir::Tx, outer_len);
    }
}
