//! A running gateway: its pinned maps, and every change the daemon and the
//! CLI make to them.
//!
//! Everything vtep knows lives in BPF maps pinned under the pin path
//! (`<pin>/maps/NAME`), so the daemon, the CLI and the next daemon after a
//! restart all act on the same tables, and the datapath keeps forwarding
//! while no daemon runs.

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::{Path, PathBuf},
};

use aya::maps::{
    Array, DevMapHash, HashMap, Map, MapData, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues,
};
use vtep_common::{
    FDB_F_FOLLOWED, FDB_F_LEARNED, FDB_KIND_LOCAL, FdbEntry, FdbKey, FloodList, MAX_FLOOD,
    MAX_VNI_PORTS, NeighEntry, PortInfo, PortKey, PortList, Reason, Underlay, VNI_F_CHECK_SOURCE,
    VNI_F_KERNEL_FALLBACK, VNI_F_LEARNING, VniCounters, VniInfo, VtepAddr, names,
    reason::REASON_COUNT,
};

use crate::{
    datapath::{batch::lookup_batch, loader},
    model::{
        addr::{Mac, from_vtep, to_vtep},
        config::VniConfig,
    },
    system::{clock, iface},
};

use crate::datapath::pins::Pins;

/// What can go wrong acting on a gateway, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(
        "no vtep gateway at {0}: start one with `vtep run --config FILE` (and the same --pin-path)"
    )]
    NotRunning(PathBuf),
    #[error("VNI {0} is not configured on this gateway (see `vtep vni show`)")]
    UnknownVni(u32),
    #[error("VNI {0} exists already")]
    VniExists(u32),
    #[error("no interface named {0:?} here")]
    NoSuchInterface(String),
    #[error("{ifname} is already an access port of VNI {vni}")]
    PortInUse { ifname: String, vni: u32 },
    #[error("{0} is not an access port (see `vtep port show`)")]
    NotAPort(String),
    #[error("{0} is the uplink, not an access port")]
    IsUplink(String),
    #[error("{mac} in VNI {vni}: entry exists already (use `replace` to change it)")]
    EntryExists { mac: Mac, vni: u32 },
    #[error("{mac} in VNI {vni}: no such entry")]
    NoSuchEntry { mac: Mac, vni: u32 },
    #[error("{dst} is already in the flood list of VNI {vni}")]
    FloodMemberExists { dst: IpAddr, vni: u32 },
    #[error("{dst} is not in the flood list of VNI {vni}")]
    NoSuchFloodMember { dst: IpAddr, vni: u32 },
    #[error("the flood list of VNI {0} is full ({MAX_FLOOD} VTEPs)")]
    FloodListFull(u32),
    #[error("VNI {0} has the most access ports it can flood to ({MAX_VNI_PORTS})")]
    PortListFull(u32),
    #[error("{mac} in VNI {vni} is mirrored from the kernel FDB; change it there (bridge fdb)")]
    Followed { mac: Mac, vni: u32 },
    #[error(
        "VNI {0} is mirrored from a kernel vxlan device ([follow] in the config): change it in \
         the kernel (bridge fdb, ip link); vtep follows"
    )]
    FollowedVni(u32),
    #[error("{0}")]
    Invalid(String),
    #[error("map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: MapError,
    },
    #[error("{0}")]
    Attach(String),
    #[error("{0}")]
    System(#[from] std::io::Error),
}

type Result<T, E = GatewayError> = std::result::Result<T, E>;

fn map_err(name: &'static str) -> impl Fn(MapError) -> GatewayError {
    move |source| GatewayError::Map { name, source }
}

/// True when a map error means "no such key".
fn is_not_found(e: &MapError) -> bool {
    match e {
        MapError::KeyNotFound | MapError::ElementNotFound => true,
        MapError::SyscallError(s) => s.io_error.raw_os_error() == Some(libc::ENOENT),
        _ => false,
    }
}

/// How `fdb_set` treats an existing entry (the verbs of `bridge fdb`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetMode {
    /// Fail if the entry exists.
    Add,
    /// Create or overwrite.
    Replace,
}

