//! The `vtep` command line.
//!
//! Verbs and arguments follow iproute2's `bridge fdb`: keyword–value pairs
//! after the object (`vtep fdb add 02:00:00:00:01:02 vni 100 dst
//! 198.18.0.2`, `... dev t1w1` for an access port), `-j` for JSON. Every
//! command acts on the gateway pinned at `--pin-path`, directly on its maps:
//! a change is live when the command returns. What the commands print is
//! [`output`]'s, written to stdout a row at a time; a reader that
//! goes away (`vtep fdb show | head -1`) ends the command quietly.

pub mod batch;
pub mod docs;
pub mod output;

use std::{
    cell::RefCell,
    collections::BTreeMap,
    io::{self, BufWriter, Read as _, StdoutLock},
    net::IpAddr,
    path::PathBuf,
};

use anyhow::{Context as _, Result, bail};
use clap::{Args, Parser, Subcommand};
use vtep_common::{
    FDB_F_STATIC, FdbEntry, FdbKey, VNI_F_CHECK_SOURCE, VNI_F_LEARNING,
    event::{EventKind, FdbEvent},
};

use crate::{
    control::apply,
    daemon::{self, monitor::Reporter},
    datapath::{
        gateway::{Gateway, GatewayError, SetMode, check},
        loader,
        pins::{DEFAULT_PIN_PATH, Pins},
    },
    model::{
        addr::{Mac, to_vtep},
        config::{EngineKind, MetricsConfig, VniConfig, check_group, check_vni, parse_vtep},
    },
    system::{bpffs, clock, iface},
};

use output::{IfNames, Printer};

#[derive(Debug, Parser)]
#[command(
    name = "vtep",
    version,
    about = "A VXLAN gateway (RFC 7348 VTEP) whose datapath runs in XDP and TC",
    long_about = "A VXLAN gateway (RFC 7348 VTEP) whose datapath runs in XDP and TC.\n\n\
        `vtep run` loads the datapath from a config and keeps it; every other command acts \
        on the running gateway's pinned maps (the one at --pin-path).",
    arg_required_else_help = true
)]
pub struct Cli {
    /// bpffs directory where the gateway pins its maps, programs and links.
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_PIN_PATH, env = "VTEP_PIN_PATH")]
    pub pin_path: PathBuf,
    /// JSON output, as iproute2's -j.
    #[arg(short = 'j', long, global = true)]
    pub json: bool,
    /// Run the commands of FILE (`-` for standard input), one a line, as
    /// `bridge -batch`: all are checked before any is applied.
    #[arg(short = 'b', long, value_name = "FILE")]
    pub batch: Option<PathBuf>,
    /// With -batch: go on past a line that fails, apply the others, and
    /// fail at the end.
    #[arg(long, requires = "batch")]
    pub force: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Parses the command line, taking iproute2's single-dash words `-batch`
