//! The reference model of the datapath: what each program does with one
//! frame, given the tables, as plain functions.
//!
//! The differential fuzzer (`vtep-user/tests/fuzz.rs`) runs every frame
//! through a program with BPF_PROG_TEST_RUN and through the model here, and
//! compares the verdict, the output bytes, the XDP metadata, the reasons
//! counted, the VNI's counters and the FDB change from learning. The model
//! decides with the functions both engines decide with — the uplink
//! classifier and flow-key reader of [`crate::header`], the learning and
//! switching rules of [`crate::fdb`], [`Reason`] — and writes out only the
//! order of the checks, as `vtep-ebpf`'s `decap.rs`, `encap.rs`, `flood.rs`
//! and `learn.rs` make them.
//!
//! The tables are the caller's ([`Tables`]: plain collections on the host),
//! and so is the output buffer: the model itself allocates nothing and runs
//! anywhere vtep-common does. What it does not model: `bpf_fib_lookup`
//! (the fuzzer keeps `UNDERLAY_F_FIB` off), the helpers failing for want
//! of room (headroom, metadata, the frame's length; a test run leaves
//! plenty), and concurrent CPUs.

use network_types::eth::EthHdr;

use crate::{
    AF_INET6, FdbEntry, FdbKey, FloodList, MAX_FLOOD, MAX_VNI_PORTS, META_DELIVER, META_FLOOD,
    META_NEIGH, Meta, NeighEntry, PortList, Reason, UNDERLAY_F_KERNEL_VXLAN, UNDERLAY_F_UDP_CSUM,
    UNDERLAY_F_UDP6_ZERO_CSUM_TX, Underlay, VNI_F_CHECK_SOURCE, VNI_F_FOLLOWED, VniCounters,
    VniInfo, VtepAddr,
    ecn::{EcnMark, decap_mark},
    fdb::{Forward, Inserted, Learn, Place, forward, granted, learn_step, refresh_due},
    frame::Frame,
    header::{
        ENCAP_V4_LEN, ENCAP_V4_MTU_OVERHEAD, ENCAP_V4_UDP_CSUM, ENCAP_V6_LEN,
        ENCAP_V6_MTU_OVERHEAD, ENCAP_V6_UDP_CSUM, ETH_LEN, IPV4_LEN, IPV6_LEN, Outer, Uplink,
        access_eth, csum_partial, encap_v4, encap_v4_header, encap_v6, encap_v6_header,
        is_multicast, is_valid_source, parse_vxlan, udp_checksum_v4, udp_checksum_v6,
    },
    icmp::{
        Answer, V4_GROW, V4_HDR, V4_REGION, V6_GROW, V6_HDR, V6_REGION, answer, finish_v4,
        finish_v6, write_v4, write_v6,
    },
    reason::REASON_COUNT,
};

/// XDP verdicts and TC actions, as the kernel numbers them.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;
pub const TC_ACT_OK: u32 = 0;
pub const TC_ACT_SHOT: u32 = 2;
/// What `bpf_redirect` and `bpf_redirect_neigh` return.
pub const TC_ACT_REDIRECT: u32 = 7;

/// Longest frame the eBPF checksum sums (19 chunks of 512 bytes).
pub const CSUM_MAX_LEN: usize = 19 * 512;

/// The gateway's tables as a program sees them: the maps of `vtep-ebpf`,
/// and what the kernel knows of the devices.
pub trait Tables {
    /// `UNDERLAY`, when configured (its address family set).
    fn underlay(&self) -> Option<Underlay>;
    fn vni(&self, vni: u32) -> Option<VniInfo>;
    /// The VNI of an untagged access port (`PORTS`).
    fn port_vni(&self, ifindex: u32) -> Option<u32>;
    fn vni_ports(&self, vni: u32) -> Option<&PortList>;
    fn flood_list(&self, vni: u32) -> Option<&FloodList>;
    /// `VNI_GROUP`: the multicast group of `vni`, when it has one.
    fn group(&self, vni: u32) -> Option<VtepAddr>;
    fn neigh(&self, vtep: &VtepAddr) -> Option<NeighEntry>;
    /// Whether `ifindex` is in the `PORT_TX` devmap (an XDP redirect to it
    /// succeeds).
    fn port_tx(&self, ifindex: u32) -> bool;
    /// Whether a clone of an skb of `len` bytes can be sent to `ifindex`:
    /// the device is there, up, and takes a frame that long (a veth takes
    /// its MTU, an Ethernet header and one VLAN tag: `is_skb_forwardable`).
    fn can_clone_to(&self, ifindex: u32, len: usize) -> bool;
    fn fdb(&self, key: &FdbKey) -> Option<FdbEntry>;
    /// Writes an entry that is there (a refresh, a move).
    fn fdb_update(&mut self, key: &FdbKey, entry: FdbEntry);
    /// Inserts an entry that is not there (`BPF_NOEXIST`).
    fn fdb_insert(&mut self, key: &FdbKey, entry: FdbEntry) -> Inserted;
    /// `VNI_LEARNED`: the VNI's count of learned MACs, when it has one.
    fn learned(&self, vni: u32) -> Option<u64>;
    fn set_learned(&mut self, vni: u32, n: u64);
    /// `bpf_ktime_get_coarse_ns`.
    fn now_ns(&self) -> u64;
}

/// Which program a frame goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Program {
    /// `vtep_uplink` (XDP).
    UplinkXdp,
    /// `vtep_access` (XDP) on the access port `ifindex`.
    AccessXdp { ifindex: u32 },
    /// `vtep_uplink_tc`'s dispatch, on this metadata (`None`: the frame
    /// carries none, and is not vtep's).
    UplinkTc(Option<Meta>),
    /// `vtep_access_tc`'s dispatch, on this metadata.
    AccessTc(Option<Meta>),
}