/// Traffic and reason counters, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub vnis: BTreeMap<u32, VniCounters>,
    pub reasons: Vec<(Reason, u64)>,
}

/// A handle on the maps of one gateway.
pub struct Gateway {
    pub pins: Pins,
    fdb: HashMap<MapData, FdbKey, FdbEntry>,
    vnis: HashMap<MapData, u32, VniInfo>,
    learned: HashMap<MapData, u32, u64>,
    vni_stats: PerCpuHashMap<MapData, u32, VniCounters>,
    ports: HashMap<MapData, PortKey, PortInfo>,
    vni_ports: HashMap<MapData, u32, PortList>,
    flood: HashMap<MapData, u32, FloodList>,
    port_tx: DevMapHash<MapData>,
    underlay: Array<MapData, Underlay>,
    neigh: HashMap<MapData, VtepAddr, NeighEntry>,
    reasons: PerCpuArray<MapData, u64>,
    generation: Array<MapData, u64>,
}

macro_rules! typed {
    ($pins:expr, $name:expr) => {{
        let path = $pins.map($name);
        let data = MapData::from_pin(&path).map_err(map_err($name))?;
        let map = Map::from_map_data(data).map_err(map_err($name))?;
        map.try_into().map_err(map_err($name))?
    }};
}

impl Gateway {
    /// Opens the gateway pinned at `pin_path`.
    pub fn open(pin_path: &Path) -> Result<Self> {
        let pins = Pins::new(pin_path);
        if !pins.map(names::FDB).exists() {
            return Err(GatewayError::NotRunning(pin_path.to_owned()));
        }
        Ok(Gateway {
            fdb: typed!(pins, names::FDB),
            vnis: typed!(pins, names::VNIS),
            learned: typed!(pins, names::VNI_LEARNED),
            vni_stats: typed!(pins, names::VNI_STATS),
            ports: typed!(pins, names::PORTS),
            vni_ports: typed!(pins, names::VNI_PORTS),
            flood: typed!(pins, names::FLOOD),
            port_tx: typed!(pins, names::PORT_TX),
            underlay: typed!(pins, names::UNDERLAY),
            neigh: typed!(pins, names::NEIGH),
            reasons: typed!(pins, names::REASONS),
            generation: typed!(pins, names::GENERATION),
            pins,
        })
    }

    // ---- underlay -------------------------------------------------------

    pub fn underlay(&self) -> Result<Underlay> {
        self.underlay.get(&0, 0).map_err(map_err(names::UNDERLAY))
    }

    pub fn set_underlay(&mut self, u: &Underlay) -> Result<()> {
        self.underlay.set(0, u, 0).map_err(map_err(names::UNDERLAY))
    }

    /// Lets XDP redirect to `ifindex` (the uplink, or an access port whose
    /// far end takes XDP frames).
    pub fn set_xdp_tx(&mut self, ifindex: u32, enabled: bool) -> Result<()> {
        if enabled {
            self.port_tx
                .insert(ifindex, ifindex, None, 0)
                .map_err(|e| GatewayError::Attach(format!("PORT_TX {ifindex}: {e}")))
        } else {
            match self.port_tx.remove(ifindex) {
                Ok(()) => Ok(()),
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(map_err(names::PORT_TX)(e)),
            }
        }
    }

    pub fn xdp_tx(&self, ifindex: u32) -> bool {
        self.port_tx.get(ifindex, 0).is_ok()
    }

    // ---- VNIs -----------------------------------------------------------

    pub fn vni_info(&self, vni: u32) -> Result<VniInfo> {
        self.vnis.get(&vni, 0).map_err(|e| {
            if is_not_found(&e) {
                GatewayError::UnknownVni(vni)
            } else {
                map_err(names::VNIS)(e)
            }
        })
    }

    pub fn vni_exists(&self, vni: u32) -> bool {
        self.vnis.get(&vni, 0).is_ok()
    }

