//! Uplink XDP: decapsulation.
//!
//! A frame on the uplink is classified by [`parse_vxlan`], the one
//! uplink classifier of both engines, over either family: anything but
//! VXLAN for this VTEP passes to the host untouched (`not-vxlan`),
//! malformed VXLAN is dropped. VXLAN sent to a multicast group is taken
//! only for the VNI whose group it is (`VNI_GROUP`; else `unknown-group`,
//! or `kernel-fallback` when the kernel has vxlan devices of its own).
//! A good frame teaches the FDB where its inner source lives (the outer
//! source, also for group-addressed frames), has RFC 6040 applied to its
//! inner packet's ECN field (`ecn-error` for an outer CE over a Not-ECT
//! packet), loses its outer headers and goes to the access port of its
//! inner destination, or to TC for flooding — never back to the underlay.
//!
//! In a followed VNI (`VNI_F_FOLLOWED`) the kernel's vxlan device and
//! bridge own learning and flooding: vtep decapsulates only frames for MACs
//! mirrored behind a local port, and passes every other frame untouched to
//! the kernel (`kernel-fallback`), which forwards it as if vtep were not
//! there.
//!
//! Every exit that is not a redirect returns its [`Reason`] as the `Err`:
//! the entry point counts it and gives the verdict its outcome says.

use core::mem::{MaybeUninit, size_of};

use aya_ebpf::{
    helpers::generated::{
        bpf_xdp_adjust_head, bpf_xdp_adjust_tail, bpf_xdp_get_buff_len, bpf_xdp_load_bytes,
        bpf_xdp_store_bytes,
    },
    programs::XdpContext,
};
use network_types::eth::EthHdr;
use vtep_common::{
    FloodList, MAX_FLOOD, META_FLOOD, Reason, UNDERLAY_F_KERNEL_VXLAN, VNI_F_CHECK_SOURCE,
    VNI_F_FOLLOWED, VniInfo, VtepAddr,
    ecn::{ECN_V4_SPAN, ECN_V6_SPAN, decap_mark, set_ecn_v4, set_ecn_v6},
    fdb::{Forward, Place, forward},
    frame::{Frame, Plain},
    header::{Uplink, is_multicast, is_valid_source, parse_vxlan},
};

use crate::{
    flood::to_port,
    learn::{kernel_must_see, learn},
    maps::{Dir, FLOOD, VNI_GROUP, VNIS, count_flood, count_vni, fdb_dst, underlay},
    parse::{Xdp, ptr_at, read, set_meta},
};

pub fn try_uplink(ctx: &XdpContext) -> Result<u32, Reason> {
    let ul = underlay().ok_or(Reason::NotVxlan)?;
    let d = match parse_vxlan(&Xdp(ctx), ul) {
        Uplink::Vxlan(d) => d,
        Uplink::Pass => return Err(Reason::NotVxlan),
        Uplink::Drop(r) => return Err(r),
    };
    let (vni, inner) = (d.vni, d.inner_offset);
    let inner_eth = read::<EthHdr>(ctx, inner).ok_or(Reason::Truncated)?;
    if let Some(group) = d.group {
        // SAFETY: a live map value, read only.
        let ours = unsafe { VNI_GROUP.get(vni) }.is_some_and(|g| *g == group);
        if !ours {
            if ul.flags & UNDERLAY_F_KERNEL_VXLAN != 0 {
                // A group of the kernel's own vxlan devices: theirs.
                return Err(Reason::KernelFallback);
            }
            return Err(Reason::UnknownGroup);
        }
    }
    // SAFETY: a live map value, read only.
    let Some(info) = (unsafe { VNIS.get(vni) }) else {
        if ul.flags & UNDERLAY_F_KERNEL_VXLAN != 0 {
            // A VNI of the kernel's own vxlan devices that vtep does not
            // follow: theirs.
            return Err(Reason::KernelFallback);
        }
        return Err(Reason::UnknownVni);
    };
    let remote = d.remote;
    if info.flags & VNI_F_CHECK_SOURCE != 0 {
        // SAFETY: a live map value, read only.
        let known = match unsafe { FLOOD.get(vni) } {
            Some(list) => in_flood_list(list, &remote),
            None => false,
        };
        if !known {
            return Err(Reason::UnknownSourceVtep);
        }
    }
    if !is_valid_source(&inner_eth.src_addr) {
        return Err(Reason::BadSourceMac);
    }
    let inner_len = d.inner_len as u64;
    let ecn = d.outer_ecn;
    if info.flags & VNI_F_FOLLOWED != 0 {
        return followed(ctx, vni, info, inner, inner_len, &inner_eth, remote, ecn);
    }
    learn(ctx, vni, info, inner_eth.src_addr, Place::Vtep(remote));

    let from = Place::Vtep(remote);
    match forward(&from, fdb_dst(vni, &inner_eth.dst_addr))? {
        Forward::Port(port) => deliver(ctx, vni, inner, inner_len, port, ecn),
        Forward::Flood => flood(ctx, inner, inner_len, vni, ecn),
        // Not from `forward`: a frame of the underlay never goes back to it.
        Forward::Vtep(_) => Err(Reason::SplitHorizon),
    }
}

