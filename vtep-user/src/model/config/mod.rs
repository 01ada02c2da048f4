//! The TOML config of `vtep run`: the validated model ([`Config`] and its
//! parts), and its reading and validation (`validate`).
//!
//! A config is checked whole before anything is applied: every problem is
//! reported ([`ConfigErrors`], one line each), each naming the field
//! (`vni[1].flood[0]`) and saying what is wrong, and a config with an error
//! changes nothing. Interface names are checked against the system by
//! `control::apply`, which adds its findings to the same list.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

use crate::model::addr::Mac;

/// Which engine forwards: the XDP programs, or the AF_XDP engine in
/// userspace behind small steering programs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    #[default]
    Xdp,
    Afxdp,
}

/// A config error: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl fmt::Display) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

/// Every problem of a config, in the order of the text. Shown one per
/// line: a single problem as `field: reason`, several under a count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
    /// The interfaces the refused config names (field, name), so that the
    /// checks against the system can add theirs to the same list.
    pub interfaces: Vec<(String, String)>,
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors {
            errors: vec![e],
            interfaces: Vec::new(),
        }
    }
}

impl std::ops::Deref for ConfigErrors {
    type Target = [ConfigError];

    fn deref(&self) -> &[ConfigError] {
        &self.errors
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.errors[..] {
            [one] => write!(f, "{one}"),
            all => {
                write!(f, "{} problems:", all.len())?;
                for e in all {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ConfigErrors {}

/// A validated config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Which engine forwards (`engine = "xdp" | "afxdp"`).
    pub engine: EngineKind,
    /// AF_XDP engine: spin on the rings instead of sleeping in poll(2).
    pub busy_poll: bool,
    /// AF_XDP engine: the CPU its queue-0 worker is pinned to (queue q's: the
    /// q-th after it, wrapping around).
    pub afxdp_cpu: Option<usize>,
    pub underlay: UnderlayConfig,
    pub vnis: Vec<VniConfig>,
    pub fdb: Vec<FdbConfig>,
    /// `[follow]`: mirror kernel vxlan devices and their bridges.
    pub follow: Option<FollowConfig>,
    /// `[capacity]`: how many entries the tables hold.
    pub capacity: Capacity,
    /// `[metrics]`: the daemon's Prometheus endpoint; off when `None`.
    pub metrics: Option<MetricsConfig>,
}

/// `[metrics]`: where the daemon serves `GET /metrics` (the Prometheus
/// text format, or OpenMetrics when the scraper asks for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `listen = "ADDR:PORT"`.
    pub listen: SocketAddr,
}

impl MetricsConfig {
    /// Reads `ADDR:PORT` (`[::1]:9100` for IPv6), as `metrics.listen` or
    /// `vtep run --metrics` give it; port 0 is refused (a scraper has to
    /// know the port).
    pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
        let addr: SocketAddr = text.trim().parse().map_err(|_| {
            format!("{text:?} is not ADDR:PORT (e.g. \"198.18.0.1:9100\" or \"[::1]:9100\")")
        })?;
        if addr.port() == 0 {
            return Err(format!("{text}: give a port (1..=65535)"));
        }
        Ok(addr)
    }
}

/// `[capacity]`: the size of the datapath's tables, in entries. A table's
/// memory is allocated whole when it is created (BPF hash maps are
/// preallocated), so it costs the same empty or full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// FDB entries, static, learned and followed together (`fdb`).
    pub fdb: u32,
}

impl Capacity {
    /// The smallest FDB vtep creates.
    pub const MIN_FDB: u32 = 1024;
    /// The largest: 16 Mi entries.
    pub const MAX_FDB: u32 = 1 << 24;
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            fdb: vtep_common::FDB_CAPACITY,
        }
    }
}

/// `[follow]`: which kernel vxlan devices vtep mirrors (their FDB, flood
/// lists, bridge ports, VNI, port and local address).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowConfig {
    /// The devices, by name (`devices = [...]`); empty with `all`.
    pub devices: Vec<String>,
    /// Every vxlan device of the network namespace (`all = true`).
    pub all: bool,
    /// `underlay.local` was left out: the daemon takes it from the followed
    /// devices before anything is applied (until then `underlay.local` is
    /// unspecified).
    pub local_from_link: bool,
    /// `underlay.port` was left out: the daemon takes it from the followed
    /// devices.
    pub port_from_link: bool,
    /// Receive buffer of the rtnetlink event socket, bytes (`rcvbuf`): an
    /// overrun costs a full resync.
    pub rcvbuf: usize,
}

impl FollowConfig {
    /// Default receive buffer of the event socket: room for tens of
    /// thousands of FDB events while the daemon is busy (an overrun costs a
    /// resync).
    pub const DEFAULT_RCVBUF: usize = 32 << 20;
}