    /// True when `vni` mirrors a kernel vxlan device (`[follow]`): the
    /// follower owns it, its entries and its flood list.
    pub fn vni_followed(&self, vni: u32) -> bool {
        self.vnis
            .get(&vni, 0)
            .is_ok_and(|i| i.flags & VNI_F_KERNEL_FALLBACK != 0)
    }

    /// Creates a VNI, or with `replace` updates its settings (ports and
    /// flood list are set separately).
    pub fn vni_set(&mut self, v: &VniConfig, replace: bool) -> Result<()> {
        if !replace && self.vni_exists(v.id) {
            return Err(GatewayError::VniExists(v.id));
        }
        if self.vni_followed(v.id) {
            return Err(GatewayError::FollowedVni(v.id));
        }
        let mut flags = 0;
        if v.learning {
            flags |= VNI_F_LEARNING;
        }
        if v.check_source {
            flags |= VNI_F_CHECK_SOURCE;
        }
        let info = VniInfo {
            flags,
            max_addresses: v.maxaddress,
            ageing_secs: v.ageing,
            _pad: 0,
        };
        self.vni_put(v.id, info)
    }

    /// Creates or updates a followed VNI (`VNI_F_KERNEL_FALLBACK`: the
    /// kernel learns and ages, vtep does not). `learning`: the kernel's
    /// vxlan device learns remote MACs, so the datapath lets it see remote
    /// sources (`VNI_F_LEARNING`). For the follower only.
    pub fn vni_follow(&mut self, vni: u32, learning: bool) -> Result<()> {
        let info = VniInfo {
            flags: VNI_F_KERNEL_FALLBACK | if learning { VNI_F_LEARNING } else { 0 },
            max_addresses: 0,
            ageing_secs: 0,
            _pad: 0,
        };
        if self.vni_info(vni).is_ok_and(|i| i == info) {
            return Ok(());
        }
        self.vni_put(vni, info)
    }

    /// Removes a followed VNI with its ports, flood list and entries, as
    /// [`Gateway::vni_del`] (for the follower, and for a config that takes
    /// the VNI over).
    pub fn vni_unfollow(&mut self, vni: u32) -> Result<()> {
        if !self.vni_followed(vni) {
            return Ok(());
        }
        self.vni_remove(vni)
    }

    /// Writes a VNI's settings, with zeroed counters for a new one.
    fn vni_put(&mut self, vni: u32, info: VniInfo) -> Result<()> {
        if self.vni_stats.get(&vni, 0).is_err() {
            let zero = PerCpuValues::try_from(vec![VniCounters::default(); clock::nr_cpus()?])
                .map_err(|e| GatewayError::Invalid(format!("per-CPU values: {e}")))?;
            self.vni_stats
                .insert(vni, zero, 0)
                .map_err(map_err(names::VNI_STATS))?;
        }
        if self.learned.get(&vni, 0).is_err() {
            self.learned
                .insert(vni, 0, 0)
                .map_err(map_err(names::VNI_LEARNED))?;
        }
        self.vnis.insert(vni, info, 0).map_err(map_err(names::VNIS))
    }

    /// Removes a VNI with everything in it: its access ports (detached),
    /// flood list, FDB entries and counters.
    pub fn vni_del(&mut self, vni: u32) -> Result<()> {
        self.vni_info(vni)?;
        if self.vni_followed(vni) {
            return Err(GatewayError::FollowedVni(vni));
        }
        self.vni_remove(vni)
    }

