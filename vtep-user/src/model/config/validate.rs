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
    capacity: Option<RawCapacity>,
    metrics: Option<RawMetrics>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapacity {
    fdb: Option<i64>,
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
    local: Option<OneOrMany>,
    port: Option<i64>,
    srcport: Option<Vec<i64>>,
    ttl: Option<NumOrWord>,
    tos: Option<NumOrWord>,
    flowlabel: Option<NumOrWord>,
    udp_checksum: Option<bool>,
    udp6_zero_csum_tx: Option<bool>,
    udp6_zero_csum_rx: Option<bool>,
}

/// `local = "IP"` or `local = ["IP", "IP"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// A number or a word (`ttl = 64` / `ttl = "auto"`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum NumOrWord {
    Num(i64),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVni {
    id: i64,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    flood: Vec<String>,
    group: Option<String>,
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

/// Reads and checks a config text: every problem found, or the config.
pub(super) fn parse(text: &str) -> Result<Config, ConfigErrors> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        ConfigErrors::from(match e.span() {
            Some(span) => {
                let line = text[..span.start].lines().count().max(1);
                match field_at(text, span.start) {
                    Some(field) => ConfigError::new(field, format!("line {line}: {}", e.message())),
                    None => ConfigError::new(format!("line {line}"), e.message()),
                }
            }
            None => ConfigError::new("config", e.message()),
        })
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

/// Parses a VTEP address: a unicast IPv4 or IPv6 address (whether the
/// underlay has a local address of its family is checked by the caller).
pub fn parse_vtep(field: &str, s: &str) -> Result<IpAddr, ConfigError> {
    let ip: IpAddr = s
        .parse()
        .map_err(|_| ConfigError::new(field, format!("{s:?} is not an IP address")))?;
    let unicast = match ip {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast()),
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast() || v6.is_loopback()),
    };
    if !unicast {
        return Err(ConfigError::new(
            field,
            format!("{s} is not a unicast address"),
        ));
    }
    Ok(ip)
}

/// Parses a VNI's multicast group: an IPv4 (224.0.0.0/4) or IPv6 (ff00::/8)
/// multicast address.
pub fn check_group(field: &str, s: &str) -> Result<IpAddr, ConfigError> {
    let ip: IpAddr = s
        .parse()
        .map_err(|_| ConfigError::new(field, format!("{s:?} is not an IP address")))?;
    if !ip.is_multicast() {
        return Err(ConfigError::new(
            field,
            format!("{ip} is not a multicast address"),
        ));
    }
    Ok(ip)
}

/// `underlay.local`: one address, or a list of one of each family at most.
fn parse_locals(p: &mut Problems, raw: &OneOrMany) -> Option<Locals> {
    match raw {
        OneOrMany::One(s) => p.check(parse_vtep("underlay.local", s)).map(Locals::one),
        OneOrMany::Many(list) if list.is_empty() || list.len() > 2 => {
            p.add(
                "underlay.local",
                format!(
                    "{} addresses; give one, or one IPv4 and one IPv6 address",
                    list.len()
                ),
            );
            None
        }
        OneOrMany::Many(list) => {
            let mut locals = Locals::default();
            let mut ok = true;
            for (i, s) in list.iter().enumerate() {
                let field = format!("underlay.local[{i}]");
                match p.check(parse_vtep(&field, s)) {
                    Some(ip) if locals.for_remote(ip).is_some() => {
                        p.add(
                            field,
                            format!(
                                "{ip}: underlay.local has an {} address already (one of each \
                                 family at most)",
                                if ip.is_ipv4() { "IPv4" } else { "IPv6" }
                            ),
                        );
                        ok = false;
                    }
                    Some(ip) => locals.set(ip),
                    None => ok = false,
                }
            }
            ok.then_some(locals)
        }
    }
}

