//! The bridge FDB (`RTM_*NEIGH` of family `AF_BRIDGE`), as `bridge fdb`
//! shows it: a vxlan device's own entries and its bridge's.

use std::net::IpAddr;

use netlink_packet_route::{
    AddressFamily,
    neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState},
};

use super::neigh::neighbour_ip;

/// One bridge-FDB entry, from an `AF_BRIDGE` neighbour message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdbRecord {
    /// The device the entry is on (a vxlan device, a bridge port).
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// `NTF_SELF`: the device's own FDB (a vxlan device's remotes).
    pub own: bool,
    /// The bridge's FDB, for its port `ifindex` (`NDA_MASTER` present; the
    /// bridge does not set `NTF_MASTER` in what it sends).
    pub master: bool,
    /// `NDA_MASTER`: the bridge, on `master` entries.
    pub bridge: Option<u32>,
    /// `NUD_PERMANENT`: on a bridge, one of its own addresses (delivered to
    /// the host, not forwarded).
    pub permanent: bool,
    pub dst: Option<IpAddr>,
    pub vni: Option<u32>,
    pub port: Option<u16>,
}

/// Reads a neighbour message of family `AF_BRIDGE`; `None` for other
/// families (ARP, ND) and entries without a MAC.
pub fn parse_fdb(msg: &NeighbourMessage) -> Option<FdbRecord> {
    if msg.header.family != AddressFamily::Bridge {
        return None;
    }
    let mut rec = FdbRecord {
        ifindex: msg.header.ifindex,
        mac: [0; 6],
        own: msg.header.flags.contains(NeighbourFlags::Own),
        master: msg.header.flags.contains(NeighbourFlags::Controller),
        bridge: None,
        permanent: msg.header.state == NeighbourState::Permanent,
        dst: None,
        vni: None,
        port: None,
    };
    let mut has_mac = false;
    for a in &msg.attributes {
        match a {
            NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                rec.mac.copy_from_slice(l);
                has_mac = true;
            }
            NeighbourAttribute::Destination(d) => rec.dst = neighbour_ip(d),
            NeighbourAttribute::Vni(v) => rec.vni = Some(*v),
            NeighbourAttribute::Port(p) => rec.port = Some(*p),
            NeighbourAttribute::Controller(m) => rec.bridge = Some(*m),
            _ => {}
        }
    }
    rec.master |= rec.bridge.is_some();
    has_mac.then_some(rec)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use netlink_packet_route::neighbour::NeighbourAddress;

    use super::*;

    const MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];

    fn fdb(flags: NeighbourFlags, attrs: Vec<NeighbourAttribute>) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Bridge;
        m.header.ifindex = 10;
        m.header.flags = flags;
        m.header.state = NeighbourState::Noarp;
        m.attributes = attrs;
        m
    }

    #[test]
    fn vxlan_entries_are_read() {
        let vtep = Ipv4Addr::new(198, 18, 0, 2);
        let m = fdb(
            NeighbourFlags::Own | NeighbourFlags::ExtLearned,
            vec![
                NeighbourAttribute::LinkLayerAddress(MAC.to_vec()),
                // What the kernel sends for AF_BRIDGE: 4 bytes, no family.
                NeighbourAttribute::Destination(NeighbourAddress::Other(vtep.octets().to_vec())),
                NeighbourAttribute::Vni(100),
                NeighbourAttribute::Port(4789),
            ],
        );
        assert_eq!(
            parse_fdb(&m),
            Some(FdbRecord {
                ifindex: 10,
                mac: MAC,
                own: true,
                master: false,
                bridge: None,
                permanent: false,
                dst: Some(IpAddr::V4(vtep)),
                vni: Some(100),
                port: Some(4789),
            })
        );
    }

    #[test]
    fn bridge_entries_are_master_entries() {
        let mut m = fdb(
            NeighbourFlags::empty(),
            vec![
                NeighbourAttribute::LinkLayerAddress(MAC.to_vec()),
                NeighbourAttribute::Controller(11),
            ],
        );
        m.header.state = NeighbourState::Permanent;
        let rec = parse_fdb(&m).expect("a bridge FDB record");
        assert!(rec.master && rec.permanent && !rec.own);
        assert_eq!(rec.bridge, Some(11));
    }

    #[test]
    fn other_families_and_entries_without_a_mac_are_not_fdb_records() {
        let mut arp = fdb(
            NeighbourFlags::empty(),
            vec![NeighbourAttribute::LinkLayerAddress(MAC.to_vec())],
        );
        arp.header.family = AddressFamily::Inet;
        assert_eq!(parse_fdb(&arp), None);
        assert_eq!(parse_fdb(&fdb(NeighbourFlags::Own, vec![])), None);
    }
}
