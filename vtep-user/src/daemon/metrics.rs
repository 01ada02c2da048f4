//! `[metrics] listen = "ADDR:PORT"`: the daemon serves `GET /metrics` for
//! Prometheus.
//!
//! Every scrape reads the gateway's maps once ([`Snapshot::read`]): the
//! per-CPU counters are summed there and then, so the datapath pays nothing
//! for being watched; the FDB is walked once (one batch lookup) and counted
//! per VNI and state. [`families`] turns a snapshot into the metric
//! families, and [`encode`] writes them in the format the scraper asked for:
//!
//! - the classic Prometheus text format 0.0.4 (`text/plain; version=0.0.4`),
//!   by default: what every Prometheus version and `promtool check metrics`
//!   read;
//! - OpenMetrics 1.0.0 (`application/openmetrics-text; version=1.0.0`,
//!   ending in `# EOF`) when the `Accept` header names
//!   `application/openmetrics-text`, as Prometheus's own scraper does.
//!
//! The encoder is `prometheus-client`, the Prometheus project's own Rust
//! client: maintained with the OpenMetrics spec, and since 0.26 writing the
//! 0.0.4 text format too (`encoding::prometheus_text`) from the same model,
//! so both answers come from one list of families and cannot drift (the
//! `prometheus` crate writes 0.0.4 only; earlier `prometheus-client`s,
//! OpenMetrics only, which Debian's promtool 2.42 refuses). vtep's values
//! are all read at scrape time, so they reach the crate through a
//! [`Collector`] rather than as live metric objects.
//!
//! prometheus-client's OpenMetrics encoder writes `# HELP` texts unescaped
//! (its 0.0.4 encoder escapes them): they are escaped here for it.
//!
//! The HTTP side is a minimal HTTP/1.1 responder on tokio's `TcpListener`
//! in the daemon's runtime (one request per connection, `Connection:
//! close`, at most 64 at once, 5 s to send the request): `GET`/`HEAD
//! /metrics`, 404 for any other path, 405 for other methods. The maps are
//! read on a blocking thread, so a scrape of a large FDB does not hold up
//! the daemon's loop.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use anyhow::{Context as _, Result};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::{Registry, Unit},
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use vtep_common::{FDB_F_CONFIG, FDB_F_FOLLOWED, FDB_F_LEARNED, FdbEntry, FdbKey, names};

use crate::{
    datapath::gateway::{Gateway, Stats},
    model::config::EngineKind,
};

/// The `Content-Type` of the classic text format.
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// The `Content-Type` of OpenMetrics text.
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a client has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head read (a scrape's is a few hundred bytes).
const MAX_HEAD: usize = 8192;
/// Connections served at once; more are closed at once (so that a flood of
/// them cannot take the file descriptors the daemon's own sockets need).
const MAX_CONNECTIONS: usize = 64;

/// The FDB states counted for every VNI (the words `vtep fdb show` prints).
const FDB_STATES: [&str; 3] = ["learned", "static", "permanent"];

/// What one scrape reads: the maps, and what the daemon knows beside them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Per-VNI traffic and per-reason counters, summed over CPUs.
    pub stats: Stats,
    /// Every VNI the gateway carries, with its `maxaddress` (0: no limit).
    pub vnis: BTreeMap<u32, u32>,
    /// FDB entries per (VNI, state).
    pub fdb: BTreeMap<(u32, &'static str), u64>,
    /// FDB entries per VNI mirrored from the kernel FDB (`extern_learn`).
    pub fdb_followed: BTreeMap<u32, u64>,
    /// Learned MACs per VNI as the datapath counts them (what `maxaddress`
    /// bounds).
    pub learned: BTreeMap<u32, u64>,
    /// Flood-list members per VNI.
    pub flood: BTreeMap<u32, u64>,
    /// Access ports per VNI.
    pub ports: BTreeMap<u32, u64>,
    /// The FDB map's `max_entries`.
    pub fdb_capacity: u64,
    /// Resolved next hops of remote VTEPs (`NEIGH`).
    pub neighbours: u64,
    /// Full resyncs of the kernel-FDB follower (0 without `[follow]`).
    pub follow_resyncs: u64,
    pub engine: EngineKind,
    /// When the daemon started, seconds since the Unix epoch.
    pub start_time: f64,
    /// How long reading the maps took, seconds.
    pub read_seconds: f64,
}

/// The state word of `vtep fdb show` for an FDB entry's flags (its
/// `FdbRow::state`, which lives in the CLI layer above this one; flood-list
/// members, also `permanent` there, are counted by
/// `vtep_flood_list_members`).
fn fdb_state(flags: u8) -> &'static str {
    if flags & FDB_F_LEARNED != 0 {
        "learned"
    } else if flags & FDB_F_FOLLOWED == 0 && flags & FDB_F_CONFIG != 0 {
        "permanent"
    } else {
        "static"
    }
}

