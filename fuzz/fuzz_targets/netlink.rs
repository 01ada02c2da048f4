//! What the follower and the control layer read from rtnetlink: any
//! datagram is walked message by message, each decoded or refused, and
//! every message read by vtep's parsers (links, the bridge FDB and what the
//! follower makes of it, neighbours, routes, netns ids), never a panic.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use netlink_packet_route::RouteNetlinkMessage;
use vtep::{control::follow::Tables, system::netlink};

/// The captured fixtures' namespace: `br100` (2) with `vxlan100` (3, VNI
/// 100, port 4789) and a port (4).
fn tables() -> Tables {
    let mut t = Tables::default();
    t.devices.insert(3, (100, 4789));
    t.bridges.insert(2, 100);
    t.ports.insert(4, 2);
    t.vxlan_devices.insert(3);
    t
}

fuzz_target!(|data: &[u8]| {
    let tables = tables();
    let dst = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));
    let _ = netlink::walk(data, |m| match m {
        Ok(RouteNetlinkMessage::NewNeighbour(n) | RouteNetlinkMessage::DelNeighbour(n)) => {
            if let Some(r) = netlink::parse_fdb(&n) {
                let _ = tables.classify(&r);
                if let Some(ip) = r.dst {
                    let _ = netlink::neighbour_lladdr(&n, ip, n.header.ifindex);
                }
            }
            let _ = netlink::neighbour_lladdr(&n, dst, n.header.ifindex);
        }
        Ok(RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l)) => {
            let _ = netlink::parse_link(&l);
            let _ = netlink::veth_peer_of(&l);
            let _ = netlink::mac_mtu(&l);
            let _ = netlink::carrier(&l);
        }
        Ok(RouteNetlinkMessage::NewRoute(r)) => {
            let _ = netlink::route_to(&r, dst);
        }
        Ok(RouteNetlinkMessage::NewNsId(n)) => {
            let _ = netlink::nsid(&n);
        }
        Ok(_) | Err(_) => {}
    });
});
