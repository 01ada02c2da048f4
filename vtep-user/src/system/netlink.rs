//! The few rtnetlink requests vtep makes, on netlink-packet-route:
//! - a link's veth peer (`IFLA_LINK` and `IFLA_LINK_NETNSID`), to make sure
//!   the far end of a veth can take XDP frames;
//! - the netns id of a namespace file (`RTM_GETNSID` with `NETNSA_FD`), to
//!   find the namespace that peer lives in;
//! - a managed neighbour (`NTF_EXT_MANAGED`) for each remote VTEP's next hop,
//!   so the kernel keeps it resolved and `bpf_fib_lookup` finds it.

use std::{io, net::IpAddr, os::fd::AsRawFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourMessage},
    nsid::{NsidAttribute, NsidMessage},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// A synchronous rtnetlink socket in the calling thread's namespace.
pub struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    pub fn new() -> io::Result<Self> {
        let mut sock = Socket::new(NETLINK_ROUTE)?;
        sock.bind_auto()?;
        sock.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Sends one request and collects the replies until the kernel is done.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.sock.send(&buf, 0)?;

        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut off = 0;
            while off < data.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = msg.header.length as usize;
                let multi = msg.header.flags & netlink_packet_core::NLM_F_MULTIPART != 0;
                match msg.payload {
                    NetlinkPayload::InnerMessage(m) => {
                        out.push(m);
                        if !multi {
                            return Ok(out);
                        }
                    }
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(_) => Err(e.to_io()),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(out),
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                off += len;
            }
        }
    }

    /// The link with `ifindex`.
    pub fn link(&mut self, ifindex: u32) -> io::Result<LinkMessage> {
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        let reply = self.request(RouteNetlinkMessage::GetLink(msg), 0)?;
        reply
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l),
                _ => None,
            })
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no link {ifindex}")))
    }

    /// The MAC address and MTU of link `ifindex`.
    pub fn link_mac_mtu(&mut self, ifindex: u32) -> io::Result<([u8; 6], u32)> {
        let link = self.link(ifindex)?;
        let mut mac = [0u8; 6];
        let mut mtu = 1500;
        for a in link.attributes {
            match a {
                LinkAttribute::Address(a) if a.len() == 6 => mac.copy_from_slice(&a),
                LinkAttribute::Mtu(m) => mtu = m,
                _ => {}
            }
        }
        Ok((mac, mtu))
    }

    /// Whether link `ifindex` has carrier (for a veth: its peer is up).
    pub fn link_carrier(&mut self, ifindex: u32) -> io::Result<bool> {
        let link = self.link(ifindex)?;
        Ok(link
            .attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Carrier(c) if *c != 0)))
    }

    /// The netns id (in this namespace) of the namespace open at `fd`, or
    /// `None` when that namespace has none (it is not linked to this one).
    pub fn nsid_of(&mut self, fd: &impl AsRawFd) -> io::Result<Option<i32>> {
        let mut msg = NsidMessage::default();
        msg.header.family = AddressFamily::Unspec;
        msg.attributes
            .push(NsidAttribute::Fd(fd.as_raw_fd() as u32));
        let reply = self.request(RouteNetlinkMessage::GetNsId(msg), 0)?;
        Ok(reply.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewNsId(n) => n.attributes.into_iter().find_map(|a| match a {
                NsidAttribute::Id(id) if id >= 0 => Some(id),
                _ => None,
            }),
            _ => None,
        }))
    }

    /// Adds a managed neighbour entry for `ip` on `ifindex`: the kernel
    /// resolves it now and keeps it resolved. An existing entry is left as
    /// it is.
    pub fn neigh_managed(&mut self, ip: IpAddr, ifindex: u32) -> io::Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.ifindex = ifindex;
        msg.attributes
            .push(NeighbourAttribute::Destination(match ip {
                IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
                IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
            }));
        msg.attributes
            .push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed));
        match self.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_ACK,
        ) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r.map(|_| ()),
        }
    }
}