impl Snapshot {
    /// Counts `entries` per (VNI, state), and the followed ones per VNI.
    fn count_fdb(&mut self, entries: &[(FdbKey, FdbEntry)]) {
        for (key, entry) in entries {
            *self
                .fdb
                .entry((key.vni, fdb_state(entry.flags)))
                .or_default() += 1;
            if entry.flags & FDB_F_FOLLOWED != 0 && entry.flags & FDB_F_LEARNED == 0 {
                *self.fdb_followed.entry(key.vni).or_default() += 1;
            }
        }
    }

    /// Reads the gateway's maps (the FDB in one walk).
    pub fn read(gw: &Gateway, daemon: &Daemon) -> Result<Snapshot> {
        let started = Instant::now();
        let mut s = Snapshot {
            stats: gw.stats()?,
            vnis: gw
                .vni_infos()
                .into_iter()
                .map(|(vni, info)| (vni, info.max_addresses))
                .collect(),
            fdb_capacity: aya::maps::MapInfo::from_pin(gw.pins.map(names::FDB))
                .with_context(|| format!("map {}", names::FDB))?
                .max_entries()
                .into(),
            neighbours: gw.neigh_entries().len() as u64,
            follow_resyncs: daemon.follow_resyncs.load(Ordering::Relaxed),
            engine: daemon.engine,
            start_time: daemon.start_time,
            ..Snapshot::default()
        };
        s.count_fdb(&gw.fdb_entries());
        for &vni in s.vnis.keys() {
            s.learned.insert(vni, gw.learned(vni).unwrap_or(0));
        }
        s.flood = gw
            .flood_lists()
            .into_iter()
            .map(|(vni, l)| (vni, l.members().len() as u64))
            .collect();
        s.ports = gw
            .vni_port_lists()
            .into_iter()
            .map(|(vni, l)| (vni, u64::from(l.len)))
            .collect();
        s.read_seconds = started.elapsed().as_secs_f64();
        Ok(s)
    }
}

/// One sample's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

/// A counter only goes up (`_total`); a gauge is a current value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One metric family: its exposed name (with `_total` and the unit, as the
/// Prometheus naming guide has it), help, type, unit and samples.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub samples: Vec<(Vec<(&'static str, String)>, Value)>,
}

impl Family {
    fn new(name: &'static str, help: &'static str, kind: Kind) -> Family {
        Family {
            name,
            help,
            kind,
            unit: None,
            samples: Vec::new(),
        }
    }

    fn unit(mut self, unit: Unit) -> Family {
        self.unit = Some(unit);
        self
    }

    fn sample(&mut self, labels: Vec<(&'static str, String)>, value: Value) {
        self.samples.push((labels, value));
    }

    /// The name the encoder is given: without the `_total` and unit
    /// suffixes, which it adds (OpenMetrics names the family without
    /// `_total`, and writes the unit in a `# UNIT` line).
    fn base_name(&self) -> &'static str {
        let mut name = self.name;
        if self.kind == Kind::Counter {
            name = name.strip_suffix("_total").unwrap_or(name);
        }
        if let Some(unit) = &self.unit {
            name = name
                .strip_suffix(unit.as_str())
                .and_then(|n| n.strip_suffix('_'))
                .unwrap_or(name);
        }
        name
    }
}

