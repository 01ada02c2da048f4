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
    helpers::generated::{bpf_csum_diff, bpf_fib_lookup, bpf_xdp_adjust_head},
    programs::XdpContext,
};
use network_types::eth::EthHdr;
use vtep_common::{
    AF_INET, AF_INET6, META_FLOOD, META_NEIGH, PortKey, Reason, UNDERLAY_F_FIB,
    UNDERLAY_F_UDP_CSUM, UNDERLAY_F_UDP6_ZERO_CSUM_TX, Underlay, VNI_F_FOLLOWED, VtepAddr,
    fdb::{Forward, Place, forward},
    header::{
        ENCAP_V4_LEN, ENCAP_V4_MTU_OVERHEAD, ENCAP_V4_UDP_CSUM, ENCAP_V6_LEN,
        ENCAP_V6_MTU_OVERHEAD, ENCAP_V6_UDP_CSUM, ETH_LEN, ETH_P_8021AD, ETH_P_8021Q, EncapV4,
        EncapV6, IPPROTO_UDP, IPV4_LEN, IPV6_LEN, Outer, csum_add, csum_fold, encap_v4_header_into,
        encap_v4_into, encap_v6_header_into, encap_v6_into, is_multicast, is_valid_source,
        source_port,
    },
};

use crate::{
    flood::to_port,
    learn::{kernel_must_see, learn},
    maps::{
        CSUM_SCRATCH, Dir, NEIGH, PORT_TX, PORTS, VNIS, count_flood, count_vni, fdb_dst, underlay,
    },
    parse::{CSUM_CHUNK, CopyOut, Xdp, packet_csum, ptr_at_mut, read, set_meta},
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
            encap(ctx, ul, vni, &remote)
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
            encap(ctx, ul, vni, &remote)
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

/// The outer IP packet length (IP header on) of an encapsulation of
/// `inner_len` bytes toward a remote of family `v6`: inner + 36 over IPv4,
/// inner + 56 over IPv6, so that the inner MTU is the underlay's less 50 or
/// 70 bytes.
#[inline(always)]
pub const fn outer_ip_len(v6: bool, inner_len: u16) -> u16 {
    let overhead = if v6 { ENCAP_V6_LEN } else { ENCAP_V4_LEN };
    (overhead - ETH_LEN) as u16 + inner_len
}

/// Resolves the next hop to `remote` (either family), for an outer packet
/// of `ip_len` bytes (IP header on). With forwarding enabled on the uplink
/// (`UNDERLAY_F_FIB`), `bpf_fib_lookup` answers with the kernel's full FIB
/// (AF_INET or AF_INET6); otherwise, or when the FIB has no neighbour yet
/// (or IPv6 forwarding is off: FWD_DISABLED), the daemon's resolved next
/// hop in `NEIGH` does. `ctx` is the program's context (XDP or TC), as
/// `bpf_fib_lookup` takes it. A packet too long for the underlay is
/// `Err(MtuExceeded)`, from here only: the callers turn it into their one
/// MTU exit ([`mtu_exceeded`] in XDP).
#[inline(always)]
pub(crate) fn next_hop(
    ctx: *mut c_void,
    ul: &Underlay,
    remote: &VtepAddr,
    ip_len: u16,
    src_port: u16,
) -> Result<Route, Reason> {
    if ul.flags & UNDERLAY_F_FIB != 0 {
        // Written by `fib` on success only, and read only then: not
        // zeroed first, which would be a call of `memset`.
        let mut hop = core::mem::MaybeUninit::<NextHop>::uninit();
        let query = (u32::from(ip_len) << 16) | u32::from(src_port);
        match fib(ctx, ul, remote, query, &mut hop) {
            // SAFETY: `fib` wrote every field of `hop` when it succeeded.
            BPF_FIB_LKUP_RET_SUCCESS => return Ok(Route::Resolved(unsafe { hop.assume_init() })),
            BPF_FIB_LKUP_RET_FRAG_NEEDED => return Err(Reason::MtuExceeded),
            BPF_FIB_LKUP_RET_NO_NEIGH | BPF_FIB_LKUP_RET_FWD_DISABLED => {}
            FIB_NO_LOCAL => return Err(Reason::NoUnderlay),
            _ => return Err(Reason::NoRoute),
        }
    }
    // The FIB checked the MTU itself; the fallback checks the uplink's.
    if ip_len > ul.mtu {
        return Err(Reason::MtuExceeded);
    }
    // SAFETY: a live map value, read only.
    match unsafe { NEIGH.get(remote) } {
        Some(n) => Ok(Route::Resolved(NextHop {
            dmac: n.dmac,
            smac: n.smac,
            ifindex: n.ifindex,
        })),
        None => Ok(Route::NoNeighbour),
    }
}

/// What [`fib`] returns when the underlay has no address of `remote`'s
/// family (not a `BPF_FIB_LKUP_RET_*` code).
const FIB_NO_LOCAL: u32 = 0xffff;

/// `bpf_fib_lookup` toward `remote` (AF_INET or AF_INET6) from this VTEP's
/// address of its family, for an outer packet of `query >> 16` bytes from
/// UDP source port `query & 0xffff`: the helper's return code, the next hop
/// in `hop` on success. A BPF subprogram of its own: the lookup's 64-byte
/// parameters then take no room in its callers' frames (the flood copy's
/// sits on top of the flood program's).
#[inline(never)]
fn fib(
    ctx: *mut c_void,
    ul: &Underlay,
    remote: &VtepAddr,
    query: u32,
    hop: &mut core::mem::MaybeUninit<NextHop>,
) -> u32 {
    let Some(local) = ul.local_for(remote) else {
        return FIB_NO_LOCAL;
    };
    let mut params = core::mem::MaybeUninit::uninit();
    let p = zero_params(&mut params);
    p.l4_protocol = IPPROTO_UDP;
    p.sport = (query as u16).to_be();
    p.dport = ul.port.to_be();
    p.__bindgen_anon_1.tot_len = (query >> 16) as u16;
    p.ifindex = ul.uplink_ifindex;
    if remote.family == AF_INET6 {
        p.family = AF_INET6;
        p.__bindgen_anon_3.ipv6_src = words(&local.addr);
        p.__bindgen_anon_4.ipv6_dst = words(&remote.addr);
    } else {
        p.family = AF_INET;
        p.__bindgen_anon_3.ipv4_src = words(&local.addr)[0];
        p.__bindgen_anon_4.ipv4_dst = words(&remote.addr)[0];
    }
    // SAFETY: p is a valid, initialised bpf_fib_lookup on the stack.
    let rc = unsafe { bpf_fib_lookup(ctx, p, size_of::<FibParams>() as i32, BPF_FIB_LOOKUP_OUTPUT) }
        as u32;
    if rc == BPF_FIB_LKUP_RET_SUCCESS {
        hop.write(NextHop {
            dmac: p.dmac,
            smac: p.smac,
            ifindex: p.ifindex,
        });
    }
    rc
}

/// Zeroes the `bpf_fib_lookup` at `p` word by word: `mem::zeroed` becomes
/// a call of `memset`, a byte loop the verifier walks 64 times on every
/// path that looks up a next hop.
#[inline(always)]
fn zero_params(p: &mut core::mem::MaybeUninit<FibParams>) -> &mut FibParams {
    const WORDS: usize = size_of::<FibParams>() / 4;
    const _: () = assert!(size_of::<FibParams>() == WORDS * 4);
    let w = p.as_mut_ptr().cast::<u32>();
    for i in 0..WORDS {
        // SAFETY: inside `p`, which holds u32 fields and so is 4-aligned.
        unsafe { core::ptr::write_volatile(w.add(i), 0) };
    }
    // SAFETY: every byte written above; all-zero is a valid bpf_fib_lookup.
    unsafe { p.assume_init_mut() }
}

/// An address as the four native-endian words `bpf_fib_lookup` takes.
#[inline(always)]
fn words(a: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([a[0], a[1], a[2], a[3]]),
        u32::from_ne_bytes([a[4], a[5], a[6], a[7]]),
        u32::from_ne_bytes([a[8], a[9], a[10], a[11]]),
        u32::from_ne_bytes([a[12], a[13], a[14], a[15]]),
    ]
}