/// and `-force` for `--batch` and `--force`.
pub fn parse() -> Cli {
    Cli::parse_from(std::env::args_os().map(|a| match a.to_str() {
        Some("-batch") => "--batch".into(),
        Some("-force") => "--force".into(),
        _ => a,
    }))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load and attach the datapath from a config, then age learned MACs and
    /// keep neighbours resolved until SIGINT/SIGTERM (the datapath keeps
    /// forwarding after the daemon stops; a new `run` adopts it).
    Run {
        /// The TOML config.
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Which engine forwards (overrides the config's `engine`).
        #[arg(long, value_enum)]
        engine: Option<EngineKind>,
        /// Serve Prometheus metrics on ADDR:PORT at /metrics (overrides the
        /// config's `[metrics] listen`).
        #[arg(long, value_name = "ADDR:PORT", value_parser = MetricsConfig::parse_listen)]
        metrics: Option<std::net::SocketAddr>,
    },
    /// Detach the datapath from every interface and remove all its pins.
    Down,
    /// Forwarding database: MAC → remote VTEP or access port, per VNI.
    Fdb {
        #[command(subcommand)]
        command: FdbCommand,
    },
    /// VXLAN network identifiers carried by this gateway.
    Vni {
        #[command(subcommand)]
        command: VniCommand,
    },
    /// Access ports (the workloads' interfaces).
    Port {
        #[command(subcommand)]
        command: PortCommand,
    },
    /// Traffic per VNI and every reason a packet was not simply forwarded.
    Stats {
        /// Also list reasons whose count is zero.
        #[arg(short, long)]
        all: bool,
    },
    /// Watch the FDB: a line per entry learned, moved, aged out, added or
    /// deleted, as it happens (`bridge monitor fdb`), until Ctrl-C. Needs
    /// the gateway's `vtep run` daemon, which passes the events on.
    Monitor {
        /// What to watch: the FDB (the one object there is).
        #[arg(value_parser = ["fdb"], default_value = "fdb")]
        object: String,
        /// Start each line with the time of its event (`bridge -tshort`).
        #[arg(short = 't', long)]
        timestamp: bool,
    },
    /// Send frames at a high rate out of an interface (BPF_PROG_TEST_RUN live
    /// frames), count them at the far end (`sink`), or time vtep's XDP
    /// programs (`cost`): the benchmark lab's tools.
    Pktgen(Box<crate::lab::pktgen::PktgenArgs>),
    /// `completions SHELL`, `man DIR`: what `cargo xtask dist` packages.
    #[command(flatten)]
    Docs(docs::DocsCommand),
}

/// `MAC vni VNI [dst IP | dev IFNAME]`.
#[derive(Debug, Args)]
pub struct FdbArgs {
    /// The MAC address (00:00:00:00:00:00 is the flood list).
    pub mac: String,
    /// `vni VNI`, then `dst IP` (remote VTEP) or `dev IFNAME` (access port;
    /// `port IFNAME` is accepted as another name for `dev`).
    #[arg(num_args = 0.., value_name = "KEYWORD VALUE")]
    pub args: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum FdbCommand {
    /// Add a static entry; fails if the MAC has an entry in the VNI.
    Add(FdbArgs),
    /// Add a flood-list member: `00:00:00:00:00:00 vni VNI dst IP`.
    Append(FdbArgs),
    /// Add or overwrite a static entry.
    Replace(FdbArgs),
    /// Delete an entry (or a flood-list member, or with no dst the whole list).
    Del(FdbArgs),
    /// List entries: `[vni VNI]`.
    Show {
        #[arg(num_args = 0.., value_name = "KEYWORD VALUE")]
        args: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum VniCommand {
    /// Add a VNI: `VNI [group ADDR] [learning on|off] [ageing SECS] [maxaddress N]
    /// [check_source on|off]`.
    Add {
        vni: String,
        #[arg(num_args = 0.., value_name = "KEYWORD VALUE")]
        args: Vec<String>,
    },
    /// Change a VNI's settings (same keywords as add; `group none` drops the group).
    Set {
        vni: String,
        #[arg(num_args = 0.., value_name = "KEYWORD VALUE")]
        args: Vec<String>,
    },
    /// Delete a VNI with its ports, flood list and entries.
    Del { vni: String },
    /// List VNIs.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum PortCommand {
    /// Make IFNAME an access port of a VNI: `IFNAME vni VNI`.
    Add {
        ifname: String,
        #[arg(num_args = 0.., value_name = "KEYWORD VALUE")]
        args: Vec<String>,
    },
    /// Stop being an access port (detaches vtep from it).
    Del { ifname: String },
    /// List access ports.
    Show,
}

/// Keyword–value pairs, iproute2 style.
fn keywords<'a>(
    what: &str,
    args: &'a [String],
    allowed: &[&str],
) -> Result<BTreeMap<&'a str, &'a str>> {
    let mut out = BTreeMap::new();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        if !allowed.contains(&k.as_str()) {
            bail!(
                "{what}: unknown keyword {k:?} (expected one of: {})",
                allowed.join(", ")
            );
        }
        let Some(v) = it.next() else {
            bail!("{what}: {k} needs a value");
        };
        if out.insert(k.as_str(), v.as_str()).is_some() {
            bail!("{what}: {k} given twice");
        }
    }
    Ok(out)
}

fn parse_vni(what: &str, s: &str) -> Result<u32> {
    let v: i64 = s
        .parse()
        .with_context(|| format!("{what}: VNI {s:?} is not a number"))?;
    check_vni("vni", v).map_err(|e| anyhow::anyhow!("{what}: {}", e.reason))
}

fn on_off(what: &str, k: &str, v: &str) -> Result<bool> {
    match v {
        "on" | "true" | "yes" => Ok(true),
        "off" | "false" | "no" => Ok(false),
        _ => bail!("{what}: {k} takes on or off, not {v:?}"),
    }
}

/// Runs one command. A closed stdout (its reader went away, as `head` does)
/// is no error: the command ends quietly with success, as iproute2's do.
pub fn main(cli: Cli) -> Result<()> {
    match run(cli) {
        Err(e) if is_broken_pipe(&e) => Ok(()),
        r => r,
    }
}

/// True when `e` comes from writing to a pipe whose reader is gone.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Prints to stdout through a [`Printer`], text or JSON.
fn print(
    json: bool,
    print: impl FnOnce(&mut Printer<BufWriter<StdoutLock<'static>>>) -> io::Result<()>,
) -> Result<()> {
    let mut p = Printer::new(BufWriter::new(io::stdout().lock()), json);
    print(&mut p).context("printing to stdout")?;
    p.finish().context("printing to stdout")?;
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    let pin = &cli.pin_path;
    let command = match (cli.command, &cli.batch) {
        (None, Some(file)) => return batch::run(pin, file, cli.force),
        (Some(_), Some(_)) => bail!("-batch FILE takes its commands from FILE, not after it"),
        (None, None) => bail!("give a command (see `vtep --help`) or -batch FILE"),
        (Some(c), None) => c,
    };
    match command {
        Command::Run {
            config,
            engine,
            metrics,
        } => crate::daemon::run(&config, pin, engine, metrics),
        Command::Down => {
            // Taken first, so that no `vtep run` starts on what goes; its
            // drop removes the lock file a killed daemon left (a running
            // daemon keeps its own).
            let lock = bpffs::try_lock(pin)?.ok();
            // The groups joined on the uplink outlive the daemon, not the
            // gateway: left while the tables still say which they are.
            if let Ok(mut gw) = Gateway::open(pin) {
                for (group, e) in gw.groups_leave_all() {
                    eprintln!("vtep: leaving multicast group {group} on the uplink: {e}");
                }
            }
            let n = loader::down(&Pins::new(pin))?;
            if n == 0 {
                eprintln!("vtep: nothing pinned at {}", pin.display());
            }
            if lock.is_some() {
                // A killed daemon's monitor socket (a running one removes
                // its own when it stops).
                let _ = std::fs::remove_file(daemon::monitor::socket_path(pin));
            }
            drop(lock);
            Ok(())
        }
        // A `show` changes nothing: no generation to bump (a bump makes the
        // AF_XDP engine reload, and the daemon read the whole FDB).
        Command::Fdb {
            command: command @ FdbCommand::Show { .. },
        } => fdb(pin, cli.json, command),
        Command::Vni {
            command: VniCommand::Show,
        } => vni(pin, cli.json, VniCommand::Show),
        Command::Port {
            command: PortCommand::Show,
        } => port(pin, cli.json, PortCommand::Show),
        Command::Fdb { command } => changed(pin, fdb(pin, cli.json, command)),
        Command::Vni { command } => changed(pin, vni(pin, cli.json, command)),
        Command::Port { command } => changed(pin, port(pin, cli.json, command)),
        Command::Monitor { timestamp, .. } => monitor(pin, cli.json, timestamp),
        Command::Pktgen(args) => crate::lab::pktgen::main(*args, cli.json),
        Command::Docs(command) => docs::run(command),
        Command::Stats { all } => {
            let stats = Gateway::open(pin)?.stats()?;
            print(cli.json, |p| output::stats(p, &stats, all))
        }
    }
}

/// After a command that may have changed the tables, bumps the generation
/// so that a userspace engine reloads its copy at once.
fn changed(pin: &std::path::Path, result: Result<()>) -> Result<()> {
    result?;
    published(&mut Gateway::open(pin)?)
}

/// Bumps the generation and waits (a second at most) until an AF_XDP
/// engine has the change, as the XDP engine (which reads the maps
/// themselves) has it at once.
fn published(gw: &mut Gateway) -> Result<()> {
    REPORTER.with_borrow_mut(Reporter::flush);
    let g = gw.bump_generation()?;
    if !gw.wait_applied(g, std::time::Duration::from_secs(1)) {
        log::warn!("the AF_XDP engine has not taken the change within a second");
    }
    Ok(())
}

/// A command that changes the tables (`fdb add|append|replace|del`, `vni
/// add|set|del`, `port add|del`), its arguments checked: made without the
/// gateway, applied to it by [`Change::apply`]. `vtep -batch` checks a
/// whole file of them before it applies any.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `fdb add|replace MAC vni VNI dst IP|dev IFNAME`.
    FdbSet {
        vni: u32,
        mac: Mac,
        place: Place,
        mode: SetMode,
    },
    /// `fdb del MAC vni VNI`.
    FdbDel { vni: u32, mac: Mac },
    /// `fdb append 00:00:00:00:00:00 vni VNI dst IP`.
    FloodAdd { vni: u32, dst: IpAddr },
    /// `fdb del 00:00:00:00:00:00 vni VNI [dst IP]`.
    FloodDel { vni: u32, dst: Option<IpAddr> },
    /// `vni add VNI ...`.
    VniAdd(VniConfig),
    /// `vni set VNI ...`: the keywords, laid over the VNI's settings when
    /// applied.
    VniSet { vni: u32, args: Vec<String> },
    /// `vni del VNI`.
    VniDel(u32),
    /// `port add IFNAME vni VNI`.
    PortAdd { ifname: String, vni: u32 },
    /// `port del IFNAME`.
    PortDel { ifname: String },
}

/// Where a static FDB entry sends its MAC.
#[derive(Debug, Clone, PartialEq)]
pub enum Place {
    /// `dst IP`: a remote VTEP.
    Remote(IpAddr),
    /// `dev IFNAME`: an access port.
    Port { ifname: String, ifindex: u32 },
}

impl Change {
    /// The `fdb` verbs other than `show`.
    fn fdb(verb: &str, a: &FdbArgs) -> Result<Change> {
        let what = format!("fdb {verb}");
        let mac: Mac = a
            .mac
            .parse()
            .map_err(|e: String| anyhow::anyhow!("{what}: {e}"))?;
        let kw = keywords(&what, &a.args, &["vni", "dst", "dev", "port"])?;
        let Some(vni) = kw.get("vni") else {
            bail!("{what}: missing `vni VNI`");
        };
        let vni = parse_vni(&what, vni)?;
        let (dst, dev) = fdb_place(&what, &kw)?;

        if mac.is_zero() {
            // The flood list: `bridge fdb append 00:00:00:00:00:00 ... dst IP`.
            if dev.is_some() {
                bail!("{what}: 00:00:00:00:00:00 is the flood list; it takes dst, not dev");
            }
            return match verb {
                "del" => Ok(Change::FloodDel { vni, dst }),
                "replace" => bail!("{what}: use append or del for flood-list members"),
                _ => {
                    let Some(dst) = dst else {
                        bail!("{what}: a flood-list member needs `dst IP`");
                    };
                    Ok(Change::FloodAdd { vni, dst })
                }
            };
        }
        match verb {
            "del" => Ok(Change::FdbDel { vni, mac }),
            "append" => bail!(
                "{what}: append adds flood-list members (00:00:00:00:00:00); for {mac} use add or replace"
            ),
            _ => {
                let place = match (dst, dev) {
                    (Some(d), None) => Place::Remote(d),
                    (None, Some(p)) => Place::Port {
                        ifindex: iface::ifindex(p)
                            .with_context(|| format!("{what}: no interface named {p:?}"))?,
                        ifname: p.to_owned(),
                    },
                    _ => bail!("{what}: give `dst IP` (remote VTEP) or `dev IFNAME` (access port)"),
                };
                let mode = if verb == "add" {
                    SetMode::Add
                } else {
                    SetMode::Replace
                };
                Ok(Change::FdbSet {
                    vni,
                    mac,
                    place,
                    mode,
                })
            }
        }
    }

    /// The `vni` verbs other than `show`.
    fn vni(command: &VniCommand) -> Result<Change> {
        Ok(match command {
            VniCommand::Add { vni, args } => {
                let id = parse_vni("vni add", vni)?;
                Change::VniAdd(vni_settings("vni add", VniConfig::new(id), args)?)
            }
            VniCommand::Set { vni, args } => {
                let id = parse_vni("vni set", vni)?;
                // Checks the keywords now; they are laid over the VNI's
                // settings when applied.
                vni_settings("vni set", VniConfig::new(id), args)?;
                Change::VniSet {
                    vni: id,
                    args: args.clone(),
                }
            }
            VniCommand::Del { vni } => Change::VniDel(parse_vni("vni del", vni)?),
            VniCommand::Show => bail!("vni show changes nothing"),
        })
    }

    /// The `port` verbs other than `show`.
    fn port(command: &PortCommand) -> Result<Change> {
        Ok(match command {
            PortCommand::Add { ifname, args } => {
                let kw = keywords("port add", args, &["vni"])?;
                let Some(vni) = kw.get("vni") else {
                    bail!("port add: missing `vni VNI`");
                };
                Change::PortAdd {
                    ifname: ifname.clone(),
                    vni: parse_vni("port add", vni)?,
                }
            }
            PortCommand::Del { ifname } => Change::PortDel {
                ifname: ifname.clone(),
            },
            PortCommand::Show => bail!("port show changes nothing"),
        })
    }

    /// The words of the command, for messages (`fdb add`).
    pub fn what(&self) -> &'static str {
        match self {
            Change::FdbSet {
                mode: SetMode::Add, ..
            } => "fdb add",
            Change::FdbSet { .. } => "fdb replace",
            Change::FdbDel { .. } | Change::FloodDel { .. } => "fdb del",
            Change::FloodAdd { .. } => "fdb append",
            Change::VniAdd(_) => "vni add",
            Change::VniSet { .. } => "vni set",
            Change::VniDel(_) => "vni del",
            Change::PortAdd { .. } => "port add",
            Change::PortDel { .. } => "port del",
        }
    }

    /// Refuses a remote VTEP that is this gateway's own address, or of a
    /// family the underlay has no local address of; and a VNI's group of
    /// such a family (`t`: the tables it is checked against).
    pub fn check_dst(&self, t: &impl check::TableView) -> Result<()> {
        let checked = match self {
            Change::FdbSet {
                place: Place::Remote(d),
                ..
            }
            | Change::FloodAdd { dst: d, .. }
            | Change::FloodDel { dst: Some(d), .. } => check::remote(t, *d),
            Change::VniAdd(v) => check::vni_group(t, v.group),
            _ => return Ok(()),
        };
        checked.map_err(|e| anyhow::anyhow!("{}: {e}", self.what()))
    }

    /// Makes the change in the gateway's maps (and attaches or detaches an
    /// access port). The generation is the caller's to bump.
    pub fn apply(&self, gw: &mut Gateway) -> Result<()> {
        match self {
            Change::FdbSet {
                vni,
                mac,
                place,
                mode,
            } => {
                let entry = match place {
                    Place::Remote(d) => FdbEntry::remote(to_vtep(*d), FDB_F_STATIC, 0),
                    Place::Port { ifindex, .. } => FdbEntry::local(*ifindex, FDB_F_STATIC, 0),
                };
                let old = monitored(gw).then(|| gw.fdb_get(*vni, *mac)).flatten();
                gw.fdb_set(*vni, *mac, entry, *mode)?;
                let key = FdbKey::new(*vni, mac.0);
                report(gw, EventKind::Added, key, old.unwrap_or_default(), entry);
                Ok(())
            }
            Change::FdbDel { vni, mac } => {
                let old = monitored(gw).then(|| gw.fdb_get(*vni, *mac)).flatten();
                gw.fdb_del(*vni, *mac)?;
                if let Some(old) = old {
                    let key = FdbKey::new(*vni, mac.0);
                    report(gw, EventKind::Deleted, key, old, FdbEntry::default());
                }
                Ok(())
            }
            Change::FloodAdd { vni, dst } => {
                gw.flood_add(*vni, *dst)?;
                // Resolution asked for now, not at the daemon's next tick.
                apply::kick_remote(gw, *dst);
                let member = FdbEntry::remote(to_vtep(*dst), FDB_F_STATIC, 0);
                let key = FdbKey::new(*vni, Mac::ZERO.0);
                report(gw, EventKind::Added, key, FdbEntry::default(), member);
                Ok(())
            }
            Change::FloodDel { vni, dst } => {
                let members = match dst {
                    Some(d) => vec![*d],
                    None if monitored(gw) => gw.flood_list(*vni),
                    None => Vec::new(),
                };
                gw.flood_del(*vni, *dst)?;
                for d in members {
                    let member = FdbEntry::remote(to_vtep(d), FDB_F_STATIC, 0);
                    let key = FdbKey::new(*vni, Mac::ZERO.0);
                    report(gw, EventKind::Deleted, key, member, FdbEntry::default());
                }
                Ok(())
            }
            Change::VniAdd(v) => Ok(gw.vni_set(v, false)?),
            Change::VniSet { vni, args } => {
                let info = gw.vni_info(*vni)?;
                let base = VniConfig {
                    learning: info.flags & VNI_F_LEARNING != 0,
                    check_source: info.flags & VNI_F_CHECK_SOURCE != 0,
                    ageing: info.ageing_secs,
                    maxaddress: info.max_addresses,
                    group: gw.vni_group(*vni),
                    ..VniConfig::new(*vni)
                };
                Ok(gw.vni_set(&vni_settings("vni set", base, args)?, true)?)
            }
            Change::VniDel(vni) => Ok(gw.vni_del(*vni)?),
            Change::PortAdd { ifname, vni } => apply::add_port(gw, ifname, *vni),
            Change::PortDel { ifname } => Ok(gw.port_del(ifname)?),
        }
    }

    /// Makes one change the way a single command does: checked against
    /// the gateway, then applied.
    fn apply_one(&self, gw: &mut Gateway) -> Result<()> {
        self.check_dst(&*gw)?;
        self.apply(gw)
    }
}

thread_local! {
    /// This process's changes, on their way to the daemon's monitor.
    static REPORTER: RefCell<Reporter> = RefCell::default();
}

/// Whether a daemon's monitor hears of this process's changes to `gw`
/// (else there is nothing to report, nor to look up for it).
fn monitored(gw: &Gateway) -> bool {
    REPORTER.with_borrow_mut(|r| r.connected(&gw.pins.root))
}

/// Tells the daemon's monitor, if any, of a change to the FDB (sent in
/// batches, the last by [`published`]).
fn report(gw: &Gateway, kind: EventKind, key: FdbKey, old: FdbEntry, new: FdbEntry) {
    let event = FdbEvent::new(kind, key, old, new, clock::monotonic_ns());
    REPORTER.with_borrow_mut(|r| r.report(&gw.pins.root, event));
}

/// `vtep monitor fdb`: prints the daemon's events as they come, until
/// SIGINT or SIGTERM (quietly) or the daemon stops (an error).
fn monitor(pin: &std::path::Path, json: bool, timestamp: bool) -> Result<()> {
    use std::io::Write as _;
    let sock = daemon::monitor::connect(pin).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => anyhow::anyhow!(
            "no `vtep run` daemon for the gateway at {}: vtep monitor gets its events from \
             the daemon (start one with `vtep run --config FILE`)",
            pin.display()
        ),
        _ => anyhow::Error::from(e).context(format!(
            "connecting to {}",
            daemon::monitor::socket_path(pin).display()
        )),
    })?;
    stop_quietly_on_signals()?;
    let mut out = BufWriter::new(io::stdout().lock());
    let mut names = IfNames::default();
    let mut buf = vec![0u8; daemon::monitor::MAX_MESSAGE];
    loop {
        let n = match (&sock).read(&mut buf) {
            Ok(0) => bail!("the daemon of the gateway at {} stopped", pin.display()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                if STOP.load(std::sync::atomic::Ordering::Relaxed) {
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(e).context("reading the daemon's events"),
        };
        let mut p = Printer::new(&mut out, json);
        match daemon::monitor::Message::decode(&buf[..n]) {
            Some(daemon::monitor::Message::Events(events)) => {
                for e in &events {
                    let t = timestamp.then(|| output::monitor::stamp(e.time_ns));
                    output::monitor::event(&mut p, e, t.as_deref(), &mut |i| names.name(i))
                        .context("printing to stdout")?;
                }
            }
            Some(daemon::monitor::Message::Lost(why, lost)) => {
                let t = timestamp.then(|| output::monitor::stamp(clock::monotonic_ns()));
                output::monitor::lost(&mut p, why, lost, t.as_deref())
                    .context("printing to stdout")?;
            }
            None => log::debug!("monitor: a message of {n} bytes not understood"),
        }
        out.flush().context("printing to stdout")?;
    }
}

/// Set by SIGINT and SIGTERM in `vtep monitor`.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// SIGINT and SIGTERM set [`STOP`] and interrupt the blocking read
/// (no `SA_RESTART`), so that `vtep monitor` ends quietly, with success.
fn stop_quietly_on_signals() -> Result<()> {
    extern "C" fn on_signal(_: libc::c_int) {
        STOP.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: an all-zero sigaction is valid; the handler only stores
        // to an atomic, which is async-signal-safe.
        let rc = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::last_os_error()).context("catching SIGINT and SIGTERM");
        }
    }
    Ok(())
}