/// The metric families of a snapshot. New families go here (built from a
/// new field of [`Snapshot`]); once published, a name stays.
pub fn families(s: &Snapshot) -> Vec<Family> {
    let vnis: BTreeSet<u32> = s.vnis.keys().chain(s.stats.vnis.keys()).copied().collect();
    let vni = |v: u32| ("vni", v.to_string());

    let mut build = Family::new(
        "vtep_build_info",
        "vtep's version and the engine that forwards; always 1",
        Kind::Gauge,
    );
    build.sample(
        vec![
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
            ("engine", engine_name(s.engine).to_owned()),
        ],
        Value::Int(1),
    );
    let mut start = Family::new(
        "process_start_time_seconds",
        "When the vtep daemon started, seconds since the Unix epoch",
        Kind::Gauge,
    )
    .unit(Unit::Seconds);
    start.sample(vec![], Value::Float(s.start_time));

    // VniCounters: rx = decap, tx = encap (each flood copy counts, its bytes
    // with the 50 of the outer headers), local = switch; flood counts BUM
    // frames once each and has no bytes.
    let mut packets = Family::new(
        "vtep_vni_packets_total",
        "Packets per VNI: decap (from the underlay, delivered), encap (to the underlay, each \
         flood copy counts), switch (between local access ports), flood (BUM frames flooded, \
         once per frame)",
        Kind::Counter,
    );
    let mut bytes = Family::new(
        "vtep_vni_bytes_total",
        "Bytes per VNI: decap (the tenant frames delivered), encap (the VXLAN packets sent, \
         outer headers included; each flood copy counts), switch (the tenant frames)",
        Kind::Counter,
    )
    .unit(Unit::Bytes);
    for &v in &vnis {
        let c = s.stats.vnis.get(&v).copied().unwrap_or_default();
        for (direction, p, b) in [
            ("decap", c.rx_packets, Some(c.rx_bytes)),
            ("encap", c.tx_packets, Some(c.tx_bytes)),
            ("switch", c.local_packets, Some(c.local_bytes)),
            ("flood", c.flood_packets, None),
        ] {
            let labels = vec![vni(v), ("direction", direction.to_owned())];
            if let Some(b) = b {
                bytes.sample(labels.clone(), Value::Int(b));
            }
            packets.sample(labels, Value::Int(p));
        }
    }

    let mut reasons = Family::new(
        "vtep_reason_packets_total",
        "Packets not simply forwarded, per reason (the names `vtep stats` prints) and what \
         became of them",
        Kind::Counter,
    );
    for (r, n) in &s.stats.reasons {
        reasons.sample(
            vec![
                ("reason", r.name().to_owned()),
                ("outcome", r.outcome().name().to_owned()),
            ],
            Value::Int(*n),
        );
    }

    let mut fdb = Family::new(
        "vtep_fdb_entries",
        "FDB entries per VNI and state (learned, static, permanent: as `vtep fdb show`)",
        Kind::Gauge,
    );
    let mut keys: BTreeSet<(u32, &'static str)> = s.fdb.keys().copied().collect();
    keys.extend(vnis.iter().flat_map(|&v| FDB_STATES.map(|st| (v, st))));
    for (v, state) in keys {
        let n = s.fdb.get(&(v, state)).copied().unwrap_or(0);
        fdb.sample(vec![vni(v), ("state", state.to_owned())], Value::Int(n));
    }
    let per_vni = |name, help, counts: &BTreeMap<u32, u64>| {
        let mut f = Family::new(name, help, Kind::Gauge);
        let keys: BTreeSet<u32> = vnis.iter().chain(counts.keys()).copied().collect();
        for v in keys {
            let n = counts.get(&v).copied().unwrap_or(0);
            f.sample(vec![vni(v)], Value::Int(n));
        }
        f
    };
    let followed = per_vni(
        "vtep_fdb_followed_entries",
        "FDB entries per VNI mirrored from the kernel FDB by [follow] (extern_learn)",
        &s.fdb_followed,
    );
    let learned = per_vni(
        "vtep_learned_entries",
        "Learned MACs per VNI as the datapath counts them (what maxaddress bounds)",
        &s.learned,
    );
    let maxaddress = per_vni(
        "vtep_vni_maxaddress",
        "The most learned MACs a VNI takes (maxaddress); 0: no limit",
        &s.vnis.iter().map(|(&v, &m)| (v, u64::from(m))).collect(),
    );
    let flood = per_vni(
        "vtep_flood_list_members",
        "Remote VTEPs in each VNI's flood list",
        &s.flood,
    );
    let ports = per_vni("vtep_access_ports", "Access ports of each VNI", &s.ports);

    // Families of one sample: name, help, type, unit, value.
    let single = [
        (
            "vtep_fdb_capacity",
            "FDB entries the pinned FDB map holds at most (its max_entries)",
            Kind::Gauge,
            None,
            Value::Int(s.fdb_capacity),
        ),
        (
            "vtep_neighbour_entries",
            "Remote VTEPs' next hops resolved in the daemon's neighbour table",
            Kind::Gauge,
            None,
            Value::Int(s.neighbours),
        ),
        (
            "vtep_follow_resyncs_total",
            "Full resyncs of the kernel-FDB follower (start, event overrun, a new device); 0 \
             without [follow]",
            Kind::Counter,
            None,
            Value::Int(s.follow_resyncs),
        ),
        (
            "vtep_monitor_events_lost_total",
            "FDB events `vtep monitor` did not get: the datapath's ring buffer was full",
            Kind::Counter,
            None,
            Value::Int(s.stats.monitor_lost),
        ),
        (
            "vtep_scrape_duration_seconds",
            "How long this scrape took to read the gateway's maps",
            Kind::Gauge,
            Some(Unit::Seconds),
            Value::Float(s.read_seconds),
        ),
    ]
    .into_iter()
    .map(|(name, help, kind, unit, value)| {
        let mut f = Family::new(name, help, kind);
        f.unit = unit;
        f.sample(vec![], value);
        f
    });
    [
        build, start, packets, bytes, reasons, fdb, followed, learned, maxaddress, flood, ports,
    ]
    .into_iter()
    .chain(single)
    .collect()
}

/// The word for an engine, as the config spells it.
fn engine_name(engine: EngineKind) -> &'static str {
    match engine {
        EngineKind::Xdp => "xdp",
        EngineKind::Afxdp => "afxdp",
    }
}

