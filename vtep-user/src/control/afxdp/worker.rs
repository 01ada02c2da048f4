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
//! `vtep_common::header`.

use std::{
    io::Write as _,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use vtep_common::{
    Reason, UNDERLAY_F_UDP_CSUM, VNI_F_CHECK_SOURCE,
    fdb::{Forward, Place, forward},
    header::{
        ENCAP_V4_LEN, ENCAP_V4_UDP_CSUM, ETH_LEN, EncapV4, IPV4_LEN, UDP_LEN, Uplink, VXLAN_LEN,
        access_eth, csum_partial, encap_v4_header, flow_hash, flow_keys, is_valid_source,
        parse_vxlan, source_port, udp_checksum_v4,
    },
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

use super::view::{HashMap, View};
use crate::system::clock;

/// Descriptors worked per ring per round.
pub const BATCH: usize = 256;
/// Most wake-ups of one socket's TX per round (copy mode sends 32 frames
/// per wake-up).
const MAX_KICKS: usize = 16;

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
    /// Raw IPv4 socket: hands encapsulated packets with no resolved next
    /// hop to the kernel, which resolves it (as `bpf_redirect_neigh` does).
    raw: Option<OwnedFd>,
    busy_poll: bool,
    /// CLOCK_MONOTONIC at the start of the round (learning timestamps).
    now_ns: u64,
    /// Scratch lists for flooding (no allocation per packet).
    flood_ports: Vec<u32>,
    flood_vteps: Vec<[u8; 4]>,
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
        // SAFETY: plain socket call; IPPROTO_RAW implies IP_HDRINCL.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_RAW,
            )
        };
        // SAFETY: a fresh fd we own.
        let raw = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(Worker {
            queue,
            umem,
            socks,
            tx_sock,
            packet,
            free,
            view,
            raw,
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
        let s = &mut self.socks[i];
        let want = s.fq.nb_free(self.free.len() as u32) as usize;
        let n = want.min(self.free.len());
        if n == 0 {
            return;
        }
        let from = self.free.len() - n;
        // SAFETY: free frames belong to this UMEM and to nobody else.
        let done = unsafe { s.fq.produce(&self.free[from..]) };
        self.free.truncate(self.free.len() - done);
    }

    /// Returns the frames socket `i` has sent to the pool.
    fn complete(&mut self, i: usize, scratch: &mut [FrameDesc]) {
        // SAFETY: the descriptors come from this UMEM's rings.
        let n = unsafe { self.socks[i].cq.consume(scratch) };
        self.free.extend_from_slice(&scratch[..n]);
        let s = &mut self.socks[i];
        s.in_flight = s.in_flight.saturating_sub(n);
    }

    /// Sends socket `i`'s pending frames. In copy mode the kernel sends at
    /// most a small batch (32) per wake-up, so it is woken until the frames
    /// are out (completed) or a bound is reached; a full TX ring refuses the
    /// rest of the round's frames (counted `redirect-failed`).
    fn send(&mut self, i: usize, scratch: &mut [FrameDesc]) {
        let s = &mut self.socks[i];
        if s.pending.is_empty() {
            return;
        }
        // SAFETY: pending frames belong to this UMEM and to nobody else.
        let sent = unsafe { s.tx.produce(&s.pending) };
        for desc in s.pending.drain(sent..) {
            self.free.push(desc);
            self.view.count(Reason::RedirectFailed);
        }
        s.pending.clear();
        s.in_flight += sent;
        for _ in 0..MAX_KICKS {
            let s = &mut self.socks[i];
            if s.in_flight == 0 {
                break;
            }
            if s.tx.wakeup().is_err() {
                break;
            }
            self.complete(i, scratch);
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

    /// Decap: the uplink classifier (`parse_vxlan`), then as `decap.rs`.
    fn decap(&mut self, desc: &mut FrameDesc) -> Fate {
        let ul = self.view.t.underlay;
        // The steering program sends only what the classifier calls VXLAN
        // for us; anything else comes of a change since, and is lost (the
        // engine cannot hand a frame back to the host).
        if ul.local.as_v4().is_none() {
            return self.drop(Reason::StaleSteering);
        }
        // SAFETY: a frame we own, just received.
        let data = unsafe { self.umem.data(desc) };
        let d = match parse_vxlan(data.contents(), &ul) {
            // This engine decapsulates IPv4 unicast VXLAN only, so far.
            Uplink::Vxlan(d) if d.group.is_some() => return self.drop(Reason::UnknownGroup),
            Uplink::Vxlan(d) if d.remote.as_v4().is_none() => {
                return self.drop(Reason::StaleSteering);
            }
            Uplink::Vxlan(d) => d,
            Uplink::Pass => return self.drop(Reason::StaleSteering),
            Uplink::Drop(r) => return self.drop(r),
        };
        let Some(info) = self.view.t.vnis.get(&d.vni).copied() else {
            return self.drop(Reason::UnknownVni);
        };
        if info.flags & VNI_F_CHECK_SOURCE != 0
            && !self
                .view
                .t
                .flood
                .get(&d.vni)
                .is_some_and(|l| d.remote.as_v4().is_some_and(|r| l.contains(&r)))
        {
            return self.drop(Reason::UnknownSourceVtep);
        }
        let inner = &data.contents()[d.inner_offset..d.inner_offset + d.inner_len];
        let dst: [u8; 6] = inner[0..6].try_into().unwrap_or_default();
        let src: [u8; 6] = inner[6..12].try_into().unwrap_or_default();
        if !is_valid_source(&src) {
            return self.drop(Reason::BadSourceMac);
        }
        self.view
            .learn(d.vni, src, Place::Vtep(d.remote), self.now_ns);
        let c = self.view.vni_counters(d.vni);
        c.rx_packets += 1;
        c.rx_bytes += d.inner_len as u64;
        let from = Place::Vtep(d.remote);
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
            // Not from `forward`: a frame of the underlay never goes back to it.
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
                let uplink = self.view.t.underlay.uplink_ifindex;
                for &vtep in &vteps {
                    self.copy_to(desc, 0, len, uplink, Some((vni, vtep)));
                }
                self.flood_vteps = vteps;
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
            Ok(Forward::Vtep(remote)) => {
                let Some(remote) = remote.as_v4() else {
                    return self.drop(Reason::NoRoute);
                };
                match self.encap(desc, vni, remote) {
                    Ok(s) => Fate::Send(s),
                    Err(r) => self.drop(r),
                }
            }
            Err(r) => self.drop(r),
        }
    }

    /// Encapsulates the frame in `desc` to `remote` in place. Returns the
    /// socket to send it from; a frame handed to the kernel (no next hop
    /// yet) or refused comes back as an error reason.
    fn encap(&mut self, desc: &mut FrameDesc, vni: u32, remote: [u8; 4]) -> Result<Out, Reason> {
        let ul = self.view.t.underlay;
        let local = ul.local.as_v4().ok_or(Reason::NoUnderlay)?;
        // SAFETY: a frame we own.
        let mut m = unsafe { self.umem.data_mut(desc) };
        let len = m.contents().len();
        let keys = flow_keys(m.contents(), 0).unwrap_or_default();
        let ip_len = IPV4_LEN + UDP_LEN + VXLAN_LEN + len;
        if ip_len > usize::from(ul.mtu) {
            return Err(Reason::MtuExceeded);
        }
        let hop = self.view.t.neigh.get(&remote).copied();
        let (dmac, smac) = hop.map(|n| (n.dmac, n.smac)).unwrap_or_default();
        let mut hdr = encap_v4_header(&EncapV4 {
            dst_mac: dmac,
            src_mac: smac,
            src_ip: local,
            dst_ip: remote,
            ttl: ul.ttl,
            tos: 0,
            src_port: source_port(flow_hash(&keys), ul.srcport_min, ul.srcport_max),
            dst_port: ul.port,
            vni,
            inner_len: len as u16,
        });
        if ul.flags & UNDERLAY_F_UDP_CSUM != 0 {
            let c = udp_checksum_v4(&hdr, csum_partial(m.contents(), 0));
            hdr[ENCAP_V4_UDP_CSUM..ENCAP_V4_UDP_CSUM + 2].copy_from_slice(&c);
        }
        let mut cur = m.cursor();
        cur.set_pos(len + ENCAP_V4_LEN);
        if cur.pos() != len + ENCAP_V4_LEN {
            return Err(Reason::MtuExceeded);
        }
        let buf = m.contents_mut();
        buf.copy_within(0..len, ENCAP_V4_LEN);
        buf[..ENCAP_V4_LEN].copy_from_slice(&hdr);
        let c = self.view.vni_counters(vni);
        c.tx_packets += 1;
        c.tx_bytes += (len + ENCAP_V4_LEN) as u64;
        let out = hop.map_or(ul.uplink_ifindex, |n| n.ifindex);
        match (hop, self.tx_sock.get(&out)) {
            (Some(_), Some(&s)) => Ok(s),
            _ => {
                self.to_kernel(&m.contents()[ETH_LEN..], remote);
                Err(Reason::NoNeighbour)
            }
        }
    }

    /// Sends an outer IPv4 packet through the kernel's routing and
    /// neighbour resolution.
    fn to_kernel(&self, ip_packet: &[u8], dst: [u8; 4]) {
        let Some(raw) = &self.raw else { return };
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(dst),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: valid buffer and address of the right length.
        unsafe {
            libc::sendto(
                raw.as_raw_fd(),
                ip_packet.as_ptr().cast(),
                ip_packet.len(),
                libc::MSG_DONTWAIT,
                (&sa as *const libc::sockaddr_in).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
    }

    /// Copies `len` bytes at `offset` of `desc` into a free frame and sends
    /// it out of `ifindex` — encapsulated to `encap.1` in VNI `encap.0`
    /// when given (a flood copy to a remote VTEP).
    fn copy_to(
        &mut self,
        desc: &FrameDesc,
        offset: usize,
        len: usize,
        ifindex: u32,
        encap: Option<(u32, [u8; 4])>,
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
            Some((vni, vtep)) => match self.encap(&mut copy, vni, vtep) {
                Ok(out) => self.emit(out, copy),
                Err(r) => {
                    self.free.push(copy);
                    self.view.count(if r == Reason::NoNeighbour {
                        r
                    } else {
                        Reason::FloodFailed
                    });
                }
            },
        }
    }
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
