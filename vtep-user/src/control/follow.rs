//! The kernel-FDB follower (`[follow]` in the config): vtep in front of a
//! host whose kernel vxlan devices and bridges are run by someone else —
//! FRR's zebra (BGP EVPN), flannel, or `bridge fdb` by hand.
//!
//! The follower subscribes to rtnetlink's link and neighbour groups, then
//! dumps links and the bridge FDB (`AF_BRIDGE`), and from then on applies
//! every `RTM_NEWNEIGH`/`RTM_DELNEIGH` and `RTM_NEWLINK`/`RTM_DELLINK` as it
//! comes. It mirrors, for each followed vxlan device:
//!
//! - the device's VNI, as a VNI in kernel-fallback mode
//!   (`VNI_F_KERNEL_FALLBACK`: the datapath forwards what the mirror knows
//!   and passes everything else, untouched, to the kernel);
//! - remote MACs: the device's own (`self`) entries with a `dst`, static,
//!   learned or `extern_learn` (EVPN type-2 routes);
//! - the flood list: its `00:00:00:00:00:00` entries, one message per remote
//!   VTEP (EVPN type-3 routes, or `bridge fdb append`);
//! - the ports of its bridge, as access ports of the VNI, and the local MACs
//!   behind them (the bridge's `master` entries, except its own `permanent`
//!   addresses), so decapsulated frames go straight to the port.
//!
//! What vtep cannot represent stays the kernel's, by not being mirrored (a
//! miss costs the kernel path, never a packet): entries with their own VNI
//! or UDP port (`NDA_VNI`/`NDA_PORT` other than the device's), IPv6 or
//! multicast destinations, devices in `external` (collect_metadata) mode,
//! devices whose port or local address differ from the underlay's.
//!
//! Events are applied in the order the kernel sent them; the dumps run on a
//! socket of their own while events queue on the subscribed one, so that
//! replaying the queue after a dump ends in the kernel's current state. An
//! overrun of the event socket (`ENOBUFS`: events were lost) triggers a full
//! resync: drop what is queued (older than the new dump, and incomplete),
//! dump again, write what differs, remove mirrored entries the kernel no
//! longer has.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsRawFd as _, RawFd},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage,
    link::{InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkInfo, LinkMessage},
    neighbour::{
        NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
    },
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use vtep_common::{FDB_F_FOLLOWED, FdbEntry, FdbKey, MAX_FLOOD, VtepAddr};

use crate::{
    control::apply,
    datapath::gateway::Gateway,
    model::{
        addr::{Mac, to_vtep},
        config::{Config, FollowConfig},
    },
};

/// Most netlink datagrams read per wake-up, so that a storm of events does
/// not hold up the daemon's other work for long.
const DRAIN_BATCH: usize = 4096;

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
                                match d {
                                    InfoVxlan::Id(id) => vx.vni = *id,
                                    InfoVxlan::Port(p) => vx.port = *p,
                                    InfoVxlan::Local(ip) if !ip.is_unspecified() => {
                                        vx.local = Some(IpAddr::V4(*ip))
                                    }
                                    InfoVxlan::Local6(ip) if !ip.is_unspecified() => {
                                        vx.local = Some(IpAddr::V6(*ip))
                                    }
                                    InfoVxlan::CollectMetadata(true)
                                    | InfoVxlan::Vnifilter(true) => vx.external = true,
                                    InfoVxlan::Learning(l) => vx.learning = *l,
                                    InfoVxlan::UDPCsum(c) => vx.udp_csum = *c,
                                    _ => {}
                                }
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

/// `NDA_DST` of a bridge-FDB entry: 4 or 16 bytes, whatever the family.
fn neighbour_ip(d: &NeighbourAddress) -> Option<IpAddr> {
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
            if !matches!(dst, IpAddr::V4(v4) if !v4.is_multicast() && !v4.is_unspecified()) {
                return Mirror::Ignore("destination is not a unicast IPv4 address");
            }
            let mac = Mac(r.mac);
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

/// A followed vxlan device.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Followed {
    name: String,
    vni: u32,
    port: u16,
    bridge: Option<u32>,
    /// The device learns remote MACs (see [`Vxlan::learning`]).
    learning: bool,
}