fn fdb(pin: &std::path::Path, json: bool, command: FdbCommand) -> Result<()> {
    let (verb, a) = match command {
        FdbCommand::Show { args } => {
            let kw = keywords("fdb show", &args, &["vni"])?;
            let vni = kw
                .get("vni")
                .map(|v| parse_vni("fdb show", v))
                .transpose()?;
            let gw = Gateway::open(pin)?;
            if let Some(v) = vni {
                gw.vni_info(v)?;
            }
            return fdb_show(&gw, vni, json);
        }
        FdbCommand::Add(a) => ("add", a),
        FdbCommand::Append(a) => ("append", a),
        FdbCommand::Replace(a) => ("replace", a),
        FdbCommand::Del(a) => ("del", a),
    };
    // The arguments are checked whole before the gateway is opened: a
    // malformed one is refused as such, with or without a gateway.
    let change = Change::fdb(verb, &a)?;
    change.apply_one(&mut Gateway::open(pin)?)
}

fn fdb_place<'a>(
    what: &str,
    kw: &BTreeMap<&str, &'a str>,
) -> Result<(Option<IpAddr>, Option<&'a str>)> {
    let dst: Option<IpAddr> = kw
        .get("dst")
        .map(|d| parse_vtep("dst", d).map_err(|e| anyhow::anyhow!("{what}: {}", e.reason)))
        .transpose()?;
    let dev = match (kw.get("dev"), kw.get("port")) {
        (Some(_), Some(_)) => bail!("{what}: port is another name for dev; give one of them"),
        (dev, port) => dev.or(port).copied(),
    };
    if dst.is_some() && dev.is_some() {
        bail!("{what}: give dst or dev, not both");
    }
    Ok((dst, dev))
}

