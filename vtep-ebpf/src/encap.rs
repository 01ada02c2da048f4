//! Access-port XDP: local switching and encapsulation.
//!
//! A frame from a workload belongs to the VNI of its access port. Its source
//! MAC is learned on that port; its destination decides: another local port
//! of the VNI (redirect), a remote VTEP (encapsulate, resolve the outer next
//! hop with `bpf_fib_lookup`, redirect to the uplink), or nobody known /
//! broadcast / multicast (flood, through TC).
//!
//! In a followed VNI (`VNI_F_FOLLOWED`; the port is a port of the
//! kernel bridge vtep follows) the bridge owns learning and flooding: vtep
//! switches or encapsulates only what the mirrored FDB knows and passes
//! every other frame untouched to the bridge (`kernel-fallback`).
//!
//! Every exit that is not a redirect returns its [`Reason`] as the `Err`:
//! the entry point counts it and gives the verdict its outcome says.

use core::{ffi::c_void, mem::size_of};

use aya_ebpf::{
    bindings::{
        BPF_FIB_LKUP_RET_FRAG_NEEDED, BPF_FIB_LKUP_RET_FWD_DISABLED, BPF_FIB_LKUP_RET_NO_NEIGH,
        BPF_FIB_LKUP_RET_SUCCESS, BPF_FIB_LOOKUP_OUTPUT, bpf_fib_lookup as FibParams,
        xdp_action::XDP_PASS,
    },
    helpers::generated::{bpf_fib_lookup, bpf_xdp_adjust_head},
    programs::XdpContext,
};
use network_types::eth::EthHdr;
use vtep_common::{
    AF_INET, META_FLOOD, META_NEIGH, PortKey, Reason, UNDERLAY_F_FIB, UNDERLAY_F_UDP_CSUM,
    Underlay, VNI_F_FOLLOWED, VtepAddr,
    fdb::{Forward, Place, forward},
    header::{
        ENCAP_V4_LEN, ENCAP_V4_MTU_OVERHEAD, ENCAP_V4_UDP_CSUM, ETH_P_8021AD, ETH_P_8021Q, EncapV4,
        IPPROTO_UDP, IPV4_LEN, UDP_LEN, VXLAN_LEN, encap_v4_header, flow_hash, flow_keys,
        is_multicast, is_valid_source, source_port, udp_checksum_v4,
    },
};

use crate::{
    flood::to_port,
    learn::{kernel_must_see, learn},
    maps::{Dir, NEIGH, PORT_TX, PORTS, VNIS, count_flood, count_vni, fdb_dst, underlay},
    parse::{CopyOut, Xdp, packet_csum, ptr_at_mut, read, set_meta},
    pmtu,
};

pub fn try_access(ctx: &XdpContext) -> Result<u32, Reason> {
    let ifindex = ctx.ingress_ifindex() as u32;
    let eth = read::<EthHdr>(ctx, 0).ok_or(Reason::Truncated)?;
    let ether_type = u16::from_be(eth.ether_type);
    if ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD {
        // VLAN-tagged access ports (VLAN → VNI) are not configured yet.
        return Err(Reason::UnknownVlan);
    }
    // SAFETY: live map values, read only.
    let port = unsafe { PORTS.get(PortKey::untagged(ifindex)) }.ok_or(Reason::NoPort)?;
    let vni = port.vni;
    // SAFETY: live map values, read only.
    let info = unsafe { VNIS.get(vni) }.ok_or(Reason::UnknownVni)?;
    if !is_valid_source(&eth.src_addr) {
        return Err(Reason::BadSourceMac);
    }
    let len = (ctx.data_end() - ctx.data()) as u64;
    if info.flags & VNI_F_FOLLOWED != 0 {
        return followed(ctx, vni, ifindex, &eth, len);
    }
    learn(ctx, vni, info, eth.src_addr, Place::Port(ifindex));

    match forward(&Place::Port(ifindex), fdb_dst(vni, &eth.dst_addr))? {
        Forward::Flood => flood(ctx, vni, ifindex),
        Forward::Port(port) => to_port(ctx, vni, port, Dir::Local, len),
        Forward::Vtep(remote) => {
            let ul = underlay().ok_or(Reason::NoUnderlay)?;
            encap(ctx, ul, vni, &remote, len)
        }
    }
}

