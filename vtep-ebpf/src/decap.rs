//! Uplink XDP: decapsulation.
//!
//! A frame on the uplink that is VXLAN for this VTEP (IPv4 to the local
//! address, UDP to the VXLAN port) is checked in the order of
//! [`vtep_common::header::parse_vxlan_v4`], the reference parser; anything
//! else passes to the host untouched. A good frame teaches the FDB where its
//! inner source lives, loses its outer headers and goes to the access port
//! of its inner destination, or to TC for flooding.
//!
//! In a followed VNI (`VNI_F_KERNEL_FALLBACK`) the kernel's vxlan device and
//! bridge own learning and flooding: vtep decapsulates only frames for MACs
//! mirrored behind a local port, and passes every other frame untouched to
//! the kernel (`kernel-fallback`), which forwards it as if vtep were not
//! there.

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    helpers::generated::{bpf_xdp_adjust_head, bpf_xdp_adjust_tail},
    programs::XdpContext,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr, udp::UdpHdr};
use vtep_common::{
    FDB_KIND_LOCAL, FdbKey, FloodList, MAX_FLOOD, META_FLOOD, Reason, UNDERLAY_F_KERNEL_VXLAN,
    VNI_F_CHECK_SOURCE, VNI_F_KERNEL_FALLBACK, VNI_F_LEARNING, VniInfo, VtepAddr,
    header::{
        ETH_LEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, IPPROTO_UDP, IPV4_LEN, IPV4_OFFSET_MASK,
        UDP_LEN, VLAN_LEN, VXLAN_LEN, check_ipv4, check_udp_len, is_multicast, is_valid_source,
        vxlan_vni,
    },
};

use crate::{
    flood::to_port,
    learn::{Place, kernel_must_see, learn},
    maps::{Dir, FDB, FLOOD, VNIS, count, count_flood, count_vni, underlay},
    parse::{ptr_at, read, set_meta},
};

#[inline(always)]
fn pass() -> Result<u32, ()> {
    count(Reason::NotVxlan);
    Ok(XDP_PASS)
}

/// Passes a frame of a followed VNI untouched to the kernel.
#[inline(always)]
fn kernel(reason: Reason) -> Result<u32, ()> {
    count(reason);
    Ok(XDP_PASS)
}

#[inline(always)]
fn drop(reason: Reason) -> Result<u32, ()> {
    count(reason);
    Ok(XDP_DROP)
}

pub fn try_uplink(ctx: &XdpContext) -> Result<u32, ()> {
    let Some(ul) = underlay() else {
        return pass();
    };
    let Some(local) = ul.local.as_v4() else {
        return pass();
    };
    let (start, end) = (ctx.data(), ctx.data_end());

    let Some(eth) = read::<EthHdr>(ctx, 0) else {
        return pass();
    };
    let mut off = ETH_LEN;
    let mut ether_type = u16::from_be(eth.ether_type);
    if ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD {
        let Some(tag) = read::<[u8; VLAN_LEN]>(ctx, off) else {
            return pass();
        };
        ether_type = u16::from_be_bytes([tag[2], tag[3]]);
        off += VLAN_LEN;
    }
    if ether_type != ETH_P_IP {
        return pass();
    }
    let Some(ip) = read::<Ipv4Hdr>(ctx, off) else {
        return pass();
    };
    if ip.proto != IPPROTO_UDP || ip.dst_addr != local {
        return pass();
    }
    let frag = u16::from_be_bytes(ip.frags);
    if frag & IPV4_OFFSET_MASK != 0 {
        // A later fragment has no UDP header: not ours to judge.
        return pass();
    }
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    if ip.vihl >> 4 == 4 && ihl >= IPV4_LEN {
        let Some(udp) = read::<UdpHdr>(ctx, off + ihl) else {
            return pass();
        };
        if u16::from_be_bytes(udp.dst) != ul.port {
            return pass();
        }
    }
    // From here on the packet is VXLAN for us: anything wrong is a drop.
    let avail = end.saturating_sub(start + off);
    let tot_len = u16::from_be_bytes(ip.tot_len);
    let ihl = match check_ipv4(ip.vihl, frag, tot_len, avail) {
        Ok(ihl) => ihl,
        Err(r) => return drop(r),
    };
    let Some(udp) = read::<UdpHdr>(ctx, off + ihl) else {
        return drop(Reason::Truncated);
    };
    let udp_len = u16::from_be_bytes(udp.len);
    if let Err(r) = check_udp_len(udp_len, tot_len as usize - ihl) {
        return drop(r);
    }
    let Some(vx) = read::<[u8; VXLAN_LEN]>(ctx, off + ihl + UDP_LEN) else {
        return drop(Reason::Truncated);
    };
    let vni = match vxlan_vni(vx[0], [vx[4], vx[5], vx[6]]) {
        Ok(v) => v,
        Err(r) => return drop(r),
    };
    let inner = off + ihl + UDP_LEN + VXLAN_LEN;
    let Some(inner_eth) = read::<EthHdr>(ctx, inner) else {
        return drop(Reason::Truncated);
    };
    // SAFETY: a live map value, read only.
    let Some(info) = (unsafe { VNIS.get(vni) }) else {
        if ul.flags & UNDERLAY_F_KERNEL_VXLAN != 0 {
            // A VNI of the kernel's own vxlan devices that vtep does not
            // follow: theirs.
            return kernel(Reason::KernelFallback);
        }
        return drop(Reason::UnknownVni);
    };
    let remote = VtepAddr::v4(ip.src_addr);
    if info.flags & VNI_F_CHECK_SOURCE != 0 {
        // SAFETY: a live map value, read only.
        let known = match unsafe { FLOOD.get(vni) } {
            Some(list) => in_flood_list(list, &remote),
            None => false,
        };
        if !known {
            return drop(Reason::UnknownSourceVtep);
        }
    }
    if !is_valid_source(&inner_eth.src_addr) {
        return drop(Reason::BadSourceMac);
    }
    let inner_len = u64::from(udp_len) - (UDP_LEN + VXLAN_LEN) as u64;
    if info.flags & VNI_F_KERNEL_FALLBACK != 0 {
        return followed(ctx, vni, info, inner, inner_len, &inner_eth, remote);
    }
    learn(ctx, vni, info, inner_eth.src_addr, Place::Vtep(remote));

    if is_multicast(&inner_eth.dst_addr) {
        return flood(ctx, inner, inner_len, vni);
    }
    // SAFETY: a live map value, read only.
    let dst = match unsafe { FDB.get(FdbKey::new(vni, inner_eth.dst_addr)) } {
        Some(e) => *e,
        None => return flood(ctx, inner, inner_len, vni),
    };
    if dst.kind != FDB_KIND_LOCAL {
        // Split horizon: what came from the underlay never goes back to it.
        return drop(Reason::SplitHorizon);
    }
    deliver(ctx, vni, inner, inner_len, dst.ifindex)
}