/// The frame a program leaves behind, relative to its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// The input as it came.
    Unchanged,
    /// `len` bytes of the input from `offset` on (decapsulated), with the
    /// inner packet's ECN field rewritten by `ecn` (RFC 6040), when given.
    Inner {
        offset: usize,
        len: usize,
        ecn: Option<EcnMark>,
    },
    /// The first `len` bytes of `hdr` (an outer header: 50 bytes over
    /// IPv4, 70 over IPv6) in front of the whole input (encapsulated).
    Encap { hdr: [u8; ENCAP_V6_LEN], len: usize },
    /// A path-MTU error (`pmtu.rs`): the first `hdr_len` bytes of `hdr`
    /// (Ethernet, IP, ICMP) in front of `quote` bytes of the input's IP
    /// packet.
    Pmtu {
        hdr: [u8; V6_HDR],
        hdr_len: usize,
        quote: usize,
    },
}

impl Output {
    /// The output frame as two slices (a header, then the rest), before
    /// [`Output::ecn_mark`] is applied to it.
    pub fn parts<'a>(&'a self, input: &'a [u8]) -> (&'a [u8], &'a [u8]) {
        match self {
            Output::Unchanged => (&[], input),
            Output::Inner { offset, len, .. } => (&[], &input[*offset..*offset + *len]),
            Output::Encap { hdr, len } => (&hdr[..*len], input),
            Output::Pmtu {
                hdr,
                hdr_len,
                quote,
            } => (&hdr[..*hdr_len], &input[ETH_LEN..ETH_LEN + *quote]),
        }
    }

    /// The ECN rewrite of a decapsulated frame, at its offset in the output
    /// frame ([`crate::ecn::apply_mark`] applies it to the parts, joined).
    pub fn ecn_mark(&self) -> Option<EcnMark> {
        match self {
            Output::Inner {
                offset,
                ecn: Some(m),
                ..
            } => Some(EcnMark {
                offset: m.offset - offset,
                ..*m
            }),
            _ => None,
        }
    }
}

/// What one frame counts, beside its verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Effects {
    /// How many times each reason is counted (`REASONS`).
    pub reasons: [u64; REASON_COUNT as usize],
    /// The VNI whose counters (`VNI_STATS`) change, and by how much.
    pub vni: Option<(u32, VniCounters)>,
    /// The FDB key learning looked at (its entry and the VNI's learned
    /// count may have changed).
    pub learned: Option<FdbKey>,
}

impl Default for Effects {
    fn default() -> Self {
        Effects {
            reasons: [0; REASON_COUNT as usize],
            vni: None,
            learned: None,
        }
    }
}

impl Effects {
    fn count(&mut self, r: Reason) {
        self.reasons[r as usize] += 1;
    }

    fn counters(&mut self, vni: u32) -> &mut VniCounters {
        &mut self.vni.get_or_insert((vni, VniCounters::default())).1
    }
}

/// What a program does with a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The XDP verdict or TC action.
    pub verdict: u32,
    pub output: Output,
    /// The XDP metadata handed to TC.
    pub meta: Option<Meta>,
    pub effects: Effects,
}

/// Runs `frame` through `program` against `t`, which learning changes.
pub fn decide<T: Tables>(t: &mut T, program: Program, frame: &[u8]) -> Decision {
    let mut d = Decision {
        verdict: 0,
        output: Output::Unchanged,
        meta: None,
        effects: Effects::default(),
    };
    match program {
        Program::UplinkXdp => {
            let r = uplink(t, frame, &mut d);
            d.verdict = xdp_verdict(r, &mut d.effects);
        }
        Program::AccessXdp { ifindex } => {
            let r = access(t, frame, ifindex, &mut d);
            d.verdict = xdp_verdict(r, &mut d.effects);
        }
        Program::UplinkTc(m) | Program::AccessTc(m) => {
            let uplink = matches!(program, Program::UplinkTc(_));
            d.verdict = match m {
                None => TC_ACT_OK,
                Some(m) => {
                    let r = dispatch(t, frame, m, uplink, &mut d);
                    tc_verdict(r, &mut d.effects)
                }
            };
        }
    }
    d
}

/// `vtep-ebpf`'s `xdp_verdict`: a reason is counted once, and its outcome
/// gives the verdict.
fn xdp_verdict(r: Result<u32, Reason>, e: &mut Effects) -> u32 {
    match r {
        Ok(v) => v,
        Err(reason) => {
            e.count(reason);
            if reason.is_drop() { XDP_DROP } else { XDP_PASS }
        }
    }
}

/// `vtep-ebpf`'s `tc_verdict`.
fn tc_verdict(r: Result<u32, Reason>, e: &mut Effects) -> u32 {
    match r {
        Ok(v) => v,
        Err(reason) => {
            e.count(reason);
            if reason.is_drop() {
                TC_ACT_SHOT
            } else {
                TC_ACT_OK
            }
        }
    }
}

fn meta(action: u32, vni: u32, ifindex: u32) -> Option<Meta> {
    Some(Meta {
        magic: crate::META_MAGIC,
        action,
        vni,
        ifindex,
    })
}

/// The FDB entry of destination `mac` in `vni`; none for BUM (`fdb_dst`).
fn fdb_dst<T: Tables>(t: &T, vni: u32, mac: &[u8; 6]) -> Option<FdbEntry> {
    if is_multicast(mac) {
        return None;
    }
    t.fdb(&FdbKey::new(vni, *mac))
}