    fn vni_remove(&mut self, vni: u32) -> Result<()> {
        self.vni_info(vni)?;
        for ifindex in self.vni_ports(vni) {
            let ifname = iface::ifname(ifindex).unwrap_or_else(|| format!("if{ifindex}"));
            self.port_del_index(ifindex, &ifname)?;
        }
        self.vnis.remove(&vni).map_err(map_err(names::VNIS))?;
        let keys: Vec<FdbKey> = self
            .fdb
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| k.vni == vni)
            .collect();
        for k in keys {
            let _ = self.fdb.remove(&k);
        }
        let _ = self.flood.remove(&vni);
        let _ = self.vni_ports.remove(&vni);
        let _ = self.learned.remove(&vni);
        let _ = self.vni_stats.remove(&vni);
        Ok(())
    }

    pub fn vni_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.vnis.keys().filter_map(|k| k.ok()).collect();
        ids.sort_unstable();
        ids
    }

    /// The access ports of `vni` (ifindexes, in the order it floods them).
    pub fn vni_ports(&self, vni: u32) -> Vec<u32> {
        self.vni_ports
            .get(&vni, 0)
            .map(|l| l.ifindex[..(l.len as usize).min(MAX_VNI_PORTS)].to_vec())
            .unwrap_or_default()
    }

    // ---- access ports ---------------------------------------------------

    /// The VNI of access port `ifindex`, if it is one.
    pub fn port_vni(&self, ifindex: u32) -> Option<u32> {
        self.ports
            .get(&PortKey::untagged(ifindex), 0)
            .ok()
            .map(|p| p.vni)
    }

    /// Every access port: (ifindex, VNI).
    pub fn port_list(&self) -> Vec<(u32, u32)> {
        let mut v: Vec<(u32, u32)> = self
            .ports
            .iter()
            .filter_map(|r| r.ok())
            .map(|(k, p)| (k.ifindex, p.vni))
            .collect();
        v.sort_unstable();
        v
    }

    /// Makes `ifindex` an access port of `vni` in the maps (attaching the
    /// programs is the loader's job: see [`crate::datapath::loader::attach`]).
    pub fn port_set(&mut self, ifindex: u32, ifname: &str, vni: u32) -> Result<()> {
        self.vni_info(vni)?;
        let uplink = self.underlay()?.uplink_ifindex;
        if ifindex == uplink {
            return Err(GatewayError::IsUplink(ifname.into()));
        }
        if let Some(old) = self.port_vni(ifindex)
            && old != vni
        {
            return Err(GatewayError::PortInUse {
                ifname: ifname.into(),
                vni: old,
            });
        }
        let mut list = self.vni_ports.get(&vni, 0).unwrap_or_default();
        let n = (list.len as usize).min(MAX_VNI_PORTS);
        if !list.ifindex[..n].contains(&ifindex) {
            if n == MAX_VNI_PORTS {
                return Err(GatewayError::PortListFull(vni));
            }
            list.ifindex[n] = ifindex;
            list.len = n as u32 + 1;
            self.vni_ports
                .insert(vni, list, 0)
                .map_err(map_err(names::VNI_PORTS))?;
        }
        self.ports
            .insert(PortKey::untagged(ifindex), PortInfo { vni, flags: 0 }, 0)
            .map_err(map_err(names::PORTS))
    }

    /// Removes access port `ifname` from the maps, detaches its programs and
    /// flushes the FDB entries that point to it.
    pub fn port_del(&mut self, ifname: &str) -> Result<()> {
        let ifindex =
            iface::ifindex(ifname).ok_or_else(|| GatewayError::NoSuchInterface(ifname.into()))?;
        match self.port_vni(ifindex) {
            None => return Err(GatewayError::NotAPort(ifname.into())),
            Some(vni) if self.vni_followed(vni) => return Err(GatewayError::FollowedVni(vni)),
            Some(_) => {}
        }
        self.port_del_index(ifindex, ifname)
    }

    /// Removes access port `ifindex` (named `ifname` in messages).
    pub fn port_del_index(&mut self, ifindex: u32, ifname: &str) -> Result<()> {
        loader::detach(&self.pins, ifindex)
            .map_err(|e| GatewayError::Attach(format!("{ifname}: {e:#}")))?;
        if let Some(vni) = self.port_vni(ifindex)
            && let Ok(mut list) = self.vni_ports.get(&vni, 0)
        {
            let n = (list.len as usize).min(MAX_VNI_PORTS);
            let kept: Vec<u32> = list.ifindex[..n]
                .iter()
                .copied()
                .filter(|&i| i != ifindex)
                .collect();
            list.ifindex = [0; MAX_VNI_PORTS];
            list.ifindex[..kept.len()].copy_from_slice(&kept);
            list.len = kept.len() as u32;
            self.vni_ports
                .insert(vni, list, 0)
                .map_err(map_err(names::VNI_PORTS))?;
        }
        let _ = self.ports.remove(&PortKey::untagged(ifindex));
        self.set_xdp_tx(ifindex, false)?;
        let stale: Vec<FdbKey> = self
            .fdb
            .iter()
            .filter_map(|r| r.ok())
            .filter(|(_, e)| e.kind == FDB_KIND_LOCAL && e.ifindex == ifindex)
            .map(|(k, _)| k)
            .collect();
        for k in stale {
            self.fdb_remove_counted(&k);
        }
        Ok(())
    }

    // ---- flood lists ----------------------------------------------------

    pub fn flood_list(&self, vni: u32) -> Vec<IpAddr> {
        self.flood
            .get(&vni, 0)
            .map(|l| l.members().iter().filter_map(from_vtep).collect())
            .unwrap_or_default()
    }

    /// `bridge fdb append 00:00:00:00:00:00 ... dst IP`.
    pub fn flood_add(&mut self, vni: u32, dst: IpAddr) -> Result<()> {
        self.vni_info(vni)?;
        if self.vni_followed(vni) {
            return Err(GatewayError::FollowedVni(vni));
        }
        let mut list = self.flood.get(&vni, 0).unwrap_or_default();
        let member = to_vtep(dst);
        if list.contains(&member) {
            return Err(GatewayError::FloodMemberExists { dst, vni });
        }
        let n = list.members().len();
        if n == MAX_FLOOD {
            return Err(GatewayError::FloodListFull(vni));
        }
        list.vteps[n] = member;
        list.len = n as u32 + 1;
        self.flood
            .insert(vni, list, 0)
            .map_err(map_err(names::FLOOD))
    }

    /// `bridge fdb del 00:00:00:00:00:00 ... [dst IP]`: one member, or with
    /// no `dst` the whole list.
    pub fn flood_del(&mut self, vni: u32, dst: Option<IpAddr>) -> Result<()> {
        self.vni_info(vni)?;
        if self.vni_followed(vni) {
            return Err(GatewayError::FollowedVni(vni));
        }
        let list = self.flood.get(&vni, 0).unwrap_or_default();
        let kept: Vec<VtepAddr> = match dst {
            None => Vec::new(),
            Some(d) => {
                let member = to_vtep(d);
                if !list.contains(&member) {
                    return Err(GatewayError::NoSuchFloodMember { dst: d, vni });
                }
                list.members()
                    .iter()
                    .copied()
                    .filter(|m| *m != member)
                    .collect()
            }
        };
        self.flood_set(vni, &kept)
    }

    /// Sets the whole flood list of `vni`.
    pub fn flood_set(&mut self, vni: u32, members: &[VtepAddr]) -> Result<()> {
        if members.len() > MAX_FLOOD {
            return Err(GatewayError::FloodListFull(vni));
        }
        let mut list = FloodList::default();
        list.vteps[..members.len()].copy_from_slice(members);
        list.len = members.len() as u32;
        self.flood
            .insert(vni, list, 0)
            .map_err(map_err(names::FLOOD))
    }

    // ---- FDB ------------------------------------------------------------

    pub fn fdb_get(&self, vni: u32, mac: Mac) -> Option<FdbEntry> {
        self.fdb.get(&FdbKey::new(vni, mac.0), 0).ok()
    }

    /// Adds or replaces a static entry (`bridge fdb add|replace`).
    pub fn fdb_set(&mut self, vni: u32, mac: Mac, entry: FdbEntry, mode: SetMode) -> Result<()> {
        self.vni_info(vni)?;
        if entry.flags & FDB_F_FOLLOWED == 0 && self.vni_followed(vni) {
            return Err(GatewayError::FollowedVni(vni));
        }
        if mac.is_multicast() || mac.is_zero() {
            return Err(GatewayError::Invalid(format!(
                "{mac} is not a unicast MAC (flood-list members are 00:00:00:00:00:00 with append)"
            )));
        }
        if let FdbEntry {
            kind: FDB_KIND_LOCAL,
            ifindex,
            ..
        } = entry
            && self.port_vni(ifindex) != Some(vni)
        {
            let name = iface::ifname(ifindex).unwrap_or_else(|| format!("if{ifindex}"));
            return Err(GatewayError::Invalid(format!(
                "{name} is not an access port of VNI {vni}"
            )));
        }
        let key = FdbKey::new(vni, mac.0);
        let old = self.fdb.get(&key, 0).ok();
        if let Some(old) = old {
            if old.flags & FDB_F_FOLLOWED != 0 && entry.flags & FDB_F_FOLLOWED == 0 {
                return Err(GatewayError::Followed { mac, vni });
            }
            if mode == SetMode::Add {
                return Err(GatewayError::EntryExists { mac, vni });
            }
        }
        self.fdb
            .insert(key, entry, 0)
            .map_err(map_err(names::FDB))?;
        if old.is_some_and(|o| o.flags & FDB_F_LEARNED != 0) {
            self.learned_add(vni, -1);
        }
        Ok(())
    }

    /// Deletes an entry (`bridge fdb del`).
    pub fn fdb_del(&mut self, vni: u32, mac: Mac) -> Result<()> {
        self.vni_info(vni)?;
        let key = FdbKey::new(vni, mac.0);
        let Ok(old) = self.fdb.get(&key, 0) else {
            return Err(GatewayError::NoSuchEntry { mac, vni });
        };
        if old.flags & FDB_F_FOLLOWED != 0 {
            return Err(GatewayError::Followed { mac, vni });
        }
        self.fdb_remove_counted(&key);
        Ok(())
    }

    /// Removes an entry the follower mirrored (`FDB_F_FOLLOWED`); any other
    /// entry is left alone. True when one was removed.
    pub fn fdb_del_followed(&mut self, key: &FdbKey) -> bool {
        match self.fdb.get(key, 0) {
            Ok(old) if old.flags & FDB_F_FOLLOWED != 0 => self.fdb.remove(key).is_ok(),
            _ => false,
        }
    }

    /// Writes an entry the follower mirrored, unless the map holds it
    /// already (the datapath's `last_seen_ns` of a followed entry is not
    /// compared, and kept). True when it wrote.
    pub fn fdb_put_followed(&mut self, key: &FdbKey, entry: &FdbEntry) -> Result<bool> {
        if let Ok(old) = self.fdb.get(key, 0)
            && old.same_place(entry)
            && old.flags == entry.flags
        {
            return Ok(false);
        }
        self.fdb
            .insert(key, entry, 0)
            .map_err(map_err(names::FDB))?;
        Ok(true)
    }

    /// Removes an entry, keeping the VNI's learned count right.
    fn fdb_remove_counted(&mut self, key: &FdbKey) {
        if let Ok(old) = self.fdb.get(key, 0)
            && self.fdb.remove(key).is_ok()
            && old.flags & FDB_F_LEARNED != 0
        {
            self.learned_add(key.vni, -1);
        }
    }

    fn learned_add(&mut self, vni: u32, delta: i64) {
        if let Ok(n) = self.learned.get(&vni, 0) {
            let _ = self.learned.insert(vni, n.saturating_add_signed(delta), 0);
        }
    }

    /// Removes learned entries older than their VNI's `ageing`, and
    /// recounts each VNI's learned MACs. Returns how many were aged out.
    pub fn age(&mut self, now_ns: u64) -> usize {
        let infos: Vec<(u32, VniInfo)> = self.vnis.iter().filter_map(|r| r.ok()).collect();
        // Followed VNIs hold no learned entries (the kernel learns): with
        // only those, there is nothing to walk the FDB for.
        if infos
            .iter()
            .all(|(_, i)| i.flags & VNI_F_KERNEL_FALLBACK != 0)
        {
            return 0;
        }
        let ageing: BTreeMap<u32, u32> =
            infos.into_iter().map(|(v, i)| (v, i.ageing_secs)).collect();
        let mut counts: BTreeMap<u32, u64> = ageing.keys().map(|&v| (v, 0)).collect();
        let mut expired = Vec::new();
        for (k, e) in self.fdb_entries() {
            if e.flags & FDB_F_LEARNED == 0 {
                continue;
            }
            let limit = ageing.get(&k.vni).copied().unwrap_or(0);
            let age_ns = now_ns.saturating_sub(e.last_seen_ns);
            if limit != 0 && age_ns > u64::from(limit) * 1_000_000_000 {
                expired.push((k, e));
            } else {
                *counts.entry(k.vni).or_default() += 1;
            }
        }
        let mut removed = 0;
        for (k, seen) in expired {
            // Re-read: the datapath may have refreshed it since.
            match self.fdb.get(&k, 0) {
                Ok(e) if e == seen => {
                    if self.fdb.remove(&k).is_ok() {
                        removed += 1;
                    }
                }
                Ok(_) => *counts.entry(k.vni).or_default() += 1,
                Err(_) => {}
            }
        }
        for (vni, n) in counts {
            if self.vni_exists(vni) {
                let _ = self.learned.insert(vni, n, 0);
            }
        }
        removed
    }

    /// Every remote VTEP this gateway sends to (flood lists and FDB).
    pub fn remote_vteps(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .fdb_entries()
            .into_iter()
            .filter(|(_, e)| e.kind != FDB_KIND_LOCAL)
            .filter_map(|(_, e)| from_vtep(&e.remote))
            .collect();
        for vni in self.vni_ids() {
            v.extend(self.flood_list(vni));
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    // ---- neighbours -----------------------------------------------------

    pub fn neigh_set(&mut self, nh: IpAddr, n: &NeighEntry) -> Result<()> {
        self.neigh
            .insert(to_vtep(nh), n, 0)
            .map_err(map_err(names::NEIGH))
    }

    pub fn neigh_del(&mut self, nh: IpAddr) {
        let _ = self.neigh.remove(&to_vtep(nh));
    }

    pub fn neigh_keys(&self) -> Vec<IpAddr> {
        self.neigh
            .keys()
            .filter_map(|k| k.ok())
            .filter_map(|k| from_vtep(&k))
            .collect()
    }

    // ---- counters -------------------------------------------------------

    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        for r in self.vni_stats.iter() {
            let (vni, per_cpu) = r.map_err(map_err(names::VNI_STATS))?;
            let mut sum = VniCounters::default();
            for c in per_cpu.iter() {
                sum.add(c);
            }
            s.vnis.insert(vni, sum);
        }
        for code in 0..REASON_COUNT {
            let per_cpu = self
                .reasons
                .get(&code, 0)
                .map_err(map_err(names::REASONS))?;
            let n: u64 = per_cpu.iter().sum();
            if let Some(r) = Reason::from_code(code) {
                s.reasons.push((r, n));
            }
        }
        Ok(s)
    }
}