/// `vtep fdb show [vni VNI]`: each VNI's entries by MAC, then its flood list.
fn fdb_show(gw: &Gateway, vni: Option<u32>, json: bool) -> Result<()> {
    let now_ns = clock::monotonic_ns();
    let mut entries = gw.fdb_entries();
    entries.retain(|(k, _)| vni.is_none_or(|v| v == k.vni));
    entries.sort_unstable_by_key(|(k, _)| (k.vni, k.mac));
    let vnis = match vni {
        Some(v) => vec![v],
        None => gw.vni_ids(),
    };
    let floods: Vec<output::FloodRows> = vnis
        .into_iter()
        .map(|v| output::FloodRows {
            vni: v,
            followed: gw.vni_followed(v),
            group: gw.vni_group(v),
            members: gw.flood_list(v),
        })
        .collect();
    let mut names = IfNames::default();
    print(json, |p| {
        output::fdb(p, &entries, &floods, now_ns, &mut |i| names.name(i))
    })
}

/// The settings `vni add|set` change: `[learning on|off] [ageing SECS]
/// [maxaddress N] [check_source on|off]`, each one left out kept as it is.
#[derive(Debug, Default, PartialEq, Eq)]
struct VniSettings {
    /// `group ADDR` (`Some(Some)`) or `group none` (`Some(None)`).
    group: Option<Option<IpAddr>>,
    learning: Option<bool>,
    check_source: Option<bool>,
    ageing: Option<u32>,
    maxaddress: Option<u32>,
}