/// `decap.rs`: `try_uplink`.
fn uplink<T: Tables>(t: &mut T, frame: &[u8], d: &mut Decision) -> Result<u32, Reason> {
    let ul = t.underlay().ok_or(Reason::NotVxlan)?;
    let dec = match parse_vxlan(frame, &ul) {
        Uplink::Vxlan(dec) => dec,
        Uplink::Pass => return Err(Reason::NotVxlan),
        Uplink::Drop(r) => return Err(r),
    };
    let (vni, inner, inner_len) = (dec.vni, dec.inner_offset, dec.inner_len);
    let eth = frame.read_at::<EthHdr>(inner).ok_or(Reason::Truncated)?;
    if let Some(group) = dec.group
        && t.group(vni) != Some(group)
    {
        if ul.flags & UNDERLAY_F_KERNEL_VXLAN != 0 {
            return Err(Reason::KernelFallback);
        }
        return Err(Reason::UnknownGroup);
    }
    let Some(info) = t.vni(vni) else {
        if ul.flags & UNDERLAY_F_KERNEL_VXLAN != 0 {
            return Err(Reason::KernelFallback);
        }
        return Err(Reason::UnknownVni);
    };
    let remote = dec.remote;
    if info.flags & VNI_F_CHECK_SOURCE != 0
        && !t.flood_list(vni).is_some_and(|l| l.contains(&remote))
    {
        return Err(Reason::UnknownSourceVtep);
    }
    if !is_valid_source(&eth.src_addr) {
        return Err(Reason::BadSourceMac);
    }
    let from = Place::Vtep(remote);
    // RFC 6040, once the frame is to be decapsulated (after learning, as
    // `decap.rs` and the kernel's `vxlan_rcv` do it).
    let decapsulated = || {
        decap_mark(frame, inner, inner_len, dec.outer_ecn).map(|ecn| Output::Inner {
            offset: inner,
            len: inner_len,
            ecn,
        })
    };
    if info.flags & VNI_F_FOLLOWED != 0 {
        let must_see = info.learns() && kernel_must_see(t, vni, eth.src_addr, &from);
        if is_multicast(&eth.dst_addr) {
            return Err(Reason::KernelFallback);
        }
        if must_see {
            return Err(Reason::BridgeRefresh);
        }
        return match forward(&from, fdb_dst(t, vni, &eth.dst_addr).as_ref()) {
            Ok(Forward::Port(port)) => {
                d.output = decapsulated()?;
                to_port(t, d, vni, port, Dir::Rx, inner_len)
            }
            _ => Err(Reason::KernelFallback),
        };
    }
    learn(t, &mut d.effects, vni, &info, eth.src_addr, from);
    match forward(&from, fdb_dst(t, vni, &eth.dst_addr).as_ref())? {
        Forward::Port(port) => {
            d.output = decapsulated()?;
            to_port(t, d, vni, port, Dir::Rx, inner_len)
        }
        Forward::Flood => {
            d.output = decapsulated()?;
            d.meta = meta(META_FLOOD, vni, 0);
            let c = d.effects.counters(vni);
            c.flood_packets += 1;
            c.rx_packets += 1;
            c.rx_bytes += inner_len as u64;
            Err(Reason::Flooded)
        }
        Forward::Vtep(_) => Err(Reason::SplitHorizon),
    }
}

/// `encap.rs`: `try_access`.
fn access<T: Tables>(
    t: &mut T,
    frame: &[u8],
    ifindex: u32,
    d: &mut Decision,
) -> Result<u32, Reason> {
    let eth = access_eth(frame)?;
    let vni = t.port_vni(ifindex).ok_or(Reason::NoPort)?;
    let info = t.vni(vni).ok_or(Reason::UnknownVni)?;
    if !is_valid_source(&eth.src_addr) {
        return Err(Reason::BadSourceMac);
    }
    let len = frame.len();
    let from = Place::Port(ifindex);
    if info.flags & VNI_F_FOLLOWED != 0 {
        let must_see = kernel_must_see(t, vni, eth.src_addr, &from);
        if is_multicast(&eth.dst_addr) {
            return Err(Reason::KernelFallback);
        }
        if must_see {
            return Err(Reason::BridgeRefresh);
        }
        return match forward(&from, fdb_dst(t, vni, &eth.dst_addr).as_ref()) {
            Ok(Forward::Port(port)) => to_port(t, d, vni, port, Dir::Local, len),
            Ok(Forward::Vtep(remote)) => {
                let ul = t.underlay().ok_or(Reason::KernelFallback)?;
                encap(t, frame, d, &ul, vni, &remote, ifindex)
            }
            Ok(Forward::Flood) | Err(_) => Err(Reason::KernelFallback),
        };
    }
    learn(t, &mut d.effects, vni, &info, eth.src_addr, from);
    match forward(&from, fdb_dst(t, vni, &eth.dst_addr).as_ref())? {
        Forward::Flood => {
            d.meta = meta(META_FLOOD, vni, ifindex);
            d.effects.counters(vni).flood_packets += 1;
            Err(Reason::Flooded)
        }
        Forward::Port(port) => to_port(t, d, vni, port, Dir::Local, len),
        Forward::Vtep(remote) => {
            let ul = t.underlay().ok_or(Reason::NoUnderlay)?;
            encap(t, frame, d, &ul, vni, &remote, ifindex)
        }
    }
}

#[derive(Clone, Copy)]
enum Dir {
    Rx,
    Tx,
    Local,
}

fn add(c: &mut VniCounters, dir: Dir, bytes: usize) {
    let (p, b) = match dir {
        Dir::Rx => (&mut c.rx_packets, &mut c.rx_bytes),
        Dir::Tx => (&mut c.tx_packets, &mut c.tx_bytes),
        Dir::Local => (&mut c.local_packets, &mut c.local_bytes),
    };
    *p += 1;
    *b += bytes as u64;
}