/// `ttl`: 1..=255, or `"auto"` ([`TTL_AUTO`]).
fn parse_ttl(p: &mut Problems, raw: &NumOrWord) -> Option<u8> {
    match raw {
        NumOrWord::Num(t) => p.check(int("underlay.ttl", *t, 1, 255)),
        NumOrWord::Word(w) if w == "auto" => Some(TTL_AUTO),
        NumOrWord::Word(w) => {
            p.add(
                "underlay.ttl",
                format!("{w:?}: give 1..=255, or \"auto\" (64 to VTEPs, 1 to groups)"),
            );
            None
        }
    }
}

/// `tos`: 0..=255, or `"inherit"`.
fn parse_tos(p: &mut Problems, raw: &NumOrWord) -> Option<Tos> {
    match raw {
        NumOrWord::Num(t) => p.check(int("underlay.tos", *t, 0, 255)).map(Tos::Fixed),
        NumOrWord::Word(w) if w == "inherit" => Some(Tos::Inherit),
        NumOrWord::Word(w) => {
            p.add(
                "underlay.tos",
                format!("{w:?}: give 0..=255, or \"inherit\" (the inner packet's DS field)"),
            );
            None
        }
    }
}

/// `flowlabel`: `"hash"`, `"inherit"`, or 0..=1048575.
fn parse_flowlabel(p: &mut Problems, raw: &NumOrWord) -> Option<FlowLabel> {
    match raw {
        NumOrWord::Num(n) => p
            .check(int("underlay.flowlabel", *n, 0, i64::from(FlowLabel::MAX)))
            .map(FlowLabel::Fixed),
        NumOrWord::Word(w) if w == "hash" => Some(FlowLabel::Hash),
        NumOrWord::Word(w) if w == "inherit" => Some(FlowLabel::Inherit),
        NumOrWord::Word(w) => {
            p.add(
                "underlay.flowlabel",
                format!(
                    "{w:?}: give \"hash\" (the inner flow's), \"inherit\" (the inner IPv6 \
                     packet's) or a label 0..={}",
                    FlowLabel::MAX
                ),
            );
            None
        }
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

/// The problems found so far: a check that fails records its error and
/// gives `None`, and validation goes on with the next field.
#[derive(Default)]
struct Problems(Vec<ConfigError>);

impl Problems {
    fn check<T>(&mut self, r: Result<T, ConfigError>) -> Option<T> {
        r.map_err(|e| self.0.push(e)).ok()
    }

    fn add(&mut self, field: impl Into<String>, reason: impl fmt::Display) {
        self.0.push(ConfigError::new(field, reason));
    }
}

fn validate(raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut p = Problems::default();
    // The well-formed interface names, for the checks against the system.
    let mut interfaces = Vec::new();
    let u = raw.underlay;
    if p.check(check_ifname("underlay.interface", &u.interface))
        .is_some()
    {
        interfaces.push(("underlay.interface".to_owned(), u.interface.clone()));
    }
    let local = match (&u.local, &raw.follow) {
        (Some(l), _) => parse_locals(&mut p, l),
        // Taken from the followed vxlan devices when the daemon starts.
        (None, Some(_)) => Some(Locals::default()),
        (None, None) => {
            p.add(
                "underlay.local",
                "missing: give this VTEP's address (IPv4, IPv6, or [IPv4, IPv6])",
            );
            None
        }
    };
    // Whether a remote address can be checked against the local ones: not
    // when they are still to come from the followed devices.
    let known_local = local.filter(|l| !l.is_empty());
    let reachable = |p: &mut Problems, field: &str, ip: IpAddr| {
        let why = known_local.and_then(|l| l.unreachable(ip));
        why.map(|why| p.add(field, why)).is_none()
    };
    let follow = raw
        .follow
        .and_then(|f| validate_follow(&mut p, f, &u, &raw.vni));
    let capacity = match raw.capacity.as_ref().and_then(|c| c.fdb) {
        Some(n) => p
            .check(int(
                "capacity.fdb",
                n,
                i64::from(Capacity::MIN_FDB),
                i64::from(Capacity::MAX_FDB),
            ))
            .map(|fdb| Capacity { fdb }),
        None => Some(Capacity::default()),
    };
    let metrics = match raw.metrics {
        None => Some(None),
        Some(RawMetrics { listen: None }) => {
            p.add(
                "metrics.listen",
                "missing: give ADDR:PORT to serve /metrics on",
            );
            None
        }
        Some(RawMetrics {
            listen: Some(listen),
        }) => match MetricsConfig::parse_listen(&listen) {
            Ok(listen) => Some(Some(MetricsConfig { listen })),
            Err(e) => {
                p.add("metrics.listen", e);
                None
            }
        },
    };
    let port = match u.port {
        Some(port) => p.check(int("underlay.port", port, 1, 65535)),
        None => Some(VXLAN_PORT),
    };
    let srcport = match u.srcport {
        None => Some(DEFAULT_SRCPORT),
        Some(r) => match r[..] {
            [min, max] => {
                let min: Option<u16> = p.check(int("underlay.srcport[0]", min, 1, 65535));
                let max: Option<u16> = p.check(int("underlay.srcport[1]", max, 1, 65535));
                match (min, max) {
                    (Some(min), Some(max)) if min > max => {
                        p.add("underlay.srcport", format!("MIN {min} is above MAX {max}"));
                        None
                    }
                    (Some(min), Some(max)) => Some((min, max)),
                    _ => None,
                }
            }
            _ => {
                p.add("underlay.srcport", "expected [MIN, MAX], two port numbers");
                None
            }
        },
    };
    let ttl = match &u.ttl {
        Some(t) => parse_ttl(&mut p, t),
        None => Some(TTL_AUTO),
    };
    let tos = match &u.tos {
        Some(t) => parse_tos(&mut p, t),
        None => Some(Tos::Fixed(0)),
    };
    let flowlabel = match &u.flowlabel {
        Some(l) => parse_flowlabel(&mut p, l),
        None => Some(FlowLabel::Hash),
    };
    let udp_checksum = u.udp_checksum.unwrap_or(false);
    let udp6_zero_csum_tx = u.udp6_zero_csum_tx.unwrap_or(false);
    let udp6_zero_csum_rx = u.udp6_zero_csum_rx.unwrap_or(false);
    // IPv6-only settings on an underlay that has no IPv6 address say the
    // config is not what its author thinks.
    if known_local.is_some_and(|l| l.v6.is_none()) {
        let v6_only = [
            ("flowlabel", flowlabel.is_some_and(|l| l != FlowLabel::Hash)),
            ("udp6_zero_csum_tx", udp6_zero_csum_tx),
            ("udp6_zero_csum_rx", udp6_zero_csum_rx),
        ];
        for (key, set) in v6_only {
            if set {
                p.add(
                    format!("underlay.{key}"),
                    "applies to an IPv6 underlay, and underlay.local has no IPv6 address",
                );
            }
        }
    }

    let mut vnis = Vec::new();
    let mut seen_vni = BTreeSet::new();
    // An entry whose VNI is not configured may mean one whose id is wrong.
    let mut bad_vni_id = false;
    let mut seen_port = BTreeSet::new();
    for (i, v) in raw.vni.into_iter().enumerate() {
        let f = |k: &str| format!("vni[{i}].{k}");
        let id = p.check(check_vni(&f("id"), v.id));
        bad_vni_id |= id.is_none();
        if let Some(id) = id
            && !seen_vni.insert(id)
        {
            p.add(f("id"), format!("VNI {id} is configured twice"));
        }
        if v.ports.len() > MAX_VNI_PORTS {
            p.add(
                f("ports"),
                format!("{} ports; a VNI has at most {MAX_VNI_PORTS}", v.ports.len()),
            );
        }
        for (j, port) in v.ports.iter().enumerate() {
            let field = f(&format!("ports[{j}]"));
            if p.check(check_ifname(&field, port)).is_none() {
                continue;
            }
            interfaces.push((field.clone(), port.clone()));
            if *port == u.interface {
                p.add(field, format!("{port} is the uplink"));
            } else if !seen_port.insert(port.clone()) {
                p.add(
                    field,
                    format!("{port} is already an access port (a port belongs to one VNI)"),
                );
            }
        }
        if v.flood.len() > MAX_FLOOD {
            p.add(
                f("flood"),
                format!(
                    "{} VTEPs; a flood list has at most {MAX_FLOOD}",
                    v.flood.len()
                ),
            );
        }
        let mut flood = Vec::new();
        for (j, a) in v.flood.iter().enumerate() {
            let field = f(&format!("flood[{j}]"));
            let Some(ip) = p.check(parse_vtep(&field, a)) else {
                continue;
            };
            if local.is_some_and(|l| l.contains(ip)) {
                p.add(field, format!("{ip} is this VTEP (underlay.local)"));
            } else if flood.contains(&ip) {
                p.add(field, format!("{ip} is listed twice"));
            } else if reachable(&mut p, &field, ip) {
                flood.push(ip);
            }
        }
        let group = match &v.group {
            None => Some(None),
            Some(g) => match p.check(check_group(&f("group"), g)) {
                Some(ip) if reachable(&mut p, &f("group"), ip) => Some(Some(ip)),
                _ => None,
            },
        };
        let ageing = match v.ageing {
            Some(a) => p.check(int(&f("ageing"), a, 0, i64::from(u32::MAX / 1000))),
            None => Some(DEFAULT_AGEING),
        };
        let maxaddress = match v.maxaddress {
            Some(m) => p.check(int(
                &f("maxaddress"),
                m,
                0,
                i64::from(capacity.map_or(Capacity::MAX_FDB, |c| c.fdb)),
            )),
            None => Some(0),
        };
        if let (Some(id), Some(ageing), Some(maxaddress), Some(group)) =
            (id, ageing, maxaddress, group)
        {
            vnis.push(VniConfig {
                id,
                ports: v.ports,
                flood,
                group,
                learning: v.learning.unwrap_or(true),
                ageing,
                maxaddress,
                check_source: v.check_source.unwrap_or(false),
            });
        }
    }

    let mut fdb = Vec::new();
    let mut seen_fdb = BTreeSet::new();
    for (i, e) in raw.fdb.into_iter().enumerate() {
        let f = |k: &str| format!("fdb[{i}].{k}");
        let mac = p.check(
            e.mac
                .parse::<Mac>()
                .map_err(|r| ConfigError::new(f("mac"), r)),
        );
        let vc = match p.check(check_vni(&f("vni"), e.vni)) {
            None => None,
            Some(vni) => match vnis.iter().find(|v| v.id == vni) {
                Some(vc) => Some(vc),
                // The VNI's own entry has an error, reported there.
                None if bad_vni_id || seen_vni.contains(&vni) => None,
                None => {
                    p.add(f("vni"), format!("VNI {vni} is not configured in [[vni]]"));
                    None
                }
            },
        };
        let target = match (e.dst, e.port) {
            (Some(d), None) => match p.check(parse_vtep(&f("dst"), &d)) {
                Some(ip) if local.is_some_and(|l| l.contains(ip)) => {
                    p.add(f("dst"), format!("{ip} is this VTEP"));
                    None
                }
                Some(ip) if !reachable(&mut p, &f("dst"), ip) => None,
                ip => ip.map(FdbTarget::Remote),
            },
            (None, Some(port)) => {
                if mac.is_some_and(|m| m.is_zero()) {
                    p.add(
                        f("port"),
                        "00:00:00:00:00:00 is a flood-list entry: give dst, not port",
                    );
                    None
                } else if let Some(vc) = vc
                    && !vc.ports.contains(&port)
                {
                    p.add(
                        f("port"),
                        format!("{port} is not an access port of VNI {}", vc.id),
                    );
                    None
                } else {
                    Some(FdbTarget::Port(port))
                }
            }
            (Some(_), Some(_)) => {
                p.add(f("dst"), "give dst or port, not both");
                None
            }
            (None, None) => {
                p.add(f("dst"), "missing: give dst (remote VTEP) or port");
                None
            }
        };
        let (Some(mac), Some(vc), Some(target)) = (mac, vc, target) else {
            continue;
        };
        let vni = vc.id;
        if !mac.is_zero() {
            if mac.is_multicast() {
                p.add(
                    f("mac"),
                    format!("{mac} is a multicast address; FDB entries are unicast"),
                );
                continue;
            }
            if !seen_fdb.insert((vni, mac)) {
                p.add(f("mac"), format!("{mac} in VNI {vni} is listed twice"));
                continue;
            }
        }
        fdb.push(FdbConfig { mac, vni, target });
    }

    let afxdp_cpu = match raw.afxdp.as_ref().and_then(|a| a.cpu) {
        Some(c) => p.check(int::<usize>("afxdp.cpu", c, 0, 4095)).map(Some),
        None => Some(None),
    };
    match (
        local, port, srcport, ttl, tos, flowlabel, afxdp_cpu, capacity, metrics,
    ) {
        (
            Some(local),
            Some(port),
            Some(srcport),
            Some(ttl),
            Some(tos),
            Some(flowlabel),
            Some(afxdp_cpu),
            Some(capacity),
            Some(metrics),
        ) if p.0.is_empty() => Ok(Config {
            engine: raw.engine.unwrap_or_default(),
            busy_poll: raw
                .afxdp
                .as_ref()
                .and_then(|a| a.busy_poll)
                .unwrap_or(false),
            afxdp_cpu,
            underlay: UnderlayConfig {
                interface: u.interface,
                local,
                port,
                srcport,
                ttl,
                tos,
                flowlabel,
                udp_checksum,
                udp6_zero_csum_tx,
                udp6_zero_csum_rx,
            },
            vnis,
            fdb,
            follow,
            capacity,
            metrics,
        }),
        _ => Err(ConfigErrors {
            errors: p.0,
            interfaces,
        }),
    }
}

fn validate_follow(
    p: &mut Problems,
    f: RawFollow,
    u: &RawUnderlay,
    vnis: &[RawVni],
) -> Option<FollowConfig> {
    let all = f.all.unwrap_or(false);
    let devices = f.devices.unwrap_or_default();
    let mut ok = true;
    if all && !devices.is_empty() {
        p.add("follow.all", "give devices or all = true, not both");
        ok = false;
    }
    if !all && devices.is_empty() {
        p.add(
            "follow.devices",
            "missing: name the vxlan devices to follow, or set all = true",
        );
        ok = false;
    }
    let mut seen = BTreeSet::new();
    for (i, d) in devices.iter().enumerate() {
        let field = format!("follow.devices[{i}]");
        if let Err(e) = check_ifname(&field, d) {
            p.0.push(e);
        } else if *d == u.interface {
            p.add(field, format!("{d} is the uplink, not a vxlan device"));
        } else if vnis.iter().any(|v| v.ports.contains(d)) {
            p.add(
                field,
                format!("{d} is an access port in [[vni]], not a vxlan device"),
            );
        } else if !seen.insert(d.as_str()) {
            p.add(field, format!("{d} is listed twice"));
        } else {
            continue;
        }
        ok = false;
    }
    let rcvbuf = match f.rcvbuf {
        Some(b) => p.check(int("follow.rcvbuf", b, 4096, 1 << 30)),
        None => Some(FollowConfig::DEFAULT_RCVBUF),
    };
    Some(FollowConfig {
        devices,
        all,
        local_from_link: u.local.is_none(),
        port_from_link: u.port.is_none(),
        rcvbuf: rcvbuf.filter(|_| ok)?,
    })
}