/// What the follower has done, for logs and the benchmark.
#[derive(Clone, Debug, Default)]
pub struct FollowStats {
    /// Events read from the kernel.
    pub events: u64,
    /// Map writes and deletes they caused.
    pub changes: u64,
    /// Full resyncs (start, overrun, a device that appeared).
    pub resyncs: u64,
    /// Overruns of the event socket.
    pub overruns: u64,
}

/// The follower: its event socket and its view of the kernel.
pub struct Follower {
    cfg: FollowConfig,
    /// The underlay's address and port, which a device must agree with,
    /// and whether vtep sends UDP checksums (said in the log when a device
    /// does and vtep does not).
    local: IpAddr,
    port: u16,
    udp_checksum: bool,
    uplink: u32,
    /// VNIs and access ports the config claims: never followed.
    config_vnis: BTreeSet<u32>,
    config_ports: BTreeSet<String>,
    events: Socket,
    buf: Vec<u8>,
    links: BTreeMap<u32, Link>,
    followed: BTreeMap<u32, Followed>,
    tables: Tables,
    /// The flood list of each followed VNI, as the kernel has it.
    flood: BTreeMap<u32, BTreeSet<IpAddr>>,
    /// Warnings given, so each is logged once.
    warned: BTreeSet<String>,
    /// A device started being followed: its entries need a dump.
    needs_resync: Option<String>,
    pub stats: FollowStats,
}

impl Follower {
    /// Subscribes to rtnetlink's link and neighbour events (before any dump,
    /// so none is missed). A followed device must agree with `cfg`'s
    /// underlay (address, port); `uplink` never becomes an access port.
    pub fn new(cfg: &Config, uplink: u32) -> Result<Follower> {
        let follow = cfg
            .follow
            .clone()
            .context("the config has no [follow] section")?;
        let mut events = Socket::new(NETLINK_ROUTE).context("opening an rtnetlink socket")?;
        events.bind_auto().context("binding the rtnetlink socket")?;
        set_rcvbuf(&events, follow.rcvbuf).context("sizing the rtnetlink event socket")?;
        for group in [libc::RTNLGRP_LINK, libc::RTNLGRP_NEIGH] {
            events
                .add_membership(group)
                .with_context(|| format!("joining rtnetlink group {group}"))?;
        }
        events.set_non_blocking(true)?;
        Ok(Follower {
            local: cfg.underlay.local,
            port: cfg.underlay.port,
            udp_checksum: cfg.underlay.udp_checksum,
            uplink,
            config_vnis: cfg.vnis.iter().map(|v| v.id).collect(),
            config_ports: cfg.vnis.iter().flat_map(|v| v.ports.clone()).collect(),
            cfg: follow,
            events,
            buf: vec![0; 1 << 18],
            links: BTreeMap::new(),
            followed: BTreeMap::new(),
            tables: Tables::default(),
            flood: BTreeMap::new(),
            warned: BTreeSet::new(),
            needs_resync: None,
            stats: FollowStats::default(),
        })
    }

    /// The event socket, for the daemon's event loop to wait on.
    pub fn fd(&self) -> RawFd {
        self.events.as_raw_fd()
    }

    /// What the follower did, for the log.
    pub fn summary(&self) -> String {
        let s = &self.stats;
        format!(
            "follow: {} event(s) applied, {} map change(s), {} resync(s) ({} after an overrun)",
            s.events, s.changes, s.resyncs, s.overruns
        )
    }

    fn warn_once(&mut self, msg: String) {
        if self.warned.insert(msg.clone()) {
            log::warn!("follow: {msg}");
        }
    }

    /// Logs `msg` at info level, the first time only.
    fn note_once(&mut self, msg: String) {
        if self.warned.insert(msg.clone()) {
            log::info!("follow: {msg}");
        }
    }

