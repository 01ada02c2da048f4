//! The AF_XDP engine's packet loop: one [`Worker`] per receive queue.
//!
//! Worker `q` has a UMEM of its own, shared by its sockets — queue `q` of
//! every interface that has one — so a frame received on one socket is
//! sent from another by moving its descriptor: decap strips the outer
//! headers in place, encap writes them in front in place, and only flooding
//! copies (into free frames of the same UMEM). An interface with fewer
//! queues (a veth access port has one, a NIC uplink many) has no socket in
//! the workers of the queues it lacks; they send to it through a packet
//! socket (`AF_PACKET`), a copy per frame. Rings are worked in batches; the
//! free-frame pool and every scratch buffer are allocated once. The
//! decisions are the XDP engine's, made with the same pure functions of
//! `vtep_common::header` and `vtep_common::ecn`: the uplink classifier of
//! both families (`parse_vxlan`), the outer header builders (`encap_v4`,
//! `encap_v6`), RFC 6040 both ways.
//!
//! The underlay may be IPv4, IPv6 or both: a remote VTEP is reached from
//! the local address of its family, a flood list may hold both, and a VNI
//! with a multicast group gets one flood copy to it (group MAC, TTL 1
//! unless `ttl` says otherwise). A packet whose next hop is not resolved
//! yet — unicast or a flood copy — goes to the kernel through a raw socket
//! of its family, which resolves the neighbour and queues the packet
//! meanwhile (`no-neighbour`, `flood-no-neighbour`), as the XDP engine's
//! `bpf_redirect_neigh` does.