/// What `IFLA_LINK*` says about a veth's peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VethPeer {
    pub ifindex: u32,
    /// The peer's namespace as a netns id of ours; `None`: our namespace.
    pub netnsid: Option<i32>,
}

/// The peer of `ifindex` if it is a veth, else `None`.
pub fn veth_peer(rtnl: &mut Rtnl, ifindex: u32) -> io::Result<Option<VethPeer>> {
    let link = rtnl.link(ifindex)?;
    let mut is_veth = false;
    let mut peer = None;
    let mut netnsid = None;
    for a in &link.attributes {
        match a {
            LinkAttribute::LinkInfo(infos) => {
                is_veth = infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth)));
            }
            LinkAttribute::Link(p) => peer = Some(*p),
            LinkAttribute::LinkNetNsId(id) => netnsid = Some(*id),
            _ => {}
        }
    }
    Ok(match (is_veth, peer) {
        (true, Some(ifindex)) => Some(VethPeer { ifindex, netnsid }),
        _ => None,
    })
}

/// How the kernel routes to a remote VTEP: out of `oif`, to `next_hop` (the
/// gateway, or the VTEP itself when it is on-link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteTo {
    pub oif: u32,
    pub next_hop: IpAddr,
}

impl Rtnl {
    /// `ip route get DST`.
    pub fn route_get(&mut self, dst: IpAddr) -> io::Result<RouteTo> {
        use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
        let mut msg = RouteMessage::default();
        let (family, addr, len) = match dst {
            IpAddr::V4(v4) => (AddressFamily::Inet, RouteAddress::Inet(v4), 32),
            IpAddr::V6(v6) => (AddressFamily::Inet6, RouteAddress::Inet6(v6), 128),
        };
        msg.header.address_family = family;
        msg.header.destination_prefix_length = len;
        msg.attributes.push(RouteAttribute::Destination(addr));
        let reply = self.request(RouteNetlinkMessage::GetRoute(msg), 0)?;
        for m in reply {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            let mut oif = None;
            let mut gw = None;
            for a in r.attributes {
                match a {
                    RouteAttribute::Oif(i) => oif = Some(i),
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => gw = Some(IpAddr::V4(g)),
                    RouteAttribute::Gateway(RouteAddress::Inet6(g)) => gw = Some(IpAddr::V6(g)),
                    _ => {}
                }
            }
            if let Some(oif) = oif {
                return Ok(RouteTo {
                    oif,
                    next_hop: gw.unwrap_or(dst),
                });
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no route to {dst}"),
        ))
    }

    /// The link-layer address of neighbour `ip` on `ifindex`, when the
    /// kernel holds a usable one (reachable, stale, delay, probe, permanent).
    pub fn neighbour(&mut self, ip: IpAddr, ifindex: u32) -> io::Result<Option<[u8; 6]>> {
        use netlink_packet_core::NLM_F_DUMP;
        use netlink_packet_route::neighbour::NeighbourState;
        let mut msg = NeighbourMessage::default();
        msg.header.family = match ip {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        msg.header.ifindex = ifindex;
        let reply = self.request(RouteNetlinkMessage::GetNeighbour(msg), NLM_F_DUMP)?;
        for m in reply {
            let RouteNetlinkMessage::NewNeighbour(n) = m else {
                continue;
            };
            if n.header.ifindex != ifindex {
                continue;
            }
            let usable = matches!(
                n.header.state,
                NeighbourState::Reachable
                    | NeighbourState::Stale
                    | NeighbourState::Delay
                    | NeighbourState::Probe
                    | NeighbourState::Permanent
            );
            let mut dst = None;
            let mut lladdr = None;
            for a in n.attributes {
                match a {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(v4)) => {
                        dst = Some(IpAddr::V4(v4))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(v6)) => {
                        dst = Some(IpAddr::V6(v6))
                    }
                    NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                        lladdr = Some([l[0], l[1], l[2], l[3], l[4], l[5]])
                    }
                    _ => {}
                }
            }
            if dst == Some(ip) {
                return Ok(if usable { lladdr } else { None });
            }
        }
        Ok(None)
    }
}