    /// Dumps links and the bridge FDB and makes the maps mirror them:
    /// followed VNIs and their ports, entries written where they differ,
    /// mirrored entries the kernel no longer has removed. `why` goes to the
    /// log.
    pub fn resync(&mut self, gw: &mut Gateway, why: &str) -> Result<()> {
        let started = Instant::now();
        self.stats.resyncs += 1;
        let mut links = BTreeMap::new();
        dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), |m| {
            if let RouteNetlinkMessage::NewLink(l) = m {
                links.insert(l.header.index, parse_link(&l));
            }
        })
        .context("dumping links")?;
        self.links = links;
        self.reconcile(gw);
        // This dump covers the devices reconcile just started to follow.
        self.needs_resync = None;
        let vnis: BTreeSet<u32> = self.followed.values().map(|f| f.vni).collect();

        let mut want: HashMap<FdbKey, FdbEntry> = HashMap::new();
        let mut flood: BTreeMap<u32, BTreeSet<IpAddr>> =
            vnis.iter().map(|&v| (v, BTreeSet::new())).collect();
        let tables = &self.tables;
        let mut ms = NeighbourMessage::default();
        ms.header.family = AddressFamily::Bridge;
        dump(RouteNetlinkMessage::GetNeighbour(ms), |m| {
            let RouteNetlinkMessage::NewNeighbour(n) = m else {
                return;
            };
            let Some(rec) = parse_fdb(&n) else {
                return;
            };
            match tables.classify(&rec) {
                Mirror::Remote { vni, mac, vtep } => {
                    want.insert(
                        FdbKey::new(vni, mac),
                        FdbEntry::remote(to_vtep(vtep), FDB_F_FOLLOWED, 0),
                    );
                }
                Mirror::Local { vni, mac, port } => {
                    want.insert(
                        FdbKey::new(vni, mac),
                        FdbEntry::local(port, FDB_F_FOLLOWED, 0),
                    );
                }
                Mirror::Flood { vni, vtep } => {
                    flood.entry(vni).or_default().insert(vtep);
                }
                Mirror::Ignore(_) => {}
            }
        })
        .context("dumping the bridge FDB")?;

        let mut written = 0usize;
        for (k, e) in &want {
            match gw.fdb_put_followed(k, e) {
                Ok(true) => written += 1,
                Ok(false) => {}
                Err(e) => {
                    self.warn_once(format!(
                        "mirroring entries into the FDB map: {e} (what does not fit takes \
                         the kernel path)"
                    ));
                    break;
                }
            }
        }
        let mut removed = 0usize;
        for (k, _) in gw.fdb_entries() {
            if vnis.contains(&k.vni) && !want.contains_key(&k) && gw.fdb_del_followed(&k) {
                removed += 1;
            }
        }
        let mut members = 0;
        for (&vni, list) in &flood {
            members += list.len();
            self.write_flood(gw, vni, list);
        }
        self.flood = flood;
        self.stats.changes += (written + removed) as u64;
        log::info!(
            "follow: resync ({why}): {} VNI(s) {}, {} entries mirrored ({written} written, \
             {removed} removed), {members} flood-list member(s), in {} ms",
            vnis.len(),
            self.describe(),
            want.len(),
            started.elapsed().as_millis()
        );
        Ok(())
    }

    /// `vxlan100 (VNI 100, bridge br100, 2 ports)`, ...
    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .followed
            .values()
            .map(|f| {
                let bridge = f
                    .bridge
                    .and_then(|b| self.links.get(&b))
                    .map_or_else(|| "no bridge".into(), |l| format!("bridge {}", l.name));
                let ports = self.tables.ports.values().filter(|&&b| Some(b) == f.bridge);
                format!(
                    "{} VNI {} {bridge} {} port(s)",
                    f.name,
                    f.vni,
                    ports.count()
                )
            })
            .collect();
        format!("[{}]", parts.join("; "))
    }

    fn write_flood(&mut self, gw: &mut Gateway, vni: u32, list: &BTreeSet<IpAddr>) {
        let mut members: Vec<VtepAddr> = list.iter().map(|&ip| to_vtep(ip)).collect();
        if members.len() > MAX_FLOOD {
            // The kernel floods in a followed VNI; vtep's copy of the list
            // only names the remote VTEPs whose next hops it keeps resolved.
            self.warn_once(format!(
                "VNI {vni}: {} flood-list members; vtep lists the first {MAX_FLOOD} \
                 (the kernel floods, so none is lost)",
                members.len()
            ));
            members.truncate(MAX_FLOOD);
        }
        if gw.flood_list(vni).len() == members.len()
            && gw
                .flood_list(vni)
                .iter()
                .zip(&members)
                .all(|(a, b)| to_vtep(*a) == *b)
        {
            return;
        }
        if let Err(e) = gw.flood_set(vni, &members) {
            self.warn_once(format!("VNI {vni}: flood list: {e}"));
        }
    }

    /// Why a vxlan device cannot be followed, if it cannot.
    fn unfollowable(&self, link: &Link, vx: &Vxlan) -> Option<String> {
        let name = &link.name;
        if vx.external {
            return Some(format!(
                "{name} is in external (collect_metadata/vnifilter) mode: not followed, \
                 the kernel keeps forwarding it"
            ));
        }
        if self.config_vnis.contains(&vx.vni) {
            return Some(format!(
                "{name} carries VNI {}, which the config's [[vni]] configures: not followed",
                vx.vni
            ));
        }
        if vx.port != self.port {
            return Some(format!(
                "{name} uses UDP port {}, the underlay {}: not followed (vtep has one VXLAN \
                 port; set underlay.port)",
                vx.port, self.port
            ));
        }
        if let Some(l) = vx.local
            && l != self.local
        {
            return Some(format!(
                "{name} has local {l}, the underlay {}: not followed",
                self.local
            ));
        }
        None
    }

    /// Brings followed VNIs and their access ports in line with the links:
    /// follows wanted vxlan devices, drops those gone, attaches the ports
    /// that joined their bridges and detaches those that left.
    fn reconcile(&mut self, gw: &mut Gateway) {
        let mut want: BTreeMap<u32, Followed> = BTreeMap::new();
        let mut by_vni: BTreeMap<u32, String> = BTreeMap::new();
        let mut warnings = Vec::new();
        let mut notes = Vec::new();
        for (&ifindex, link) in &self.links {
            let Some(vx) = link.vxlan else { continue };
            if !self.cfg.wants(&link.name) {
                continue;
            }
            if let Some(why) = self.unfollowable(link, &vx) {
                warnings.push(why);
                continue;
            }
            if let Some(other) = by_vni.get(&vx.vni) {
                warnings.push(format!(
                    "{} and {other} both carry VNI {}: {} not followed",
                    link.name, vx.vni, link.name
                ));
                continue;
            }
            by_vni.insert(vx.vni, link.name.clone());
            if vx.udp_csum && !self.udp_checksum {
                notes.push(format!(
                    "{} sends outer UDP checksums (udpcsum, the kernel's default); vtep sends \
                     VNI {} with checksum 0 (underlay.udp_checksum = false), which receivers \
                     accept: set underlay.udp_checksum = true to match",
                    link.name, vx.vni
                ));
            }
            want.insert(
                ifindex,
                Followed {
                    name: link.name.clone(),
                    vni: vx.vni,
                    port: vx.port,
                    bridge: link.master,
                    learning: vx.learning,
                },
            );
        }
        for w in warnings {
            self.warn_once(w);
        }
        for n in notes {
            self.note_once(n);
        }
        let missing: Vec<String> = self
            .cfg
            .devices
            .iter()
            .filter(|name| !self.links.values().any(|l| &l.name == *name))
            .map(|name| format!("no device {name} yet; following it once it appears"))
            .collect();
        for w in missing {
            self.warn_once(w);
        }

        // Devices no longer followed (gone, changed, or now refused).
        let dropped: Vec<(u32, Followed)> = self
            .followed
            .iter()
            .filter(|(i, f)| want.get(i).is_none_or(|w| w.vni != f.vni))
            .map(|(i, f)| (*i, f.clone()))
            .collect();
        for (_, f) in dropped {
            log::info!("follow: {} (VNI {}) no longer followed", f.name, f.vni);
            if let Err(e) = gw.vni_unfollow(f.vni) {
                log::warn!("follow: removing VNI {}: {e}", f.vni);
            }
            self.flood.remove(&f.vni);
        }
        // Followed VNIs of an earlier run whose device is not followed now.
        let vnis: BTreeSet<u32> = want.values().map(|f| f.vni).collect();
        for vni in gw.vni_ids() {
            if gw.vni_followed(vni) && !vnis.contains(&vni) {
                log::info!("follow: VNI {vni} was followed; its device is not: removing it");
                if let Err(e) = gw.vni_unfollow(vni) {
                    log::warn!("follow: removing VNI {vni}: {e}");
                }
            }
        }
        // Devices followed from now on.
        for (&ifindex, f) in &want {
            if let Some(o) = self.followed.get(&ifindex)
                && o.vni == f.vni
            {
                if o.learning != f.learning
                    && let Err(e) = gw.vni_follow(f.vni, f.learning)
                {
                    log::warn!("follow: VNI {}: {e}", f.vni);
                }
                continue;
            }
            if gw.vni_exists(f.vni) && !gw.vni_followed(f.vni) {
                log::warn!(
                    "follow: VNI {} was configured with the CLI; {} takes it over",
                    f.vni,
                    f.name
                );
                if let Err(e) = gw.vni_del(f.vni) {
                    log::warn!("follow: VNI {}: {e}", f.vni);
                }
            }
            match gw.vni_follow(f.vni, f.learning) {
                Ok(()) => {
                    log::info!(
                        "follow: following {} (VNI {}, port {}, {})",
                        f.name,
                        f.vni,
                        f.port,
                        if f.learning { "learning" } else { "nolearning" }
                    );
                    self.needs_resync
                        .get_or_insert_with(|| format!("{} appeared", f.name));
                }
                Err(e) => log::warn!("follow: VNI {}: {e}", f.vni),
            }
        }
        self.followed = want;

        // Tables for classifying FDB entries, and the bridges' ports.
        let mut t = Tables::default();
        for (&ifindex, link) in &self.links {
            if link.vxlan.is_some() {
                t.vxlan_devices.insert(ifindex);
            }
        }
        for (&ifindex, f) in &self.followed {
            t.devices.insert(ifindex, (f.vni, f.port));
            if let Some(b) = f.bridge {
                t.bridges.insert(b, f.vni);
            }
        }
        let mut refused = Vec::new();
        for (&ifindex, link) in &self.links {
            let Some(bridge) = link.master else { continue };
            if !t.bridges.contains_key(&bridge) || link.vxlan.is_some() {
                continue;
            }
            if ifindex == self.uplink {
                refused.push(format!(
                    "{} is the uplink and a port of a followed bridge: it stays the uplink",
                    link.name
                ));
                continue;
            }
            if self.config_ports.contains(&link.name) {
                refused.push(format!(
                    "{} is an access port in [[vni]] and a port of a followed bridge: the \
                     config wins",
                    link.name
                ));
                continue;
            }
            t.ports.insert(ifindex, bridge);
        }
        for w in refused {
            self.warn_once(w);
        }
        self.tables = t;

        // Access ports: those of followed VNIs follow the bridges' ports.
        let vni_of_bridge = self.tables.bridges.clone();
        let want_ports: BTreeMap<u32, u32> = self
            .tables
            .ports
            .iter()
            .filter_map(|(&p, b)| Some((p, *vni_of_bridge.get(b)?)))
            .collect();
        for (ifindex, vni) in gw.port_list() {
            if gw.vni_followed(vni) && want_ports.get(&ifindex) != Some(&vni) {
                let name = self.link_name(ifindex);
                log::info!("follow: {name} left the bridge of VNI {vni}: no longer an access port");
                if let Err(e) = gw.port_del_index(ifindex, &name) {
                    log::warn!("follow: removing access port {name}: {e}");
                }
            }
        }
        for (&ifindex, &vni) in &want_ports {
            if gw.port_vni(ifindex) == Some(vni) {
                continue;
            }
            let name = self.link_name(ifindex);
            match apply::attach_port(gw, &name, vni) {
                Ok(()) => log::info!("follow: {name} joined the bridge of VNI {vni}: access port"),
                Err(e) => self.warn_once(format!(
                    "{name}: cannot make it an access port of VNI {vni} ({e:#}); its frames \
                     take the kernel path"
                )),
            }
        }
    }

    fn link_name(&self, ifindex: u32) -> String {
        self.links
            .get(&ifindex)
            .map_or_else(|| format!("if{ifindex}"), |l| l.name.clone())
    }

    /// Applies the events the kernel has queued, up to a batch; resyncs on
    /// an overrun. True when more may be queued (call again before waiting).
    pub fn drain(&mut self, gw: &mut Gateway) -> Result<bool> {
        let mut links_changed = false;
        let mut more = true;
        for _ in 0..DRAIN_BATCH {
            let n = match self.recv_event() {
                Ok(n) => n,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) => {
                        more = false;
                        break;
                    }
                    Some(libc::EINTR) => continue,
                    Some(libc::ENOBUFS) => {
                        self.stats.overruns += 1;
                        log::warn!(
                            "follow: the kernel dropped events (ENOBUFS: the event socket \
                             overran); resyncing"
                        );
                        self.discard_queued();
                        self.resync(gw, "events lost (ENOBUFS)")?;
                        continue;
                    }
                    _ => return Err(e).context("reading rtnetlink events"),
                },
            };
            for msg in messages(&self.buf[..n]) {
                self.stats.events += 1;
                match msg {
                    RouteNetlinkMessage::NewNeighbour(m) => self.apply_fdb(gw, &m, false),
                    RouteNetlinkMessage::DelNeighbour(m) => self.apply_fdb(gw, &m, true),
                    RouteNetlinkMessage::NewLink(m) => {
                        links_changed |= self.apply_link(&m, false);
                    }
                    RouteNetlinkMessage::DelLink(m) => {
                        links_changed |= self.apply_link(&m, true);
                    }
                    _ => {}
                }
            }
        }
        if links_changed {
            self.reconcile(gw);
        }
        if let Some(why) = self.needs_resync.take() {
            self.resync(gw, &why)?;
        }
        Ok(more)
    }

    /// Reads and drops every event queued on the socket. After an overrun
    /// they are older than the dump about to be made, and with some of the
    /// events between them lost, replaying them after it could bring back a
    /// state the kernel has left. Reading the queue empty also ends the
    /// socket's congestion (until then the kernel drops every new event
    /// silently), so that the events after the dump are all delivered.
    fn discard_queued(&mut self) {
        let mut dropped = 0u64;
        loop {
            match self.recv_event() {
                Ok(_) => dropped += 1,
                // Another overrun while reading: keep reading.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EINTR)) => {}
                Err(_) => break,
            }
        }
        log::debug!("follow: dropped {dropped} queued event datagram(s) before the resync");
    }

    /// Reads one queued event datagram into `self.buf`, without waiting;
    /// its length.
    fn recv_event(&mut self) -> io::Result<usize> {
        // SAFETY: buf is a valid, writable buffer of its length.
        let n = unsafe {
            libc::recv(
                self.events.as_raw_fd(),
                self.buf.as_mut_ptr().cast(),
                self.buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    /// Updates the link table; true when something that matters changed.
    fn apply_link(&mut self, m: &LinkMessage, deleted: bool) -> bool {
        let ifindex = m.header.index;
        let before = self.links.get(&ifindex).cloned();
        if m.header.interface_family == AddressFamily::Bridge {
            // The bridge's own messages about its ports: RTM_DELLINK means
            // the port left it (the device may live on).
            let link = self.links.entry(ifindex).or_default();
            let now = parse_link(m);
            if deleted {
                link.master = None;
            } else if now.master.is_some() {
                link.master = now.master;
            }
            if link.name.is_empty() {
                link.name = now.name;
            }
        } else if deleted {
            self.links.remove(&ifindex);
        } else {
            self.links.insert(ifindex, parse_link(m));
        }
        let after = self.links.get(&ifindex);
        let matters = |l: Option<&Link>| l.map(|l| (l.master, l.vxlan, l.name.clone()));
        matters(before.as_ref()) != matters(after)
    }

    /// Applies one FDB event to the maps.
    fn apply_fdb(&mut self, gw: &mut Gateway, m: &NeighbourMessage, deleted: bool) {
        let Some(rec) = parse_fdb(m) else { return };
        let mirror = self.tables.classify(&rec);
        let verb = if deleted { "del" } else { "add" };
        match mirror {
            Mirror::Remote { vni, mac, vtep } => {
                let entry = FdbEntry::remote(to_vtep(vtep), FDB_F_FOLLOWED, 0);
                self.apply_entry(gw, vni, mac, &entry, deleted);
                log::debug!("follow: {verb} {} vni {vni} dst {vtep}", Mac(mac));
            }
            Mirror::Local { vni, mac, port } => {
                let entry = FdbEntry::local(port, FDB_F_FOLLOWED, 0);
                self.apply_entry(gw, vni, mac, &entry, deleted);
                log::debug!(
                    "follow: {verb} {} vni {vni} port {}",
                    Mac(mac),
                    self.link_name(port)
                );
            }
            Mirror::Flood { vni, vtep } => {
                let mut list = self.flood.get(&vni).cloned().unwrap_or_default();
                let changed = if deleted {
                    list.remove(&vtep)
                } else {
                    list.insert(vtep)
                };
                if changed {
                    self.write_flood(gw, vni, &list);
                    self.flood.insert(vni, list);
                    self.stats.changes += 1;
                    log::debug!("follow: {verb} flood-list member {vtep} vni {vni}");
                }
            }
            Mirror::Ignore(why) => {
                if self.tables.devices.contains_key(&rec.ifindex) {
                    log::debug!(
                        "follow: {} on {} not mirrored: {why}",
                        Mac(rec.mac),
                        self.link_name(rec.ifindex)
                    );
                }
            }
        }
    }

    fn apply_entry(
        &mut self,
        gw: &mut Gateway,
        vni: u32,
        mac: [u8; 6],
        entry: &FdbEntry,
        deleted: bool,
    ) {
        let key = FdbKey::new(vni, mac);
        if deleted {
            // Only the entry the kernel deleted: after a move, the map may
            // already hold the MAC's new place.
            if gw
                .fdb_get(vni, Mac(mac))
                .is_some_and(|e| e.same_place(entry))
                && gw.fdb_del_followed(&key)
            {
                self.stats.changes += 1;
            }
            return;
        }
        match gw.fdb_put_followed(&key, entry) {
            Ok(true) => self.stats.changes += 1,
            Ok(false) => {}
            // Once, not per MAC: a full map refuses every new entry alike.
            Err(e) => self.warn_once(format!(
                "mirroring entries into the FDB map: {e} (what does not fit takes the \
                 kernel path)"
            )),
        }
    }
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

/// The route messages in one netlink datagram (others, and messages that
/// do not parse, are skipped).
fn messages(data: &[u8]) -> Vec<RouteNetlinkMessage> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= data.len() {
        let len =
            u32::from_ne_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]]) as usize;
        if len < 16 || off + len > data.len() {
            break;
        }
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..off + len]) {
            Ok(NetlinkMessage {
                payload: NetlinkPayload::InnerMessage(m),
                ..
            }) => out.push(m),
            Ok(_) => {}
            Err(e) => log::debug!("follow: skipping a message that does not parse: {e}"),
        }
        off += (len + 3) & !3;
    }
    out
}