impl FollowConfig {
    /// Whether the device named `name` is to be followed.
    pub fn wants(&self, name: &str) -> bool {
        self.all || self.devices.iter().any(|d| d == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnderlayConfig {
    pub interface: String,
    /// This VTEP's addresses: one of each family at most (`local = IP` or
    /// `local = [IPv4, IPv6]`).
    pub local: Locals,
    pub port: u16,
    pub srcport: (u16, u16),
    /// Outer TTL / hop limit; [`TTL_AUTO`] (`ttl = "auto"`, the default):
    /// 64 to VTEPs, 1 to groups, as the kernel vxlan driver.
    pub ttl: u8,
    /// The outer TOS / traffic class (`tos`).
    pub tos: Tos,
    /// The outer IPv6 flow label (`flowlabel`).
    pub flowlabel: FlowLabel,
    /// Outer UDP checksums over IPv4 (`udp_checksum`).
    pub udp_checksum: bool,
    /// Zero UDP checksums sent over IPv6 (`udp6_zero_csum_tx`, the kernel's
    /// `udp6zerocsumtx`).
    pub udp6_zero_csum_tx: bool,
    /// Zero UDP checksums accepted over IPv6 (`udp6_zero_csum_rx`, the
    /// kernel's `udp6zerocsumrx`).
    pub udp6_zero_csum_rx: bool,
}

/// This VTEP's underlay addresses: an IPv4 one, an IPv6 one, or both (a
/// dual-stack VTEP reaches each remote VTEP from the address of its
/// family).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locals {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl Locals {
    /// The one address `ip`.
    pub fn one(ip: IpAddr) -> Self {
        let mut l = Locals::default();
        l.set(ip);
        l
    }

    /// Sets the address of `ip`'s family to `ip`.
    pub fn set(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => self.v4 = Some(v4),
            IpAddr::V6(v6) => self.v6 = Some(v6),
        }
    }

    /// The local address of `remote`'s family: the outer source toward it.
    pub fn for_remote(&self, remote: IpAddr) -> Option<IpAddr> {
        match remote {
            IpAddr::V4(_) => self.v4.map(IpAddr::V4),
            IpAddr::V6(_) => self.v6.map(IpAddr::V6),
        }
    }

    /// Whether `ip` is one of these addresses.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.iter().any(|l| l == ip)
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_none() && self.v6.is_none()
    }

    /// The addresses, IPv4 first.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + use<> {
        self.v4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.v6.map(IpAddr::V6))
    }

    /// Why `remote` (a flood-list member, an FDB `dst`, a group) cannot be
    /// reached from these addresses, if it cannot: it is of a family with
    /// no local address.
    pub fn unreachable(&self, remote: IpAddr) -> Option<String> {
        if self.for_remote(remote).is_some() {
            return None;
        }
        let family = if remote.is_ipv4() { "IPv4" } else { "IPv6" };
        Some(format!(
            "{remote} is {family} but underlay.local has no {family} address"
        ))
    }
}

impl fmt::Display for Locals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.iter().map(|a| a.to_string()).collect();
        if all.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&all.join(", "))
        }
    }
}

/// `tos`: the outer DS field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tos {
    /// `tos = N` (its ECN bits are ignored: RFC 6040 sets them).
    Fixed(u8),
    /// `tos = "inherit"`: the inner IP packet's DS field.
    Inherit,
}

/// `flowlabel`: the outer IPv6 flow label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowLabel {
    /// `"hash"` (the default): the inner flow's hash, as RFC 6438 suggests.
    Hash,
    /// `"inherit"`: the inner IPv6 packet's (0 for other frames).
    Inherit,
    /// `N` (0..=1048575): the same for every packet.
    Fixed(u32),
}

impl FlowLabel {
    /// The largest flow label (20 bits).
    pub const MAX: u32 = (1 << 20) - 1;
}

/// Default learned-entry lifetime, as the kernel bridge's `ageing_time`.
pub const DEFAULT_AGEING: u32 = 300;
/// Default outer UDP source-port range (the kernel vxlan driver's default is
/// the local port range; this is the IANA dynamic range).
pub const DEFAULT_SRCPORT: (u16, u16) = (49152, 65535);
/// `Underlay::ttl` 0: "auto" (the kernel vxlan driver's rule).
pub const TTL_AUTO: u8 = 0;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VniConfig {
    pub id: u32,
    pub ports: Vec<String>,
    pub flood: Vec<IpAddr>,
    /// The multicast group BUM frames also go to (`group`), joined on the
    /// uplink.
    pub group: Option<IpAddr>,
    pub learning: bool,
    pub ageing: u32,
    pub maxaddress: u32,
    pub check_source: bool,
}

impl VniConfig {
    /// A VNI with the defaults, as `vtep vni add` creates it.
    pub fn new(id: u32) -> Self {
        VniConfig {
            id,
            ports: Vec::new(),
            flood: Vec::new(),
            group: None,
            learning: true,
            ageing: DEFAULT_AGEING,
            maxaddress: 0,
            check_source: false,
        }
    }
}

/// Where a static FDB entry points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FdbTarget {
    Remote(IpAddr),
    Port(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdbConfig {
    pub mac: Mac,
    pub vni: u32,
    pub target: FdbTarget,
}

impl Config {
    /// The interfaces the config names, each with its field: the uplink,
    /// then every access port.
    pub fn interfaces(&self) -> Vec<(String, String)> {
        let ports = self.vnis.iter().enumerate().flat_map(|(i, v)| {
            v.ports
                .iter()
                .enumerate()
                .map(move |(j, p)| (format!("vni[{i}].ports[{j}]"), p.clone()))
        });
        std::iter::once((
            "underlay.interface".to_owned(),
            self.underlay.interface.clone(),
        ))
        .chain(ports)
        .collect()
    }
}

impl FromStr for Config {
    type Err = ConfigErrors;

    fn from_str(text: &str) -> Result<Self, ConfigErrors> {
        validate::parse(text)
    }
}

mod validate;

pub use validate::{check_group, check_ifname, check_vni, parse_vtep};

#[cfg(test)]
mod tests;