/// Whether the outer UDP checksum is sent toward a remote of family `v6`:
/// over IPv4 with `UNDERLAY_F_UDP_CSUM`, over IPv6 unless
/// `UNDERLAY_F_UDP6_ZERO_CSUM_TX` (the kernel's defaults: RFC 8200 wants it).
#[inline(always)]
pub const fn sends_udp_checksum(ul: &Underlay, v6: bool) -> bool {
    if v6 {
        ul.flags & UNDERLAY_F_UDP6_ZERO_CSUM_TX == 0
    } else {
        ul.flags & UNDERLAY_F_UDP_CSUM != 0
    }
}

/// The partial sum of the inner frame (`len` bytes at `offset` of `frame`)
/// when the outer header toward a remote of family `v6` carries a UDP
/// checksum ([`sends_udp_checksum`]): `Ok(None)` when it does not, an error
/// when the frame is too long to sum.
#[inline(always)]
pub fn inner_sum(
    ul: &Underlay,
    v6: bool,
    frame: &impl CopyOut,
    offset: u32,
    len: u32,
) -> Result<Option<u32>, Reason> {
    if !sends_udp_checksum(ul, v6) {
        return Ok(None);
    }
    packet_csum(frame, offset, len)
        .map(Some)
        .ok_or(Reason::MtuExceeded)
}

