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
//!   (`VNI_F_FOLLOWED`: the datapath forwards what the mirror knows
//!   and passes everything else, untouched, to the kernel);
//! - remote MACs: the device's own (`self`) entries with a `dst`, static,
//!   learned or `extern_learn` (EVPN type-2 routes);
//! - the flood list: its `00:00:00:00:00:00` entries, one message per remote
//!   VTEP (EVPN type-3 routes, or `bridge fdb append`), of either family;
//! - the multicast group of a `group` device (its `00:00:00:00:00:00 dst
//!   GROUP` entry), as the VNI's group (`VNI_GROUP`), so VXLAN the kernel
//!   device's group carries is decapsulated on the fast path; the kernel
//!   device has joined the group already;
//! - the ports of its bridge, as access ports of the VNI, and the local MACs
//!   behind them (the bridge's `master` entries, except its own `permanent`
//!   addresses), so decapsulated frames go straight to the port.
//!
//! What vtep cannot represent stays the kernel's, by not being mirrored (a
//! miss costs the kernel path, never a packet): entries with their own VNI
//! or UDP port (`NDA_VNI`/`NDA_PORT` other than the device's), destinations
//! of a family the underlay has no local address of, unicast MACs behind a
//! group, groups beyond the first of a VNI, devices in `external`
//! (collect_metadata) mode, devices whose port or local address differ from
//! the underlay's.
//!
//! Events are applied in the order the kernel sent them; the dumps run on a
//! socket of their own while events queue on the subscribed one, so that
//! replaying the queue after a dump ends in the kernel's current state. An
//! overrun of the event socket (`ENOBUFS`: events were lost) triggers a full
//! resync: drop what is queued (older than the new dump, and incomplete),
//! dump again, write what differs, remove mirrored entries the kernel no
//! longer has.
//!
//! The sockets and the decoding are the netlink layer's ([`crate::system::netlink`]);
//! this module keeps the decisions, as FRR's `zebra_vxlan.c` does: what an
//! entry means ([`Tables::classify`], `classify.rs`), which devices and
//! ports are followed (`reconcile.rs`), the resync (`resync.rs`), the
//! underlay taken from the devices (`underlay.rs`), the VNIs' groups
//! (`group.rs`), and applying events (here).

mod classify;
mod group;
mod reconcile;
mod resync;
mod underlay;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    os::fd::RawFd,
};

use anyhow::{Context as _, Result};
use netlink_packet_route::{
    AddressFamily, RouteNetlinkMessage, link::LinkMessage, neighbour::NeighbourMessage,
};
use vtep_common::{
    FDB_F_FOLLOWED, FdbEntry, FdbKey,
    event::{EventKind, FdbEvent},
};

pub use classify::{Families, Mirror, Tables};
pub use underlay::complete_underlay;

use crate::{
    control::events,
    datapath::gateway::Gateway,
    model::{
        addr::{Mac, to_vtep},
        config::{Config, FollowConfig, Locals},
    },
    system::{
        clock,
        netlink::{Events, Link, parse_fdb, parse_link},
    },
};

/// Most netlink datagrams read per wake-up, so that a storm of events does
/// not hold up the daemon's other work for long.
const DRAIN_BATCH: usize = 4096;

/// A followed vxlan device.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Followed {
    name: String,
    vni: u32,
    port: u16,
    bridge: Option<u32>,
    /// The device learns remote MACs (see [`crate::system::netlink::Vxlan::learning`]).
    learning: bool,
}

/// Which families of remote VTEPs the underlay `l` can send to.
fn families(l: &Locals) -> Families {
    Families {
        v4: l.v4.is_some(),
        v6: l.v6.is_some(),
    }
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
    /// The underlay's addresses and port, which a device must agree with,
    /// and whether vtep sends UDP checksums (said in the log when a device
    /// does and vtep does not).
    locals: Locals,
    port: u16,
    udp_checksum: bool,
    uplink: u32,
    /// VNIs and access ports the config claims: never followed.
    config_vnis: BTreeSet<u32>,
    config_ports: BTreeSet<String>,
    events: Events,
    links: BTreeMap<u32, Link>,
    followed: BTreeMap<u32, Followed>,
    tables: Tables,
    /// The flood list of each followed VNI, as the kernel has it.
    flood: BTreeMap<u32, BTreeSet<IpAddr>>,
    /// The multicast groups of each followed VNI, as the kernel has them
    /// (the first is mirrored).
    groups: BTreeMap<u32, BTreeSet<IpAddr>>,
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
        let events = Events::subscribe(&[libc::RTNLGRP_LINK, libc::RTNLGRP_NEIGH], follow.rcvbuf)?;
        Ok(Follower {
            locals: cfg.underlay.local,
            port: cfg.underlay.port,
            udp_checksum: cfg.underlay.udp_checksum,
            uplink,
            config_vnis: cfg.vnis.iter().map(|v| v.id).collect(),
            config_ports: cfg.vnis.iter().flat_map(|v| v.ports.clone()).collect(),
            cfg: follow,
            events,
            links: BTreeMap::new(),
            followed: BTreeMap::new(),
            tables: Tables::default(),
            flood: BTreeMap::new(),
            groups: BTreeMap::new(),
            warned: BTreeSet::new(),
            needs_resync: None,
            stats: FollowStats::default(),
        })
    }

    /// The event socket, for the daemon's event loop to wait on.
    pub fn fd(&self) -> RawFd {
        self.events.fd()
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

    /// Applies the events the kernel has queued, up to a batch; resyncs on
    /// an overrun. True when more may be queued (call again before waiting).
    pub fn drain(&mut self, gw: &mut Gateway) -> Result<bool> {
        let mut links_changed = false;
        let mut more = true;
        for _ in 0..DRAIN_BATCH {
            let msgs = match self.events.recv() {
                Ok(msgs) => msgs,
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
            for msg in msgs {
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
            match self.events.discard() {
                Ok(()) => dropped += 1,
                // Another overrun while reading: keep reading.
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS | libc::EINTR)) => {}
                Err(_) => break,
            }
        }
        log::debug!("follow: dropped {dropped} queued event datagram(s) before the resync");
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
            Mirror::Group { vni, group } => {
                let mut set = self.groups.get(&vni).cloned().unwrap_or_default();
                let changed = if deleted {
                    set.remove(&group)
                } else {
                    set.insert(group)
                };
                if changed {
                    self.set_groups(gw, vni, set);
                    self.stats.changes += 1;
                    log::debug!("follow: {verb} group {group} vni {vni}");
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
        let old = gw.fdb_get(vni, Mac(mac));
        let now = clock::monotonic_ns;
        if deleted {
            // Only the entry the kernel deleted: after a move, the map may
            // already hold the MAC's new place.
            if let Some(old) = old
                && old.same_place(entry)
                && gw.fdb_del_followed(&key)
            {
                self.stats.changes += 1;
                let gone = FdbEntry::default();
                events::report(FdbEvent::new(EventKind::Deleted, key, old, gone, now()));
            }
            return;
        }
        match gw.fdb_put_followed(&key, entry) {
            Ok(true) => {
                self.stats.changes += 1;
                let old = old.unwrap_or_default();
                events::report(FdbEvent::new(EventKind::Added, key, old, *entry, now()));
            }
            Ok(false) => {}
            // Once, not per MAC: a full map refuses every new entry alike.
            Err(e) => self.warn_once(format!(
                "mirroring entries into the FDB map: {e} (what does not fit takes the \
                 kernel path)"
            )),
        }
    }
}
