//! vtep's rtnetlink layer, on netlink-packet-route: the sockets, the one
//! walker over a received datagram, requests and dumps ([`Rtnl`], [`dump`]),
//! the event socket ([`Events`]), and the decoding of what the kernel sends
//! (`link`, `fdb`, `neigh`, `route`). What the messages mean to vtep is
//! decided by the callers (the follower, the control layer), as FRR's zebra
//! keeps its socket loop (`kernel_netlink.c`) and decoding (`rt_netlink.c`)
//! apart from its decisions (`zebra_vxlan.c`).
//!
//! The requests vtep makes:
//! - a link's veth peer (`IFLA_LINK` and `IFLA_LINK_NETNSID`), to make sure
//!   the far end of a veth can take XDP frames;
//! - the netns id of a namespace file (`RTM_GETNSID` with `NETNSA_FD`), to
//!   find the namespace that peer lives in;
//! - a managed neighbour (`NTF_EXT_MANAGED`) for each remote VTEP's next hop,
//!   so the kernel keeps it resolved and `bpf_fib_lookup` finds it;
//! - the route and the neighbour towards a remote VTEP;
//! - a VNI's multicast group joined on the uplink as an `IFA_F_MCAUTOJOIN`
//!   address (`addr`), which outlives the daemon;
//! - dumps of the links and of the bridge FDB, for the follower.

mod addr;
mod fdb;
mod link;
mod neigh;
mod route;

use std::{
    io,
    os::fd::{AsRawFd as _, RawFd},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use netlink_packet_core::{
    DecodeError, ErrorBuffer, ErrorMessage, NLM_F_DUMP, NLM_F_MULTIPART, NLM_F_REQUEST,
    NLMSG_ALIGNTO, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NetlinkBuffer,
    NetlinkHeader, NetlinkMessage, NetlinkPayload, Parseable as _,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

pub use addr::group_address;
pub use fdb::{FdbRecord, parse_fdb};
pub use link::{
    Link, VethPeer, Vxlan, carrier, mac_mtu, nsid, parse_link, veth_peer, veth_peer_of,
};
pub use neigh::neighbour_lladdr;
pub use route::{RouteTo, route_to};

/// `NLMSG_HDRLEN`: the `struct nlmsghdr` in front of every message.
pub const NLMSG_HDRLEN: usize = nlmsg_align(size_of::<libc::nlmsghdr>());

/// `NLMSG_ALIGN`: where the message after one of `len` bytes starts (each
/// message of a datagram starts on a multiple of `NLMSG_ALIGNTO`).
pub const fn nlmsg_align(len: usize) -> usize {
    let to = NLMSG_ALIGNTO as usize;
    (len + to - 1) & !(to - 1)
}

/// Receive buffer asked for a dump's socket (best effort).
const DUMP_RCVBUF: usize = 4 << 20;
/// What one `recv` of a request's or dump's reply can take (the kernel's
/// datagrams are far smaller).
const REPLY_BUF: usize = 1 << 20;
/// What one `recv` of the event socket can take.
const EVENT_BUF: usize = 1 << 18;
/// A reply (a dump, mostly) still coming after this is given up.
const REPLY_DEADLINE: Duration = Duration::from_secs(60);

/// Where a reply stands after one of its datagrams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// More datagrams follow (a dump in progress; events).
    Continues,
    /// The kernel is done: `NLMSG_DONE`, an ACK, or a message that is not
    /// part of a multipart reply.
    Done,
}

/// Walks the messages of one datagram in order (`NLMSG_OK`/`NLMSG_NEXT`),
/// handing each route message, or why it does not decode, to `each`.
/// `NLMSG_DONE` and an ACK end the walk; an `NLMSG_ERROR` with an errno is
/// that error. A datagram that ends inside a message, or a message whose
/// length is shorter than its header, is `InvalidData`, once the messages
/// before it have been handed on.
pub fn walk(
    data: &[u8],
    mut each: impl FnMut(Result<RouteNetlinkMessage, DecodeError>),
) -> io::Result<Reply> {
    let mut reply = Reply::Continues;
    let mut off = 0;
    while off < data.len() {
        let rest = &data[off..];
        let buf = NetlinkBuffer::new_checked(rest).map_err(|e| {
            invalid(format!(
                "netlink message at byte {off} of a {}-byte datagram: {e}",
                data.len()
            ))
        })?;
        let len = buf.length() as usize;
        match buf.message_type() {
            // What a done message carries (a dump's errno) is not read.
            NLMSG_DONE => return Ok(Reply::Done),
            NLMSG_ERROR => {
                let payload = buf.payload();
                let err = ErrorBuffer::new_checked(&payload)
                    .and_then(|b| ErrorMessage::parse(&b))
                    .map_err(|e| invalid(format!("netlink error message: {e}")))?;
                // Not `ErrorMessage::to_io`: its `abs` overflows on
                // i32::MIN (found by the fuzzer).
                return match err.code.map(|c| c.get().checked_abs()) {
                    None => Ok(Reply::Done),
                    Some(Some(errno)) => Err(io::Error::from_raw_os_error(errno)),
                    Some(None) => Err(invalid(format!(
                        "netlink error message with errno {}",
                        i32::MIN
                    ))),
                };
            }
            NLMSG_NOOP | NLMSG_OVERRUN => {}
            _ => {
                if buf.flags() & NLM_F_MULTIPART == 0 {
                    reply = Reply::Done;
                }
                each(decode(&rest[..len]));
            }
        }
        off += nlmsg_align(len);
    }
    Ok(reply)
}

/// The route message of one whole netlink message.
fn decode(msg: &[u8]) -> Result<RouteNetlinkMessage, DecodeError> {
    match NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg)?.payload {
        NetlinkPayload::InnerMessage(m) => Ok(m),
        other => Err(format!(
            "message type {} is not a route message",
            other.message_type()
        )
        .into()),
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn skip_undecodable(e: &DecodeError) {
    log::debug!("netlink: skipping a message that does not parse: {e}");
}

/// `SO_RCVBUFFORCE` (root may exceed `net.core.rmem_max`), else `SO_RCVBUF`.
fn set_rcvbuf(sock: &Socket, bytes: usize) -> io::Result<()> {
    let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid socket and a c_int option value.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return Ok(());
        }
    }
    Err(io::Error::last_os_error())
}