/// A frame of a followed VNI: decapsulated only when the mirrored FDB puts
/// its inner destination behind a local (bridge) port; anything else — BUM,
/// unknown or remote destinations — passes untouched to the kernel's vxlan
/// device. vtep does not learn here: the kernel does. When the vxlan device
/// learns (`VNI_F_LEARNING`: not with EVPN or flannel, which set
/// `nolearning`), it also gets the frames of sources it does not know and,
/// once a second per MAC, one of a known source (see [`kernel_must_see`]).
/// A frame passed to the kernel keeps its outer ECN for the kernel to apply.
#[expect(
    clippy::too_many_arguments,
    reason = "the decap state, kept in registers"
)]
#[inline(always)]
fn followed(
    ctx: &XdpContext,
    vni: u32,
    info: &VniInfo,
    inner: usize,
    inner_len: u64,
    inner_eth: &EthHdr,
    remote: VtepAddr,
    ecn: u8,
) -> Result<u32, Reason> {
    let must_see = info.learns() && kernel_must_see(vni, inner_eth.src_addr, &Place::Vtep(remote));
    if is_multicast(&inner_eth.dst_addr) {
        return Err(Reason::KernelFallback);
    }
    if must_see {
        return Err(Reason::BridgeRefresh);
    }
    match forward(&Place::Vtep(remote), fdb_dst(vni, &inner_eth.dst_addr)) {
        Ok(Forward::Port(port)) => deliver(ctx, vni, inner, inner_len, port, ecn),
        _ => Err(Reason::KernelFallback),
    }
}

/// Decapsulates and sends the inner frame to access port `ifindex`.
#[inline(always)]
fn deliver(
    ctx: &XdpContext,
    vni: u32,
    inner: usize,
    inner_len: u64,
    ifindex: u32,
    outer_ecn: u8,
) -> Result<u32, Reason> {
    ecn_decap(ctx, inner, inner_len, outer_ecn)?;
    strip(ctx, inner, inner_len)?;
    to_port(ctx, vni, ifindex, Dir::Rx, inner_len)
}

/// RFC 6040 on the inner packet of a frame about to be decapsulated
/// ([`decap_mark`]): its ECN field rewritten in place (the IPv4 header
/// checksum updated incrementally, as [`vtep_common::ecn::apply_mark`] does
/// on a slice), or `ecn-error` for an outer CE over a Not-ECT packet. As in
/// the kernel's `vxlan_rcv`, this comes after learning: the frame is well
/// formed VXLAN from that VTEP whatever its ECN field says.
#[inline(always)]
fn ecn_decap(ctx: &XdpContext, inner: usize, inner_len: u64, outer_ecn: u8) -> Result<(), Reason> {
    match ecn_mark(ctx, inner, inner_len, outer_ecn) {
        0 => Ok(()),
        ECN_ERROR => Err(Reason::EcnError),
        _ => Err(Reason::Truncated),
    }
}

/// [`ecn_mark`]: the inner packet is not ECN-capable under an outer CE.
const ECN_ERROR: u32 = 1;
/// [`ecn_mark`]: the inner IP header is not whole.
const ECN_TRUNCATED: u32 = 2;

