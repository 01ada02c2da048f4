//! What a bridge-FDB entry means for vtep's maps ([`Tables::classify`]),
//! given the followed devices, bridges and ports: the decision zebra makes
//! in `zebra_vxlan.c`, as a pure function.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use crate::{model::addr::Mac, system::netlink::FdbRecord};

/// What a bridge-FDB entry means for vtep's maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mirror {
    /// `mac` in `vni` is behind the remote VTEP `vtep`.
    Remote {
        vni: u32,
        mac: [u8; 6],
        vtep: IpAddr,
    },
    /// `vtep` is in the flood list of `vni`.
    Flood { vni: u32, vtep: IpAddr },
    /// `group` is a multicast group of `vni` (a `group` device's default
    /// `00:00:00:00:00:00 dst GROUP` entry): the VNI's group, not a
    /// flood-list member.
    Group { vni: u32, group: IpAddr },
    /// `mac` in `vni` is behind the local (bridge) port `port`.
    Local { vni: u32, mac: [u8; 6], port: u32 },
    /// Not mirrored, and why (the kernel keeps forwarding it).
    Ignore(&'static str),
}

/// The followed devices, bridges and ports: what [`Tables::classify`]
/// needs to place an FDB entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tables {
    /// Followed vxlan device → (VNI, UDP port).
    pub devices: BTreeMap<u32, (u32, u16)>,
    /// Bridge of a followed device → its VNI.
    pub bridges: BTreeMap<u32, u32>,
    /// Port of such a bridge (not the vxlan device) → the bridge.
    pub ports: BTreeMap<u32, u32>,
    /// Every vxlan device (followed or not): their bridge entries are not
    /// local MACs.
    pub vxlan_devices: BTreeSet<u32>,
    /// The underlay has a local IPv4 / IPv6 address: remote VTEPs and
    /// groups of a family without one cannot be sent to by vtep.
    pub families: Families,
}

/// Which address families the underlay has a local address of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Families {
    pub v4: bool,
    pub v6: bool,
}

impl Families {
    /// The underlay has a local address of `ip`'s family.
    pub fn has(&self, ip: &IpAddr) -> bool {
        match ip {
            IpAddr::V4(_) => self.v4,
            IpAddr::V6(_) => self.v6,
        }
    }
}

impl Tables {
    /// What the entry `r` means for the maps.
    pub fn classify(&self, r: &FdbRecord) -> Mirror {
        if let Some(&(vni, port)) = self.devices.get(&r.ifindex)
            && !r.master
        {
            let Some(dst) = r.dst else {
                return Mirror::Ignore("vxlan entry without dst");
            };
            if r.vni.is_some_and(|v| v != vni) {
                return Mirror::Ignore("entry with a VNI of its own (NDA_VNI)");
            }
            if r.port.is_some_and(|p| p != port) {
                return Mirror::Ignore("entry with a UDP port of its own (NDA_PORT)");
            }
            if dst.is_unspecified() || is_unusable(&dst) {
                return Mirror::Ignore("destination is not a VTEP address");
            }
            if !self.families.has(&dst) {
                return Mirror::Ignore("destination of a family the underlay has no address of");
            }
            let mac = Mac(r.mac);
            if dst.is_multicast() {
                // The kernel sends the VNI's BUM frames to the group and
                // receives on it; a unicast MAC behind a group is a
                // configuration vtep does not carry.
                if mac.is_zero() {
                    return Mirror::Group { vni, group: dst };
                }
                return Mirror::Ignore("a MAC behind a multicast destination");
            }
            if mac.is_zero() {
                return Mirror::Flood { vni, vtep: dst };
            }
            if mac.is_multicast() {
                return Mirror::Ignore("multicast MAC");
            }
            return Mirror::Remote {
                vni,
                mac: r.mac,
                vtep: dst,
            };
        }
        if !r.master {
            return Mirror::Ignore("not a followed device's or bridge's entry");
        }
        if self.vxlan_devices.contains(&r.ifindex) {
            // The bridge's view of remote MACs: the vxlan device's own
            // entry carries the remote VTEP.
            return Mirror::Ignore("bridge entry on a vxlan port");
        }
        let bridge = r.bridge.or_else(|| self.ports.get(&r.ifindex).copied());
        let Some(vni) = bridge.and_then(|b| self.bridges.get(&b).copied()) else {
            return Mirror::Ignore("not a followed bridge's entry");
        };
        if r.permanent {
            return Mirror::Ignore("the bridge's own address");
        }
        let mac = Mac(r.mac);
        if mac.is_zero() || mac.is_multicast() {
            return Mirror::Ignore("not a unicast MAC");
        }
        Mirror::Local {
            vni,
            mac: r.mac,
            port: r.ifindex,
        }
    }
}