/// `flood.rs`: `to_port`, the XDP side of local delivery.
fn to_port<T: Tables>(
    t: &T,
    d: &mut Decision,
    vni: u32,
    port: u32,
    dir: Dir,
    len: usize,
) -> Result<u32, Reason> {
    add(d.effects.counters(vni), dir, len);
    if t.port_tx(port) {
        return Ok(XDP_REDIRECT);
    }
    d.meta = meta(META_DELIVER, vni, port);
    Err(Reason::SkbDelivery)
}

/// The next hop to `remote` (either family) for an outer packet of
/// `ip_len` bytes, without the FIB (`encap.rs`: `next_hop`).
fn next_hop<T: Tables>(
    t: &T,
    ul: &Underlay,
    remote: &VtepAddr,
    ip_len: u16,
) -> Result<Option<NeighEntry>, Reason> {
    if ip_len > ul.mtu {
        return Err(Reason::MtuExceeded);
    }
    Ok(t.neigh(remote))
}

/// `encap.rs`: `outer_ip_len`, the outer IP packet's length.
fn outer_ip_len(v6: bool, inner_len: u16) -> u16 {
    let overhead = if v6 { ENCAP_V6_LEN } else { ENCAP_V4_LEN };
    ((overhead - ETH_LEN) as u16).wrapping_add(inner_len)
}

/// `encap.rs`: `sends_udp_checksum`, toward a remote of family `v6`.
fn sends_udp_checksum(ul: &Underlay, v6: bool) -> bool {
    if v6 {
        ul.flags & UNDERLAY_F_UDP6_ZERO_CSUM_TX == 0
    } else {
        ul.flags & UNDERLAY_F_UDP_CSUM != 0
    }
}

/// `encap.rs`: `inner_sum`, the inner frame's partial sum when the outer
/// header toward a remote of family `v6` carries a UDP checksum.
fn inner_sum(ul: &Underlay, v6: bool, inner: &[u8]) -> Result<Option<u32>, Reason> {
    if !sends_udp_checksum(ul, v6) {
        return Ok(None);
    }
    if inner.len() > CSUM_MAX_LEN {
        return Err(Reason::MtuExceeded);
    }
    Ok(Some(csum_partial(inner, 0)))
}

/// The outer header toward `remote` from `o` (its MACs the copy's), with
/// the UDP checksum when `sum` (the inner frame's partial sum) is given:
/// `encap.rs`'s `put_v4` / `put_v6` and `flood.rs`'s `write_v4` /
/// `write_v6`. `None` when the underlay has no address of `remote`'s family.
fn outer_header(ul: &Underlay, remote: &VtepAddr, o: &Outer, sum: Option<u32>) -> Option<Output> {
    let mut hdr = [0; ENCAP_V6_LEN];
    let len = if remote.family == AF_INET6 {
        let mut h = encap_v6_header(&encap_v6(ul, &remote.addr, o)?);
        if let Some(sum) = sum {
            let c = udp_checksum_v6(&h, sum);
            h[ENCAP_V6_UDP_CSUM..ENCAP_V6_UDP_CSUM + 2].copy_from_slice(&c);
        }
        hdr.copy_from_slice(&h);
        ENCAP_V6_LEN
    } else {
        let mut h = encap_v4_header(&encap_v4(ul, remote.as_v4()?, o)?);
        if let Some(sum) = sum {
            let c = udp_checksum_v4(&h, sum);
            h[ENCAP_V4_UDP_CSUM..ENCAP_V4_UDP_CSUM + 2].copy_from_slice(&c);
        }
        hdr[..ENCAP_V4_LEN].copy_from_slice(&h);
        ENCAP_V4_LEN
    };
    Some(Output::Encap { hdr, len })
}

/// `encap.rs`: `encap`, of a frame from access port `port`.
fn encap<T: Tables>(
    t: &T,
    frame: &[u8],
    d: &mut Decision,
    ul: &Underlay,
    vni: u32,
    remote: &VtepAddr,
    port: u32,
) -> Result<u32, Reason> {
    if ul.local_for(remote).is_none() {
        return Err(Reason::NoUnderlay);
    }
    let v6 = remote.family == AF_INET6;
    let inner_len = frame.len() as u16;
    let mut o = Outer::of(frame, vni, inner_len).ok_or(Reason::Truncated)?;
    let ip_len = outer_ip_len(v6, inner_len);
    let hop = match next_hop(t, ul, remote, ip_len) {
        Err(Reason::MtuExceeded) => {
            let overhead = if v6 {
                ENCAP_V6_MTU_OVERHEAD
            } else {
                ENCAP_V4_MTU_OVERHEAD
            };
            return too_big(t, frame, d, ul, overhead, vni, port);
        }
        hop => hop?,
    };
    let mut ifindex = ul.uplink_ifindex;
    if let Some(h) = hop {
        o.dst_mac = h.dmac;
        o.src_mac = h.smac;
        ifindex = h.ifindex;
    }
    // The header is in the frame before the sum is taken (a frame too long
    // to sum keeps it, without a checksum).
    d.output = outer_header(ul, remote, &o, None).ok_or(Reason::NoUnderlay)?;
    let sum = inner_sum(ul, v6, frame)?;
    d.output = outer_header(ul, remote, &o, sum).ok_or(Reason::NoUnderlay)?;
    let outer_len = frame.len() + if v6 { ENCAP_V6_LEN } else { ENCAP_V4_LEN };
    add(d.effects.counters(vni), Dir::Tx, outer_len);
    if hop.is_none() {
        d.meta = meta(META_NEIGH, vni, 0);
        return Err(Reason::NoNeighbour);
    }
    if t.port_tx(ifindex) {
        return Ok(XDP_REDIRECT);
    }
    d.meta = meta(META_NEIGH, vni, 0);
    Err(Reason::SkbDelivery)
}