/// A frame from a port of a followed bridge: switched or encapsulated when
/// the mirrored FDB knows its destination; BUM, unknown destinations, the
/// bridge's hairpin cases and, once a second per source MAC, a frame for
/// the bridge to see (see [`kernel_must_see`]) pass untouched to the bridge,
/// which learns and floods. vtep does not learn here: the bridge does.
#[inline(always)]
fn followed(
    ctx: &XdpContext,
    vni: u32,
    ifindex: u32,
    eth: &EthHdr,
    len: u64,
) -> Result<u32, Reason> {
    let must_see = kernel_must_see(vni, eth.src_addr, &Place::Port(ifindex));
    if is_multicast(&eth.dst_addr) {
        return Err(Reason::KernelFallback);
    }
    if must_see {
        return Err(Reason::BridgeRefresh);
    }
    match forward(&Place::Port(ifindex), fdb_dst(vni, &eth.dst_addr)) {
        Ok(Forward::Port(port)) => to_port(ctx, vni, port, Dir::Local, len),
        Ok(Forward::Vtep(remote)) => {
            let ul = underlay().ok_or(Reason::KernelFallback)?;
            encap(ctx, ul, vni, &remote, len)
        }
        // The bridge's: flooding, and its hairpin rules.
        Ok(Forward::Flood) | Err(_) => Err(Reason::KernelFallback),
    }
}

/// Hands a BUM or unknown-unicast frame to the access port's TC program.
#[inline(always)]
fn flood(ctx: &XdpContext, vni: u32, ifindex: u32) -> Result<u32, Reason> {
    set_meta(ctx, META_FLOOD, vni, ifindex).ok_or(Reason::FloodFailed)?;
    count_flood(vni);
    Err(Reason::Flooded)
}

/// Where the outer frame to a remote VTEP goes.
pub struct NextHop {
    pub dmac: [u8; 6],
    pub smac: [u8; 6],
    pub ifindex: u32,
}

/// What the FIB says about the way to a remote VTEP.
pub enum Route {
    /// Route and neighbour known.
    Resolved(NextHop),
    /// Route known, neighbour not (yet): the kernel must resolve it.
    NoNeighbour,
}

/// Resolves the next hop to `remote`, for an outer packet of `ip_len`
/// bytes (IP header on). With forwarding enabled on the uplink
/// (`UNDERLAY_F_FIB`), `bpf_fib_lookup` answers with the kernel's full FIB;
/// otherwise, or when the FIB has no neighbour yet, the daemon's resolved
/// next hop in `NEIGH` does. `ctx` is the program's context (XDP or TC), as
/// `bpf_fib_lookup` takes it.
#[inline(always)]
pub(crate) fn next_hop(
    ctx: *mut c_void,
    ul: &Underlay,
    remote: [u8; 4],
    ip_len: u16,
    src_port: u16,
) -> Result<Route, Reason> {
    if ul.flags & UNDERLAY_F_FIB != 0 {
        let local = ul.local.as_v4().ok_or(Reason::NoUnderlay)?;
        // SAFETY: all-zero is a valid bpf_fib_lookup.
        let mut p: FibParams = unsafe { core::mem::zeroed() };
        p.family = AF_INET;
        p.l4_protocol = IPPROTO_UDP;
        p.sport = src_port.to_be();
        p.dport = ul.port.to_be();
        p.__bindgen_anon_1.tot_len = ip_len;
        p.ifindex = ul.uplink_ifindex;
        p.__bindgen_anon_3.ipv4_src = u32::from_ne_bytes(local);
        p.__bindgen_anon_4.ipv4_dst = u32::from_ne_bytes(remote);
        // SAFETY: p is a valid, initialised bpf_fib_lookup on the stack.
        let rc = unsafe {
            bpf_fib_lookup(
                ctx,
                &mut p,
                size_of::<FibParams>() as i32,
                BPF_FIB_LOOKUP_OUTPUT,
            )
        } as u32;
        match rc {
            BPF_FIB_LKUP_RET_SUCCESS => {
                return Ok(Route::Resolved(NextHop {
                    dmac: p.dmac,
                    smac: p.smac,
                    ifindex: p.ifindex,
                }));
            }
            BPF_FIB_LKUP_RET_FRAG_NEEDED => return Err(Reason::MtuExceeded),
            BPF_FIB_LKUP_RET_NO_NEIGH | BPF_FIB_LKUP_RET_FWD_DISABLED => {}
            _ => return Err(Reason::NoRoute),
        }
    }
    // The FIB checked the MTU itself; the fallback checks the uplink's.
    if ip_len > ul.mtu {
        return Err(Reason::MtuExceeded);
    }
    // SAFETY: a live map value, read only.
    match unsafe { NEIGH.get(VtepAddr::v4(remote)) } {
        Some(n) => Ok(Route::Resolved(NextHop {
            dmac: n.dmac,
            smac: n.smac,
            ifindex: n.ifindex,
        })),
        None => Ok(Route::NoNeighbour),
    }
}

/// The partial sum of the inner frame (`len` bytes at `offset` of `frame`)
/// when the underlay sends UDP checksums (`udp_checksum = true`):
/// `Ok(None)` when it does not, an error when the frame is too long to sum.
#[inline(always)]
pub fn inner_sum(
    ul: &Underlay,
    frame: &impl CopyOut,
    offset: u32,
    len: u32,
) -> Result<Option<u32>, Reason> {
    if ul.flags & UNDERLAY_F_UDP_CSUM == 0 {
        return Ok(None);
    }
    packet_csum(frame, offset, len)
        .map(Some)
        .ok_or(Reason::MtuExceeded)
}

