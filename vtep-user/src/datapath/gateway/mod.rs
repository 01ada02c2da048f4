//! A running gateway: its pinned maps, and every change the daemon and the
//! CLI make to them, one module per table family (`vni`, `ports`,
//! `flood`, `group`, `fdb`, `neigh`, `stats`, and the AF_XDP engine's
//! `view` of them); this module opens them and holds the underlay.
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
    VNI_F_FOLLOWED, VNI_F_LEARNING, VniCounters, VniInfo, VtepAddr, layout, names,
    reason::REASON_COUNT,
};

use crate::{
    datapath::{batch::lookup_batch, loader, migrate, pins::Pins},
    model::{
        addr::{Mac, from_vtep, to_vtep},
        config::VniConfig,
    },
    system::{clock, iface},
};

pub mod check;
mod fdb;
mod flood;
mod group;
mod monitor;
mod neigh;
mod ports;
mod stats;
mod view;
mod vni;

pub use self::stats::Stats;

/// What can go wrong acting on a gateway, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(
        "no vtep gateway at {0}: start one with `vtep run --config FILE` (and the same --pin-path)"
    )]
    NotRunning(PathBuf),
    #[error(
        "the maps pinned at {path} have layout {version}, an older vtep's; this vtep reads \
         layout {current}. `vtep run` of this version upgrades them in place and keeps the FDB \
         and forwarding; until then use the CLI of the vtep that runs there"
    )]
    OlderLayout {
        path: PathBuf,
        version: u32,
        current: u32,
    },
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
    #[error("{} multicast group {group} on the uplink: {source}", if *join { "joining" } else { "leaving" })]
    Membership {
        group: IpAddr,
        join: bool,
        #[source]
        source: std::io::Error,
    },
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
    /// `VNI_GROUP`; `None` on a gateway pinned before it existed (an older
    /// layout, until the daemon converts it).
    vni_group: Option<HashMap<MapData, u32, VtepAddr>>,
    reasons: PerCpuArray<MapData, u64>,
    generation: Array<MapData, u64>,
    walk: fdb::FdbWalk,
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
        // Older pins hold values of other sizes (an older `Underlay`, ...):
        // said plainly, not as the first map whose value size differs.
        if let Ok(Some(version)) = migrate::pinned_version(&pins)
            && version < layout::VERSION
        {
            return Err(GatewayError::OlderLayout {
                path: pins.maps(),
                version,
                current: layout::VERSION,
            });
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
            vni_group: if pins.map(names::VNI_GROUP).exists() {
                Some(typed!(pins, names::VNI_GROUP))
            } else {
                None
            },
            reasons: typed!(pins, names::REASONS),
            generation: typed!(pins, names::GENERATION),
            walk: fdb::FdbWalk::default(),
            pins,
        })
    }

    /// The underlay (`UNDERLAY`): this VTEP's address, port and uplink.
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
}