/// Destinations no remote VTEP has: loopback, and IPv6 link-local (a
/// link-local `dst` needs an interface scope the maps do not carry).
fn is_unusable(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unicast_link_local(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use netlink_packet_route::{
        AddressFamily, RouteNetlinkMessage,
        neighbour::{
            NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
        },
    };

    use super::*;
    use crate::system::netlink::parse_fdb;

    const VXLAN: u32 = 10;
    const BRIDGE: u32 = 11;
    const PORT: u32 = 12;
    const OTHER_VXLAN: u32 = 13;
    const MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
    const VTEP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

    fn tables() -> Tables {
        Tables {
            devices: [(VXLAN, (100, 4789))].into(),
            bridges: [(BRIDGE, 100)].into(),
            ports: [(PORT, BRIDGE)].into(),
            vxlan_devices: [VXLAN, OTHER_VXLAN].into(),
            families: Families { v4: true, v6: true },
        }
    }

    fn fdb(
        ifindex: u32,
        mac: [u8; 6],
        flags: NeighbourFlags,
        attrs: Vec<NeighbourAttribute>,
    ) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Bridge;
        m.header.ifindex = ifindex;
        m.header.flags = flags;
        m.header.state = NeighbourState::Noarp;
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
        m.attributes.extend(attrs);
        m
    }

    fn dst(ip: Ipv4Addr) -> NeighbourAttribute {
        NeighbourAttribute::Destination(NeighbourAddress::Other(ip.octets().to_vec()))
    }

    fn dst6(ip: Ipv6Addr) -> NeighbourAttribute {
        NeighbourAttribute::Destination(NeighbourAddress::Other(ip.octets().to_vec()))
    }

    const VTEP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    fn classify(m: &NeighbourMessage) -> Mirror {
        tables().classify(&parse_fdb(m).expect("a bridge FDB record"))
    }

    #[test]
    fn vxlan_self_entries_are_remote_macs_and_flood_members() {
        let own = NeighbourFlags::Own;
        assert_eq!(
            classify(&fdb(VXLAN, MAC, own, vec![dst(VTEP)])),
            Mirror::Remote {
                vni: 100,
                mac: MAC,
                vtep: IpAddr::V4(VTEP)
            }
        );
        // extern_learn (EVPN type-2) entries too.
        let ext = NeighbourFlags::Own | NeighbourFlags::ExtLearned;
        assert!(matches!(
            classify(&fdb(VXLAN, MAC, ext, vec![dst(VTEP)])),
            Mirror::Remote { .. }
        ));
        assert_eq!(
            classify(&fdb(VXLAN, [0; 6], own, vec![dst(VTEP)])),
            Mirror::Flood {
                vni: 100,
                vtep: IpAddr::V4(VTEP)
            }
        );
        // NDA_VNI and NDA_PORT equal to the device's are as good as absent.
        assert!(matches!(
            classify(&fdb(
                VXLAN,
                MAC,
                own,
                vec![
                    dst(VTEP),
                    NeighbourAttribute::Vni(100),
                    NeighbourAttribute::Port(4789)
                ]
            )),
            Mirror::Remote { .. }
        ));
    }

    #[test]
    fn what_vtep_cannot_represent_is_left_to_the_kernel() {
        let own = NeighbourFlags::Own;
        let cases = [
            fdb(VXLAN, MAC, own, vec![]),
            fdb(
                VXLAN,
                MAC,
                own,
                vec![dst(VTEP), NeighbourAttribute::Vni(200)],
            ),
            fdb(
                VXLAN,
                MAC,
                own,
                vec![dst(VTEP), NeighbourAttribute::Port(8472)],
            ),
            fdb(VXLAN, [1, 0, 0x5e, 0, 0, 1], own, vec![dst(VTEP)]),
            // A unicast MAC behind a group.
            fdb(VXLAN, MAC, own, vec![dst(Ipv4Addr::new(239, 1, 1, 1))]),
            // Addresses no remote VTEP has.
            fdb(VXLAN, MAC, own, vec![dst(Ipv4Addr::UNSPECIFIED)]),
            fdb(VXLAN, MAC, own, vec![dst(Ipv4Addr::LOCALHOST)]),
            fdb(VXLAN, MAC, own, vec![dst6(Ipv6Addr::UNSPECIFIED)]),
            fdb(VXLAN, MAC, own, vec![dst6(Ipv6Addr::LOCALHOST)]),
            fdb(
                VXLAN,
                MAC,
                own,
                vec![dst6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2))],
            ),
            // Another vxlan device's entries.
            fdb(OTHER_VXLAN, MAC, own, vec![dst(VTEP)]),
            // A port's own address list (ndo_dflt_fdb_dump).
            fdb(PORT, MAC, own, vec![]),
        ];
        for m in &cases {
            assert!(
                matches!(classify(m), Mirror::Ignore(_)),
                "{m:?} must not be mirrored"
            );
        }
    }

    #[test]
    fn ipv6_destinations_and_groups_are_mirrored() {
        let own = NeighbourFlags::Own;
        assert_eq!(
            classify(&fdb(VXLAN, MAC, own, vec![dst6(VTEP6)])),
            Mirror::Remote {
                vni: 100,
                mac: MAC,
                vtep: IpAddr::V6(VTEP6)
            }
        );
        assert_eq!(
            classify(&fdb(VXLAN, [0; 6], own, vec![dst6(VTEP6)])),
            Mirror::Flood {
                vni: 100,
                vtep: IpAddr::V6(VTEP6)
            }
        );
        // A `group` device's default entry: the VNI's group, either family.
        let group = Ipv4Addr::new(239, 1, 1, 1);
        assert_eq!(
            classify(&fdb(VXLAN, [0; 6], own, vec![dst(group)])),
            Mirror::Group {
                vni: 100,
                group: IpAddr::V4(group)
            }
        );
        let group6 = Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 0x100);
        assert_eq!(
            classify(&fdb(VXLAN, [0; 6], own, vec![dst6(group6)])),
            Mirror::Group {
                vni: 100,
                group: IpAddr::V6(group6)
            }
        );
    }

    #[test]
    fn destinations_of_a_family_without_a_local_address_are_the_kernels() {
        let own = NeighbourFlags::Own;
        let v4_only = Tables {
            families: Families {
                v4: true,
                v6: false,
            },
            ..tables()
        };
        let v6_only = Tables {
            families: Families {
                v4: false,
                v6: true,
            },
            ..tables()
        };
        let rec = |m: &NeighbourMessage| parse_fdb(m).expect("a bridge FDB record");
        let to_v6 = rec(&fdb(VXLAN, MAC, own, vec![dst6(VTEP6)]));
        let to_v4 = rec(&fdb(VXLAN, MAC, own, vec![dst(VTEP)]));
        let group6 = rec(&fdb(
            VXLAN,
            [0; 6],
            own,
            vec![dst6(Ipv6Addr::new(0xff05, 0, 0, 0, 0, 0, 0, 0x100))],
        ));
        assert!(matches!(v4_only.classify(&to_v6), Mirror::Ignore(_)));
        assert!(matches!(v4_only.classify(&group6), Mirror::Ignore(_)));
        assert!(matches!(v4_only.classify(&to_v4), Mirror::Remote { .. }));
        assert!(matches!(v6_only.classify(&to_v4), Mirror::Ignore(_)));
        assert!(matches!(v6_only.classify(&to_v6), Mirror::Remote { .. }));
        assert!(matches!(v6_only.classify(&group6), Mirror::Group { .. }));
    }

    #[test]
    fn bridge_entries_on_ports_are_local_macs() {
        let master = NeighbourFlags::Controller;
        let learned = fdb(
            PORT,
            MAC,
            master,
            vec![NeighbourAttribute::Controller(BRIDGE)],
        );
        assert_eq!(
            classify(&learned),
            Mirror::Local {
                vni: 100,
                mac: MAC,
                port: PORT
            }
        );
        // Without NDA_MASTER, the port's bridge comes from the links.
        assert!(matches!(
            classify(&fdb(PORT, MAC, master, vec![])),
            Mirror::Local { .. }
        ));
        let mut own_address = learned.clone();
        own_address.header.state = NeighbourState::Permanent;
        assert!(matches!(classify(&own_address), Mirror::Ignore(_)));
        // The bridge's entries on the vxlan port: the self entry has the dst.
        let on_vxlan = fdb(
            VXLAN,
            MAC,
            master,
            vec![NeighbourAttribute::Controller(BRIDGE)],
        );
        assert!(matches!(classify(&on_vxlan), Mirror::Ignore(_)));
        // Another bridge's.
        let other = fdb(99, MAC, master, vec![NeighbourAttribute::Controller(98)]);
        assert!(matches!(classify(&other), Mirror::Ignore(_)));
    }

    #[test]
    fn the_kernels_dump_mirrors_one_remote_and_one_flood_member() {
        use crate::system::netlink::{fixtures, walk};

        // The captured namespace: vxlan100 (3) VNI 100 on br100 (2).
        let t = Tables {
            devices: [(3, (100, 4789))].into(),
            bridges: [(2, 100)].into(),
            ports: BTreeMap::new(),
            vxlan_devices: [3].into(),
            families: Families {
                v4: true,
                v6: false,
            },
        };
        let mut mirrored = Vec::new();
        walk(&fixtures::bytes(fixtures::DUMP_FIRST), |m| {
            if let Ok(RouteNetlinkMessage::NewNeighbour(n)) = m
                && let Some(rec) = parse_fdb(&n)
            {
                match t.classify(&rec) {
                    Mirror::Ignore(_) => {}
                    m => mirrored.push(m),
                }
            }
        })
        .expect("walks");
        let vtep = |d| IpAddr::V4(Ipv4Addr::new(198, 18, 0, d));
        assert_eq!(
            mirrored,
            [
                Mirror::Remote {
                    vni: 100,
                    mac: MAC,
                    vtep: vtep(3)
                },
                Mirror::Flood {
                    vni: 100,
                    vtep: vtep(2)
                },
            ]
        );
    }
}
