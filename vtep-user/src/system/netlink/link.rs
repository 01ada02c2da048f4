//! Links (`RTM_*LINK`): a vxlan device's settings, a link's bridge, a
//! veth's peer, a link's MAC, MTU and carrier, and netns ids.

use std::{io, net::IpAddr, os::fd::AsRawFd};

use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage},
    nsid::{NsidAttribute, NsidMessage},
};

use super::Rtnl;

/// What rtnetlink says about a link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    /// `IFLA_MASTER`: the bridge it is a port of.
    pub master: Option<u32>,
    /// Set for vxlan devices.
    pub vxlan: Option<Vxlan>,
}

/// A vxlan device's settings that matter to vtep (`IFLA_VXLAN_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vxlan {
    pub vni: u32,
    /// Destination UDP port (host order).
    pub port: u16,
    /// `local`, when set.
    pub local: Option<IpAddr>,
    /// `external` (collect_metadata) or `vnifilter`: VNIs per entry, which
    /// vtep does not follow.
    pub external: bool,
    /// The device learns remote MACs from what it receives (`learning`,
    /// the default; EVPN and flannel set `nolearning`).
    pub learning: bool,
    /// It sends outer UDP checksums (`udpcsum`; off by default over IPv4).
    pub udp_csum: bool,
}

/// Reads a link message (`RTM_NEWLINK` of family `AF_UNSPEC`).
pub fn parse_link(msg: &LinkMessage) -> Link {
    let mut link = Link::default();
    let mut is_vxlan = false;
    let mut vx = Vxlan {
        vni: 0,
        // The kernel's default when `dstport` is not given.
        port: 8472,
        local: None,
        external: false,
        learning: true,
        udp_csum: false,
    };
    for a in &msg.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Controller(m) if *m != 0 => link.master = Some(*m),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(InfoKind::Vxlan) => is_vxlan = true,
                        LinkInfo::Data(InfoData::Vxlan(data)) => {
                            for d in data {
                                read_vxlan(&mut vx, d);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    if is_vxlan {
        link.vxlan = Some(vx);
    }
    link
}

/// One `IFLA_VXLAN_*` attribute into `vx`.
fn read_vxlan(vx: &mut Vxlan, d: &InfoVxlan) {
    match d {
        InfoVxlan::Id(id) => vx.vni = *id,
        InfoVxlan::Port(p) => vx.port = *p,
        InfoVxlan::Local(ip) if !ip.is_unspecified() => vx.local = Some(IpAddr::V4(*ip)),
        InfoVxlan::Local6(ip) if !ip.is_unspecified() => vx.local = Some(IpAddr::V6(*ip)),
        InfoVxlan::CollectMetadata(true) | InfoVxlan::Vnifilter(true) => vx.external = true,
        InfoVxlan::Learning(l) => vx.learning = *l,
        InfoVxlan::UDPCsum(c) => vx.udp_csum = *c,
        _ => {}
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
    Ok(veth_peer_of(&rtnl.link(ifindex)?))
}

/// Reads a link message: the peer of the link if it is a veth.
pub fn veth_peer_of(link: &LinkMessage) -> Option<VethPeer> {
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
    match (is_veth, peer) {
        (true, Some(ifindex)) => Some(VethPeer { ifindex, netnsid }),
        _ => None,
    }
}

/// Reads a link message: its MAC address (zero when it has none of six
/// bytes) and MTU (1500 when not said).
pub fn mac_mtu(link: &LinkMessage) -> ([u8; 6], u32) {
    let mut mac = [0u8; 6];
    let mut mtu = 1500;
    for a in &link.attributes {
        match a {
            LinkAttribute::Address(a) if a.len() == 6 => mac.copy_from_slice(a),
            LinkAttribute::Mtu(m) => mtu = *m,
            _ => {}
        }
    }
    (mac, mtu)
}

/// Reads a link message: whether it has carrier.
pub fn carrier(link: &LinkMessage) -> bool {
    link.attributes
        .iter()
        .any(|a| matches!(a, LinkAttribute::Carrier(c) if *c != 0))
}

/// Reads a new-nsid message: the netns id it gives, if any.
pub fn nsid(msg: &NsidMessage) -> Option<i32> {
    msg.attributes.iter().find_map(|a| match a {
        NsidAttribute::Id(id) if *id >= 0 => Some(*id),
        _ => None,
    })
}

impl Rtnl {
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
        Ok(mac_mtu(&self.link(ifindex)?))
    }

    /// Whether link `ifindex` has carrier (for a veth: its peer is up).
    pub fn link_carrier(&mut self, ifindex: u32) -> io::Result<bool> {
        Ok(carrier(&self.link(ifindex)?))
    }

    /// The netns id (in this namespace) of the namespace open at `fd`, or
    /// `None` when that namespace has none (it is not linked to this one).
    pub fn nsid_of(&mut self, fd: &impl AsRawFd) -> io::Result<Option<i32>> {
        let mut msg = NsidMessage::default();
        msg.header.family = AddressFamily::Unspec;
        msg.attributes
            .push(NsidAttribute::Fd(fd.as_raw_fd() as u32));
        let reply = self.request(RouteNetlinkMessage::GetNsId(msg), 0)?;
        Ok(reply.iter().find_map(|m| match m {
            RouteNetlinkMessage::NewNsId(n) => nsid(n),
            _ => None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn vxlan_links_are_read() {
        let mut m = LinkMessage::default();
        m.header.index = 10;
        m.attributes = vec![
            LinkAttribute::IfName("vxlan100".into()),
            LinkAttribute::Controller(11),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Vxlan),
                LinkInfo::Data(InfoData::Vxlan(vec![
                    InfoVxlan::Id(100),
                    InfoVxlan::Port(4789),
                    InfoVxlan::Local(Ipv4Addr::new(198, 18, 0, 1)),
                    InfoVxlan::Learning(false),
                    InfoVxlan::UDPCsum(true),
                ])),
            ]),
        ];
        let link = parse_link(&m);
        assert_eq!(link.name, "vxlan100");
        assert_eq!(link.master, Some(11));
        assert_eq!(
            link.vxlan,
            Some(Vxlan {
                vni: 100,
                port: 4789,
                local: Some(IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1))),
                external: false,
                learning: false,
                udp_csum: true,
            })
        );
        let mut veth = LinkMessage::default();
        veth.attributes = vec![LinkAttribute::IfName("t1w1".into())];
        assert_eq!(parse_link(&veth).vxlan, None);
    }

    #[test]
    fn external_devices_and_the_default_port() {
        let mut m = LinkMessage::default();
        m.attributes = vec![LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vxlan),
            LinkInfo::Data(InfoData::Vxlan(vec![
                InfoVxlan::Id(7),
                InfoVxlan::CollectMetadata(true),
            ])),
        ])];
        let vx = parse_link(&m).vxlan.expect("a vxlan device");
        assert!(vx.external);
        assert_eq!(vx.port, 8472);
        assert!(vx.learning);
    }
}