/// `pmtu.rs`: `too_big`, the path-MTU error for a frame too large for the
/// underlay (whose encapsulation adds `overhead` bytes to an inner IP
/// packet), back out of access port `port` (redirected, or the skb path
/// for a port not in `PORT_TX`).
fn too_big<T: Tables>(
    t: &T,
    frame: &[u8],
    d: &mut Decision,
    ul: &Underlay,
    overhead: usize,
    vni: u32,
    port: u32,
) -> Result<u32, Reason> {
    let mtu = u32::from(ul.mtu).saturating_sub(overhead as u32);
    // Only a packet the MTU refuses (encap also refuses one a route of
    // lower MTU refuses, which the FIB, not modelled, says).
    if frame.len().saturating_sub(ETH_LEN) <= mtu as usize {
        return Err(Reason::MtuExceeded);
    }
    let a = answer(frame, mtu);
    let mut hdr = [0; V6_HDR];
    let (hdr_len, quote) = match a {
        Answer::None => return Err(Reason::MtuExceeded),
        Answer::V4 { quote } => {
            let mut region = [0; V4_REGION];
            region[V4_GROW..].copy_from_slice(&frame[..ETH_LEN + IPV4_LEN]);
            write_v4(&mut region, mtu, quote);
            let mut h = [0; V4_HDR];
            h.copy_from_slice(&region[..V4_HDR]);
            let quote = usize::from(quote);
            finish_v4(&mut h, csum_partial(&frame[ETH_LEN..ETH_LEN + quote], 0));
            hdr[..V4_HDR].copy_from_slice(&h);
            (V4_HDR, quote)
        }
        Answer::V6 { quote } => {
            let mut region = [0; V6_REGION];
            region[V6_GROW..].copy_from_slice(&frame[..ETH_LEN + IPV6_LEN]);
            write_v6(&mut region, mtu, quote);
            hdr.copy_from_slice(&region[..V6_HDR]);
            let quote = usize::from(quote);
            finish_v6(&mut hdr, csum_partial(&frame[ETH_LEN..ETH_LEN + quote], 0));
            (V6_HDR, quote)
        }
    };
    d.output = Output::Pmtu {
        hdr,
        hdr_len,
        quote,
    };
    d.effects.count(Reason::MtuExceeded);
    d.effects.count(Reason::PmtuSent);
    if t.port_tx(port) {
        return Ok(XDP_REDIRECT);
    }
    d.meta = meta(META_DELIVER, vni, port);
    Err(Reason::SkbDelivery)
}

/// `learn.rs`: `learn`, by [`learn_step`] and [`granted`].
fn learn<T: Tables>(
    t: &mut T,
    e: &mut Effects,
    vni: u32,
    info: &VniInfo,
    mac: [u8; 6],
    place: Place,
) {
    if !info.learns() {
        return;
    }
    let key = FdbKey::new(vni, mac);
    e.learned = Some(key);
    let existing = t.fdb(&key);
    let now = t.now_ns();
    match learn_step(existing.as_ref(), &place, || now) {
        Learn::Keep => {}
        Learn::Refresh { now_ns } => {
            if let Some(mut entry) = existing {
                entry.last_seen_ns = now_ns;
                t.fdb_update(&key, entry);
            }
        }
        Learn::Move { now_ns } => t.fdb_update(&key, place.learned(now_ns)),
        Learn::Reserve => {
            let Some(before) = t.learned(vni) else {
                return;
            };
            if !granted(before, info.max_addresses) {
                e.count(Reason::LearningLimit);
                return;
            }
            t.set_learned(vni, before + 1);
            let inserted = t.fdb_insert(&key, place.learned(now));
            if !inserted.keeps_slot() {
                t.set_learned(vni, before);
            }
            if let Some(r) = inserted.reason() {
                e.count(r);
            }
        }
    }
}

/// `learn.rs`: `kernel_must_see`.
fn kernel_must_see<T: Tables>(t: &mut T, vni: u32, mac: [u8; 6], place: &Place) -> bool {
    let key = FdbKey::new(vni, mac);
    let Some(mut entry) = t.fdb(&key) else {
        return true;
    };
    if !place.holds(&entry) {
        return true;
    }
    let now = t.now_ns();
    if refresh_due(entry.last_seen_ns, now) {
        entry.last_seen_ns = now;
        t.fdb_update(&key, entry);
        return true;
    }
    false
}

/// `flood.rs`: `dispatch_uplink` and `dispatch_access`.
fn dispatch<T: Tables>(
    t: &T,
    frame: &[u8],
    m: Meta,
    uplink: bool,
    d: &mut Decision,
) -> Result<u32, Reason> {
    match m.action {
        META_FLOOD => {
            // A decapsulated frame was counted once, as such, by XDP.
            let (except, dir) = if uplink {
                (0, None)
            } else {
                (m.ifindex, Some(Dir::Local))
            };
            flood_local(t, frame, m.vni, except, dir, &mut d.effects);
            if !uplink {
                flood_remote(t, frame, m.vni, d);
            }
            Ok(TC_ACT_SHOT)
        }
        META_NEIGH if !uplink => {
            t.underlay().ok_or(Reason::NoUnderlay)?;
            Ok(TC_ACT_REDIRECT)
        }
        META_DELIVER => Ok(TC_ACT_REDIRECT),
        _ => Err(Reason::UnknownMeta),
    }
}