/// The exposition formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The classic text format, 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the `Accept` header lists
    /// `application/openmetrics-text` (not with `q=0`), else the classic
    /// format.
    pub fn from_accept(accept: Option<&str>) -> Format {
        let wants_openmetrics = accept.is_some_and(|a| {
            a.split(',').any(|range| {
                let mut params = range.split(';').map(str::trim);
                let media = params.next().unwrap_or("");
                media.eq_ignore_ascii_case("application/openmetrics-text")
                    && !params.any(|p| {
                        p.strip_prefix("q=")
                            .and_then(|q| q.parse::<f64>().ok())
                            .is_some_and(|q| q <= 0.0)
                    })
            })
        });
        if wants_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => PROMETHEUS_TEXT,
            Format::OpenMetrics => OPENMETRICS_TEXT,
        }
    }
}

/// The families, as the collector the encoders read.
#[derive(Debug)]
struct Families {
    families: Vec<Family>,
    /// Escape `# HELP` texts here (OpenMetrics: `\\`, `\n` and `\"`),
    /// which prometheus-client's OpenMetrics encoder writes as they are (its
    /// 0.0.4 encoder escapes them itself).
    escape_help: bool,
}

impl Collector for Families {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for f in &self.families {
            let kind = match f.kind {
                Kind::Counter => MetricType::Counter,
                Kind::Gauge => MetricType::Gauge,
            };
            let help = if self.escape_help {
                escape_openmetrics(f.help)
            } else {
                f.help.into()
            };
            let mut metric =
                encoder.encode_descriptor(f.base_name(), &help, f.unit.as_ref(), kind)?;
            for (labels, value) in &f.samples {
                let sample = metric.encode_family(labels)?;
                match (f.kind, *value) {
                    (Kind::Counter, Value::Int(n)) => ConstCounter::new(n).encode(sample)?,
                    (Kind::Counter, Value::Float(x)) => ConstCounter::new(x).encode(sample)?,
                    (Kind::Gauge, Value::Int(n)) => ConstGauge::new(n).encode(sample)?,
                    (Kind::Gauge, Value::Float(x)) => ConstGauge::new(x).encode(sample)?,
                }
            }
        }
        Ok(())
    }
}

/// `text` as an OpenMetrics escaped string.
fn escape_openmetrics(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\\', '\n', '"']) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out.into()
}

/// Writes `families` in `format`.
pub fn encode(families: Vec<Family>, format: Format) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Families {
        families,
        escape_help: format == Format::OpenMetrics,
    }));
    let mut out = String::new();
    match format {
        Format::Prometheus => {
            prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?
        }
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, &registry)?,
    }
    Ok(out)
}

/// What the daemon knows beside the maps, for every scrape.
#[derive(Debug)]
pub struct Daemon {
    pub engine: EngineKind,
    /// Seconds since the Unix epoch.
    pub start_time: f64,
    /// The follower's resync count, kept up to date by the daemon's loop.
    pub follow_resyncs: AtomicU64,
}