/// A synchronous rtnetlink socket in the calling thread's namespace, for
/// requests and dumps.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    pub fn new() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl {
            sock,
            seq: 0,
            buf: vec![0; REPLY_BUF],
        })
    }

    /// Sends `msg` and hands each message of the reply to `each` until the
    /// kernel is done.
    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        mut each: impl FnMut(Result<RouteNetlinkMessage, DecodeError>),
    ) -> io::Result<()> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        req.finalize();
        let mut out = vec![0u8; req.buffer_len()];
        req.serialize(&mut out);
        self.sock.send(&out, 0)?;

        let deadline = Instant::now() + REPLY_DEADLINE;
        loop {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the kernel's reply did not end within a minute",
                ));
            }
            let n = match self.sock.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e),
            };
            if walk(&self.buf[..n], &mut each)? == Reply::Done {
                return Ok(());
            }
        }
    }

    /// Sends one request and collects the replies until the kernel is done;
    /// a reply that does not decode fails the request.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        let mut out = Vec::new();
        let mut undecodable = None;
        self.exchange(msg, flags, |m| match m {
            Ok(m) => out.push(m),
            Err(e) => {
                undecodable.get_or_insert(e);
            }
        })?;
        match undecodable {
            Some(e) => Err(invalid(e.to_string())),
            None => Ok(out),
        }
    }
}

/// Runs one rtnetlink dump on a socket of its own (events queued on another
/// socket wait meanwhile), handing each message to `each` as it arrives;
/// messages that do not decode are skipped.
pub fn dump(
    request: RouteNetlinkMessage,
    mut each: impl FnMut(RouteNetlinkMessage),
) -> io::Result<()> {
    let mut rtnl = Rtnl::new()?;
    // Best effort: the dump is correct with any buffer.
    let _ = set_rcvbuf(&rtnl.sock, DUMP_RCVBUF);
    rtnl.exchange(request, NLM_F_DUMP, |m| match m {
        Ok(m) => each(m),
        Err(e) => skip_undecodable(&e),
    })
}

/// A non-blocking rtnetlink socket subscribed to multicast groups: the
/// kernel's events.
pub struct Events {
    sock: Socket,
    buf: Vec<u8>,
}

impl Events {
    /// Joins `groups` (`RTNLGRP_*`) with a receive buffer of `rcvbuf` bytes.
    pub fn subscribe(groups: &[u32], rcvbuf: usize) -> anyhow::Result<Events> {
        let mut sock = Socket::new(NETLINK_ROUTE).context("opening an rtnetlink socket")?;
        sock.bind_auto().context("binding the rtnetlink socket")?;
        set_rcvbuf(&sock, rcvbuf).context("sizing the rtnetlink event socket")?;
        for &group in groups {
            sock.add_membership(group)
                .with_context(|| format!("joining rtnetlink group {group}"))?;
        }
        sock.set_non_blocking(true)?;
        Ok(Events {
            sock,
            buf: vec![0; EVENT_BUF],
        })
    }

    /// The socket, for an event loop to wait on.
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Reads one queued datagram, without waiting, and returns its route
    /// messages. `EAGAIN`: none is queued; `ENOBUFS`: the socket overran
    /// and the kernel dropped events.
    pub fn recv(&mut self) -> io::Result<Vec<RouteNetlinkMessage>> {
        let n = self.recv_datagram()?;
        Ok(messages(&self.buf[..n]))
    }

    /// Reads one queued datagram, without waiting, and drops it unread.
    pub fn discard(&mut self) -> io::Result<()> {
        self.recv_datagram().map(drop)
    }

    fn recv_datagram(&mut self) -> io::Result<usize> {
        self.sock.recv(&mut &mut self.buf[..], libc::MSG_DONTWAIT)
    }
}

/// The route messages of one event datagram; those that do not decode are
/// skipped, and a datagram cut short loses what follows the cut (said in
/// the log).
fn messages(data: &[u8]) -> Vec<RouteNetlinkMessage> {
    let mut out = Vec::new();
    let walked = walk(data, |m| match m {
        Ok(m) => out.push(m),
        Err(e) => skip_undecodable(&e),
    });
    if let Err(e) = walked {
        log::warn!("netlink: the rest of an event datagram is lost: {e}");
    }
    out
}

#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;