/// Whole-table reads and single-entry writes for the AF_XDP engine, which
/// keeps a view of the tables in userspace (see `crate::control::apply::afxdp::view`).
impl Gateway {
    /// Every FDB entry: read in batches (`BPF_MAP_LOOKUP_BATCH`, a syscall
    /// per thousands of entries, where iterating takes two per entry: with
    /// 100,000 followed entries that is the daemon's whole upkeep), else one
    /// by one.
    pub fn fdb_entries(&self) -> Vec<(FdbKey, FdbEntry)> {
        use aya::maps::IterableMap as _;
        use std::os::fd::{AsFd as _, AsRawFd as _};
        let fd = self.fdb.map().fd().as_fd().as_raw_fd();
        match lookup_batch::<FdbKey, FdbEntry>(fd) {
            Ok(all) => all,
            Err(e) => {
                log::debug!("FDB: batch lookup unavailable ({e}); iterating");
                self.fdb.iter().filter_map(|r| r.ok()).collect()
            }
        }
    }

    /// Writes one FDB entry as the datapath's learning does (no checks).
    pub fn fdb_learn(&mut self, key: &FdbKey, entry: &FdbEntry) -> Result<()> {
        self.fdb.insert(key, entry, 0).map_err(map_err(names::FDB))
    }