impl Daemon {
    pub fn new(engine: EngineKind) -> Daemon {
        Daemon {
            engine,
            start_time: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            follow_resyncs: AtomicU64::new(0),
        }
    }
}

/// The endpoint: its socket, bound before the gateway comes up (so that a
/// port in use stops `vtep run` first), and what a scrape reads.
pub struct Endpoint {
    listener: TcpListener,
    scraper: Arc<Scraper>,
}

/// Binds `addr` (in a runtime's context).
pub fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .with_context(|| format!("metrics.listen {addr}: cannot serve /metrics there"))?;
    TcpListener::from_std(listener)
        .with_context(|| format!("metrics.listen {addr}: cannot serve /metrics there"))
}

impl Endpoint {
    /// The endpoint on `listener`, reading the gateway through `gw` (a
    /// handle of its own on the pinned maps).
    pub fn new(listener: TcpListener, gw: Gateway, daemon: Arc<Daemon>) -> Endpoint {
        Endpoint {
            listener,
            scraper: Arc::new(Scraper {
                gw: Mutex::new(gw),
                daemon,
                open: Arc::new(AtomicUsize::new(0)),
            }),
        }
    }

    /// Answers scrapes until the runtime stops; one task per connection.
    pub async fn serve(self) {
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => {
                    let Some(open) = Open::count(&self.scraper.open) else {
                        log::debug!("metrics: {peer}: {MAX_CONNECTIONS} connections open already");
                        continue;
                    };
                    let scraper = Arc::clone(&self.scraper);
                    tokio::spawn(async move {
                        if let Err(e) = connection(stream, scraper).await {
                            log::debug!("metrics: {peer}: {e}");
                        }
                        drop(open);
                    });
                }
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    log::warn!("metrics: accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// What a scrape reads, shared by the connections.
struct Scraper {
    gw: Mutex<Gateway>,
    daemon: Arc<Daemon>,
    /// Connections open.
    open: Arc<AtomicUsize>,
}

/// One open connection, counted while it lives.
struct Open(Arc<AtomicUsize>);

impl Open {
    /// Counts one more, unless [`MAX_CONNECTIONS`] are open.
    fn count(open: &Arc<AtomicUsize>) -> Option<Open> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_CONNECTIONS).then_some(n + 1)
        })
        .ok()
        .map(|_| Open(Arc::clone(open)))
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Scraper {
    /// The metrics, read now, in `format`.
    fn scrape(&self, format: Format) -> Result<String> {
        let gw = self.gw.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot = Snapshot::read(&gw, &self.daemon)?;
        Ok(encode(families(&snapshot), format)?)
    }
}

/// One connection: a request, its answer, close.
async fn connection(mut stream: TcpStream, scraper: Arc<Scraper>) -> std::io::Result<()> {
    let head = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(head) => head?,
        Err(_) => return Ok(()),
    };
    let response = match route(&head) {
        Err(refused) => refused,
        Ok(scrape) => {
            // Walking a large FDB takes a while: not on the thread of the
            // daemon's loop (ageing, the follower's events).
            let body = tokio::task::spawn_blocking(move || scraper.scrape(scrape.format))
                .await
                .unwrap_or_else(|e| Err(anyhow::anyhow!("the scrape failed: {e}")));
            scrape.response(body)
        }
    };
    stream.write_all(&response.to_bytes()).await?;
    stream.shutdown().await
}

/// Reads up to the end of the request head (the blank line), at most
/// [`MAX_HEAD`] bytes.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    Ok(head)
}

/// An HTTP response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
    /// `HEAD`: the headers only.
    pub head_only: bool,
}

impl Response {
    fn plain(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
            head_only: false,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Internal Server Error",
        };
        let allow = if self.status == 405 {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}\
             Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// A request for the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scrape {
    pub format: Format,
    /// `HEAD`: the headers only.
    pub head_only: bool,
}

impl Scrape {
    /// The answer with `body`, the scrape's result.
    fn response(self, body: Result<String>) -> Response {
        match body {
            Ok(body) => Response {
                status: 200,
                content_type: self.format.content_type(),
                body,
                head_only: self.head_only,
            },
            Err(e) => {
                log::warn!("metrics: reading the gateway: {e:#}");
                Response::plain(500, &format!("reading the gateway: {e:#}"))
            }
        }
    }
}