impl VniSettings {
    fn parse(what: &str, args: &[String]) -> Result<Self> {
        let kw = keywords(
            what,
            args,
            &["group", "learning", "ageing", "maxaddress", "check_source"],
        )?;
        let mut v = VniSettings::default();
        for (k, val) in kw {
            match k {
                "group" if val == "none" => v.group = Some(None),
                "group" => {
                    let g =
                        check_group("group", val).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
                    v.group = Some(Some(g));
                }
                "learning" => v.learning = Some(on_off(what, k, val)?),
                "check_source" => v.check_source = Some(on_off(what, k, val)?),
                "ageing" => {
                    v.ageing = Some(val.parse().with_context(|| {
                        format!("{what}: ageing {val:?} is not a number of seconds")
                    })?)
                }
                "maxaddress" => {
                    v.maxaddress =
                        Some(val.parse().with_context(|| {
                            format!("{what}: maxaddress {val:?} is not a number")
                        })?)
                }
                _ => unreachable!("keywords() checked {k}"),
            }
        }
        Ok(v)
    }

    fn apply(&self, base: VniConfig) -> VniConfig {
        VniConfig {
            learning: self.learning.unwrap_or(base.learning),
            check_source: self.check_source.unwrap_or(base.check_source),
            ageing: self.ageing.unwrap_or(base.ageing),
            maxaddress: self.maxaddress.unwrap_or(base.maxaddress),
            group: self.group.unwrap_or(base.group),
            ..base
        }
    }
}