use std::{
    io::Write as _,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use vtep_common::{
    AF_INET6, NeighEntry, Reason, UNDERLAY_F_UDP_CSUM, UNDERLAY_F_UDP6_ZERO_CSUM_TX, Underlay,
    VNI_F_CHECK_SOURCE, VtepAddr, ecn,
    fdb::{Forward, Place, forward},
    header::{
        Decap, ENCAP_V4_LEN, ENCAP_V4_MTU_OVERHEAD, ENCAP_V4_UDP_CSUM, ENCAP_V6_LEN,
        ENCAP_V6_MTU_OVERHEAD, ENCAP_V6_UDP_CSUM, ETH_LEN, IPV4_LEN, IPV6_LEN, Outer, UDP_LEN,
        Uplink, VXLAN_LEN, access_eth, csum_partial, encap_v4, encap_v4_header, encap_v6,
        encap_v6_header, flow_hash, flow_keys, is_valid_source, parse_vxlan, udp_checksum_v4,
        udp_checksum_v6,
    },
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

use super::{
    pmtu,
    view::{HashMap, Snapshot, View},
};
use crate::system::{
    clock,
    xsk::{self, BATCH},
};

/// What a socket's interface is to the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockRole {
    Uplink,
    AccessPort,
}

/// One AF_XDP socket: an interface's queue.
pub struct Sock {
    pub ifindex: u32,
    pub role: SockRole,
    pub rx: RxQueue,
    pub tx: TxQueue,
    pub fq: FillQueue,
    pub cq: CompQueue,
    /// Frames to send from this socket at the end of the round.
    pending: Vec<FrameDesc>,
    /// Frames in the TX ring, not completed yet.
    in_flight: usize,
}

impl Sock {
    pub fn new(
        ifindex: u32,
        role: SockRole,
        rx: RxQueue,
        tx: TxQueue,
        fq: FillQueue,
        cq: CompQueue,
    ) -> Self {
        Sock {
            ifindex,
            role,
            rx,
            tx,
            fq,
            cq,
            pending: Vec::with_capacity(4 * BATCH),
            in_flight: 0,
        }
    }
}

/// Where a frame leaves for an interface.
#[derive(Clone, Copy, Debug)]
enum Out {
    /// From the AF_XDP socket `socks[usize]` (a descriptor move).
    Xsk(usize),
    /// Through the packet socket `packet[usize]` (a copy).
    Packet(usize),
}

/// One queue's packet loop and everything it owns.
pub struct Worker {
    /// The receive queue this worker serves.
    pub queue: u32,
    pub umem: Umem,
    pub socks: Vec<Sock>,
    /// ifindex → how frames leave for it.
    tx_sock: HashMap<u32, Out>,
    /// Packet sockets, each bound to an interface this worker has no
    /// queue of.
    packet: Vec<OwnedFd>,
    free: Vec<FrameDesc>,
    pub view: View,
    /// Raw IPv4 and IPv6 sockets: hand encapsulated packets with no
    /// resolved next hop to the kernel, which resolves it (as
    /// `bpf_redirect_neigh` does).
    raw4: Option<OwnedFd>,
    raw6: Option<OwnedFd>,
    busy_poll: bool,
    /// CLOCK_MONOTONIC at the start of the round (learning timestamps).
    now_ns: u64,
    /// Scratch lists for flooding (no allocation per packet).
    flood_ports: Vec<u32>,
    flood_vteps: Vec<VtepAddr>,
}

/// How a processed frame leaves.
enum Fate {
    /// Sent out (see [`Out`]).
    Send(Out),
    /// Back to the free pool.
    Free,
}

impl Worker {
    /// The worker of `queue`, with its sockets; `ifaces` are all the
    /// engine's interfaces, those without a socket here get a packet socket.
    pub fn new(
        queue: u32,
        umem: Umem,
        socks: Vec<Sock>,
        free: Vec<FrameDesc>,
        view: View,
        busy_poll: bool,
        ifaces: &[u32],
    ) -> std::io::Result<Self> {
        let mut tx_sock = HashMap::default();
        for (i, s) in socks.iter().enumerate() {
            tx_sock.entry(s.ifindex).or_insert(Out::Xsk(i));
        }
        let mut packet = Vec::new();
        for &ifindex in ifaces {
            if let std::collections::hash_map::Entry::Vacant(e) = tx_sock.entry(ifindex) {
                e.insert(Out::Packet(packet.len()));
                packet.push(packet_socket(ifindex)?);
                log::info!(
                    "AF_XDP engine, queue {queue}: if{ifindex} has no queue {queue}; \
                     frames for it go through a packet socket"
                );
            }
        }
        let raw4 = raw_socket(libc::AF_INET);
        let raw6 = raw_socket(libc::AF_INET6);
        Ok(Worker {
            queue,
            umem,
            socks,
            tx_sock,
            packet,
            free,
            view,
            raw4,
            raw6,
            busy_poll,
            now_ns: 0,
            flood_ports: Vec::with_capacity(vtep_common::MAX_VNI_PORTS),
            flood_vteps: Vec::with_capacity(vtep_common::MAX_FLOOD),
        })
    }

    /// Sends `desc` out as `out` says; a frame sent through a packet socket
    /// goes back to the pool at once.
    fn emit(&mut self, out: Out, desc: FrameDesc) {
        match out {
            Out::Xsk(s) => self.socks[s].pending.push(desc),
            Out::Packet(p) => {
                // SAFETY: a frame we own.
                let data = unsafe { self.umem.data(&desc) };
                let bytes = data.contents();
                // SAFETY: a bound packet socket and a valid buffer.
                let rc = unsafe {
                    libc::send(
                        self.packet[p].as_raw_fd(),
                        bytes.as_ptr().cast(),
                        bytes.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if rc < 0 {
                    self.view.count(Reason::RedirectFailed);
                }
                self.free.push(desc);
            }
        }
    }

    /// Runs until `stop` is set.
    pub fn run(&mut self, stop: &AtomicBool) {
        let Some(&placeholder) = self.free.first() else {
            log::error!("afxdp: no frames in the UMEM");
            return;
        };
        let mut batch = vec![placeholder; BATCH];
        for i in 0..self.socks.len() {
            self.refill(i);
        }
        let (mut rounds, mut idles, mut received) = (0u64, 0u64, 0u64);
        while !stop.load(Ordering::Relaxed) {
            rounds += 1;
            self.now_ns = clock::monotonic_ns();
            let mut work = 0;
            for i in 0..self.socks.len() {
                // SAFETY: the descriptors come from this UMEM's rings.
                let n = unsafe { self.socks[i].rx.consume(&mut batch) };
                for desc in &batch[..n] {
                    let mut desc = *desc;
                    match self.process(i, &mut desc) {
                        Fate::Send(out) => self.emit(out, desc),
                        Fate::Free => self.free.push(desc),
                    }
                }
                work += n;
                self.complete(i, &mut batch);
                self.refill(i);
            }
            for i in 0..self.socks.len() {
                self.send(i, &mut batch);
            }
            self.view.tick();
            received += work as u64;
            if work == 0 && self.socks.iter().all(|s| s.in_flight == 0) {
                idles += 1;
                self.idle();
            }
        }
        log::info!(
            "AF_XDP engine, queue {}: {received} frames in {rounds} rounds, {idles} idle waits",
            self.queue
        );
        self.view.flush();
        self.view.release();
        for s in &self.socks {
            if let Ok(st) = s.rx.fd().xdp_statistics() {
                log::info!(
                    "AF_XDP socket on if{} queue {}: rx dropped {}, rx ring full {}, fill ring empty {}, tx ring empty {}",
                    s.ifindex,
                    self.queue,
                    st.rx_dropped(),
                    st.rx_ring_full(),
                    st.rx_fill_ring_empty_descs(),
                    st.tx_ring_empty_descs()
                );
            }
        }
    }

    fn idle(&mut self) {
        if self.busy_poll {
            std::hint::spin_loop();
            return;
        }
        let mut fds: Vec<libc::pollfd> = self
            .socks
            .iter()
            .map(|s| libc::pollfd {
                fd: s.rx.fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: fds is a valid array of pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 10) };
    }

    /// Keeps socket `i`'s fill ring full from the free pool.
    fn refill(&mut self, i: usize) {
        xsk::refill(&mut self.socks[i].fq, &mut self.free);
    }

    /// Returns the frames socket `i` has sent to the pool.
    fn complete(&mut self, i: usize, scratch: &mut [FrameDesc]) {
        let s = &mut self.socks[i];
        xsk::complete(&mut s.cq, &mut s.in_flight, &mut self.free, scratch);
    }

    /// Sends socket `i`'s pending frames ([`xsk::send`]); those a full TX
    /// ring refuses are counted `redirect-failed`.
    fn send(&mut self, i: usize, scratch: &mut [FrameDesc]) {
        let s = &mut self.socks[i];
        let refused = xsk::send(
            &mut s.tx,
            &mut s.cq,
            &mut s.pending,
            &mut s.in_flight,
            &mut self.free,
            scratch,
        );
        for _ in 0..refused {
            self.view.count(Reason::RedirectFailed);
        }
    }

    fn process(&mut self, i: usize, desc: &mut FrameDesc) -> Fate {
        match self.socks[i].role {
            SockRole::Uplink => self.decap(desc),
            SockRole::AccessPort => self.switch(self.socks[i].ifindex, desc),
        }
    }

    fn drop(&mut self, reason: Reason) -> Fate {
        self.view.count(reason);
        Fate::Free
    }

    /// Decap, as `decap.rs`: the uplink's checks ([`admit`]), learning
    /// behind the outer source, delivery to a port or a flood to the VNI's
    /// ports (never back to the underlay).
    fn decap(&mut self, desc: &mut FrameDesc) -> Fate {
        // SAFETY: a frame we own, just received.
        let mut m = unsafe { self.umem.data_mut(desc) };
        let (d, dst, src) = match admit(&self.view.t, m.contents_mut()) {
            Ok(a) => a,
            Err(r) => return self.drop(r),
        };
        let from = Place::Vtep(d.remote);
        self.view.learn(d.vni, src, from, self.now_ns);
        let c = self.view.vni_counters(d.vni);
        c.rx_packets += 1;
        c.rx_bytes += d.inner_len as u64;
        match forward(&from, self.view.dst_entry(d.vni, &dst)) {
            Ok(Forward::Flood) => {
                self.view.count(Reason::Flooded);
                self.view.vni_counters(d.vni).flood_packets += 1;
                let mut ports = std::mem::take(&mut self.flood_ports);
                self.view.ports_of(d.vni, &mut ports);
                for &p in &ports {
                    self.copy_to(desc, d.inner_offset, d.inner_len, p, None);
                }
                self.flood_ports = ports;
                Fate::Free
            }
            Ok(Forward::Port(port)) => {
                let Some(&s) = self.tx_sock.get(&port) else {
                    return self.drop(Reason::RedirectFailed);
                };
                // SAFETY: a frame we own.
                let mut m = unsafe { self.umem.data_mut(desc) };
                m.contents_mut()
                    .copy_within(d.inner_offset..d.inner_offset + d.inner_len, 0);
                m.cursor().set_pos(d.inner_len);
                Fate::Send(s)
            }
            Err(r) => self.drop(r),
            // Not from `forward`: a frame of the underlay never goes back to
            // it (nor does a group frame: it is flooded to ports only).
            Ok(Forward::Vtep(_)) => self.drop(Reason::SplitHorizon),
        }
    }

    /// Switching, encap and flooding: as `encap.rs` and `flood.rs`.
    fn switch(&mut self, ifindex: u32, desc: &mut FrameDesc) -> Fate {
        // SAFETY: a frame we own, just received.
        let data = unsafe { self.umem.data(desc) };
        let frame = data.contents();
        let eth = match access_eth(frame) {
            Ok(eth) => eth,
            Err(r) => return self.drop(r),
        };
        let Some(&vni) = self.view.t.ports.get(&ifindex) else {
            return self.drop(Reason::NoPort);
        };
        if !self.view.t.vnis.contains_key(&vni) {
            return self.drop(Reason::UnknownVni);
        }
        let (dst, src) = (eth.dst_addr, eth.src_addr);
        if !is_valid_source(&src) {
            return self.drop(Reason::BadSourceMac);
        }
        let len = frame.len();
        self.view.learn(vni, src, Place::Port(ifindex), self.now_ns);
        match forward(&Place::Port(ifindex), self.view.dst_entry(vni, &dst)) {
            Ok(Forward::Flood) => {
                self.flood(desc, ifindex, vni, len);
                Fate::Free
            }
            Ok(Forward::Port(port)) => {
                let Some(&s) = self.tx_sock.get(&port) else {
                    return self.drop(Reason::RedirectFailed);
                };
                let c = self.view.vni_counters(vni);
                c.local_packets += 1;
                c.local_bytes += len as u64;
                Fate::Send(s)
            }
            Ok(Forward::Vtep(remote)) => match self.encap(desc, vni, &remote) {
                Ok(s) => Fate::Send(s),
                // Too large: its path-MTU error back out of its port.
                Err(Reason::MtuExceeded) => {
                    let overhead = if remote.as_v4().is_some() {
                        ENCAP_V4_MTU_OVERHEAD
                    } else {
                        ENCAP_V6_MTU_OVERHEAD
                    };
                    match self.tx_sock.get(&ifindex) {
                        Some(&s)
                            if pmtu::answer(
                                &self.umem,
                                desc,
                                self.view.t.underlay.mtu,
                                overhead,
                            ) =>
                        {
                            self.view.count(Reason::MtuExceeded);
                            self.view.count(Reason::PmtuSent);
                            Fate::Send(s)
                        }
                        _ => self.drop(Reason::MtuExceeded),
                    }
                }
                Err(r) => self.drop(r),
            },
            Err(r) => self.drop(r),
        }
    }

    /// Floods the BUM frame in `desc` (`len` bytes, from access port
    /// `ifindex` of `vni`): a copy to every other access port of the VNI,
    /// one to every flood-list member (either family), and one to the
    /// VNI's group when it has one, as `flood.rs` does.
    fn flood(&mut self, desc: &FrameDesc, ifindex: u32, vni: u32, len: usize) {
        self.view.count(Reason::Flooded);
        self.view.vni_counters(vni).flood_packets += 1;
        let mut ports = std::mem::take(&mut self.flood_ports);
        self.view.ports_of(vni, &mut ports);
        for &p in ports.iter().filter(|&&p| p != ifindex) {
            self.copy_to(desc, 0, len, p, None);
            let c = self.view.vni_counters(vni);
            c.local_packets += 1;
            c.local_bytes += len as u64;
        }
        self.flood_ports = ports;
        let mut vteps = std::mem::take(&mut self.flood_vteps);
        self.view.flood_list_of(vni, &mut vteps);
        vteps.extend(self.view.group_of(vni));
        let uplink = self.view.t.underlay.uplink_ifindex;
        for vtep in &vteps {
            self.copy_to(desc, 0, len, uplink, Some((vni, *vtep)));
        }
        self.flood_vteps = vteps;
    }

    /// Encapsulates the frame in `desc` to `remote` (a VTEP or a group) in
    /// place. Returns the socket to send it from; a frame handed to the
    /// kernel (no next hop yet: `no-neighbour`) or refused comes back as an
    /// error reason.
    fn encap(&mut self, desc: &mut FrameDesc, vni: u32, remote: &VtepAddr) -> Result<Out, Reason> {
        let ul = self.view.t.underlay;
        let hop = next_hop(&ul, remote, self.view.t.neigh.get(remote));
        // SAFETY: a frame we own.
        let mut m = unsafe { self.umem.data_mut(desc) };
        let len = m.contents().len();
        let outer = outer_header(&ul, remote, &hop.unwrap_or_default(), vni, m.contents())?;
        let head = outer.len;
        let mut cur = m.cursor();
        cur.set_pos(len + head);
        if cur.pos() != len + head {
            return Err(Reason::MtuExceeded);
        }
        let buf = m.contents_mut();
        buf.copy_within(0..len, head);
        buf[..head].copy_from_slice(outer.bytes());
        let c = self.view.vni_counters(vni);
        c.tx_packets += 1;
        c.tx_bytes += (len + head) as u64;
        let out = hop.map_or(ul.uplink_ifindex, |n| n.ifindex);
        match (hop, self.tx_sock.get(&out)) {
            (Some(_), Some(&s)) => Ok(s),
            _ => {
                if !self.to_kernel(&m.contents()[ETH_LEN..], remote) {
                    return Err(Reason::RedirectFailed);
                }
                Err(Reason::NoNeighbour)
            }
        }
    }

    /// Sends an outer IP packet (of `dst`'s family) through the kernel's
    /// routing and neighbour resolution; false when the kernel refused it
    /// (or there is no raw socket of that family).
    fn to_kernel(&self, ip_packet: &[u8], dst: &VtepAddr) -> bool {
        let (fd, sa) = match dst.as_v4() {
            Some(v4) => (&self.raw4, SockAddr::v4(v4)),
            None if dst.family == AF_INET6 => (&self.raw6, SockAddr::v6(dst.addr)),
            None => return false,
        };
        let Some(fd) = fd else { return false };
        let (ptr, len) = sa.as_ptr();
        // SAFETY: valid buffer, and an address of the length given.
        let rc = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                ip_packet.as_ptr().cast(),
                ip_packet.len(),
                libc::MSG_DONTWAIT,
                ptr,
                len,
            )
        };
        rc >= 0
    }

    /// Copies `len` bytes at `offset` of `desc` into a free frame and sends
    /// it out of `ifindex` — encapsulated to `encap.1` in VNI `encap.0`
    /// when given (a flood copy to a remote VTEP or a group). A copy whose
    /// next hop is not resolved yet is not lost: [`Worker::encap`] hands it
    /// to the kernel's neighbour resolution, counted `flood-no-neighbour`.
    fn copy_to(
        &mut self,
        desc: &FrameDesc,
        offset: usize,
        len: usize,
        ifindex: u32,
        encap: Option<(u32, VtepAddr)>,
    ) {
        let Some(&s) = self.tx_sock.get(&ifindex) else {
            self.view.count(Reason::FloodFailed);
            return;
        };
        let Some(mut copy) = self.free.pop() else {
            self.view.count(Reason::FloodFailed);
            return;
        };
        // SAFETY: `desc` and `copy` are distinct frames we own.
        let src = unsafe { self.umem.data(desc) };
        let bytes = &src.contents()[offset..offset + len];
        // SAFETY: as above.
        let mut m = unsafe { self.umem.data_mut(&mut copy) };
        let mut cur = m.cursor();
        cur.set_pos(0);
        if cur.write_all(bytes).is_err() {
            self.free.push(copy);
            self.view.count(Reason::FloodFailed);
            return;
        }
        match encap {
            None => self.emit(s, copy),
            Some((vni, vtep)) => match self.encap(&mut copy, vni, &vtep) {
                Ok(out) => self.emit(out, copy),
                Err(r) => {
                    self.free.push(copy);
                    self.view.count(match r {
                        Reason::NoNeighbour => Reason::FloodNoNeighbour,
                        _ => Reason::FloodFailed,
                    });
                }
            },
        }
    }
}

/// The uplink's checks of a received frame, in `decap.rs`'s order, on the
/// engine's tables: the classifier (`parse_vxlan`), group-addressed VXLAN
/// only for the group of its own VNI (`unknown-group`), the VNI, the
/// source check, the inner source MAC, and RFC 6040 (`ecn-error`; an
/// outer CE over an ECN-capable inner packet is marked in `frame`, inner
/// IPv4 checksum updated). Returns what was found and the inner
/// destination and source MACs; the frame is to be learned from and
/// delivered.
///
/// A frame the classifier passes is `stale-steering`: the steering program
/// sends only VXLAN for us, so it comes of a change since (the engine
/// cannot hand a frame back to the host).
pub fn admit(t: &Snapshot, frame: &mut [u8]) -> Result<(Decap, [u8; 6], [u8; 6]), Reason> {
    let d = match parse_vxlan(&*frame, &t.underlay) {
        Uplink::Vxlan(d) => d,
        Uplink::Pass => return Err(Reason::StaleSteering),
        Uplink::Drop(r) => return Err(r),
    };
    if let Some(group) = d.group
        && t.groups.get(&d.vni) != Some(&group)
    {
        return Err(Reason::UnknownGroup);
    }
    let info = t.vnis.get(&d.vni).ok_or(Reason::UnknownVni)?;
    if info.flags & VNI_F_CHECK_SOURCE != 0
        && !t.flood.get(&d.vni).is_some_and(|l| l.contains(&d.remote))
    {
        return Err(Reason::UnknownSourceVtep);
    }
    // The classifier checked that the inner frame has an Ethernet header.
    let inner = &frame[d.inner_offset..d.inner_offset + d.inner_len];
    let dst: [u8; 6] = inner[0..6].try_into().unwrap_or_default();
    let src: [u8; 6] = inner[6..12].try_into().unwrap_or_default();
    if !is_valid_source(&src) {
        return Err(Reason::BadSourceMac);
    }
    if let Some(mark) = ecn::decap_mark(&*frame, d.inner_offset, d.inner_len, d.outer_ecn)? {
        // `decap_mark` found the inner IP header inside the frame.
        ecn::apply_mark(frame, &mark);
    }
    Ok((d, dst, src))
}

/// The next hop toward `remote`: for a group its MAC (01:00:5e:… /
/// 33:33:…) from the uplink's, out of the uplink — always known; for a VTEP
/// the one the daemon resolved (`NEIGH`), if any.
pub fn next_hop(
    ul: &Underlay,
    remote: &VtepAddr,
    resolved: Option<&NeighEntry>,
) -> Option<NeighEntry> {
    match remote.group_mac() {
        Some(dmac) => Some(NeighEntry {
            dmac,
            smac: ul.uplink_mac,
            ifindex: ul.uplink_ifindex,
        }),
        None => resolved.copied(),
    }
}

/// An outer header as [`outer_header`] builds it: 50 bytes (IPv4) or 70
/// (IPv6).
pub struct OuterHeader {
    buf: [u8; ENCAP_V6_LEN],
    pub len: usize,
}

impl OuterHeader {
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The outer header to put in front of `inner` (an Ethernet frame) to send
/// it to `remote` (a VTEP or a group, of either family) in `vni` through
/// `hop`, with the builders the XDP engine uses (`vtep_common::header`):
/// source the local address of `remote`'s family, TTL / hop limit
/// `ul.ttl_to(remote)`, DS field by RFC 6040 and `tos`, flow label and
/// source port from the inner flow's hash, the UDP checksum as configured
/// (IPv4: `udp_checksum`; IPv6: always, unless `udp6_zero_csum_tx`).
///
/// `no-underlay` when this VTEP has no address of `remote`'s family;
/// `mtu-exceeded` when the outer IP packet would not fit the uplink's MTU
/// (inner MTU = underlay MTU − 50 over IPv4, − 70 over IPv6).
pub fn outer_header(
    ul: &Underlay,
    remote: &VtepAddr,
    hop: &NeighEntry,
    vni: u32,
    inner: &[u8],
) -> Result<OuterHeader, Reason> {
    let len = inner.len();
    let keys = flow_keys(inner, 0).unwrap_or_default();
    let o = Outer {
        dst_mac: hop.dmac,
        src_mac: hop.smac,
        vni,
        inner_len: len as u16,
        hash: flow_hash(&keys),
        ..Outer::default()
    }
    .with_inner_ip(inner, 0);
    let fits = |ip_header: usize| ip_header + UDP_LEN + VXLAN_LEN + len <= usize::from(ul.mtu);
    let mut h = OuterHeader {
        buf: [0; ENCAP_V6_LEN],
        len: 0,
    };
    if let Some(r) = remote.as_v4() {
        let e = encap_v4(ul, r, &o).ok_or(Reason::NoUnderlay)?;
        if !fits(IPV4_LEN) {
            return Err(Reason::MtuExceeded);
        }
        let mut hdr = encap_v4_header(&e);
        if ul.flags & UNDERLAY_F_UDP_CSUM != 0 {
            let c = udp_checksum_v4(&hdr, csum_partial(inner, 0));
            hdr[ENCAP_V4_UDP_CSUM..ENCAP_V4_UDP_CSUM + 2].copy_from_slice(&c);
        }
        h.buf[..ENCAP_V4_LEN].copy_from_slice(&hdr);
        h.len = ENCAP_V4_LEN;
    } else if remote.family == AF_INET6 {
        let e = encap_v6(ul, &remote.addr, &o).ok_or(Reason::NoUnderlay)?;
        if !fits(IPV6_LEN) {
            return Err(Reason::MtuExceeded);
        }
        let mut hdr = encap_v6_header(&e);
        if ul.flags & UNDERLAY_F_UDP6_ZERO_CSUM_TX == 0 {
            let c = udp_checksum_v6(&hdr, csum_partial(inner, 0));
            hdr[ENCAP_V6_UDP_CSUM..ENCAP_V6_UDP_CSUM + 2].copy_from_slice(&c);
        }
        h.buf = hdr;
        h.len = ENCAP_V6_LEN;
    } else {
        return Err(Reason::NoUnderlay);
    }
    Ok(h)
}

/// Stops a worker thread when dropped.
pub struct StopFlag(pub Arc<AtomicBool>);

impl Drop for StopFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A packet socket that sends (and, protocol 0, receives nothing) out of
/// `ifindex`.
fn packet_socket(ifindex: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket call.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid sockaddr_ll.
    let mut sa: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sa.sll_family = libc::AF_PACKET as u16;
    sa.sll_ifindex = ifindex as i32;
    // SAFETY: a valid address of the right length.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// A raw socket of `family` that sends whole IP packets (IPPROTO_RAW
/// implies IP_HDRINCL, and for IPv6 the kernel's equivalent); none when the
/// kernel refuses one (IPv6 disabled, say): packets of that family with no
/// next hop are then counted but not sent.
fn raw_socket(family: libc::c_int) -> Option<OwnedFd> {
    // SAFETY: plain socket call.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::IPPROTO_RAW,
        )
    };
    if fd < 0 {
        log::warn!(
            "afxdp: no raw socket of family {family} ({}): packets to VTEPs of that family \
             with no resolved next hop will not be sent",
            std::io::Error::last_os_error()
        );
        return None;
    }
    // SAFETY: a fresh fd we own.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The destination of a raw send, of either family.
enum SockAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl SockAddr {
    fn v4(addr: [u8; 4]) -> Self {
        SockAddr::V4(libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(addr),
            },
            sin_zero: [0; 8],
        })
    }

    fn v6(addr: [u8; 16]) -> Self {
        SockAddr::V6(libc::sockaddr_in6 {
            sin6_family: libc::AF_INET6 as libc::sa_family_t,
            sin6_port: 0,
            sin6_flowinfo: 0,
            sin6_addr: libc::in6_addr { s6_addr: addr },
            sin6_scope_id: 0,
        })
    }

    fn as_ptr(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            SockAddr::V4(sa) => (
                (sa as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ),
            SockAddr::V6(sa) => (
                (sa as *const libc::sockaddr_in6).cast(),
                size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use vtep_common::{
        UNDERLAY_F_TOS_INHERIT,
        header::{ETH_P_IP, ETH_P_IPV6, IPPROTO_UDP, ipv4_checksum},
    };

    use super::*;

    const LOCAL: [u8; 4] = [198, 18, 0, 1];
    const REMOTE: [u8; 4] = [198, 18, 0, 2];
    const LOCAL6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const REMOTE6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const UPLINK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const HOP: NeighEntry = NeighEntry {
        dmac: [0x02, 0, 0, 0, 0, 0x02],
        smac: UPLINK_MAC,
        ifindex: 7,
    };

    /// A dual-stack underlay, TTL auto, MTU 1500.
    fn ul() -> Underlay {
        Underlay {
            local: VtepAddr::v4(LOCAL),
            local6: VtepAddr::v6(LOCAL6),
            uplink_ifindex: 7,
            port: 4789,
            srcport_min: 49152,
            srcport_max: 65535,
            uplink_mac: UPLINK_MAC,
            mtu: 1500,
            ..Underlay::default()
        }
    }

    /// An inner IPv4/UDP frame with TOS `tos`, `len` bytes in all.
    fn inner_v4(tos: u8, len: usize) -> Vec<u8> {
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&[0x02, 0xaa, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[0x02, 0xbb, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        f[14] = 0x45;
        f[15] = tos;
        f[16..18].copy_from_slice(&((len - ETH_LEN) as u16).to_be_bytes());
        f[22] = 64;
        f[23] = IPPROTO_UDP;
        f[26..30].copy_from_slice(&[192, 0, 2, 1]);
        f[30..34].copy_from_slice(&[192, 0, 2, 2]);
        let hdr: [u8; IPV4_LEN] = f[14..34].try_into().unwrap();
        f[24..26].copy_from_slice(&ipv4_checksum(&hdr).to_be_bytes());
        for (i, b) in f[34..].iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        f
    }

    /// The Internet checksum of `data`, summed 16 bits at a time as RFC
    /// 1071 writes it (independent of `csum_partial`).
    fn textbook_checksum(data: &[u8]) -> u16 {
        let mut sum: u64 = 0;
        for pair in data.chunks(2) {
            let hi = u64::from(pair[0]) << 8;
            let lo = pair.get(1).map_or(0, |&b| u64::from(b));
            sum += hi | lo;
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    const VNI: u32 = 100;
    const GROUP6: [u8; 16] = [0xff, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00];

    /// The peer's underlay (REMOTE, REMOTE6): what frames to us are built
    /// with.
    fn peer() -> Underlay {
        Underlay {
            local: VtepAddr::v4(REMOTE),
            local6: VtepAddr::v6(REMOTE6),
            ..ul()
        }
    }

    /// Tables with VNI 100 (learning), as the view holds them.
    fn tables() -> Snapshot {
        let mut t = Snapshot {
            underlay: ul(),
            ..Snapshot::default()
        };
        t.vnis.insert(
            VNI,
            vtep_common::VniInfo {
                flags: vtep_common::VNI_F_LEARNING,
                ..vtep_common::VniInfo::default()
            },
        );
        t
    }

    /// A VXLAN frame from the peer to `to` (this VTEP or a group) around
    /// `inner`, built by the engine's own encap.
    fn from_peer(peer: &Underlay, to: VtepAddr, vni: u32, inner: &[u8]) -> Vec<u8> {
        let h = outer_header(peer, &to, &HOP, vni, inner).expect("encap");
        let mut f = h.bytes().to_vec();
        f.extend_from_slice(inner);
        f
    }

    #[test]
    fn admit_takes_either_family_and_learns_the_outer_source() {
        let t = tables();
        let inner = inner_v4(0, 98);
        for (to, remote) in [
            (VtepAddr::v4(LOCAL), VtepAddr::v4(REMOTE)),
            (VtepAddr::v6(LOCAL6), VtepAddr::v6(REMOTE6)),
        ] {
            let mut f = from_peer(&peer(), to, VNI, &inner);
            let (d, dst, src) = admit(&t, &mut f).expect("admitted");
            assert_eq!((d.vni, d.remote, d.group), (VNI, remote, None));
            assert_eq!(&f[d.inner_offset..d.inner_offset + d.inner_len], &inner[..]);
            assert_eq!(
                (dst, src),
                ([0x02, 0xaa, 0, 0, 0, 1], [0x02, 0xbb, 0, 0, 0, 1])
            );
        }
        let mut f = from_peer(&peer(), VtepAddr::v6(LOCAL6), 200, &inner);
        assert_eq!(admit(&t, &mut f).err(), Some(Reason::UnknownVni));
    }

    #[test]
    fn group_frames_only_for_their_vnis_group() {
        let inner = inner_v4(0, 98);
        let group = VtepAddr::v6(GROUP6);
        let mut t = tables();
        let mut f = from_peer(&peer(), group, VNI, &inner);
        // No group for the VNI, another group, the group of another VNI.
        assert_eq!(admit(&t, &mut f.clone()).err(), Some(Reason::UnknownGroup));
        t.groups.insert(VNI, VtepAddr::v4([239, 1, 1, 1]));
        assert_eq!(admit(&t, &mut f.clone()).err(), Some(Reason::UnknownGroup));
        t.groups.insert(200, group);
        assert_eq!(admit(&t, &mut f.clone()).err(), Some(Reason::UnknownGroup));
        t.groups.insert(VNI, group);
        let (d, _, _) = admit(&t, &mut f).expect("its VNI's group");
        // Learned behind the unicast outer source, not the group.
        assert_eq!((d.remote, d.group), (VtepAddr::v6(REMOTE6), Some(group)));
    }

    #[test]
    fn check_source_compares_vteps_of_either_family() {
        let mut t = tables();
        if let Some(info) = t.vnis.get_mut(&VNI) {
            info.flags |= VNI_F_CHECK_SOURCE;
        }
        t.flood.insert(VNI, vec![VtepAddr::v4(REMOTE)]);
        let inner = inner_v4(0, 98);
        let mut v4 = from_peer(&peer(), VtepAddr::v4(LOCAL), VNI, &inner);
        let mut v6 = from_peer(&peer(), VtepAddr::v6(LOCAL6), VNI, &inner);
        assert!(admit(&t, &mut v4.clone()).is_ok());
        assert_eq!(
            admit(&t, &mut v6.clone()).err(),
            Some(Reason::UnknownSourceVtep)
        );
        t.flood.insert(VNI, vec![VtepAddr::v6(REMOTE6)]);
        assert_eq!(admit(&t, &mut v4).err(), Some(Reason::UnknownSourceVtep));
        assert!(admit(&t, &mut v6).is_ok());
    }

    /// RFC 6040 on decap over an IPv6 outer: the outer ECN is set by hand
    /// (encap never sends CE), the inner IPv4 header's checksum checked.
    #[test]
    fn admit_applies_rfc6040() {
        let t = tables();
        let outer_ce = |inner_tos: u8| {
            let mut f = from_peer(&peer(), VtepAddr::v6(LOCAL6), VNI, &inner_v4(inner_tos, 98));
            // Traffic class ECN bits: the low two bits of byte 15's high
            // nibble.
            f[ETH_LEN + 1] |= ecn::CE << 4;
            f
        };
        let mut f = outer_ce(ecn::NOT_ECT);
        assert_eq!(admit(&t, &mut f).err(), Some(Reason::EcnError));
        let mut f = outer_ce(0xb8 | ecn::ECT_0);
        let (d, _, _) = admit(&t, &mut f).expect("admitted");
        let ip = d.inner_offset + ETH_LEN;
        assert_eq!(f[ip + 1], 0xb8 | ecn::CE);
        let hdr: [u8; IPV4_LEN] = f[ip..ip + IPV4_LEN].try_into().unwrap();
        assert_eq!(u16::from_be_bytes([hdr[10], hdr[11]]), ipv4_checksum(&hdr));
        // Not-ECT outer over CE inner: unchanged.
        let mut f = from_peer(&peer(), VtepAddr::v6(LOCAL6), VNI, &inner_v4(ecn::CE, 98));
        let before = f.clone();
        admit(&t, &mut f).expect("admitted");
        assert_eq!(f, before);
    }

    #[test]
    fn zero_udp6_checksums_only_where_allowed() {
        let mut zero = peer();
        zero.flags = UNDERLAY_F_UDP6_ZERO_CSUM_TX;
        let f = from_peer(&zero, VtepAddr::v6(LOCAL6), VNI, &inner_v4(0, 98));
        let mut t = tables();
        assert_eq!(admit(&t, &mut f.clone()).err(), Some(Reason::Udp6ZeroCsum));
        t.underlay.flags |= vtep_common::UNDERLAY_F_UDP6_ZERO_CSUM_RX;
        assert!(admit(&t, &mut f.clone()).is_ok());
        // This VTEP without an IPv6 address: not VXLAN for it.
        t.underlay.local6 = VtepAddr::NONE;
        assert_eq!(admit(&t, &mut f.clone()).err(), Some(Reason::StaleSteering));
    }

    #[test]
    fn ipv4_outer_header_is_the_common_builders() {
        let inner = inner_v4(0x03, 98);
        let remote = VtepAddr::v4(REMOTE);
        let h = outer_header(&ul(), &remote, &HOP, 100, &inner).expect("IPv4 encap");
        assert_eq!(h.len, ENCAP_V4_LEN);
        let b = h.bytes();
        assert_eq!(&b[0..6], &HOP.dmac);
        assert_eq!(&b[6..12], &UPLINK_MAC);
        assert_eq!(&b[12..14], &ETH_P_IP.to_be_bytes());
        // Inner CE: outer ECT(0) (RFC 6040), TOS 0; TTL auto to a VTEP: 64.
        assert_eq!(b[15], ecn::ECT_0);
        assert_eq!(b[22], 64);
        assert_eq!(&b[26..30], &LOCAL);
        assert_eq!(&b[30..34], &REMOTE);
        let ip: [u8; IPV4_LEN] = b[14..34].try_into().unwrap();
        assert_eq!(u16::from_be_bytes([ip[10], ip[11]]), ipv4_checksum(&ip));
        // Without udp_checksum the UDP checksum is 0 (RFC 7348).
        assert_eq!(&b[40..42], &[0, 0]);
        assert_eq!(&b[42..50], &[0x08, 0, 0, 0, 0, 0, 100, 0]);
    }

    #[test]
    fn ipv4_outer_takes_tos_inherit_and_udp_checksum() {
        let mut u = ul();
        u.flags = UNDERLAY_F_TOS_INHERIT | UNDERLAY_F_UDP_CSUM;
        let inner = inner_v4(0x89, 98);
        let h = outer_header(&u, &VtepAddr::v4(REMOTE), &HOP, 100, &inner).expect("encap");
        assert_eq!(h.bytes()[15], 0x89);
        let mut packet = h.bytes()[ETH_LEN..].to_vec();
        packet.extend_from_slice(&inner);
        // UDP over its pseudo-header sums to zero with the checksum in.
        let udp = &packet[IPV4_LEN..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&LOCAL);
        pseudo.extend_from_slice(&REMOTE);
        pseudo.extend_from_slice(&[0, IPPROTO_UDP]);
        pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(udp);
        assert_ne!(&udp[6..8], &[0, 0]);
        assert_eq!(textbook_checksum(&pseudo), 0);
    }

    #[test]
    fn ipv6_outer_header_has_a_checksum_unless_told_otherwise() {
        let inner = inner_v4(0x01, 99);
        let remote = VtepAddr::v6(REMOTE6);
        let h = outer_header(&ul(), &remote, &HOP, 0x12_3456, &inner).expect("IPv6 encap");
        assert_eq!(h.len, ENCAP_V6_LEN);
        let b = h.bytes();
        assert_eq!(&b[12..14], &ETH_P_IPV6.to_be_bytes());
        // Version 6, traffic class ECT(1) from the inner packet.
        assert_eq!(b[14] >> 4, 6);
        assert_eq!(((b[14] & 0x0f) << 4) | (b[15] >> 4), ecn::ECT_1);
        assert_eq!(b[20], IPPROTO_UDP);
        assert_eq!(b[21], 64);
        assert_eq!(&b[22..38], &LOCAL6);
        assert_eq!(&b[38..54], &REMOTE6);
        let mut udp = b[ETH_LEN + IPV6_LEN..].to_vec();
        udp.extend_from_slice(&inner);
        assert_eq!(u16::from_be_bytes([b[18], b[19]]) as usize, udp.len());
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&LOCAL6);
        pseudo.extend_from_slice(&REMOTE6);
        pseudo.extend_from_slice(&(udp.len() as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_UDP]);
        pseudo.extend_from_slice(&udp);
        assert_ne!(&udp[6..8], &[0, 0]);
        assert_eq!(textbook_checksum(&pseudo), 0);

        let mut u = ul();
        u.flags = UNDERLAY_F_UDP6_ZERO_CSUM_TX;
        let h = outer_header(&u, &remote, &HOP, 0x12_3456, &inner).expect("IPv6 encap");
        assert_eq!(&h.bytes()[60..62], &[0, 0]);
    }

    #[test]
    fn group_copies_go_to_the_group_mac_with_ttl_1() {
        let u = ul();
        let g4 = VtepAddr::v4([239, 1, 1, 1]);
        let hop = next_hop(&u, &g4, None).expect("a group needs no neighbour");
        assert_eq!(hop.dmac, [0x01, 0x00, 0x5e, 0x01, 0x01, 0x01]);
        assert_eq!((hop.smac, hop.ifindex), (UPLINK_MAC, 7));
        let h = outer_header(&u, &g4, &hop, 100, &inner_v4(0, 60)).expect("encap");
        assert_eq!(&h.bytes()[0..6], &hop.dmac);
        assert_eq!(h.bytes()[22], 1);
        assert_eq!(&h.bytes()[30..34], &[239, 1, 1, 1]);

        let mut g6 = [0u8; 16];
        g6[0..2].copy_from_slice(&[0xff, 0x05]);
        g6[15] = 0x01;
        g6[14] = 0x01;
        let g6 = VtepAddr::v6(g6);
        let hop = next_hop(&u, &g6, None).expect("a group needs no neighbour");
        assert_eq!(hop.dmac, [0x33, 0x33, 0, 0, 0x01, 0x01]);
        let h = outer_header(&u, &g6, &hop, 100, &inner_v4(0, 60)).expect("encap");
        assert_eq!(h.bytes()[21], 1);
        // A configured TTL holds for groups too, as the kernel's does.
        let mut u = ul();
        u.ttl = 8;
        let h = outer_header(&u, &g6, &hop, 100, &inner_v4(0, 60)).expect("encap");
        assert_eq!(h.bytes()[21], 8);
        // A unicast VTEP's next hop is the resolved one, or none.
        let r = VtepAddr::v6(REMOTE6);
        assert_eq!(next_hop(&u, &r, None), None);
        assert_eq!(next_hop(&u, &r, Some(&HOP)), Some(HOP));
    }

    #[test]
    fn a_family_without_a_local_address_is_no_underlay() {
        let mut v4_only = ul();
        v4_only.local6 = VtepAddr::NONE;
        let inner = inner_v4(0, 60);
        let r = outer_header(&v4_only, &VtepAddr::v6(REMOTE6), &HOP, 1, &inner);
        assert_eq!(r.err(), Some(Reason::NoUnderlay));
        let mut v6_only = ul();
        v6_only.local = VtepAddr::NONE;
        let r = outer_header(&v6_only, &VtepAddr::v4(REMOTE), &HOP, 1, &inner);
        assert_eq!(r.err(), Some(Reason::NoUnderlay));
        let r = outer_header(&ul(), &VtepAddr::NONE, &HOP, 1, &inner);
        assert_eq!(r.err(), Some(Reason::NoUnderlay));
    }

    /// Inner MTU = underlay MTU − 50 over IPv4, − 70 over IPv6: an inner
    /// frame of exactly that many bytes goes, one more is refused.
    #[test]
    fn mtu_rule_per_family() {
        let u = ul();
        for (remote, overhead) in [(VtepAddr::v4(REMOTE), 50usize), (VtepAddr::v6(REMOTE6), 70)] {
            let max = usize::from(u.mtu) - overhead + ETH_LEN;
            assert!(outer_header(&u, &remote, &HOP, 1, &inner_v4(0, max)).is_ok());
            let r = outer_header(&u, &remote, &HOP, 1, &inner_v4(0, max + 1));
            assert_eq!(r.err(), Some(Reason::MtuExceeded), "overhead {overhead}");
        }
    }
}