/// Fills in the UDP checksum of IPv4 outer header `h` (its field zero) when
/// `inner_sum` (the inner frame's partial sum, [`inner_sum`]) is given.
/// `h` may be the header in the packet itself: nothing is copied.
#[inline(always)]
pub fn set_udp_checksum(h: &mut [u8; ENCAP_V4_LEN], inner_sum: Option<u32>) {
    if let Some(sum) = inner_sum {
        let c = udp_checksum(h.as_ptr(), ETH_LEN + 12, 8, ETH_LEN + IPV4_LEN, sum);
        h[ENCAP_V4_UDP_CSUM] = c[0];
        h[ENCAP_V4_UDP_CSUM + 1] = c[1];
    }
}

/// [`set_udp_checksum`] for an IPv6 outer header.
#[inline(always)]
pub fn set_udp_checksum_v6(h: &mut [u8; ENCAP_V6_LEN], inner_sum: Option<u32>) {
    if let Some(sum) = inner_sum {
        let c = udp_checksum(h.as_ptr(), ETH_LEN + 8, 32, ETH_LEN + IPV6_LEN, sum);
        h[ENCAP_V6_UDP_CSUM] = c[0];
        h[ENCAP_V6_UDP_CSUM + 1] = c[1];
    }
}

/// What `vtep_common::header::udp_checksum_v4` and `udp_checksum_v6`
/// compute (the host tests hold them to the textbook sum; the fixtures hold
/// this to the same sums), with `bpf_csum_diff` over the header's words:
/// the source and destination addresses (`addr_len` bytes at `addrs`), the
/// UDP and VXLAN headers (at `udp`, checksum field zero), the pseudo-header's
/// length and protocol, and the inner frame's sum `inner`. Summed in Rust,
/// byte loads from unaligned memory, each kept in a register, overflow to a
/// stack slot apiece.
#[inline(always)]
fn udp_checksum(h: *const u8, addrs: usize, addr_len: u32, udp: usize, inner: u32) -> [u8; 2] {
    // SAFETY: both ranges are inside the header `h` points to; the helper
    // reads them (multiples of 4 bytes) and writes nothing.
    let sum = unsafe {
        let s = bpf_csum_diff(
            core::ptr::null_mut(),
            0,
            h.add(addrs) as *mut u32,
            addr_len,
            inner,
        );
        bpf_csum_diff(
            core::ptr::null_mut(),
            0,
            h.add(udp) as *mut u32,
            16,
            s as u32,
        )
    } as u32;
    // SAFETY: the UDP length field is inside the header.
    let len = unsafe { h.add(udp + 4).cast::<[u8; 2]>().read() };
    let sum = csum_add(sum, u32::from(u16::from_ne_bytes(len)));
    let sum = csum_add(sum, u32::from(u16::from_ne_bytes([0, IPPROTO_UDP])));
    match !csum_fold(sum) {
        0 => [0xff, 0xff],
        c => c.to_ne_bytes(),
    }
}

