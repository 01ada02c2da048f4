//! The TOML config of `vtep run`, and its validation.
//!
//! A config is checked whole before anything is applied: every error names
//! the field (`vni[1].flood[0]`) and says what is wrong, and a config with an
//! error changes nothing. Interface names are checked against the system by
//! the loader, which reports them with the same field names.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    net::IpAddr,
    path::Path,
    str::FromStr,
};

use serde::Deserialize;
use vtep_common::{MAX_FLOOD, MAX_VNI_PORTS, VNI_MAX, VXLAN_PORT};

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    engine: Option<EngineKind>,
    afxdp: Option<RawAfxdp>,
    underlay: RawUnderlay,
    #[serde(default)]
    vni: Vec<RawVni>,
    #[serde(default)]
    fdb: Vec<RawFdb>,
    follow: Option<RawFollow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFollow {
    devices: Option<Vec<String>>,
    all: Option<bool>,
    rcvbuf: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAfxdp {
    busy_poll: Option<bool>,
    cpu: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUnderlay {
    interface: String,
    local: Option<String>,
    port: Option<i64>,
    srcport: Option<Vec<i64>>,
    ttl: Option<i64>,
    udp_checksum: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVni {
    id: i64,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    flood: Vec<String>,
    learning: Option<bool>,
    ageing: Option<i64>,
    maxaddress: Option<i64>,
    check_source: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFdb {
    mac: String,
    vni: i64,
    dst: Option<String>,
    port: Option<String>,
}

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
    pub local: IpAddr,
    pub port: u16,
    pub srcport: (u16, u16),
    pub ttl: u8,
    pub udp_checksum: bool,
}

/// Default learned-entry lifetime, as the kernel bridge's `ageing_time`.
pub const DEFAULT_AGEING: u32 = 300;
/// Default outer UDP source-port range (the kernel vxlan driver's default is
/// the local port range; this is the IANA dynamic range).
pub const DEFAULT_SRCPORT: (u16, u16) = (49152, 65535);
pub const DEFAULT_TTL: u8 = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VniConfig {
    pub id: u32,
    pub ports: Vec<String>,
    pub flood: Vec<IpAddr>,
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
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Ok(text.parse()?)
    }
}

impl FromStr for Config {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => {
                let line = text[..span.start].lines().count().max(1);
                let field = field_at(text, span.start).unwrap_or_else(|| format!("line {line}"));
                ConfigError::new(field, format!("line {line}: {}", e.message()))
            }
            None => ConfigError::new("config", e.message()),
        })?;
        validate(raw)
    }
}

/// The dotted name of the field whose value starts at byte `at` of a TOML
/// text, as the validation errors name fields (`underlay.ttl`,
/// `vni[1].learning`): the key on that line under the last table header
/// above it. `None` when the line holds no `key = value`.
fn field_at(text: &str, at: usize) -> Option<String> {
    let start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let mut table = String::new();
    let mut counts = BTreeMap::<&str, usize>::new();
    for l in text[..start].lines().map(str::trim) {
        if let Some(name) = l.strip_prefix("[[").and_then(|l| l.split_once("]]")) {
            let n = counts.entry(name.0.trim()).or_default();
            table = format!("{}[{n}]", name.0.trim());
            *n += 1;
        } else if let Some(name) = l.strip_prefix('[').and_then(|l| l.split_once(']')) {
            table = name.0.trim().to_string();
        }
    }
    Some(if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    })
}

fn int<T: TryFrom<i64>>(field: &str, v: i64, min: i64, max: i64) -> Result<T, ConfigError> {
    if v < min || v > max {
        return Err(ConfigError::new(
            field,
            format!("{v} is outside {min}..={max}"),
        ));
    }
    T::try_from(v).map_err(|_| ConfigError::new(field, format!("{v} is out of range")))
}

/// Parses a VTEP address: IPv4 (an IPv6 underlay is not supported yet).
pub fn parse_vtep(field: &str, s: &str) -> Result<IpAddr, ConfigError> {
    let ip: IpAddr = s
        .parse()
        .map_err(|_| ConfigError::new(field, format!("{s:?} is not an IP address")))?;
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() => Err(
            ConfigError::new(field, format!("{s} is not a unicast address")),
        ),
        IpAddr::V4(_) => Ok(ip),
        IpAddr::V6(_) => Err(ConfigError::new(
            field,
            format!("{s}: an IPv6 underlay is not supported yet (use an IPv4 address)"),
        )),
    }
}

