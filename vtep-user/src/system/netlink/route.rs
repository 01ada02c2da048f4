//! Routes (`RTM_GETROUTE`): how the kernel reaches a remote VTEP.

use std::{io, net::IpAddr};

use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    route::{RouteAddress, RouteAttribute, RouteMessage},
};

use super::Rtnl;

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
        let mut msg = RouteMessage::default();
        let (family, addr, len) = match dst {
            IpAddr::V4(v4) => (AddressFamily::Inet, RouteAddress::Inet(v4), 32),
            IpAddr::V6(v6) => (AddressFamily::Inet6, RouteAddress::Inet6(v6), 128),
        };
        msg.header.address_family = family;
        msg.header.destination_prefix_length = len;
        msg.attributes.push(RouteAttribute::Destination(addr));
        let reply = self.request(RouteNetlinkMessage::GetRoute(msg), 0)?;
        reply
            .iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => route_to(r, dst),
                _ => None,
            })
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no route to {dst}")))
    }
}

/// Reads a route message of the reply to `ip route get DST`: its output
/// interface and gateway (`dst` itself when it has none: on-link). `None`
/// without an output interface.
pub fn route_to(r: &RouteMessage, dst: IpAddr) -> Option<RouteTo> {
    let mut oif = None;
    let mut gw = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => gw = Some(IpAddr::V4(*g)),
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => gw = Some(IpAddr::V6(*g)),
            _ => {}
        }
    }
    Some(RouteTo {
        oif: oif?,
        next_hop: gw.unwrap_or(dst),
    })
}