/// What a request head asks for: the metrics (`GET /metrics`, in the
/// format the `Accept` header asks for), or else the refusal to send.
pub fn route(head: &[u8]) -> Result<Scrape, Response> {
    let bad = || Response::plain(400, "bad request");
    let text = std::str::from_utf8(head).map_err(|_| bad())?;
    let mut lines = text.split("\r\n");
    let mut request = lines.next().unwrap_or("").split(' ');
    let (Some(method), Some(target), Some(version), None) = (
        request.next(),
        request.next(),
        request.next(),
        request.next(),
    ) else {
        return Err(bad());
    };
    if !version.starts_with("HTTP/1.") {
        return Err(bad());
    }
    let path = target.split('?').next().unwrap_or("");
    if path != "/metrics" {
        return Err(Response::plain(404, "not found: vtep serves /metrics"));
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err(Response::plain(405, "method not allowed: GET /metrics")),
    };
    let accept = lines
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("accept"))
        .map(|(_, value)| value.trim());
    Ok(Scrape {
        format: Format::from_accept(accept),
        head_only,
    })
}

#[cfg(test)]
mod tests {
    use vtep_common::{FDB_F_STATIC, Reason, VniCounters, VtepAddr};

    use super::*;

    /// VNI 100 with traffic and entries of every kind, VNI 200 idle.
    fn snapshot() -> Snapshot {
        let mut s = Snapshot {
            vnis: [(100, 500), (200, 0)].into(),
            learned: [(100, 2), (200, 0)].into(),
            flood: [(100, 2)].into(),
            ports: [(100, 1), (200, 1)].into(),
            fdb_capacity: 262_144,
            neighbours: 1,
            follow_resyncs: 3,
            engine: EngineKind::Afxdp,
            start_time: 1_700_000_000.5,
            read_seconds: 0.25,
            ..Snapshot::default()
        };
        s.stats.vnis.insert(
            100,
            VniCounters {
                rx_packets: 10,
                rx_bytes: 980,
                tx_packets: 11,
                tx_bytes: 1078,
                local_packets: 3,
                local_bytes: 294,
                flood_packets: 2,
                _reserved: 0,
            },
        );
        s.stats.reasons = Reason::ALL.iter().map(|&r| (r, 0)).collect();
        s.stats.reasons[Reason::NotVxlan as usize].1 = 7;
        s.stats.reasons[Reason::Hairpin as usize].1 = 1;
        let remote = VtepAddr::v4([198, 18, 0, 2]);
        let mac = |n: u8| [2, 0, 0, 0, 1, n];
        s.count_fdb(&[
            (
                FdbKey::new(100, mac(1)),
                FdbEntry::local(7, FDB_F_STATIC, 0),
            ),
            (
                FdbKey::new(100, mac(2)),
                FdbEntry::remote(remote, FDB_F_STATIC | FDB_F_CONFIG, 0),
            ),
            (
                FdbKey::new(100, mac(3)),
                FdbEntry::remote(remote, FDB_F_LEARNED, 5),
            ),
            (
                FdbKey::new(100, mac(4)),
                FdbEntry::local(8, FDB_F_LEARNED, 5),
            ),
            (
                FdbKey::new(200, mac(5)),
                FdbEntry::remote(remote, FDB_F_FOLLOWED, 0),
            ),
        ]);
        s
    }

    fn text(format: Format) -> String {
        encode(families(&snapshot()), format).unwrap()
    }

