//! The daemon's monitor: every FDB event, as it happens, to the
//! `vtep monitor` clients.
//!
//! Events come from the datapath's ring buffer (`FDB_EVENTS`, of which the
//! daemon is the one reader), from the daemon's own work (ageing, and
//! through `crate::control::events` the AF_XDP engine's learning and the
//! follower's mirroring) and from CLI processes (`vtep fdb add`, `vtep
//! -batch`), which connect and send theirs. All go out to every client on
//! a `SOCK_SEQPACKET` socket next to the run lock ([`socket_path`]).
//!
//! Nothing here waits for a client: a message a client has no room for is
//! dropped, and the client is told how many with a [`Message::Lost`] before
//! the next one it gets. Events the ring had no room for are counted by the
//! datapath (`FDB_EV_LOST`, `Gateway::monitor_lost`) and told to every
//! client the same way.
//!
//! On the socket, a message is an 8-byte header, a tag byte, a byte of
//! detail, two zero bytes and a count (u32, host order), then its payload:
//! `E`, count [`FdbEvent`]s ([`FdbEvent::to_bytes`]); `L`, the count of
//! events lost, the detail saying where ([`Lost`]).

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::net::{UnixDatagram, UnixListener, UnixStream},
    },
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, Result};
use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};
use vtep_common::{
    FdbEntry, FdbKey,
    event::{EVENT_LEN, EventKind, FdbEvent},
};

use crate::{control::events, datapath::gateway::Gateway, system::bpffs};

/// Most events in one message.
pub const BATCH: usize = 64;
/// The largest message: a header and [`BATCH`] events.
pub const MAX_MESSAGE: usize = HEADER + BATCH * EVENT_LEN;
const HEADER: usize = 8;
const TAG_EVENTS: u8 = b'E';
const TAG_LOST: u8 = b'L';
/// What the kernel may queue towards one client (`SO_SNDBUFFORCE`):
/// about 2,000 full messages.
const CLIENT_BUFFER: libc::c_int = 16 << 20;

/// The monitor socket of the gateway at `pin_path`: beside its run lock,
/// `/run/vtep/%sys%fs%bpf%vtep.monitor`.
pub fn socket_path(pin_path: &Path) -> PathBuf {
    bpffs::lock_file(pin_path).with_extension("monitor")
}

/// Where lost events were lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lost {
    /// This client read too slowly: the daemon dropped them.
    Client = 1,
    /// The datapath's ring buffer (or the AF_XDP engine's queue) was full.
    Datapath = 2,
}

/// One message on the monitor socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Events(Vec<FdbEvent>),
    Lost(Lost, u64),
}

impl Message {
    /// The bytes of the message.
    pub fn encode(&self) -> Vec<u8> {
        let (tag, detail, count, payload) = match self {
            Message::Events(evs) => (
                TAG_EVENTS,
                0,
                evs.len() as u32,
                evs.iter().flat_map(|e| e.to_bytes()).collect::<Vec<u8>>(),
            ),
            Message::Lost(why, n) => (TAG_LOST, *why as u8, 1, n.to_ne_bytes().to_vec()),
        };
        let mut b = Vec::with_capacity(HEADER + payload.len());
        b.extend_from_slice(&[tag, detail, 0, 0]);
        b.extend_from_slice(&count.to_ne_bytes());
        b.extend_from_slice(&payload);
        b
    }

    /// The message in `b`, or none if it is not one.
    pub fn decode(b: &[u8]) -> Option<Message> {
        let (head, payload) = b.split_at_checked(HEADER)?;
        let count = u32::from_ne_bytes(head[4..8].try_into().ok()?) as usize;
        match head[0] {
            TAG_EVENTS if payload.len() == count * EVENT_LEN => payload
                .chunks_exact(EVENT_LEN)
                .map(FdbEvent::from_bytes)
                .collect::<Option<Vec<_>>>()
                .map(Message::Events),
            TAG_LOST if count == 1 => {
                let n = u64::from_ne_bytes(payload.try_into().ok()?);
                let why = match head[1] {
                    1 => Lost::Client,
                    2 => Lost::Datapath,
                    _ => return None,
                };
                Some(Message::Lost(why, n))
            }
            _ => None,
        }
    }
}