/// Runs one rtnetlink dump on a socket of its own, handing each message to
/// `each` as it arrives.
fn dump(request: RouteNetlinkMessage, mut each: impl FnMut(RouteNetlinkMessage)) -> Result<()> {
    let mut sock = Socket::new(NETLINK_ROUTE)?;
    sock.bind_auto()?;
    sock.connect(&SocketAddr::new(0, 0))?;
    let _ = set_rcvbuf(&sock, 4 << 20);
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request));
    req.finalize();
    let mut out = vec![0u8; req.buffer_len()];
    req.serialize(&mut out);
    sock.send(&out, 0)?;
    let mut buf = vec![0u8; 1 << 20];
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if Instant::now() > deadline {
            bail!("the dump did not finish within a minute");
        }
        // SAFETY: buf is a valid, writable buffer of its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(e.into());
        }
        let data = &buf[..n as usize];
        let mut off = 0;
        while off + 16 <= data.len() {
            let len = u32::from_ne_bytes([data[off], data[off + 1], data[off + 2], data[off + 3]])
                as usize;
            if len < 16 || off + len > data.len() {
                break;
            }
            match NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..off + len]) {
                Ok(msg) => match msg.payload {
                    NetlinkPayload::InnerMessage(m) => each(m),
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(e.to_io()).context("the kernel refused the dump");
                    }
                    _ => {}
                },
                Err(e) => log::debug!("follow: skipping a message that does not parse: {e}"),
            }
            off += (len + 3) & !3;
        }
    }
}