/// A frame of a followed VNI: decapsulated only when the mirrored FDB puts
/// its inner destination behind a local (bridge) port; anything else — BUM,
/// unknown or remote destinations — passes untouched to the kernel's vxlan
/// device. vtep does not learn here: the kernel does. When the vxlan device
/// learns (`VNI_F_LEARNING`: not with EVPN or flannel, which set
/// `nolearning`), it also gets the frames of sources it does not know and,
/// once a second per MAC, one of a known source (see [`kernel_must_see`]).
#[inline(always)]
fn followed(
    ctx: &XdpContext,
    vni: u32,
    info: &VniInfo,
    inner: usize,
    inner_len: u64,
    inner_eth: &EthHdr,
    remote: VtepAddr,
) -> Result<u32, ()> {
    let must_see = info.flags & VNI_F_LEARNING != 0
        && kernel_must_see(vni, inner_eth.src_addr, &Place::Vtep(remote));
    if is_multicast(&inner_eth.dst_addr) {
        return kernel(Reason::KernelFallback);
    }
    if must_see {
        return kernel(Reason::BridgeRefresh);
    }
    // SAFETY: a live map value, read only.
    match unsafe { FDB.get(FdbKey::new(vni, inner_eth.dst_addr)) } {
        Some(dst) if dst.kind == FDB_KIND_LOCAL => {
            let port = dst.ifindex;
            deliver(ctx, vni, inner, inner_len, port)
        }
        _ => kernel(Reason::KernelFallback),
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
) -> Result<u32, ()> {
    strip(ctx, inner, inner_len)?;
    to_port(ctx, vni, ifindex, Dir::Rx, inner_len)
}

/// Removes the outer headers (the first `inner` bytes) and any Ethernet
/// padding after the inner frame of `inner_len` bytes.
#[inline(always)]
fn strip(ctx: &XdpContext, inner: usize, inner_len: u64) -> Result<(), ()> {
    // SAFETY: the helper checks the adjustment against the frame.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, inner as i32) } != 0 {
        return Err(());
    }
    let len = (ctx.data_end() - ctx.data()) as u64;
    if len > inner_len {
        // SAFETY: the helper checks the adjustment against the frame.
        if unsafe { bpf_xdp_adjust_tail(ctx.ctx, -((len - inner_len) as i32)) } != 0 {
            return Err(());
        }
    }
    // The frame moved: re-check that the inner Ethernet header is there.
    ptr_at::<EthHdr>(ctx.data(), ctx.data_end(), 0).ok_or(())?;
    Ok(())
}

/// Decapsulates and hands the inner frame to the uplink's TC program, which
/// floods it to the VNI's access ports.
#[inline(always)]
fn flood(ctx: &XdpContext, inner: usize, inner_len: u64, vni: u32) -> Result<u32, ()> {
    strip(ctx, inner, inner_len)?;
    if set_meta(ctx, META_FLOOD, vni, 0).is_none() {
        return drop(Reason::FloodFailed);
    }
    count(Reason::Flooded);
    count_flood(vni);
    count_vni(vni, Dir::Rx, inner_len);
    Ok(XDP_PASS)
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