/// A `SOCK_SEQPACKET` unix socket, bound and listening at `path`, or
/// connected to it.
fn seqpacket(path: &Path, listen: bool) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2).
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_un is valid.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = CString::new(path.as_os_str().as_encoded_bytes())?;
    let bytes = bytes.as_bytes_with_nul();
    if bytes.len() > addr.sun_path.len() {
        return Err(io::Error::other(format!(
            "{} is too long for a unix socket",
            path.display()
        )));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    let sa = (&raw const addr).cast::<libc::sockaddr>();
    // SAFETY: a valid fd and address of `len` bytes.
    let rc = unsafe {
        if listen {
            if libc::bind(fd.as_raw_fd(), sa, len) == 0 {
                libc::listen(fd.as_raw_fd(), 64)
            } else {
                -1
            }
        } else {
            libc::connect(fd.as_raw_fd(), sa, len)
        }
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Connects to the monitor of the gateway at `pin_path`.
pub fn connect(pin_path: &Path) -> io::Result<UnixStream> {
    seqpacket(&socket_path(pin_path), false).map(UnixStream::from)
}

/// Sends `msg` on `sock` without waiting: false when it had no room.
fn send_now(sock: &impl AsRawFd, msg: &[u8]) -> io::Result<bool> {
    // SAFETY: a valid fd and buffer.
    let n = unsafe {
        libc::send(
            sock.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n >= 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Sets the send buffer of `sock` to `bytes` with `option` (`SO_SNDBUF`
/// or `SO_SNDBUFFORCE`); a refusal leaves the one it has.
fn set_send_buffer(sock: &impl AsRawFd, option: libc::c_int, bytes: libc::c_int) {
    // SAFETY: a valid fd and an int option value.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            (&raw const bytes).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// A client: its connection, and the events it had no room for since it
/// last heard of it.
struct Client {
    sock: Arc<UnixStream>,
    dropped: u64,
}

/// The clients, and what each has not heard.
#[derive(Default)]
struct Clients(Vec<Client>);

impl Clients {
    /// A client on `sock` (non-blocking) from now on.
    fn add(&mut self, sock: Arc<UnixStream>) {
        self.0.push(Client { sock, dropped: 0 });
    }

    /// Sends `events` to every client; a client without room drops them
    /// (and hears how many before what it gets next), one that went away
    /// is forgotten.
    fn publish(&mut self, events: &[FdbEvent]) {
        if self.0.is_empty() {
            return;
        }
        for chunk in events.chunks(BATCH) {
            let msg = Message::Events(chunk.to_vec()).encode();
            let n = chunk.len() as u64;
            self.0.retain_mut(|c| c.send(&msg, n));
        }
    }

    /// Tells every client that the datapath lost `n` events.
    fn lost(&mut self, n: u64) {
        let msg = Message::Lost(Lost::Datapath, n).encode();
        self.0.retain_mut(|c| c.send(&msg, n));
    }
}

impl Client {
    /// Sends `msg` (of `n` events) after what the client has not heard of
    /// its drops; false when the client went away.
    fn send(&mut self, msg: &[u8], n: u64) -> bool {
        if self.dropped > 0 {
            let told = Message::Lost(Lost::Client, self.dropped).encode();
            match send_now(&*self.sock, &told) {
                Ok(true) => self.dropped = 0,
                Ok(false) => {
                    self.dropped += n;
                    return true;
                }
                Err(_) => return false,
            }
        }
        match send_now(&*self.sock, msg) {
            Ok(true) => true,
            Ok(false) => {
                self.dropped += n;
                true
            }
            Err(_) => false,
        }
    }
}

/// The monitor of a running daemon.
pub struct Monitor {
    path: PathBuf,
    listener: tokio::net::UnixListener,
    clients: Clients,
    /// Events from `control::events` and from CLI connections, one record
    /// a datagram; `inbox_tx` is the connections' sending end.
    inbox: tokio::net::UnixDatagram,
    inbox_tx: Arc<UnixDatagram>,
    ring: Option<AsyncFd<RingBuf<MapData>>>,
    /// `Gateway::monitor_lost` when clients were last told.
    lost_told: u64,
    /// `control::events::lost` when it was last added to the gateway's.
    engine_lost: u64,
    /// New and moved MACs since the daemon last took them, for ageing
    /// ([`Monitor::take_learned`]); at most [`LEARNED_MAX`].
    learned: Vec<(FdbKey, FdbEntry)>,
    /// More were learned than `learned` holds.
    learned_overflow: bool,
    /// The events lost (the gateway's count) when ageing last took them.
    lost_for_ageing: u64,
}

/// The most new and moved MACs the monitor keeps between two ticks for
/// ageing; more, and ageing walks the table for them.
const LEARNED_MAX: usize = 4_096;

impl Monitor {
    /// Listens at the gateway's [`socket_path`] (a file left there by a
    /// daemon before this one, which held the run lock this one holds now,
    /// is removed), reads the datapath's ring, and takes the events of
    /// `crate::control::events`.
    pub fn start(gw: &Gateway) -> Result<Monitor> {
        let path = socket_path(&gw.pins.root);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("removing {}", path.display()));
            }
            _ => {}
        }
        let listener = UnixListener::from(
            seqpacket(&path, true).with_context(|| format!("listening at {}", path.display()))?,
        );
        listener.set_nonblocking(true)?;
        let listener = tokio::net::UnixListener::from_std(listener)?;
        let (rx, tx) = UnixDatagram::pair().context("a socket pair for the events")?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        events::send_to(tx.try_clone()?)?;
        let ring = match gw.fdb_events() {
            // SAFETY: the AsyncFd owns the ring, whose fd stays open and
            // the same for as long.
            Ok(r) => Some(unsafe { AsyncFd::register_with_interest(r, Interest::READABLE) }?),
            Err(e) => {
                log::warn!("vtep monitor gets no datapath events: {e}");
                None
            }
        };
        let mut m = Monitor {
            path,
            listener,
            clients: Clients::default(),
            inbox: tokio::net::UnixDatagram::from_std(rx)?,
            inbox_tx: Arc::new(tx),
            ring,
            lost_told: gw.monitor_lost(),
            engine_lost: 0,
            learned: Vec::new(),
            learned_overflow: false,
            lost_for_ageing: gw.monitor_lost(),
        };
        // What the ring holds was learned while no daemon read it: history
        // nobody was watching.
        m.drain_ring();
        Ok(m)
    }

    /// Serves until there is something to do, and does it: a new client,
    /// events from the ring, the engine, the follower or a CLI.
    pub async fn serve(&mut self) {
        tokio::select! {
            conn = self.listener.accept() => match conn {
                Ok((conn, _)) => self.accept(conn),
                Err(e) => log::warn!("vtep monitor: accepting a client: {e}"),
            },
            ready = self.inbox.readable() => {
                if ready.is_ok() {
                    self.drain_inbox();
                }
            }
            _ = ring_readable(self.ring.as_ref()) => {
                self.drain_ring();
            }
        }
    }

    fn accept(&mut self, conn: tokio::net::UnixStream) {
        let Ok(conn) = conn.into_std() else { return };
        let _ = conn.set_nonblocking(true);
        // Root may exceed net.core.wmem_max; without it, the default.
        set_send_buffer(&conn, libc::SO_SNDBUFFORCE, CLIENT_BUFFER);
        let sock = Arc::new(conn);
        self.clients.add(sock.clone());
        tokio::spawn(read_client(sock, self.inbox_tx.clone()));
    }

    /// Takes every record the ring holds, and passes them on.
    fn drain_ring(&mut self) {
        loop {
            let mut batch = Vec::with_capacity(BATCH);
            if let Some(ring) = self.ring.as_mut() {
                let ring = ring.get_mut();
                while batch.len() < BATCH
                    && let Some(item) = ring.next()
                {
                    if let Some(e) = FdbEvent::from_bytes(&item) {
                        batch.push(e);
                    }
                }
            }
            let more = batch.len() == BATCH;
            self.publish(&batch);
            if !more {
                return;
            }
        }
    }

    fn drain_inbox(&mut self) {
        let mut batch = Vec::new();
        let mut buf = [0u8; EVENT_LEN + 1];
        while let Ok(n) = self.inbox.try_recv(&mut buf) {
            if let Some(e) = FdbEvent::from_bytes(&buf[..n]) {
                batch.push(e);
            }
            if batch.len() == BATCH {
                self.publish(&std::mem::take(&mut batch));
            }
        }
        self.publish(&batch);
    }

    /// Sends `events` to every client (see [`Clients::publish`]), and
    /// keeps the new and moved MACs for ageing.
    pub fn publish(&mut self, events: &[FdbEvent]) {
        for e in events {
            if matches!(e.event_kind(), Some(EventKind::Learned | EventKind::Moved)) {
                if self.learned.len() < LEARNED_MAX {
                    self.learned.push((e.key, e.new));
                } else {
                    self.learned_overflow = true;
                }
            }
        }
        self.clients.publish(events);
    }

    /// The new and moved MACs since the last call, and whether some may
    /// have been learned without an event here (no ring read, the ring or
    /// the engine's queue full, more than were kept): for
    /// `Gateway::note_learned`. Called every tick, after [`Monitor::tell_lost`].
    pub fn take_learned(&mut self, gw: &Gateway) -> (Vec<(FdbKey, FdbEntry)>, bool) {
        let lost = gw.monitor_lost();
        let untold = self.ring.is_none()
            || std::mem::take(&mut self.learned_overflow)
            || lost != self.lost_for_ageing;
        self.lost_for_ageing = lost;
        (std::mem::take(&mut self.learned), untold)
    }

    /// Tells every client of the events lost since it was last told: the
    /// ring's, and the AF_XDP engine's and the follower's (added to the
    /// gateway's count here). Called every tick.
    pub fn tell_lost(&mut self, gw: &mut Gateway) {
        let engine = events::lost();
        if engine > self.engine_lost {
            if let Err(e) = gw.add_monitor_lost(0, engine - self.engine_lost) {
                log::debug!("counting lost FDB events: {e}");
            }
            self.engine_lost = engine;
        }
        let lost = gw.monitor_lost();
        if lost <= self.lost_told {
            return;
        }
        self.clients.lost(lost - self.lost_told);
        self.lost_told = lost;
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("removing {}: {e}", self.path.display());
        }
    }
}

/// Waits until the ring has records (its readiness cleared: the caller
/// takes them all); never, without a ring.
async fn ring_readable(ring: Option<&AsyncFd<RingBuf<MapData>>>) {
    match ring {
        Some(r) => match r.readable().await {
            Ok(mut g) => g.clear_ready(),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Reads what a client sends (a CLI's events) until it closes, and hands
/// the events to the monitor's inbox.
async fn read_client(sock: Arc<UnixStream>, inbox: Arc<UnixDatagram>) {
    // SAFETY: the AsyncFd owns (a reference to) the connection, whose fd
    // stays open and the same for as long.
    let Ok(fd) = (unsafe { AsyncFd::register_with_interest(sock.clone(), Interest::READABLE) })
    else {
        return;
    };
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let Ok(mut guard) = fd.readable().await else {
            return;
        };
        // SAFETY: a valid fd and buffer.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        match n {
            0 => return,
            n if n < 0 => {
                if io::Error::last_os_error().kind() == io::ErrorKind::WouldBlock {
                    guard.clear_ready();
                    continue;
                }
                return;
            }
            n => {
                if let Some(Message::Events(evs)) = Message::decode(&buf[..n as usize]) {
                    for e in evs {
                        let _ = inbox.send(&e.to_bytes());
                    }
                }
            }
        }
    }
}

/// How a CLI process tells the daemon's monitor of the changes it makes:
/// best effort (no daemon, no monitor, no error), never waiting, a
/// message per [`BATCH`] events.
#[derive(Default)]
pub struct Reporter {
    /// None until first used; then the connection, if there is a daemon.
    sock: Option<Option<UnixStream>>,
    pending: Vec<FdbEvent>,
}

impl Reporter {
    /// Whether the daemon of the gateway at `pin_path` listens (asked once).
    pub fn connected(&mut self, pin_path: &Path) -> bool {
        self.sock
            .get_or_insert_with(|| {
                let sock = connect(pin_path).ok()?;
                // Nothing comes back: the daemon's writes to it fail at once.
                let _ = sock.shutdown(std::net::Shutdown::Read);
                Some(sock)
            })
            .is_some()
    }

    /// Queues `event` for the daemon at `pin_path`, sending a full batch.
    pub fn report(&mut self, pin_path: &Path, event: FdbEvent) {
        if !self.connected(pin_path) {
            return;
        }
        self.pending.push(event);
        if self.pending.len() >= BATCH {
            self.flush();
        }
    }

    /// Sends what is queued.
    pub fn flush(&mut self) {
        let events = std::mem::take(&mut self.pending);
        if let Some(Some(sock)) = &self.sock
            && !events.is_empty()
        {
            let _ = send_now(sock, &Message::Events(events).encode());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use vtep_common::{FDB_F_LEARNED, FdbEntry, FdbKey, event::EventKind};

    use super::*;

    fn event(i: u8) -> FdbEvent {
        FdbEvent::new(
            EventKind::Learned,
            FdbKey::new(100, [2, 0, 0, 0, 0, i]),
            FdbEntry::default(),
            FdbEntry::local(3, FDB_F_LEARNED, 7),
            7,
        )
    }

    #[test]
    fn messages_round_trip() {
        for m in [
            Message::Events(vec![event(1)]),
            Message::Events((0..BATCH as u8).map(event).collect()),
            Message::Lost(Lost::Client, 12),
            Message::Lost(Lost::Datapath, u64::MAX),
        ] {
            let b = m.encode();
            assert!(b.len() <= MAX_MESSAGE);
            assert_eq!(Message::decode(&b), Some(m));
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        let b = Message::Events(vec![event(1), event(2)]).encode();
        assert_eq!(Message::decode(&b[..b.len() - 1]), None);
        assert_eq!(Message::decode(&b[..4]), None);
        let mut lost = Message::Lost(Lost::Client, 1).encode();
        lost[1] = 9;
        assert_eq!(Message::decode(&lost), None);
        lost[0] = b'X';
        assert_eq!(Message::decode(&lost), None);
    }

    /// A client that does not read loses events, never the daemon's time,
    /// and hears how many it lost before the next events it gets: what it
    /// received and what it was told it lost add up to what was sent.
    #[test]
    fn a_slow_client_is_told_what_it_lost() {
        let (daemon_end, client_end) = seqpacket_pair();
        daemon_end.set_nonblocking(true).unwrap();
        set_send_buffer(&daemon_end, libc::SO_SNDBUF, 64 * 1024);
        let mut clients = Clients::default();
        clients.add(Arc::new(daemon_end));
        let sent = 10_000;
        let events: Vec<FdbEvent> = (0..sent).map(|i| event(i as u8)).collect();
        clients.publish(&events);
        assert!(
            clients.0[0].dropped > 0,
            "a 64 KiB buffer took {sent} events"
        );

        let (mut received, mut lost) = (0, 0);
        let read = |received: &mut u64, lost: &mut u64| {
            let mut buf = vec![0u8; MAX_MESSAGE];
            client_end.set_nonblocking(true).unwrap();
            while let Ok(n) = (&client_end).read(&mut buf) {
                match Message::decode(&buf[..n]) {
                    Some(Message::Events(e)) => *received += e.len() as u64,
                    Some(Message::Lost(Lost::Client, n)) => *lost += n,
                    m => panic!("unexpected {m:?}"),
                }
            }
        };
        read(&mut received, &mut lost);
        assert_eq!(lost, 0, "told with the next events it gets, not before");
        clients.publish(&events[..1]);
        read(&mut received, &mut lost);
        assert_eq!(
            received + lost,
            sent + 1,
            "received {received}, lost {lost}"
        );
        assert!(lost > 0);
        assert_eq!(clients.0[0].dropped, 0);

        // A client that went away is forgotten.
        drop(client_end);
        clients.publish(&events[..1]);
        assert!(clients.0.is_empty());
    }

    fn seqpacket_pair() -> (UnixStream, UnixStream) {
        let mut fds = [0; 2];
        // SAFETY: a valid array of two fds to write into.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        // SAFETY: two new fds we own.
        unsafe {
            (
                UnixStream::from_raw_fd(fds[0]),
                UnixStream::from_raw_fd(fds[1]),
            )
        }
    }

    #[test]
    fn the_socket_sits_beside_the_run_lock() {
        assert_eq!(
            socket_path(Path::new("/sys/fs/bpf/vtep")),
            Path::new("/run/vtep/%sys%fs%bpf%vtep.monitor")
        );
    }
}