/// Fills in what the config left to the followed devices (`underlay.local`,
/// `underlay.port`), saying in the log what was taken from which link. Call
/// before anything is applied.
pub fn complete_underlay(cfg: &mut Config) -> Result<()> {
    let Some(follow) = cfg.follow.clone() else {
        return Ok(());
    };
    if !follow.local_from_link && !follow.port_from_link {
        return Ok(());
    }
    let mut devices: Vec<(String, Vxlan)> = Vec::new();
    dump(RouteNetlinkMessage::GetLink(LinkMessage::default()), |m| {
        if let RouteNetlinkMessage::NewLink(l) = m {
            let link = parse_link(&l);
            if let Some(vx) = link.vxlan
                && !vx.external
                && follow.wants(&link.name)
            {
                devices.push((link.name, vx));
            }
        }
    })
    .context("dumping links")?;
    let names = |v: &[&(String, Vxlan)]| {
        v.iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if follow.local_from_link {
        let with_local: Vec<&(String, Vxlan)> =
            devices.iter().filter(|(_, v)| v.local.is_some()).collect();
        let locals: BTreeSet<IpAddr> = with_local.iter().filter_map(|(_, v)| v.local).collect();
        match locals.len() {
            0 => bail!(
                "underlay.local is not in the config and no followed vxlan device has a local \
                 address (`ip link add ... type vxlan ... local IP`): set underlay.local"
            ),
            1 => {
                let local = *locals.iter().next().expect("one address");
                if local.is_ipv6() {
                    bail!(
                        "the followed devices' local address {local} is IPv6, which vtep's \
                         underlay does not support yet"
                    );
                }
                cfg.underlay.local = local;
                log::info!(
                    "underlay.local {local}: taken from {} (not in the config)",
                    names(&with_local)
                );
            }
            _ => bail!(
                "underlay.local is not in the config and the followed devices disagree on it \
                 ({}): set underlay.local",
                locals
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
    if follow.port_from_link {
        let ports: BTreeSet<u16> = devices.iter().map(|(_, v)| v.port).collect();
        match ports.len() {
            0 => log::info!(
                "underlay.port {}: the default (no followed device yet to take it from)",
                cfg.underlay.port
            ),
            1 => {
                let port = *ports.iter().next().expect("one port");
                cfg.underlay.port = port;
                let all: Vec<&(String, Vxlan)> = devices.iter().collect();
                log::info!(
                    "underlay.port {port}: taken from {} (not in the config)",
                    names(&all)
                );
            }
            _ => bail!(
                "underlay.port is not in the config and the followed devices disagree on it \
                 ({ports:?}): set underlay.port"
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::link::{InfoData, LinkInfo};

    use super::*;

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
            fdb(VXLAN, [0; 6], own, vec![dst(Ipv4Addr::new(239, 1, 1, 1))]),
            fdb(VXLAN, [1, 0, 0x5e, 0, 0, 1], own, vec![dst(VTEP)]),
            fdb(
                VXLAN,
                MAC,
                own,
                vec![NeighbourAttribute::Destination(NeighbourAddress::Other(
                    vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
                ))],
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
    fn other_families_are_not_fdb_records() {
        let mut arp = fdb(PORT, MAC, NeighbourFlags::empty(), vec![]);
        arp.header.family = AddressFamily::Inet;
        assert_eq!(parse_fdb(&arp), None);
    }

    #[test]
    fn vxlan_links_are_read() {
        let mut m = LinkMessage::default();
        m.header.index = VXLAN;
        m.attributes = vec![
            LinkAttribute::IfName("vxlan100".into()),
            LinkAttribute::Controller(BRIDGE),
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
        assert_eq!(link.master, Some(BRIDGE));
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
    fn messages_skip_what_does_not_parse() {
        let mut msg = NetlinkMessage::new(
            NetlinkHeader::default(),
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNeighbour(fdb(
                VXLAN,
                MAC,
                NeighbourFlags::Own,
                vec![dst(VTEP)],
            ))),
        );
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        let twice = [buf.clone(), buf.clone(), vec![0xff; 7]].concat();
        assert_eq!(messages(&twice).len(), 2);
    }
}