/// The one exit of an access frame that does not fit the underlay's MTU
/// once encapsulated (`remote`'s family decides the overhead, 50 or 70
/// bytes): its path-MTU error goes back to the sender ([`pmtu::too_big`]),
/// or it is dropped, counted `mtu-exceeded`.
#[inline(always)]
fn mtu_exceeded(
    ctx: &XdpContext,
    ul: &Underlay,
    vni: u32,
    remote: &VtepAddr,
) -> Result<u32, Reason> {
    let overhead = if remote.family == AF_INET6 {
        ENCAP_V6_MTU_OVERHEAD
    } else {
        ENCAP_V4_MTU_OVERHEAD
    };
    pmtu::too_big(ctx, vni, ul.mtu, overhead)
}

/// Encapsulates the frame to `remote` (IPv4 or IPv6, from this VTEP's
/// address of that family) and redirects it to the uplink.
///
/// A function of its own (a BPF subprogram), like [`packet_csum`]: its
/// headers and lookups take a stack frame of their own, not room in the
/// access program's, which learning and switching fill.
#[inline(never)]
fn encap(ctx: &XdpContext, ul: &Underlay, vni: u32, remote: &VtepAddr) -> Result<u32, Reason> {
    let len = (ctx.data_end() - ctx.data()) as u64;
    // A remote of a family this VTEP has no address of: the configuration
    // refuses it, and learning cannot produce one.
    if ul.local_for(remote).is_none() {
        return Err(Reason::NoUnderlay);
    }
    let v6 = remote.family == AF_INET6;
    let inner_len = len as u16;
    let mut o = Outer::of(&Xdp(ctx), vni, inner_len).ok_or(Reason::Truncated)?;
    let src_port = source_port(o.hash, ul.srcport_min, ul.srcport_max);
    let ip_len = outer_ip_len(v6, inner_len);
    // The MACs go straight into `o` in each branch: merged into one value
    // first, their bytes would take a stack slot each.
    let mut ifindex = ul.uplink_ifindex;
    let mut action = 0;
    match next_hop(ctx.ctx.cast(), ul, remote, ip_len, src_port) {
        Ok(Route::Resolved(hop)) => {
            o.dst_mac = hop.dmac;
            o.src_mac = hop.smac;
            ifindex = hop.ifindex;
        }
        Ok(Route::NoNeighbour) => action = META_NEIGH,
        Err(Reason::MtuExceeded) => return mtu_exceeded(ctx, ul, vni, remote),
        Err(r) => return Err(r),
    }
    let outer_len = if v6 {
        put_v6(ctx, ul, &remote.addr, &o, len)?
    } else {
        put_v4(ctx, ul, remote, &o, len)?
    };
    if action == META_NEIGH {
        set_meta(ctx, META_NEIGH, vni, 0).ok_or(Reason::RedirectFailed)?;
        count_vni(vni, Dir::Tx, outer_len);
        return Err(Reason::NoNeighbour);
    }
    match PORT_TX.redirect(ifindex, u64::from(XDP_PASS)) {
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

/// Where in the per-CPU scratch buffer an outer header's fields
/// ([`EncapV4`], [`EncapV6`]) are put together: behind the room of a whole
/// outer header, 8-aligned. Built there, not on the stack, whose 512 bytes
/// the programs' frames (and the flood copies' on top of theirs) share. The
/// buffer is the checksum's too: the fields are used up before a sum is
/// taken (XDP), or the sum is taken before any header is built (TC).
const SCRATCH_ENCAP: usize = 72;

const _: () = assert!(SCRATCH_ENCAP >= ENCAP_V6_LEN && SCRATCH_ENCAP % 8 == 0);
const _: () = assert!(SCRATCH_ENCAP + size_of::<EncapV6>() <= CSUM_CHUNK + 4);
const _: () = assert!(size_of::<EncapV4>() <= size_of::<EncapV6>());

/// The scratch buffer's slot for outer header fields (see
/// [`SCRATCH_ENCAP`]), as a `T`.
#[inline(always)]
pub(crate) fn scratch<T>() -> Option<&'static mut T> {
    let buf = CSUM_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: the slot lies inside the map value (asserted above), is
    // 8-aligned in an 8-aligned value, and this CPU's program is its only
    // user while it runs; `T` is plain data, any bytes are a value of it.
    Some(unsafe { &mut *buf.cast::<u8>().add(SCRATCH_ENCAP).cast::<T>() })
}

/// [`encap_v4_header_into`] as a BPF subprogram, for XDP (`h` in the
/// packet) and TC (`h` in a per-CPU buffer): its fields then come from `e`
/// in memory one at a time, instead of every byte of both addresses and
/// MACs held at once, which LLVM spills to a stack slot of 8 bytes each.
#[inline(never)]
pub fn header_v4(h: &mut [u8; ENCAP_V4_LEN], e: &EncapV4) {
    encap_v4_header_into(h, e);
}

/// [`header_v4`] for [`encap_v6_header_into`].
#[inline(never)]
pub fn header_v6(h: &mut [u8; ENCAP_V6_LEN], e: &EncapV6) {
    encap_v6_header_into(h, e);
}

/// Puts the IPv4 outer header toward `remote` in front of the frame (`len`
/// bytes), with its UDP checksum when the underlay sends one; the outer
/// frame's length.
#[inline(always)]
fn put_v4(
    ctx: &XdpContext,
    ul: &Underlay,
    remote: &VtepAddr,
    o: &Outer,
    len: u64,
) -> Result<u64, Reason> {
    let remote = remote.as_v4().ok_or(Reason::NoUnderlay)?;
    let e = scratch::<EncapV4>().ok_or(Reason::NoUnderlay)?;
    if !encap_v4_into(e, ul, remote, o) {
        return Err(Reason::NoUnderlay);
    }
    // SAFETY: the helper checks the adjustment against the headroom.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(ENCAP_V4_LEN as i32)) } != 0 {
        return Err(Reason::RedirectFailed);
    }
    let out =
        ptr_at_mut::<[u8; ENCAP_V4_LEN]>(ctx.data(), ctx.data_end(), 0).ok_or(Reason::Truncated)?;
    // SAFETY: bounds checked by ptr_at_mut, after the head moved; a byte
    // array has no alignment to respect.
    header_v4(unsafe { &mut *out }, e);
    // The inner frame is summed where it now is, behind the header: nothing
    // of the sum stays live across the lookups above (the stack is full).
    let sum = inner_sum(ul, false, ctx, ENCAP_V4_LEN as u32, len as u32)?;
    if sum.is_some() {
        let out = ptr_at_mut::<[u8; ENCAP_V4_LEN]>(ctx.data(), ctx.data_end(), 0)
            .ok_or(Reason::Truncated)?;
        // SAFETY: bounds checked by ptr_at_mut; a byte array has no
        // alignment to respect.
        set_udp_checksum(unsafe { &mut *out }, sum);
    }
    Ok(len + ENCAP_V4_LEN as u64)
}