/// `flood.rs`: `flood_local`.
fn flood_local<T: Tables>(
    t: &T,
    frame: &[u8],
    vni: u32,
    except: u32,
    dir: Option<Dir>,
    e: &mut Effects,
) {
    let Some(ports) = t.vni_ports(vni) else {
        return;
    };
    let n = (ports.len as usize).min(MAX_VNI_PORTS);
    for &ifindex in &ports.ifindex[..n] {
        if ifindex == except {
            continue;
        }
        if !t.can_clone_to(ifindex, frame.len()) {
            e.count(Reason::FloodFailed);
        } else if let Some(dir) = dir {
            add(e.counters(vni), dir, frame.len());
        }
    }
}

/// `flood.rs`: `flood_remote`, `copies_of_pass` and the `bpf_loop` body
/// `flood_copy`. The frame grows a 50-byte outer header, zeroed; the IPv4
/// pass writes each IPv4 copy's there (flood-list members, then the group);
/// when there are IPv6 copies, the frame grows 20 zeroed bytes more and the
/// IPv6 pass writes theirs. The frame keeps the last header written.
fn flood_remote<T: Tables>(t: &T, frame: &[u8], vni: u32, d: &mut Decision) {
    let list = t.flood_list(vni);
    let members = list.map_or(0, |l| (l.len as usize).min(MAX_FLOOD));
    let group = t.group(vni).filter(|g| g.is_multicast());
    if members == 0 && group.is_none() {
        return;
    }
    let Some(ul) = t.underlay() else {
        d.effects.count(Reason::NoUnderlay);
        return;
    };
    let sum = if sends_udp_checksum(&ul, false)
        || (ul.local6.family == AF_INET6 && sends_udp_checksum(&ul, true))
    {
        if frame.len() > CSUM_MAX_LEN {
            d.effects.count(Reason::MtuExceeded);
            return;
        }
        csum_partial(frame, 0)
    } else {
        0
    };
    let inner_len = frame.len() as u16;
    let o = Outer::of(frame, vni, inner_len).unwrap_or(Outer {
        vni,
        inner_len,
        ..Outer::default()
    });
    let mut c = Copies {
        ul,
        o,
        sum,
        frame_len: frame.len(),
        hdr: [0; ENCAP_V6_LEN],
        hdr_len: ENCAP_V4_LEN,
        v6: false,
        v6_copies: false,
    };
    let vteps = list.map_or(&[][..], |l| &l.vteps[..members]);
    c.pass(t, vteps, group.as_ref(), d);
    if c.v6_copies {
        // The 50-byte header moves 20 bytes on, behind 20 zeroed ones.
        c.hdr
            .copy_within(..ENCAP_V4_LEN, ENCAP_V6_LEN - ENCAP_V4_LEN);
        c.hdr[..ENCAP_V6_LEN - ENCAP_V4_LEN].fill(0);
        c.hdr_len = ENCAP_V6_LEN;
        c.v6 = true;
        c.pass(t, vteps, group.as_ref(), d);
    }
    d.output = Output::Encap {
        hdr: c.hdr,
        len: c.hdr_len,
    };
}

/// What the flood copies share (`flood.rs`: `Copies`), and the header the
/// frame holds.
struct Copies {
    ul: Underlay,
    o: Outer,
    sum: u32,
    frame_len: usize,
    hdr: [u8; ENCAP_V6_LEN],
    hdr_len: usize,
    v6: bool,
    v6_copies: bool,
}

impl Copies {
    /// `copies_of_pass`: the members of this pass's family, then the group.
    fn pass<T: Tables>(
        &mut self,
        t: &T,
        vteps: &[VtepAddr],
        group: Option<&VtepAddr>,
        d: &mut Decision,
    ) {
        for remote in vteps {
            let v6 = remote.family == AF_INET6;
            if v6 != self.v6 {
                self.v6_copies |= v6;
                continue;
            }
            self.copy_to(t, remote, false, d);
        }
        if let Some(g) = group {
            let v6 = g.family == AF_INET6;
            if v6 == self.v6 {
                self.copy_to(t, g, true, d);
            } else if v6 {
                self.v6_copies = true;
            }
        }
    }