/// Checks an interface name the way the kernel would (IFNAMSIZ).
pub fn check_ifname(field: &str, s: &str) -> Result<(), ConfigError> {
    if s.is_empty() || s.len() > 15 || s.contains(['/', ' ', '\0']) || s == "." || s == ".." {
        return Err(ConfigError::new(
            field,
            format!("{s:?} is not a valid interface name"),
        ));
    }
    Ok(())
}

/// Checks a VNI (1..=16777215).
pub fn check_vni(field: &str, v: i64) -> Result<u32, ConfigError> {
    int(field, v, 1, i64::from(VNI_MAX))
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    let u = raw.underlay;
    check_ifname("underlay.interface", &u.interface)?;
    let local = match (&u.local, &raw.follow) {
        (Some(l), _) => parse_vtep("underlay.local", l)?,
        // Taken from the followed vxlan devices when the daemon starts.
        (None, Some(_)) => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        (None, None) => {
            return Err(ConfigError::new(
                "underlay.local",
                "missing: give this VTEP's IPv4 address",
            ));
        }
    };
    let follow = match raw.follow {
        None => None,
        Some(f) => Some(validate_follow(f, &u, &raw.vni)?),
    };
    let port = match u.port {
        Some(p) => int("underlay.port", p, 1, 65535)?,
        None => VXLAN_PORT,
    };
    let srcport = match u.srcport {
        None => DEFAULT_SRCPORT,
        Some(r) => {
            let [min, max] = r[..] else {
                return Err(ConfigError::new(
                    "underlay.srcport",
                    "expected [MIN, MAX], two port numbers",
                ));
            };
            let min: u16 = int("underlay.srcport[0]", min, 1, 65535)?;
            let max: u16 = int("underlay.srcport[1]", max, 1, 65535)?;
            if min > max {
                return Err(ConfigError::new(
                    "underlay.srcport",
                    format!("MIN {min} is above MAX {max}"),
                ));
            }
            (min, max)
        }
    };
    let ttl = match u.ttl {
        Some(t) => int("underlay.ttl", t, 1, 255)?,
        None => DEFAULT_TTL,
    };
    let udp_checksum = u.udp_checksum.unwrap_or(false);

    let mut vnis = Vec::new();
    let mut seen_vni = BTreeSet::new();
    let mut seen_port = BTreeSet::new();
    for (i, v) in raw.vni.into_iter().enumerate() {
        let f = |k: &str| format!("vni[{i}].{k}");
        let id = check_vni(&f("id"), v.id)?;
        if !seen_vni.insert(id) {
            return Err(ConfigError::new(
                f("id"),
                format!("VNI {id} is configured twice"),
            ));
        }
        if v.ports.len() > MAX_VNI_PORTS {
            return Err(ConfigError::new(
                f("ports"),
                format!("{} ports; a VNI has at most {MAX_VNI_PORTS}", v.ports.len()),
            ));
        }
        for (j, p) in v.ports.iter().enumerate() {
            let field = f(&format!("ports[{j}]"));
            check_ifname(&field, p)?;
            if *p == u.interface {
                return Err(ConfigError::new(field, format!("{p} is the uplink")));
            }
            if !seen_port.insert(p.clone()) {
                return Err(ConfigError::new(
                    field,
                    format!("{p} is already an access port (a port belongs to one VNI)"),
                ));
            }
        }
        if v.flood.len() > MAX_FLOOD {
            return Err(ConfigError::new(
                f("flood"),
                format!(
                    "{} VTEPs; a flood list has at most {MAX_FLOOD}",
                    v.flood.len()
                ),
            ));
        }
        let mut flood = Vec::new();
        for (j, a) in v.flood.iter().enumerate() {
            let field = f(&format!("flood[{j}]"));
            let ip = parse_vtep(&field, a)?;
            if ip == local {
                return Err(ConfigError::new(
                    field,
                    format!("{ip} is this VTEP (underlay.local)"),
                ));
            }
            if flood.contains(&ip) {
                return Err(ConfigError::new(field, format!("{ip} is listed twice")));
            }
            flood.push(ip);
        }
        let ageing = match v.ageing {
            Some(a) => int(&f("ageing"), a, 0, i64::from(u32::MAX / 1000))?,
            None => DEFAULT_AGEING,
        };
        let maxaddress = match v.maxaddress {
            Some(m) => int(&f("maxaddress"), m, 0, i64::from(vtep_common::FDB_CAPACITY))?,
            None => 0,
        };
        vnis.push(VniConfig {
            id,
            ports: v.ports,
            flood,
            learning: v.learning.unwrap_or(true),
            ageing,
            maxaddress,
            check_source: v.check_source.unwrap_or(false),
        });
    }

    let mut fdb = Vec::new();
    let mut seen_fdb = BTreeSet::new();
    for (i, e) in raw.fdb.into_iter().enumerate() {
        let f = |k: &str| format!("fdb[{i}].{k}");
        let mac: Mac = e.mac.parse().map_err(|r| ConfigError::new(f("mac"), r))?;
        let vni = check_vni(&f("vni"), e.vni)?;
        let Some(vc) = vnis.iter().find(|v| v.id == vni) else {
            return Err(ConfigError::new(
                f("vni"),
                format!("VNI {vni} is not configured in [[vni]]"),
            ));
        };
        let target = match (e.dst, e.port) {
            (Some(d), None) => {
                let ip = parse_vtep(&f("dst"), &d)?;
                if ip == local {
                    return Err(ConfigError::new(f("dst"), format!("{ip} is this VTEP")));
                }
                FdbTarget::Remote(ip)
            }
            (None, Some(p)) => {
                if mac.is_zero() {
                    return Err(ConfigError::new(
                        f("port"),
                        "00:00:00:00:00:00 is a flood-list entry: give dst, not port",
                    ));
                }
                if !vc.ports.contains(&p) {
                    return Err(ConfigError::new(
                        f("port"),
                        format!("{p} is not an access port of VNI {vni}"),
                    ));
                }
                FdbTarget::Port(p)
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(f("dst"), "give dst or port, not both"));
            }
            (None, None) => {
                return Err(ConfigError::new(
                    f("dst"),
                    "missing: give dst (remote VTEP) or port",
                ));
            }
        };
        if !mac.is_zero() {
            if mac.is_multicast() {
                return Err(ConfigError::new(
                    f("mac"),
                    format!("{mac} is a multicast address; FDB entries are unicast"),
                ));
            }
            if !seen_fdb.insert((vni, mac)) {
                return Err(ConfigError::new(
                    f("mac"),
                    format!("{mac} in VNI {vni} is listed twice"),
                ));
            }
        }
        fdb.push(FdbConfig { mac, vni, target });
    }

    Ok(Config {
        engine: raw.engine.unwrap_or_default(),
        busy_poll: raw
            .afxdp
            .as_ref()
            .and_then(|a| a.busy_poll)
            .unwrap_or(false),
        afxdp_cpu: match raw.afxdp.as_ref().and_then(|a| a.cpu) {
            Some(c) => Some(int::<usize>("afxdp.cpu", c, 0, 4095)?),
            None => None,
        },
        underlay: UnderlayConfig {
            interface: u.interface,
            local,
            port,
            srcport,
            ttl,
            udp_checksum,
        },
        vnis,
        fdb,
        follow,
    })
}