    /// The sample lines of `text` for `name` (`name{` or `name `).
    fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .collect()
    }

    #[test]
    fn classic_text_has_help_and_type_before_each_family() {
        let t = text(Format::Prometheus);
        for f in families(&snapshot()) {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let help = format!("# HELP {} {}\n", f.name, f.help);
            let typ = format!("# TYPE {} {kind}\n", f.name);
            let at = t.find(&help).unwrap_or_else(|| panic!("{help} in\n{t}"));
            assert_eq!(
                t[at + help.len()..].find(&typ),
                Some(0),
                "{typ} after {help}"
            );
            assert_eq!(
                samples(&t, f.name).len(),
                f.samples.len(),
                "{}:\n{t}",
                f.name
            );
        }
        assert!(!t.contains("# EOF"), "{t}");
        assert!(!t.contains("# UNIT"), "{t}");
        assert!(t.ends_with('\n'));
    }

    #[test]
    fn classic_text_samples() {
        let t = text(Format::Prometheus);
        for line in [
            "vtep_build_info{version=\"0.1.0\",engine=\"afxdp\"} 1",
            "process_start_time_seconds 1700000000.5",
            "vtep_vni_packets_total{vni=\"100\",direction=\"decap\"} 10",
            "vtep_vni_packets_total{vni=\"100\",direction=\"encap\"} 11",
            "vtep_vni_packets_total{vni=\"100\",direction=\"switch\"} 3",
            "vtep_vni_packets_total{vni=\"100\",direction=\"flood\"} 2",
            "vtep_vni_packets_total{vni=\"200\",direction=\"decap\"} 0",
            "vtep_vni_bytes_total{vni=\"100\",direction=\"decap\"} 980",
            "vtep_vni_bytes_total{vni=\"100\",direction=\"encap\"} 1078",
            "vtep_vni_bytes_total{vni=\"100\",direction=\"switch\"} 294",
            "vtep_reason_packets_total{reason=\"not-vxlan\",outcome=\"pass\"} 7",
            "vtep_reason_packets_total{reason=\"hairpin\",outcome=\"drop\"} 1",
            "vtep_reason_packets_total{reason=\"no-neighbour\",outcome=\"handoff\"} 0",
            "vtep_reason_packets_total{reason=\"learning-limit\",outcome=\"not-learned\"} 0",
            "vtep_fdb_entries{vni=\"100\",state=\"learned\"} 2",
            "vtep_fdb_entries{vni=\"100\",state=\"static\"} 1",
            "vtep_fdb_entries{vni=\"100\",state=\"permanent\"} 1",
            "vtep_fdb_entries{vni=\"200\",state=\"static\"} 1",
            "vtep_fdb_entries{vni=\"200\",state=\"learned\"} 0",
            "vtep_fdb_followed_entries{vni=\"200\"} 1",
            "vtep_fdb_followed_entries{vni=\"100\"} 0",
            "vtep_learned_entries{vni=\"100\"} 2",
            "vtep_vni_maxaddress{vni=\"100\"} 500",
            "vtep_vni_maxaddress{vni=\"200\"} 0",
            "vtep_flood_list_members{vni=\"100\"} 2",
            "vtep_flood_list_members{vni=\"200\"} 0",
            "vtep_access_ports{vni=\"200\"} 1",
            "vtep_fdb_capacity 262144",
            "vtep_neighbour_entries 1",
            "vtep_follow_resyncs_total 3",
            "vtep_scrape_duration_seconds 0.25",
        ] {
            assert!(t.lines().any(|l| l == line), "{line} in\n{t}");
        }
        // Flood frames have no byte count.
        assert!(!t.contains("direction=\"flood\"} 0\nvtep_vni_bytes"), "{t}");
        assert_eq!(samples(&t, "vtep_vni_bytes_total").len(), 2 * 3, "{t}");
        assert_eq!(
            samples(&t, "vtep_reason_packets_total").len(),
            Reason::ALL.len(),
            "every reason, zero or not"
        );
    }

    #[test]
    fn openmetrics_names_families_without_total_and_ends_in_eof() {
        let t = text(Format::OpenMetrics);
        assert!(t.ends_with("# EOF\n"), "{t}");
        assert_eq!(t.matches("# EOF").count(), 1);
        for line in [
            "# TYPE vtep_vni_packets counter",
            "# HELP vtep_vni_packets Packets per VNI: decap (from the underlay, delivered), \
             encap (to the underlay, each flood copy counts), switch (between local access \
             ports), flood (BUM frames flooded, once per frame)",
            "vtep_vni_packets_total{vni=\"100\",direction=\"decap\"} 10",
            "# TYPE vtep_vni_bytes counter",
            "# UNIT vtep_vni_bytes bytes",
            "vtep_vni_bytes_total{vni=\"100\",direction=\"encap\"} 1078",
            "# TYPE vtep_fdb_entries gauge",
            "vtep_fdb_entries{vni=\"100\",state=\"learned\"} 2",
            "# TYPE process_start_time_seconds gauge",
            "# UNIT process_start_time_seconds seconds",
            "process_start_time_seconds 1700000000.5",
            "# TYPE vtep_follow_resyncs counter",
            "vtep_follow_resyncs_total 3",
        ] {
            assert!(t.lines().any(|l| l == line), "{line} in\n{t}");
        }
        // The same samples as the classic format.
        let classic = text(Format::Prometheus);
        let values = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with('#'))
                .map(String::from)
                .collect()
        };
        assert_eq!(values(&t), values(&classic));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut f = Family::new("vtep_test", "a \\ \"help\"\nline", Kind::Gauge);
        f.sample(vec![("v", "a\"b\\c\nd".to_owned())], Value::Int(1));
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let t = encode(vec![f.clone()], format).unwrap();
            assert!(
                t.lines().any(|l| l == r#"vtep_test{v="a\"b\\c\nd"} 1"#),
                "{format:?}:\n{t}"
            );
            let help = match format {
                Format::Prometheus => r#"# HELP vtep_test a \\ "help"\nline"#,
                Format::OpenMetrics => r#"# HELP vtep_test a \\ \"help\"\nline"#,
            };
            assert!(t.lines().any(|l| l == help), "{format:?}:\n{t}");
        }
    }

    #[test]
    fn fdb_states_are_the_words_of_fdb_show() {
        assert_eq!(fdb_state(FDB_F_LEARNED), "learned");
        assert_eq!(fdb_state(FDB_F_STATIC), "static");
        assert_eq!(fdb_state(FDB_F_STATIC | FDB_F_CONFIG), "permanent");
        assert_eq!(fdb_state(FDB_F_FOLLOWED), "static");
    }

    #[test]
    fn accept_picks_the_format() {
        assert_eq!(Format::from_accept(None), Format::Prometheus);
        assert_eq!(Format::from_accept(Some("*/*")), Format::Prometheus);
        assert_eq!(
            Format::from_accept(Some("text/plain;version=0.0.4;q=1,*/*;q=0.1")),
            Format::Prometheus
        );
        // What Prometheus 2.42 sends.
        assert_eq!(
            Format::from_accept(Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::from_accept(Some("application/openmetrics-text; q=0, text/plain")),
            Format::Prometheus
        );
    }

    /// The answer to `head`, with a scrape that names its format.
    fn answer(head: &[u8], body: impl FnOnce(Format) -> Result<String>) -> Response {
        match route(head) {
            Ok(scrape) => scrape.response(body(scrape.format)),
            Err(refused) => refused,
        }
    }

    fn get(head: &str) -> Response {
        answer(head.as_bytes(), |f| Ok(format!("metrics as {f:?}")))
    }

    #[test]
    fn connections_are_counted_up_to_the_bound() {
        let open = Arc::new(AtomicUsize::new(0));
        let held: Vec<Open> = (0..MAX_CONNECTIONS)
            .map(|_| Open::count(&open).expect("under the bound"))
            .collect();
        assert!(Open::count(&open).is_none(), "one past the bound");
        drop(held);
        assert_eq!(open.load(Ordering::Acquire), 0);
        assert!(Open::count(&open).is_some());
    }

    #[test]
    fn http_answers() {
        let ok = get("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((ok.status, ok.content_type), (200, PROMETHEUS_TEXT));
        assert_eq!(ok.body, "metrics as Prometheus");
        let om = get(
            "GET /metrics?x=1 HTTP/1.1\r\nACCEPT: application/openmetrics-text;version=1.0.0\r\n\r\n",
        );
        assert_eq!((om.status, om.content_type), (200, OPENMETRICS_TEXT));
        assert_eq!(get("GET / HTTP/1.1\r\n\r\n").status, 404);
        assert_eq!(get("GET /metricsx HTTP/1.0\r\n\r\n").status, 404);
        let post = get("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(post.status, 405);
        assert!(
            String::from_utf8(post.to_bytes())
                .unwrap()
                .contains("\r\nAllow: GET, HEAD\r\n")
        );
        assert_eq!(get("nonsense\r\n\r\n").status, 400);
        assert_eq!(get("GET /metrics SMTP\r\n\r\n").status, 400);
        let head = get("HEAD /metrics HTTP/1.1\r\n\r\n");
        let bytes = String::from_utf8(head.to_bytes()).unwrap();
        assert!(bytes.ends_with("\r\n\r\n"), "{bytes}");
        assert!(bytes.contains("Content-Length: 21\r\n"), "{bytes}");
        let failed = answer(b"GET /metrics HTTP/1.1\r\n\r\n", |_| {
            Err(anyhow::anyhow!("map FDB: gone"))
        });
        assert_eq!(failed.status, 500);
        let bytes = String::from_utf8(ok.to_bytes()).unwrap();
        assert!(
            bytes.starts_with(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
                 Content-Length: 21\r\nConnection: close\r\n\r\nmetrics as Prometheus"
            ),
            "{bytes}"
        );
    }
}