    /// `copy_to`: one copy, to `remote` (the group when `group`).
    fn copy_to<T: Tables>(&mut self, t: &T, remote: &VtepAddr, group: bool, d: &mut Decision) {
        let ul = self.ul;
        if ul.local_for(remote).is_none() {
            d.effects.count(Reason::NoUnderlay);
            return;
        }
        let ip_len = outer_ip_len(self.v6, self.o.inner_len);
        let mut ifindex = ul.uplink_ifindex;
        let mut handoff = false;
        if group {
            if ip_len > ul.mtu {
                d.effects.count(Reason::FloodFailed);
                return;
            }
            let Some(dmac) = remote.group_mac() else {
                return;
            };
            self.o.dst_mac = dmac;
            self.o.src_mac = ul.uplink_mac;
        } else {
            match next_hop(t, &ul, remote, ip_len) {
                Ok(Some(h)) => {
                    self.o.dst_mac = h.dmac;
                    self.o.src_mac = h.smac;
                    ifindex = h.ifindex;
                }
                Ok(None) => {
                    self.o.dst_mac = [0; 6];
                    self.o.src_mac = [0; 6];
                    handoff = true;
                }
                Err(_) => {
                    d.effects.count(Reason::FloodFailed);
                    return;
                }
            }
        }
        // `write_copy`: the pass's family decides the header.
        let v6 = self.v6;
        let sum = Some(self.sum).filter(|_| sends_udp_checksum(&ul, v6));
        let written = if (remote.family == AF_INET6) == v6 {
            outer_header(&ul, remote, &self.o, sum)
        } else {
            None
        };
        let Some(Output::Encap { hdr, len }) = written else {
            d.effects.count(Reason::FloodFailed);
            return;
        };
        self.hdr[..len].copy_from_slice(&hdr[..len]);
        let outer_len = self.frame_len + len;
        // `handoff_to_uplink` clones into the uplink's ingress, which
        // checks no MTU (the kernel forwards it with `check_mtu` false); a
        // copy with a next hop goes out of its device.
        let fits = if handoff {
            t.can_clone_to(ul.uplink_ifindex, 0)
        } else {
            t.can_clone_to(ifindex, outer_len)
        };
        if !fits {
            d.effects.count(Reason::FloodFailed);
            return;
        }
        if handoff {
            d.effects.count(Reason::FloodNoNeighbour);
        }
        add(d.effects.counters(self.o.vni), Dir::Tx, outer_len);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::{collections::BTreeMap, vec::Vec};

    use super::*;
    use crate::{FDB_F_LEARNED, FDB_F_STATIC, VNI_F_LEARNING, header::ETH_P_IP};

    const LOCAL: [u8; 4] = [198, 18, 0, 1];
    const REMOTE: [u8; 4] = [198, 18, 0, 2];
    const PORT: u32 = 1;
    const VNI: u32 = 100;

    #[derive(Default)]
    struct Host {
        fdb: BTreeMap<FdbKey, FdbEntry>,
        learned: u64,
        max: u32,
    }

    impl Tables for Host {
        fn underlay(&self) -> Option<Underlay> {
            Some(Underlay {
                local: VtepAddr::v4(LOCAL),
                uplink_ifindex: PORT,
                port: 4789,
                srcport_min: 49152,
                srcport_max: 65535,
                ttl: 64,
                mtu: 1500,
                ..Underlay::default()
            })
        }
        fn vni(&self, vni: u32) -> Option<VniInfo> {
            (vni == VNI).then_some(VniInfo {
                flags: VNI_F_LEARNING,
                max_addresses: self.max,
                ..VniInfo::default()
            })
        }
        fn port_vni(&self, ifindex: u32) -> Option<u32> {
            (ifindex == PORT).then_some(VNI)
        }
        fn vni_ports(&self, _: u32) -> Option<&PortList> {
            None
        }
        fn flood_list(&self, _: u32) -> Option<&FloodList> {
            None
        }
        fn group(&self, _: u32) -> Option<VtepAddr> {
            None
        }
        fn neigh(&self, _: &VtepAddr) -> Option<NeighEntry> {
            Some(NeighEntry {
                dmac: [2, 0, 0, 0, 0, 2],
                smac: [2, 0, 0, 0, 0, 1],
                ifindex: PORT,
            })
        }
        fn port_tx(&self, _: u32) -> bool {
            true
        }
        fn can_clone_to(&self, _: u32, _: usize) -> bool {
            true
        }
        fn fdb(&self, key: &FdbKey) -> Option<FdbEntry> {
            self.fdb.get(key).copied()
        }
        fn fdb_update(&mut self, key: &FdbKey, entry: FdbEntry) {
            self.fdb.insert(*key, entry);
        }
        fn fdb_insert(&mut self, key: &FdbKey, entry: FdbEntry) -> Inserted {
            self.fdb.insert(*key, entry);
            Inserted::Written
        }
        fn learned(&self, _: u32) -> Option<u64> {
            Some(self.learned)
        }
        fn set_learned(&mut self, _: u32, n: u64) {
            self.learned = n;
        }
        fn now_ns(&self) -> u64 {
            5_000_000_000
        }
    }

    fn tenant(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&ETH_P_IP.to_be_bytes());
        f.extend_from_slice(&[0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 2]);
        f
    }

    const WORKLOAD: [u8; 6] = [2, 0, 0, 0, 0xa, 1];
    const FAR: [u8; 6] = [2, 0, 0, 0, 0xb, 1];

    /// A DF IPv4 frame of `ip_len` IP bytes from WORKLOAD to FAR.
    fn big_tenant(ip_len: usize) -> Vec<u8> {
        let mut f = tenant(FAR, WORKLOAD);
        f[16..18].copy_from_slice(&(ip_len as u16).to_be_bytes());
        f[20] = 0x40; // DF
        f.resize(ETH_LEN + ip_len, 0x5a);
        f
    }

    #[test]
    fn an_oversize_frame_gets_its_path_mtu_error() {
        let mut t = Host::default();
        t.fdb.insert(
            FdbKey::new(VNI, FAR),
            FdbEntry::remote(VtepAddr::v4(REMOTE), FDB_F_STATIC, 0),
        );
        // 1450 IP bytes fit a 1500-byte underlay; 1451 do not.
        let fits = decide(
            &mut t,
            Program::AccessXdp { ifindex: PORT },
            &big_tenant(1450),
        );
        assert!(
            matches!(fits.output, Output::Encap { .. }),
            "{:?}",
            fits.output
        );
        let frame = big_tenant(1451);
        let d = decide(&mut t, Program::AccessXdp { ifindex: PORT }, &frame);
        assert_eq!(d.verdict, XDP_REDIRECT, "back out of its port");
        let (head, body) = d.output.parts(&frame);
        let mut want = frame.clone();
        let n = crate::icmp::build(&mut want, frame.len(), 1450).expect("an error");
        want.truncate(n);
        assert_eq!([head, body].concat(), want);
        assert_eq!(d.effects.reasons[Reason::MtuExceeded as usize], 1);
        assert_eq!(d.effects.reasons[Reason::PmtuSent as usize], 1);
        assert_eq!(d.effects.vni.map(|(_, c)| c.tx_packets), None, "not sent");
        // Without DF: dropped.
        let mut no_df = frame.clone();
        no_df[20] = 0;
        let d = decide(&mut t, Program::AccessXdp { ifindex: PORT }, &no_df);
        assert_eq!((d.verdict, d.output), (XDP_DROP, Output::Unchanged));
    }