/// `base` with the settings `args` give (`learning on`, `ageing 60`, ...).
fn vni_settings(what: &str, base: VniConfig, args: &[String]) -> Result<VniConfig> {
    Ok(VniSettings::parse(what, args)?.apply(base))
}

fn vni(pin: &std::path::Path, json: bool, command: VniCommand) -> Result<()> {
    if !matches!(command, VniCommand::Show) {
        let change = Change::vni(&command)?;
        return change.apply_one(&mut Gateway::open(pin)?);
    }
    let gw = Gateway::open(pin)?;
    let mut names = IfNames::default();
    let rows = gw
        .vni_ids()
        .into_iter()
        .map(|vni| {
            Ok(output::VniRow {
                vni,
                info: gw.vni_info(vni)?,
                ports: gw
                    .vni_ports(vni)
                    .into_iter()
                    .map(|i| names.name(i))
                    .collect(),
                flood: gw.flood_list(vni),
                group: gw.vni_group(vni),
                learned: gw.learned(vni).unwrap_or(0),
            })
        })
        .collect::<Result<Vec<_>, GatewayError>>()?;
    print(json, |p| output::vnis(p, &rows))
}

fn port(pin: &std::path::Path, json: bool, command: PortCommand) -> Result<()> {
    if !matches!(command, PortCommand::Show) {
        let change = Change::port(&command)?;
        return change.apply_one(&mut Gateway::open(pin)?);
    }
    let gw = Gateway::open(pin)?;
    let mut names = IfNames::default();
    let rows: Vec<output::PortRow> = gw
        .port_list()
        .into_iter()
        .map(|(ifindex, vni)| output::PortRow {
            ifname: names.name(ifindex),
            ifindex,
            vni,
            xdp_redirect: gw.xdp_tx(ifindex),
        })
        .collect();
    print(json, |p| output::ports(p, &rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn keywords_parse_pairs() {
        let a = s(&["vni", "100", "dst", "198.18.0.2"]);
        let kw = keywords("fdb add", &a, &["vni", "dst", "port"]).unwrap();
        assert_eq!(kw["vni"], "100");
        assert_eq!(kw["dst"], "198.18.0.2");
    }

    #[test]
    fn keywords_refuse_bad_input() {
        let unknown = keywords("fdb add", &s(&["vnii", "1"]), &["vni"]).unwrap_err();
        assert!(
            unknown.to_string().contains("unknown keyword \"vnii\""),
            "{unknown}"
        );
        let dangling = keywords("fdb add", &s(&["vni"]), &["vni"]).unwrap_err();
        assert!(
            dangling.to_string().contains("vni needs a value"),
            "{dangling}"
        );
        let twice = keywords("fdb add", &s(&["vni", "1", "vni", "2"]), &["vni"]).unwrap_err();
        assert!(twice.to_string().contains("twice"), "{twice}");
    }

    #[test]
    fn fdb_takes_dev_or_its_alias_port() {
        let place = |a: &[&str]| {
            let a = s(a);
            let kw = keywords("fdb add", &a, &["vni", "dst", "dev", "port"]).unwrap();
            fdb_place("fdb add", &kw)
                .map(|(dst, dev)| (dst, dev.map(str::to_owned)))
                .map_err(|e| e.to_string())
        };
        assert_eq!(place(&["dev", "t1w1"]), Ok((None, Some("t1w1".into()))));
        assert_eq!(place(&["port", "t1w1"]), Ok((None, Some("t1w1".into()))));
        assert_eq!(
            place(&["dst", "198.18.0.2"]),
            Ok((Some("198.18.0.2".parse().unwrap()), None))
        );
        assert_eq!(place(&["vni", "100"]), Ok((None, None)));
        let both = place(&["dev", "a", "port", "b"]).unwrap_err();
        assert!(both.contains("port is another name for dev"), "{both}");
        let two = place(&["dst", "198.18.0.2", "dev", "a"]).unwrap_err();
        assert!(two.contains("give dst or dev, not both"), "{two}");
    }

    #[test]
    fn a_closed_pipe_is_no_error() {
        let e = anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe))
            .context("printing to stdout");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("map FDB: not found")));
    }

    #[test]
    fn vnis_are_checked() {
        assert_eq!(parse_vni("x", "100").unwrap(), 100);
        assert!(parse_vni("x", "0").is_err());
        assert!(parse_vni("x", "16777216").is_err());
        assert!(parse_vni("x", "ten").is_err());
    }

    /// A malformed argument is refused as such, before the command looks
    /// for a gateway (there is none at this pin path).
    #[test]
    fn malformed_arguments_are_refused_before_the_gateway_is_opened() {
        let cases: &[(&[&str], &str)] = &[
            (
                &[
                    "fdb",
                    "add",
                    "02:00:00:00:01",
                    "vni",
                    "100",
                    "dst",
                    "198.18.0.2",
                ],
                "fdb add: \"02:00:00:00:01\" is not a MAC address (expected six hex bytes, \
                 like 02:00:00:00:01:02)",
            ),
            (
                &[
                    "fdb",
                    "add",
                    "02:00:00:00:01:02",
                    "vni",
                    "0",
                    "dst",
                    "198.18.0.2",
                ],
                "fdb add: 0 is outside 1..=16777215",
            ),
            (
                &[
                    "fdb",
                    "del",
                    "02:00:00:00:01:02",
                    "vni",
                    "100",
                    "dst",
                    "198.18.0.300",
                ],
                "fdb del: \"198.18.0.300\" is not an IP address",
            ),
            (
                &["fdb", "show", "vni", "ten"],
                "fdb show: VNI \"ten\" is not a number: invalid digit found in string",
            ),
            (
                &["vni", "add", "16777216"],
                "vni add: 16777216 is outside 1..=16777215",
            ),
            (
                &["vni", "set", "100", "learning", "maybe"],
                "vni set: learning takes on or off, not \"maybe\"",
            ),
            (
                &["vni", "del", "x"],
                "vni del: VNI \"x\" is not a number: invalid digit found in string",
            ),
            (
                &["port", "add", "t1w1", "vni", "1e3"],
                "port add: VNI \"1e3\" is not a number: invalid digit found in string",
            ),
        ];
        for (args, error) in cases {
            let argv = ["vtep", "--pin-path", "/nonexistent/vtep-h7"]
                .iter()
                .chain(args.iter());
            let cli = Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            let e = run(cli).expect_err(&format!("{args:?} must be refused"));
            assert_eq!(format!("{e:#}"), *error, "{args:?}");
        }
        // Well-formed, it is the missing gateway that refuses it.
        let cli = Cli::try_parse_from([
            "vtep",
            "--pin-path",
            "/nonexistent/vtep-h7",
            "vni",
            "del",
            "100",
        ])
        .unwrap();
        let e = run(cli).unwrap_err();
        assert!(format!("{e:#}").starts_with("no vtep gateway at"), "{e:#}");
    }

    #[test]
    fn vni_settings_change_only_what_is_given() {
        let base = VniConfig {
            ageing: 60,
            ..VniConfig::new(7)
        };
        let v = VniSettings::parse("vni set", &s(&["learning", "off", "maxaddress", "10"]))
            .unwrap()
            .apply(base.clone());
        assert_eq!(
            v,
            VniConfig {
                learning: false,
                maxaddress: 10,
                ..base.clone()
            }
        );
        // `group ADDR` sets the group, `group none` drops it, and no
        // `group` keeps it.
        let grouped = VniSettings::parse("vni set", &s(&["group", "ff05::100"]))
            .unwrap()
            .apply(base.clone());
        assert_eq!(grouped.group, Some("ff05::100".parse().unwrap()));
        let kept = VniSettings::parse("vni set", &s(&["ageing", "5"]))
            .unwrap()
            .apply(grouped.clone());
        assert_eq!(kept.group, grouped.group);
        let dropped = VniSettings::parse("vni set", &s(&["group", "none"]))
            .unwrap()
            .apply(grouped);
        assert_eq!(dropped.group, None);
        let bad = VniSettings::parse("vni add", &s(&["group", "198.18.0.9"])).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "vni add: group: 198.18.0.9 is not a multicast address"
        );
        let bad = VniSettings::parse("vni add", &s(&["group", "x"])).unwrap_err();
        assert_eq!(
            bad.to_string(),
            "vni add: group: \"x\" is not an IP address"
        );
    }

    #[test]
    fn cli_shape_is_valid() {
        use clap::CommandFactory as _;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "vtep",
            "fdb",
            "add",
            "02:00:00:00:01:02",
            "vni",
            "100",
            "dst",
            "198.18.0.2",
            "--pin-path",
            "/x",
        ])
        .unwrap();
        assert_eq!(cli.pin_path, PathBuf::from("/x"));
        let Some(Command::Fdb {
            command: FdbCommand::Add(a),
        }) = cli.command
        else {
            panic!("parsed as {:?}", cli.command);
        };
        assert_eq!(a.args, s(&["vni", "100", "dst", "198.18.0.2"]));
    }
}
