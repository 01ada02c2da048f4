//! Reading a config: the TOML as written (`Raw*`), and the checks that turn
//! it into a [`Config`], each error naming its field.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use serde::Deserialize;
use vtep_common::{MAX_FLOOD, MAX_VNI_PORTS, VNI_MAX, VXLAN_PORT};

use super::*;

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

/// Reads and checks a config text.
pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
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