    #[test]
    fn encap_learns_and_builds_the_outer_header() {
        let mut t = Host::default();
        t.fdb.insert(
            FdbKey::new(VNI, FAR),
            FdbEntry::remote(VtepAddr::v4(REMOTE), FDB_F_STATIC, 0),
        );
        let frame = tenant(FAR, WORKLOAD);
        let d = decide(&mut t, Program::AccessXdp { ifindex: PORT }, &frame);
        assert_eq!(d.verdict, XDP_REDIRECT);
        let Output::Encap { hdr, len } = d.output else {
            panic!("not encapsulated: {:?}", d.output)
        };
        // The outer header is the one the uplink classifier takes apart.
        let out = [&hdr[..len], &frame].concat();
        let mut back = Host::default();
        let again = decide(&mut back, Program::UplinkXdp, &out);
        assert_eq!(again.effects.reasons[Reason::UnknownVni as usize], 0);
        assert_eq!(
            d.effects.vni.map(|(v, c)| (v, c.tx_packets)),
            Some((VNI, 1))
        );
        assert_eq!(
            t.fdb(&FdbKey::new(VNI, WORKLOAD)),
            Some(FdbEntry::local(PORT, FDB_F_LEARNED, t.now_ns()))
        );
        assert_eq!(t.learned, 1);
    }

    #[test]
    fn a_new_mac_past_maxaddress_is_not_learned_but_flooded() {
        let mut t = Host {
            max: 1,
            learned: 1,
            ..Host::default()
        };
        let frame = tenant([0xff; 6], WORKLOAD);
        let d = decide(&mut t, Program::AccessXdp { ifindex: PORT }, &frame);
        assert_eq!(d.verdict, XDP_PASS);
        assert_eq!(d.meta.map(|m| m.action), Some(META_FLOOD));
        assert_eq!(d.effects.reasons[Reason::LearningLimit as usize], 1);
        assert_eq!(d.effects.reasons[Reason::Flooded as usize], 1);
        assert_eq!(t.fdb(&FdbKey::new(VNI, WORKLOAD)), None);
    }

    #[test]
    fn tagged_and_short_frames_are_refused_at_the_access_port() {
        let mut t = Host::default();
        let mut tagged = tenant(FAR, WORKLOAD);
        tagged[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        let d = decide(&mut t, Program::AccessXdp { ifindex: PORT }, &tagged);
        assert_eq!(
            (d.verdict, d.effects.reasons[Reason::UnknownVlan as usize]),
            (XDP_DROP, 1)
        );
        let d = decide(&mut t, Program::AccessXdp { ifindex: PORT }, &tagged[..13]);
        assert_eq!(
            (d.verdict, d.effects.reasons[Reason::Truncated as usize]),
            (XDP_DROP, 1)
        );
    }

    /// An outer CE over an ECT(0) inner packet: decapsulated with the mark
    /// at the inner IP header of the output frame; over Not-ECT: dropped
    /// after learning.
    #[test]
    fn decap_marks_ce_and_drops_it_over_not_ect() {
        let mut t = Host::default();
        t.fdb.insert(
            FdbKey::new(VNI, WORKLOAD),
            FdbEntry::local(PORT, FDB_F_STATIC, 0),
        );
        let outer = |inner_ecn: u8| {
            let mut inner = tenant(WORKLOAD, FAR);
            inner[15] = inner_ecn;
            let h = crate::header::encap_v4_header(&crate::header::EncapV4 {
                src_ip: REMOTE,
                dst_ip: LOCAL,
                ttl: 64,
                dst_port: 4789,
                vni: VNI,
                inner_len: inner.len() as u16,
                ..crate::header::EncapV4::default()
            });
            let mut f = [&h[..], &inner].concat();
            f[15] = crate::ecn::CE;
            f
        };
        let frame = outer(crate::ecn::ECT_0);
        let d = decide(&mut t, Program::UplinkXdp, &frame);
        assert_eq!(d.verdict, XDP_REDIRECT);
        let mark = d.output.ecn_mark().expect("an ECN mark");
        assert_eq!(
            (mark.offset, mark.v6, mark.ecn),
            (14, false, crate::ecn::CE)
        );
        let (head, body) = d.output.parts(&frame);
        let mut out = [head, body].concat();
        assert!(crate::ecn::apply_mark(&mut out, &mark));
        assert_eq!(out[15], crate::ecn::CE);

        let mut t = Host::default();
        let d = decide(&mut t, Program::UplinkXdp, &outer(crate::ecn::NOT_ECT));
        assert_eq!(d.verdict, XDP_DROP);
        assert_eq!(d.effects.reasons[Reason::EcnError as usize], 1);
        assert_eq!(d.output, Output::Unchanged);
        assert_eq!(t.learned, 1, "learned before the ECN check, as vxlan_rcv");
    }

    #[test]
    fn tc_without_metadata_is_not_vteps() {
        let mut t = Host::default();
        let d = decide(&mut t, Program::AccessTc(None), &tenant(FAR, WORKLOAD));
        assert_eq!((d.verdict, d.output), (TC_ACT_OK, Output::Unchanged));
        assert_eq!(d.effects, Effects::default());
    }
}