/// [`put_v4`] over IPv6: 70 bytes, the UDP checksum unless
/// `UNDERLAY_F_UDP6_ZERO_CSUM_TX`.
#[inline(always)]
fn put_v6(
    ctx: &XdpContext,
    ul: &Underlay,
    remote: &[u8; 16],
    o: &Outer,
    len: u64,
) -> Result<u64, Reason> {
    let e = scratch::<EncapV6>().ok_or(Reason::NoUnderlay)?;
    if !encap_v6_into(e, ul, remote, o) {
        return Err(Reason::NoUnderlay);
    }
    // SAFETY: the helper checks the adjustment against the headroom.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -(ENCAP_V6_LEN as i32)) } != 0 {
        return Err(Reason::RedirectFailed);
    }
    let out =
        ptr_at_mut::<[u8; ENCAP_V6_LEN]>(ctx.data(), ctx.data_end(), 0).ok_or(Reason::Truncated)?;
    // SAFETY: as in `put_v4`.
    header_v6(unsafe { &mut *out }, e);
    let sum = inner_sum(ul, true, ctx, ENCAP_V6_LEN as u32, len as u32)?;
    if sum.is_some() {
        let out = ptr_at_mut::<[u8; ENCAP_V6_LEN]>(ctx.data(), ctx.data_end(), 0)
            .ok_or(Reason::Truncated)?;
        // SAFETY: bounds checked by ptr_at_mut; a byte array has no
        // alignment to respect.
        set_udp_checksum_v6(unsafe { &mut *out }, sum);
    }
    Ok(len + ENCAP_V6_LEN as u64)
}