/// The work of [`ecn_decap`], as a function of its own (a BPF subprogram)
/// returning a plain code (0, [`ECN_ERROR`], [`ECN_TRUNCATED`]): the
/// verifier then carries one scalar out of it instead of every inner
/// header's state (inlined, it cost ten times the instructions verified).
/// It reads and writes the frame through helpers ([`XdpBytes`]): a packet
/// pointer handed into a subprogram is one LLVM may narrow to 32 bits,
/// which the verifier refuses.
#[inline(never)]
fn ecn_mark(ctx: &XdpContext, inner: usize, inner_len: u64, outer_ecn: u8) -> u32 {
    let frame = XdpBytes(ctx);
    let m = match decap_mark(&frame, inner, inner_len as usize, outer_ecn) {
        Ok(Some(m)) => m,
        Ok(None) => return 0,
        Err(Reason::EcnError) => return ECN_ERROR,
        Err(_) => return ECN_TRUNCATED,
    };
    // `decap_mark` read these bytes; the frame has not changed since.
    let stored = if m.v6 {
        frame
            .read_at::<[u8; ECN_V6_SPAN]>(m.offset)
            .is_some_and(|mut h| {
                set_ecn_v6(&mut h, m.ecn);
                frame.store(m.offset, &h)
            })
    } else {
        frame
            .read_at::<[u8; ECN_V4_SPAN]>(m.offset)
            .is_some_and(|mut h| {
                set_ecn_v4(&mut h, m.ecn);
                frame.store(m.offset, &h)
            })
    };
    if stored { 0 } else { ECN_TRUNCATED }
}

/// An XDP frame read and written through `bpf_xdp_load_bytes` /
/// `bpf_xdp_store_bytes` (the context pointer the only argument), for
/// [`ecn_mark`].
struct XdpBytes<'a>(&'a XdpContext);

impl XdpBytes<'_> {
    /// Writes `bytes` at `offset`; false when they do not all fit.
    #[inline(always)]
    fn store<const N: usize>(&self, offset: usize, bytes: &[u8; N]) -> bool {
        // SAFETY: the helper checks the range against the frame and reads
        // N bytes of `bytes`.
        unsafe {
            bpf_xdp_store_bytes(
                self.0.ctx,
                offset as u32,
                bytes.as_ptr() as *mut _,
                N as u32,
            ) == 0
        }
    }
}

impl Frame for XdpBytes<'_> {
    #[inline(always)]
    fn read_at<T: Plain>(&self, offset: usize) -> Option<T> {
        let mut v = MaybeUninit::<T>::uninit();
        // SAFETY: the helper checks the range against the frame and writes
        // size_of::<T>() bytes into `v`, any of which make a valid T.
        let r = unsafe {
            bpf_xdp_load_bytes(
                self.0.ctx,
                offset as u32,
                v.as_mut_ptr().cast(),
                size_of::<T>() as u32,
            )
        };
        // SAFETY: filled by the helper when it returns 0.
        (r == 0).then(|| unsafe { v.assume_init() })
    }

    #[inline(always)]
    fn len(&self) -> usize {
        // SAFETY: reads the context only.
        unsafe { bpf_xdp_get_buff_len(self.0.ctx) as usize }
    }
}

/// Removes the outer headers (the first `inner` bytes) and any Ethernet
/// padding after the inner frame of `inner_len` bytes.
#[inline(always)]
fn strip(ctx: &XdpContext, inner: usize, inner_len: u64) -> Result<(), Reason> {
    // SAFETY: the helper checks the adjustment against the frame.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, inner as i32) } != 0 {
        return Err(Reason::StripFailed);
    }
    let len = (ctx.data_end() - ctx.data()) as u64;
    if len > inner_len {
        // SAFETY: the helper checks the adjustment against the frame.
        if unsafe { bpf_xdp_adjust_tail(ctx.ctx, -((len - inner_len) as i32)) } != 0 {
            return Err(Reason::StripFailed);
        }
    }
    // The frame moved: re-check that the inner Ethernet header is there.
    ptr_at::<EthHdr>(ctx.data(), ctx.data_end(), 0).ok_or(Reason::StripFailed)?;
    Ok(())
}

/// Decapsulates and hands the inner frame to the uplink's TC program, which
/// floods it to the VNI's access ports.
#[inline(always)]
fn flood(
    ctx: &XdpContext,
    inner: usize,
    inner_len: u64,
    vni: u32,
    outer_ecn: u8,
) -> Result<u32, Reason> {
    ecn_decap(ctx, inner, inner_len, outer_ecn)?;
    strip(ctx, inner, inner_len)?;
    set_meta(ctx, META_FLOOD, vni, 0).ok_or(Reason::FloodFailed)?;
    count_flood(vni);
    count_vni(vni, Dir::Rx, inner_len);
    Err(Reason::Flooded)
}

/// Whether `vtep` is a member of `list`: an index loop the verifier can
/// bound (slice iterators over `..len` are not).
#[inline(always)]
fn in_flood_list(list: &FloodList, vtep: &VtepAddr) -> bool {
    for i in 0..MAX_FLOOD {
        if i as u32 >= list.len {
            break;
        }
        if list.vteps[i] == *vtep {
            return true;
        }
    }
    false
}
