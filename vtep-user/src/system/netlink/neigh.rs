//! IP neighbours (`RTM_*NEIGH` of family `AF_INET`/`AF_INET6`): the next
//! hops towards remote VTEPs.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourExtFlags, NeighbourFlags, NeighbourMessage,
        NeighbourState,
    },
};

use super::Rtnl;

/// `NDA_DST`: 4 or 16 bytes, whatever the family (the bridge FDB's comes
/// undecoded).
pub(super) fn neighbour_ip(d: &NeighbourAddress) -> Option<IpAddr> {
    match d {
        NeighbourAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        NeighbourAddress::Other(b) if b.len() == 4 => {
            Some(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
        }
        NeighbourAddress::Other(b) if b.len() == 16 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            Some(IpAddr::V6(Ipv6Addr::from(o)))
        }
        _ => None,
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

impl Rtnl {
    /// Adds a managed neighbour entry for `ip` on `ifindex`: the kernel
    /// resolves it now and keeps it resolved. An existing entry is left as
    /// it is.
    pub fn neigh_managed(&mut self, ip: IpAddr, ifindex: u32) -> io::Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family(ip);
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

    /// Asks the kernel to resolve neighbour `ip` on `ifindex` now
    /// (`NTF_USE`: the entry is used, as a packet to it would use it),
    /// creating the entry if there is none: an existing entry that failed
    /// is probed again, which a managed entry's creation does not do.
    pub fn neigh_probe(&mut self, ip: IpAddr, ifindex: u32) -> io::Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family(ip);
        msg.header.ifindex = ifindex;
        msg.header.flags = NeighbourFlags::Use;
        msg.attributes
            .push(NeighbourAttribute::Destination(match ip {
                IpAddr::V4(v4) => NeighbourAddress::Inet(v4),
                IpAddr::V6(v6) => NeighbourAddress::Inet6(v6),
            }));
        self.request(
            RouteNetlinkMessage::NewNeighbour(msg),
            NLM_F_CREATE | NLM_F_ACK,
        )
        .map(drop)
    }

    /// The link-layer address of neighbour `ip` on `ifindex`, when the
    /// kernel holds a usable one (reachable, stale, delay, probe, permanent).
    pub fn neighbour(&mut self, ip: IpAddr, ifindex: u32) -> io::Result<Option<[u8; 6]>> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family(ip);
        msg.header.ifindex = ifindex;
        let reply = self.request(RouteNetlinkMessage::GetNeighbour(msg), NLM_F_DUMP)?;
        Ok(reply
            .iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewNeighbour(n) => neighbour_lladdr(n, ip, ifindex),
                _ => None,
            })
            .flatten())
    }
}

/// Reads a neighbour message of a dump: `None` when it is not the entry
/// of `ip` on `ifindex`; for that entry, its link-layer address when the
/// kernel holds a usable one (reachable, stale, delay, probe, permanent).
pub fn neighbour_lladdr(n: &NeighbourMessage, ip: IpAddr, ifindex: u32) -> Option<Option<[u8; 6]>> {
    if n.header.ifindex != ifindex {
        return None;
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
    for a in &n.attributes {
        match a {
            NeighbourAttribute::Destination(d) => dst = neighbour_ip(d),
            NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                lladdr = Some([l[0], l[1], l[2], l[3], l[4], l[5]])
            }
            _ => {}
        }
    }
    (dst == Some(ip)).then(|| lladdr.filter(|_| usable))
}
