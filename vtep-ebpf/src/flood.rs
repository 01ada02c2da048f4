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
    bindings::{__sk_buff, BPF_F_INGRESS, TC_ACT_OK, TC_ACT_SHOT, xdp_action::XDP_PASS},
    helpers::generated::{bpf_loop, bpf_redirect, bpf_redirect_neigh, bpf_skb_change_head},
    programs::{TcContext, XdpContext},
};
use vtep_common::{
    AF_INET6, FloodList, MAX_FLOOD, MAX_VNI_PORTS, META_DELIVER, META_FLOOD, META_MAGIC,
    META_NEIGH, Meta, Reason, Underlay, VtepAddr,
    header::{
        ENCAP_V4_LEN, ENCAP_V6_LEN, EncapV4, EncapV6, Outer, encap_v4_into, encap_v6_into,
        source_port,
    },
};

use crate::{
    encap::{
        Route, header_v4, header_v6, next_hop, outer_ip_len, scratch, sends_udp_checksum,
        set_udp_checksum, set_udp_checksum_v6,
    },
    maps::{CSUM_SCRATCH, Dir, FLOOD, PORT_TX, VNI_GROUP, VNI_PORTS, count, count_vni, underlay},
    parse::{Skb, packet_csum, set_meta},
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

/// `skb->mark` of a flood copy [`flood_copy`] could not address (no
/// neighbour for its next hop yet), cloned into the uplink's ingress: the
/// uplink's TC program ([`neigh_handoff`]) sends such a copy on through
/// `bpf_redirect_neigh`, so the kernel resolves the neighbour instead of
/// the copy being lost. (`bpf_clone_redirect` itself cannot resolve a
/// neighbour; XDP does not see the re-injected skb: a native XDP program runs
/// in the driver, before the skb exists; and a generic one would pass it, its
/// outer destination being a remote VTEP.) "vtn" and 1.
pub const FLOOD_NEIGH_MARK: u32 = 0x7674_6e01;

/// Whether this skb is a flood copy handed over by [`flood_copy`].
#[inline(always)]
pub fn is_neigh_handoff(ctx: &TcContext) -> bool {
    // SAFETY: reading a field of the context the kernel gave us.
    unsafe { (*ctx.skb.skb).mark == FLOOD_NEIGH_MARK }
}

/// The uplink's half of a flood copy without a neighbour: clears the mark
/// (it is vtep's, not the host's routing policy) and sends the copy out of
/// the uplink through the kernel's neighbour resolution.
#[inline(always)]
pub fn neigh_handoff(ctx: &TcContext) -> Result<i32, Reason> {
    let ul = underlay().ok_or(Reason::NoUnderlay)?;
    // SAFETY: `mark` is writable from TC programs.
    unsafe { (*ctx.skb.skb).mark = 0 };
    // SAFETY: no next-hop parameters: the kernel routes the packet and
    // resolves the neighbour itself.
    Ok(unsafe { bpf_redirect_neigh(ul.uplink_ifindex, core::ptr::null_mut(), 0, 0) } as i32)
}

/// Sends one encapsulated copy of the frame to every remote VTEP in the
/// flood list of `vni`, of either family, and one to the VNI's multicast
/// group (`VNI_GROUP`) when it has one. The frame grows a 50-byte outer
/// header for the IPv4 copies, then, when there are IPv6 copies to make,
/// 20 bytes more for theirs; each copy rewrites the header before it is
/// cloned, and the frame keeps the last header written.
///
/// The copies are made by [`flood_copy`] under `bpf_loop` (one pass per
/// family, the group as one more member): the verifier checks that body
/// once, not once per possible member of the list, which keeps this program
/// far inside its budget however many paths one copy has (next hop from the
/// FIB, the daemon's map, none; either family; with or without a UDP
/// checksum). A BPF subprogram of its own, like the body, so that the
/// stack frames of the local copies, of this and of the body do not add up.
#[inline(never)]
fn flood_remote(ctx: &TcContext, vni: u32) {
    // SAFETY: live map values, read only.
    let list = unsafe { FLOOD.get(vni) };
    // SAFETY: as above.
    let group = unsafe { VNI_GROUP.get(vni) };
    let members = list.map_or(0, |l| l.len.min(MAX_FLOOD as u32));
    let group = group.filter(|g| g.is_multicast());
    if members == 0 && group.is_none() {
        return;
    }
    let Some(ul) = underlay() else {
        count(Reason::NoUnderlay);
        return;
    };
    // One sum of the inner frame serves every copy of both families; none
    // when no copy carries a checksum (IPv6 copies do by default, but only
    // an underlay with an IPv6 address makes any).
    let sum = if sends_udp_checksum(ul, false)
        || (ul.local6.family == AF_INET6 && sends_udp_checksum(ul, true))
    {
        match packet_csum(ctx, 0, crate::parse::unlinked(ctx.len())) {
            Some(s) => s,
            None => {
                count(Reason::MtuExceeded);
                return;
            }
        }
    } else {
        0
    };
    let mut copies = Copies {
        skb: ctx.skb.skb,
        ul,
        list: list.map_or(core::ptr::null(), |l| l as *const FloodList),
        group: group.map_or(core::ptr::null(), |g| g as *const VtepAddr),
        o: Outer::default(),
        sum,
        members,
        v6: false,
        v6_copies: false,
    };
    inner_outer(ctx, vni, &mut copies.o);
    // SAFETY: the helper checks the new length; flags must be 0.
    if unsafe { bpf_skb_change_head(ctx.skb.skb, ENCAP_V4_LEN as u32, 0) } != 0 {
        count(Reason::FloodFailed);
        return;
    }
    copies_of_pass(&mut copies);
    if !copies.v6_copies {
        return;
    }
    // SAFETY: as above.
    if unsafe { bpf_skb_change_head(ctx.skb.skb, (ENCAP_V6_LEN - ENCAP_V4_LEN) as u32, 0) } != 0 {
        count(Reason::FloodFailed);
        return;
    }
    copies.v6 = true;
    copies_of_pass(&mut copies);
}

/// The copies of one pass ([`Copies::v6`] says its family): one to every
/// flood-list member of that family, under `bpf_loop`, then one to the
/// group if it is of that family. The group is copied here, not as one
/// more iteration of the loop: the verifier checks a loop body until the
/// state it starts from repeats, and a body that may take either of two
/// remotes (a member, the group) repeats far later.
#[inline(always)]
fn copies_of_pass(copies: &mut Copies) {
    if copies.members > 0 {
        // SAFETY: `flood_copy` takes a `Copies`, and `copies` outlives the
        // call.
        unsafe {
            bpf_loop(
                copies.members,
                flood_copy as *mut c_void,
                (copies as *mut Copies).cast(),
                0,
            )
        };
    }
    // SAFETY: null or a live map value.
    if let Some(group) = unsafe { copies.group.as_ref() } {
        let v6 = group.family == AF_INET6;
        if v6 == copies.v6 {
            copy_to(copies, group, true);
        } else if v6 {
            copies.v6_copies = true;
        }
    }
}

/// The outer header's inputs from the frame ([`Outer::of`]; a frame too
/// short for flow keys hashes as zero), into `o`. A BPF subprogram: the
/// reads' buffers then take no room in [`flood_remote`]'s frame, under
/// which the copies' frames stack.
#[inline(never)]
fn inner_outer(ctx: &TcContext, vni: u32, o: &mut Outer) {
    let inner_len = ctx.len() as u16;
    *o = Outer::of(&Skb(ctx), vni, inner_len).unwrap_or(Outer {
        vni,
        inner_len,
        ..Outer::default()
    });
}

/// What every encapsulated flood copy shares, for [`flood_copy`].
/// Pointers first: the verifier follows a pointer kept on the stack only in
/// a whole, aligned 8-byte slot.
#[repr(C)]
struct Copies {
    skb: *mut __sk_buff,
    ul: *const Underlay,
    /// The flood list (null: none).
    list: *const FloodList,
    /// The VNI's multicast group (null: none).
    group: *const VtepAddr,
    /// The outer header's inputs (MACs per copy).
    o: Outer,
    /// The inner frame's partial sum, when either family sends checksums
    /// (else 0, unused). Not an `Option`: its value half, uninitialised
    /// when `None`, would be stored as it is, which the verifier refuses.
    sum: u32,
    /// Flood-list members to copy to (the group is index `members`).
    members: u32,
    /// This pass's family: IPv6 (else IPv4).
    v6: bool,
    /// Whether the IPv4 pass skipped IPv6 members: whether the IPv6 pass
    /// runs. A flag, not a count: the verifier checks the loop body until
    /// the state it starts from repeats, which a count never does.
    v6_copies: bool,
}

/// The `bpf_loop` body of [`flood_remote`]: for iteration `i` of the
/// current pass, the flood-list member `i` or (`i == members`) the group,
/// when of the pass's family: rewrites the outer header and sends a copy.
/// A member whose next hop has no neighbour yet is handed to the uplink's
/// TC program ([`FLOOD_NEIGH_MARK`], counted `flood-no-neighbour`); one
/// with no route, too long for the underlay, or not sent: `flood-failed`.
/// A member of a family this VTEP has no address of: `no-underlay`.
/// Returns 0 to go on, 1 to stop.
extern "C" fn flood_copy(i: u64, copies: *mut c_void) -> i64 {
    // SAFETY: `flood_remote` passes a live `Copies` whose pointers are a
    // context and map values (or null) that live through the program.
    let c = unsafe { &mut *(copies as *mut Copies) };
    // SAFETY: null or a live map value.
    let Some(remote) = unsafe { c.list.as_ref() }.and_then(|l| l.vteps.get(i as usize)) else {
        return 1;
    };
    let v6 = remote.family == AF_INET6;
    if v6 != c.v6 {
        if v6 {
            c.v6_copies = true;
        }
        return 0;
    }
    copy_to(c, remote, false);
    0
}

/// One flood copy, to `remote` (the group when `group`), of the pass's
/// family; see [`flood_copy`]. A BPF subprogram: the next-hop lookup's and
/// the header's room on the stack is taken only for as long as it runs.
#[inline(never)]
fn copy_to(c: &mut Copies, remote: &VtepAddr, group: bool) {
    // SAFETY: `flood_remote` keeps the underlay, a map value, alive.
    let ul = unsafe { &*c.ul };
    if ul.local_for(remote).is_none() {
        count(Reason::NoUnderlay);
        return;
    }
    let ctx = TcContext::new(c.skb);
    let ip_len = outer_ip_len(c.v6, c.o.inner_len);
    // The copy's MACs go straight into `c.o` in each branch: merged into
    // one value first, their bytes would take a stack slot each.
    let mut ifindex = ul.uplink_ifindex;
    let mut handoff = false;
    if group {
        // A group's MAC, from the uplink; the FIB has no neighbour for it.
        if ip_len > ul.mtu {
            count(Reason::FloodFailed);
            return;
        }
        let Some(dmac) = remote.group_mac() else {
            return;
        };
        c.o.dst_mac = dmac;
        c.o.src_mac = ul.uplink_mac;
    } else {
        let src_port = source_port(c.o.hash, ul.srcport_min, ul.srcport_max);
        match next_hop(c.skb.cast(), ul, remote, ip_len, src_port) {
            Ok(Route::Resolved(h)) => {
                c.o.dst_mac = h.dmac;
                c.o.src_mac = h.smac;
                ifindex = h.ifindex;
            }
            Ok(Route::NoNeighbour) => {
                c.o.dst_mac = [0; 6];
                c.o.src_mac = [0; 6];
                handoff = true;
            }
            Err(_) => {
                count(Reason::FloodFailed);
                return;
            }
        }
    }
    let outer_len = write_copy(c, remote);
    if outer_len == 0 {
        count(Reason::FloodFailed);
    } else if handoff {
        handoff_to_uplink(&ctx, ul, c.o.vni, outer_len);
    } else {
        clone_to(&ctx, ifindex, c.o.vni, Some(Dir::Tx), outer_len);
    }
}

/// Writes the outer header of the copy to `remote` (of the pass's family,
/// from `c.o`, whose MACs are the copy's) at offset 0 of the frame; the
/// outer frame's length, or 0 when the store failed. The header is built in
/// the per-CPU scratch buffer (the inner sum is taken before the copies, so
/// the buffer is free).
///
/// A function of its own (a BPF subprogram): the loop body's stack frame
/// sits on top of the program's, and together with this one they must stay
/// within 512 bytes, which one frame holding the next-hop lookup and the
/// header builders together would not.
#[inline(always)]
fn write_copy(c: &Copies, remote: &VtepAddr) -> u64 {
    if c.v6 {
        write_v6(c, remote)
    } else {
        write_v4(c, remote)
    }
}

/// [`write_copy`] over IPv4.
#[inline(never)]
fn write_v4(c: &Copies, remote: &VtepAddr) -> u64 {
    // SAFETY: `flood_remote` keeps the underlay, a map value, alive.
    let ul = unsafe { &*c.ul };
    let ctx = TcContext::new(c.skb);
    let Some(buf) = CSUM_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let Some(e) = scratch::<EncapV4>() else {
        return 0;
    };
    if !remote
        .as_v4()
        .is_some_and(|r| encap_v4_into(e, ul, r, &c.o))
    {
        return 0;
    }
    // SAFETY: a per-CPU map value of more than ENCAP_V4_LEN bytes, used by
    // nothing else while the copies are made; bytes have no alignment.
    let hdr = unsafe { &mut *buf.cast::<[u8; ENCAP_V4_LEN]>() };
    header_v4(hdr, e);
    set_udp_checksum(hdr, Some(c.sum).filter(|_| sends_udp_checksum(ul, false)));
    if ctx.store(0, hdr, 0).is_err() {
        return 0;
    }
    u64::from(c.o.inner_len) + ENCAP_V4_LEN as u64
}

/// [`write_copy`] over IPv6.
#[inline(never)]
fn write_v6(c: &Copies, remote: &VtepAddr) -> u64 {
    // SAFETY: as in `write_v4`.
    let ul = unsafe { &*c.ul };
    let ctx = TcContext::new(c.skb);
    let Some(buf) = CSUM_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    let Some(e) = scratch::<EncapV6>() else {
        return 0;
    };
    if !encap_v6_into(e, ul, &remote.addr, &c.o) {
        return 0;
    }
    // SAFETY: as in `write_v4`, ENCAP_V6_LEN bytes.
    let hdr = unsafe { &mut *buf.cast::<[u8; ENCAP_V6_LEN]>() };
    header_v6(hdr, e);
    set_udp_checksum_v6(hdr, Some(c.sum).filter(|_| sends_udp_checksum(ul, true)));
    if ctx.store(0, hdr, 0).is_err() {
        return 0;
    }
    u64::from(c.o.inner_len) + ENCAP_V6_LEN as u64
}

/// Hands a flood copy without a neighbour to the uplink's TC program: a
/// clone into the uplink's ingress, marked [`FLOOD_NEIGH_MARK`] (the mark
/// of the frame itself restored after), counted `flood-no-neighbour` and,
/// as every copy sent, in the VNI's Tx counters.
#[inline(always)]
fn handoff_to_uplink(ctx: &TcContext, ul: &Underlay, vni: u32, outer_len: u64) {
    let skb = ctx.skb.skb;
    // SAFETY: `mark` is readable and writable from TC programs.
    let mark = unsafe { (*skb).mark };
    // SAFETY: as above.
    unsafe { (*skb).mark = FLOOD_NEIGH_MARK };
    let sent = ctx.clone_redirect(ul.uplink_ifindex, BPF_F_INGRESS as u64);
    // SAFETY: as above.
    unsafe { (*skb).mark = mark };
    if sent.is_err() {
        count(Reason::FloodFailed);
    } else {
        count(Reason::FloodNoNeighbour);
        count_vni(vni, Dir::Tx, outer_len);
    }
}