/// Fills in the UDP checksum of outer header `h` (its field zero) when
/// `inner_sum` (the inner frame's partial sum, [`inner_sum`]) is given.
/// `h` may be the header in the packet itself: nothing is copied.
#[inline(always)]
pub fn set_udp_checksum(h: &mut [u8; ENCAP_V4_LEN], inner_sum: Option<u32>) {
    if let Some(sum) = inner_sum {
        let c = udp_checksum_v4(h, sum);
        h[ENCAP_V4_UDP_CSUM] = c[0];
        h[ENCAP_V4_UDP_CSUM + 1] = c[1];
    }
}

/// The outer header of a frame of `inner_len` bytes in `vni`, from this
/// VTEP (`local`) to `remote` through `hop`, with UDP checksum 0.
#[inline(always)]
pub fn outer_header(
    ul: &Underlay,
    local: [u8; 4],
    remote: [u8; 4],
    hop: &NextHop,
    src_port: u16,
    vni: u32,
    inner_len: u16,
) -> [u8; ENCAP_V4_LEN] {
    encap_v4_header(&EncapV4 {
        dst_mac: hop.dmac,
        src_mac: hop.smac,
        src_ip: local,
        dst_ip: remote,
        ttl: ul.ttl,
        tos: 0,
        src_port,
        dst_port: ul.port,
        vni,
        inner_len,
    })
}

/// Encapsulates the frame to `remote` and redirects it to the uplink.
#[inline(always)]
fn encap(
    ctx: &XdpContext,
    ul: &Underlay,
    vni: u32,
    remote: &VtepAddr,
    len: u64,
) -> Result<u32, Reason> {
    // IPv6 underlay: not supported yet.
    let remote = remote.as_v4().ok_or(Reason::NoRoute)?;
    let local = ul.local.as_v4().ok_or(Reason::NoUnderlay)?;
    let keys = flow_keys(&Xdp(ctx), 0).ok_or(Reason::Truncated)?;
    let src_port = source_port(flow_hash(&keys), ul.srcport_min, ul.srcport_max);
    let inner_len = len as u16;
    let ip_len = (IPV4_LEN + UDP_LEN + VXLAN_LEN) as u16 + inner_len;
    let route = match next_hop(ctx.ctx.cast(), ul, remote, ip_len, src_port) {
        // Too large: its path-MTU error goes back to the sender.
        Err(Reason::MtuExceeded) => return pmtu::too_big(ctx, vni, ul.mtu, ENCAP_V4_MTU_OVERHEAD),
        route => route?,
    };
    let (hop, action) = match route {
        Route::Resolved(hop) => (hop, 0),
        Route::NoNeighbour => (
            NextHop {
                dmac: [0; 6],
                smac: [0; 6],
                ifindex: ul.uplink_ifindex,
            },
            META_NEIGH,
        ),
    };
    let hdr = outer_header(ul, local, remote, &hop, src_port, vni, inner_len);
    // SAFETY: the helper checks the adjustment against the headroom.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(ENCAP_V4_LEN as i32)) } != 0 {
        return Err(Reason::RedirectFailed);
    }
    let out =
        ptr_at_mut::<[u8; ENCAP_V4_LEN]>(ctx.data(), ctx.data_end(), 0).ok_or(Reason::Truncated)?;
    // SAFETY: bounds checked by ptr_at_mut, after the head moved.
    unsafe { out.write_unaligned(hdr) };
    // The inner frame is summed where it now is, behind the header: nothing
    // of the sum stays live across the lookups above (the stack is full).
    let sum = inner_sum(ul, ctx, ENCAP_V4_LEN as u32, len as u32)?;
    if sum.is_some() {
        let out = ptr_at_mut::<[u8; ENCAP_V4_LEN]>(ctx.data(), ctx.data_end(), 0)
            .ok_or(Reason::Truncated)?;
        // SAFETY: bounds checked by ptr_at_mut; a byte array has no
        // alignment to respect.
        set_udp_checksum(unsafe { &mut *out }, sum);
    }
    let outer_len = len + ENCAP_V4_LEN as u64;
    if action == META_NEIGH {
        set_meta(ctx, META_NEIGH, vni, 0).ok_or(Reason::RedirectFailed)?;
        count_vni(vni, Dir::Tx, outer_len);
        return Err(Reason::NoNeighbour);
    }
    match PORT_TX.redirect(hop.ifindex, u64::from(XDP_PASS)) {
        Ok(action) => {
            count_vni(vni, Dir::Tx, outer_len);
            Ok(action)
        }
        // The uplink takes no XDP frames (a veth whose peer could not be
        // set up): the kernel sends it.
        Err(_) => {
            set_meta(ctx, META_NEIGH, vni, 0).ok_or(Reason::RedirectFailed)?;
            count_vni(vni, Dir::Tx, outer_len);
            Err(Reason::SkbDelivery)
        }
    }
}