    /// Every VNI with its settings.
    pub fn vni_infos(&self) -> Vec<(u32, VniInfo)> {
        self.vnis.iter().filter_map(|r| r.ok()).collect()
    }

    /// The access ports of every VNI.
    pub fn vni_port_lists(&self) -> Vec<(u32, PortList)> {
        self.vni_ports.iter().filter_map(|r| r.ok()).collect()
    }

    /// The flood list of every VNI.
    pub fn flood_lists(&self) -> Vec<(u32, FloodList)> {
        self.flood.iter().filter_map(|r| r.ok()).collect()
    }

    /// Every resolved next hop.
    pub fn neigh_entries(&self) -> Vec<(VtepAddr, NeighEntry)> {
        self.neigh.iter().filter_map(|r| r.ok()).collect()
    }

    /// Learned MACs of `vni`, as the datapath counts them.
    pub fn learned(&self, vni: u32) -> Option<u64> {
        self.learned.get(&vni, 0).ok()
    }

    pub fn set_learned(&mut self, vni: u32, n: u64) {
        let _ = self.learned.insert(vni, n, 0);
    }

    /// Adds counts made outside the kernel (the AF_XDP engine) to the
    /// per-CPU counters, in the slot of CPU `cpu`.
    pub fn add_counters(
        &mut self,
        cpu: usize,
        reasons: &[u64],
        vnis: &BTreeMap<u32, VniCounters>,
    ) -> Result<()> {
        for (code, &n) in reasons.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let code = code as u32;
            let mut v: Vec<u64> = self
                .reasons
                .get(&code, 0)
                .map_err(map_err(names::REASONS))?
                .to_vec();
            if let Some(slot) = v.get_mut(cpu) {
                *slot += n;
            }
            let v = PerCpuValues::try_from(v)
                .map_err(|e| GatewayError::Invalid(format!("per-CPU values: {e}")))?;
            self.reasons
                .set(code, v, 0)
                .map_err(map_err(names::REASONS))?;
        }
        for (vni, delta) in vnis {
            let Ok(v) = self.vni_stats.get(vni, 0) else {
                continue;
            };
            let mut v: Vec<VniCounters> = v.to_vec();
            if let Some(slot) = v.get_mut(cpu) {
                slot.add(delta);
            }
            let v = PerCpuValues::try_from(v)
                .map_err(|e| GatewayError::Invalid(format!("per-CPU values: {e}")))?;
            self.vni_stats
                .insert(*vni, v, 0)
                .map_err(map_err(names::VNI_STATS))?;
        }
        Ok(())
    }
}

/// The change counter of [`names::GENERATION`].
impl Gateway {
    /// Tells engines with a copy of the tables that they changed; returns
    /// the new generation.
    pub fn bump_generation(&mut self) -> Result<u64> {
        let g = self.generation().wrapping_add(1).max(1);
        self.generation
            .set(0, g, 0)
            .map_err(map_err(names::GENERATION))?;
        Ok(g)
    }

    pub fn generation(&self) -> u64 {
        self.generation.get(&0, 0).unwrap_or(0)
    }

    /// The generation a userspace engine has applied; 0 when none runs.
    pub fn applied_generation(&self) -> u64 {
        self.generation.get(&1, 0).unwrap_or(0)
    }

    /// Records (engine side) that generation `g` is applied; 0 when the
    /// engine stops.
    pub fn set_applied_generation(&mut self, g: u64) {
        let _ = self.generation.set(1, g, 0);
    }

    /// Waits (CLI side) until a running userspace engine has applied
    /// generation `g`; false if it has not within `timeout`.
    pub fn wait_applied(&self, g: u64, timeout: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        loop {
            let applied = self.applied_generation();
            if applied == 0 || applied >= g {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