fn validate_follow(
    f: RawFollow,
    u: &RawUnderlay,
    vnis: &[RawVni],
) -> Result<FollowConfig, ConfigError> {
    let all = f.all.unwrap_or(false);
    let devices = f.devices.unwrap_or_default();
    if all && !devices.is_empty() {
        return Err(ConfigError::new(
            "follow.all",
            "give devices or all = true, not both",
        ));
    }
    if !all && devices.is_empty() {
        return Err(ConfigError::new(
            "follow.devices",
            "missing: name the vxlan devices to follow, or set all = true",
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, d) in devices.iter().enumerate() {
        let field = format!("follow.devices[{i}]");
        check_ifname(&field, d)?;
        if *d == u.interface {
            return Err(ConfigError::new(
                field,
                format!("{d} is the uplink, not a vxlan device"),
            ));
        }
        if vnis.iter().any(|v| v.ports.contains(d)) {
            return Err(ConfigError::new(
                field,
                format!("{d} is an access port in [[vni]], not a vxlan device"),
            ));
        }
        if !seen.insert(d.as_str()) {
            return Err(ConfigError::new(field, format!("{d} is listed twice")));
        }
    }
    let rcvbuf = match f.rcvbuf {
        Some(b) => int("follow.rcvbuf", b, 4096, 1 << 30)?,
        None => FollowConfig::DEFAULT_RCVBUF,
    };
    Ok(FollowConfig {
        devices,
        all,
        local_from_link: u.local.is_none(),
        port_from_link: u.port.is_none(),
        rcvbuf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[underlay]
interface = "eth0"
local = "198.18.0.1"
port = 4789
srcport = [49152, 65535]
ttl = 64
udp_checksum = false
[[vni]]
id = 100
ports = ["veth-w1"]
flood = ["198.18.0.2"]
learning = true
ageing = 300
maxaddress = 0
[[fdb]]
mac = "02:00:00:00:01:02"
vni = 100
dst = "198.18.0.2"
"#;

    #[test]
    fn the_documented_example_parses() {
        let c: Config = GOOD.parse().expect("example config");
        assert_eq!(c.underlay.interface, "eth0");
        assert_eq!(c.underlay.port, 4789);
        assert_eq!(c.vnis[0].id, 100);
        assert_eq!(
            c.vnis[0].flood,
            vec!["198.18.0.2".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            c.fdb[0].target,
            FdbTarget::Remote("198.18.0.2".parse().unwrap())
        );
    }

    #[test]
    fn engine_is_chosen_by_name() {
        let c: Config = format!("engine = \"afxdp\"\n[afxdp]\nbusy_poll = true\n{GOOD}")
            .parse()
            .unwrap();
        assert_eq!(c.engine, EngineKind::Afxdp);
        assert!(c.busy_poll);
        let bad = format!("engine = \"dpdk\"\n{GOOD}")
            .parse::<Config>()
            .unwrap_err();
        assert!(bad.reason.contains("dpdk"), "{bad}");
        assert_eq!(GOOD.parse::<Config>().unwrap().engine, EngineKind::Xdp);
    }

    #[test]
    fn defaults_apply() {
        let c: Config =
            "[underlay]\ninterface = \"eth0\"\nlocal = \"198.18.0.1\"\n[[vni]]\nid = 7\n"
                .parse()
                .unwrap();
        assert_eq!(c.underlay.port, VXLAN_PORT);
        assert_eq!(c.underlay.srcport, DEFAULT_SRCPORT);
        assert_eq!(c.underlay.ttl, DEFAULT_TTL);
        assert_eq!(c.vnis[0], VniConfig::new(7));
    }

    /// Each bad config is refused with an error naming the field.
    #[test]
    fn bad_configs_name_the_field() {
        let cases: &[(&str, &str, &str)] = &[
            ("id = 100", "id = 0", "vni[0].id"),
            ("id = 100", "id = 16777216", "vni[0].id"),
            ("port = 4789", "port = 70000", "underlay.port"),
            (
                "srcport = [49152, 65535]",
                "srcport = [6000, 5000]",
                "underlay.srcport",
            ),
            (
                "srcport = [49152, 65535]",
                "srcport = [1]",
                "underlay.srcport",
            ),
            ("ttl = 64", "ttl = 0", "underlay.ttl"),
            (
                "local = \"198.18.0.1\"",
                "local = \"198.18.0.300\"",
                "underlay.local",
            ),
            (
                "local = \"198.18.0.1\"",
                "local = \"2001:db8::1\"",
                "underlay.local",
            ),
            (
                "flood = [\"198.18.0.2\"]",
                "flood = [\"nope\"]",
                "vni[0].flood[0]",
            ),
            (
                "flood = [\"198.18.0.2\"]",
                "flood = [\"198.18.0.1\"]",
                "vni[0].flood[0]",
            ),
            (
                "mac = \"02:00:00:00:01:02\"",
                "mac = \"02:00:00:00:01\"",
                "fdb[0].mac",
            ),
            (
                "mac = \"02:00:00:00:01:02\"",
                "mac = \"01:00:5e:00:00:01\"",
                "fdb[0].mac",
            ),
            ("vni = 100\ndst", "vni = 200\ndst", "fdb[0].vni"),
            (
                "dst = \"198.18.0.2\"",
                "dst = \"198.18.0.2\"\nport = \"veth-w1\"",
                "fdb[0].dst",
            ),
            ("dst = \"198.18.0.2\"", "port = \"other\"", "fdb[0].port"),
            (
                "ports = [\"veth-w1\"]",
                "ports = [\"eth0\"]",
                "vni[0].ports[0]",
            ),
            (
                "ports = [\"veth-w1\"]",
                "ports = [\"a-name-that-is-too-long\"]",
                "vni[0].ports[0]",
            ),
            (
                "udp_checksum = false",
                "udp_checksum = 1",
                "underlay.udp_checksum",
            ),
            ("maxaddress = 0", "maxaddress = -1", "vni[0].maxaddress"),
            ("learning = true", "learning = \"yes\"", "vni[0].learning"),
            ("vni = 100", "vni = \"100\"", "fdb[0].vni"),
        ];
        for (from, to, field) in cases {
            assert!(GOOD.contains(from), "fixture lacks {from}");
            let text = GOOD.replacen(from, to, 1);
            let err = text
                .parse::<Config>()
                .expect_err(&format!("{to} must be refused"));
            assert_eq!(&err.field, field, "{to}: got {err}");
        }
    }

    #[test]
    fn duplicate_vni_and_shared_port_are_refused() {
        let dup = format!("{GOOD}\n[[vni]]\nid = 100\n");
        assert_eq!(dup.parse::<Config>().unwrap_err().field, "vni[1].id");
        let shared = format!("{GOOD}\n[[vni]]\nid = 200\nports = [\"veth-w1\"]\n");
        assert_eq!(
            shared.parse::<Config>().unwrap_err().field,
            "vni[1].ports[0]"
        );
    }

    #[test]
    fn unknown_keys_and_types_are_refused() {
        let typo = GOOD.replace("ageing = 300", "agening = 300");
        let err = typo.parse::<Config>().unwrap_err();
        assert!(err.reason.contains("agening"), "{err}");
        let ty = GOOD.replace("learning = true", "learning = \"yes\"");
        assert!(ty.parse::<Config>().is_err());
    }

    const FOLLOW: &str = "[underlay]\ninterface = \"eth0\"\n[follow]\ndevices = [\"vxlan100\"]\n";

    #[test]
    fn follow_takes_devices_or_all() {
        let c: Config = FOLLOW.parse().expect("follow config");
        let f = c.follow.expect("[follow]");
        assert_eq!(f.devices, vec!["vxlan100".to_owned()]);
        assert!(!f.all && f.wants("vxlan100") && !f.wants("vxlan200"));
        // local and port left out: the daemon takes them from the device.
        assert!(f.local_from_link && f.port_from_link);
        assert!(c.vnis.is_empty());

        let all: Config = "[underlay]\ninterface = \"eth0\"\nlocal = \"198.18.0.1\"\nport = 8472\n\
                           [follow]\nall = true\n"
            .parse()
            .expect("follow all");
        let f = all.follow.expect("[follow]");
        assert!(f.all && f.wants("flannel.1"));
        assert!(!f.local_from_link && !f.port_from_link);
        assert_eq!(all.underlay.port, 8472);
        assert!(GOOD.parse::<Config>().unwrap().follow.is_none());
    }

    /// Each bad `[follow]` is refused with an error naming the field.
    #[test]
    fn bad_follow_configs_name_the_field() {
        let cases: &[(&str, &str)] = &[
            ("devices = []", "follow.devices"),
            ("all = false", "follow.devices"),
            ("all = true\ndevices = [\"vxlan100\"]", "follow.all"),
            (
                "devices = [\"vxlan100\", \"vxlan100\"]",
                "follow.devices[1]",
            ),
            ("devices = [\"eth0\"]", "follow.devices[0]"),
            (
                "devices = [\"a-name-that-is-too-long\"]",
                "follow.devices[0]",
            ),
            ("devices = [\"veth-w1\"]", "follow.devices[0]"),
            ("all = true\nrcvbuf = 100", "follow.rcvbuf"),
        ];
        for (follow, field) in cases {
            let err = format!("{GOOD}\n[follow]\n{follow}\n")
                .parse::<Config>()
                .expect_err(&format!("{follow} must be refused"));
            assert_eq!(&err.field, field, "{follow}: got {err}");
        }
        let unknown = format!("{FOLLOW}device = \"x\"\n")
            .parse::<Config>()
            .unwrap_err();
        assert!(unknown.reason.contains("device"), "{unknown}");
        // Without [follow], underlay.local is required.
        let no_local = GOOD.replace("local = \"198.18.0.1\"\n", "");
        assert_eq!(
            no_local.parse::<Config>().unwrap_err().field,
            "underlay.local"
        );
    }
}
