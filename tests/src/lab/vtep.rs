//! vtep in the lab: the daemon (`vtep run`) in a host namespace, its CLI, and
//! the JSON the CLI prints (`fdb show -j`, `stats -j`).

use std::fmt::{Display, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::cmd::{self, Proc, Run, pid_alive, try_run};
use super::{DaemonRecord, Host, Lab};

/// How long `vtep run` may take to be up.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one CLI command may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of a daemon's log shown in failure messages.
const LOG_TAIL: usize = 40;

fn try_vtep_bin() -> Result<PathBuf, String> {
    let path = match std::env::var_os("VTEP_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/release/vtep"
        )),
    };
    path.canonicalize().map_err(|e| {
        format!(
            "no vtep binary at {} ({e}): build it with `cargo build --release -p vtep` \
             and/or set VTEP_BIN, or run everything with `cargo xtask test`",
            path.display()
        )
    })
}

/// The `vtep` binary under test: `$VTEP_BIN`, else the workspace's `target/release/vtep`.
pub fn vtep_bin() -> PathBuf {
    try_vtep_bin().unwrap_or_else(|e| panic!("{e}"))
}

/// `vtep <args> --pin-path <host's pins>`, run in the host's namespace.
fn cli_line(bin: &std::path::Path, host: &Host, args: &str) -> String {
    host.cmdline(&format!(
        "{} {args} --pin-path {}",
        bin.display(),
        host.pin_path.display()
    ))
}

/// Runs the CLI without panicking (for diagnostics and cleanup).
fn try_cli(host: &Host, args: &str) -> Result<Run, String> {
    let bin = match &host.cli {
        Some(bin) => bin.clone(),
        None => try_vtep_bin()?,
    };
    try_run(&cli_line(&bin, host, args), CLI_TIMEOUT)
}

/// `vtep down` for `host`; reports failures on stderr, never panics (runs from Drop).
pub(super) fn down(host: &Host) {
    match try_cli(host, "down") {
        Ok(r) if r.success() => {}
        Ok(r) => eprintln!("lab: {r}"),
        Err(e) => eprintln!("lab: vtep down in {}: {e}", host.name),
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What a daemon started with a given config shows once it is up.
struct Readiness {
    uplink: Option<String>,
    vnis: Vec<u64>,
}

impl Readiness {
    /// From the config's text (a config the lab cannot read only waits for the CLI).
    fn of(config: &str) -> Readiness {
        let value: toml::Value = toml::from_str(config).unwrap_or(toml::Value::Integer(0));
        let uplink = value
            .get("underlay")
            .and_then(|u| u.get("interface"))
            .and_then(toml::Value::as_str)
            .map(str::to_owned);
        let vnis = value
            .get("vni")
            .and_then(toml::Value::as_array)
            .map(|vnis| {
                vnis.iter()
                    .filter_map(|v| v.get("id")?.as_integer()?.try_into().ok())
                    .collect()
            })
            .unwrap_or_default();
        Readiness { uplink, vnis }
    }

    /// `Err` says what is not there yet.
    fn check(&self, host: &Host) -> Result<(), String> {
        let run = try_cli(host, "vni show -j")?;
        if !run.success() {
            return Err(run.to_string());
        }
        let shown: serde_json::Value = serde_json::from_str(&run.stdout)
            .map_err(|e| format!("`vni show -j` is not JSON ({e}): {}", run.stdout))?;
        let missing: Vec<u64> = self
            .vnis
            .iter()
            .copied()
            .filter(|id| {
                !shown
                    .as_array()
                    .is_some_and(|list| list.iter().any(|v| v["vni"].as_u64() == Some(*id)))
            })
            .collect();
        if !missing.is_empty() {
            return Err(format!("VNIs {missing:?} not configured yet"));
        }
        match &self.uplink {
            Some(uplink) if !host.has_xdp(uplink) => Err(format!("no XDP program on {uplink} yet")),
            _ => Ok(()),
        }
    }
}

/// A running `vtep run`; SIGTERM (then SIGKILL) when dropped.
#[derive(Debug)]
pub struct Daemon {
    proc: Proc,
    host: String,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        self.proc.output()
    }

    /// Runs `f` with the daemon stopped (SIGSTOP, then SIGCONT): whatever
    /// happens meanwhile waits for it, in its sockets' buffers or beyond.
    pub fn paused<T>(&self, f: impl FnOnce() -> T) -> T {
        assert!(
            cmd::signal(self.pid(), libc::SIGSTOP),
            "cannot stop vtep run ({})",
            self.pid()
        );
        let out = f();
        cmd::signal(self.pid(), libc::SIGCONT);
        out
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.proc.exited().is_none()
    }

    /// SIGTERM, and wait for the daemon to exit (the datapath stays, and its pins).
    /// Panics, with the log, unless it exits successfully.
    pub fn stop(&mut self) {
        let status = self.proc.stop();
        assert!(
            status.success(),
            "vtep run in {} exited with {status} on SIGTERM; its log:\n{}",
            self.host,
            tail(&self.log(), LOG_TAIL)
        );
    }
}

/// One line of `vtep fdb show -j`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct FdbEntry {
    pub mac: String,
    pub vni: u32,
    /// The remote VTEP, for a remote entry or a flood-list member.
    #[serde(default)]
    pub dst: Option<String>,
    /// The access port, for a local entry.
    #[serde(default)]
    pub ifname: Option<String>,
    /// "static", "learned" or "permanent".
    pub state: String,
    /// `bridge fdb`'s flags: "extern_learn" (mirrored by `[follow]`).
    #[serde(default)]
    pub flags: Vec<String>,
    /// "config", "cli", "datapath" or "kernel" (mirrored by `[follow]`).
    #[serde(default)]
    pub origin: String,
    /// Seconds since last seen (learned entries).
    #[serde(default)]
    pub age: Option<u64>,
}

impl FdbEntry {
    pub fn is_flood(&self) -> bool {
        self.mac == super::FLOOD_MAC
    }

    pub fn is_learned(&self) -> bool {
        self.state == "learned"
    }

    pub fn is_static(&self) -> bool {
        self.state == "static"
    }

    /// Mirrored from the kernel FDB (`[follow]`).
    pub fn is_followed(&self) -> bool {
        self.origin == "kernel"
    }

    /// Flagged `extern_learn`, as `bridge fdb` flags what an agent wrote
    /// (the follower mirrors the kernel FDB).
    pub fn is_extern_learn(&self) -> bool {
        self.flags.iter().any(|f| f == "extern_learn")
    }
}

/// `vtep stats -j`.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Stats {
    #[serde(default)]
    pub vni: Vec<VniStats>,
    #[serde(default)]
    pub reasons: Vec<ReasonCount>,
}

/// Counters of one VNI.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct VniStats {
    pub vni: u32,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub local_packets: u64,
    pub flood_packets: u64,
}

/// How often packets met one named reason (not forwarded, not learned, ...).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ReasonCount {
    pub reason: String,
    pub count: u64,
    #[serde(default)]
    pub outcome: String,
}

impl Stats {
    /// Counters of `vni` (zero if the VNI is not listed).
    pub fn vni(&self, vni: u32) -> VniStats {
        self.vni
            .iter()
            .copied()
            .find(|s| s.vni == vni)
            .unwrap_or_default()
    }

    /// How often `reason` was counted.
    pub fn reason(&self, reason: &str) -> u64 {
        self.reasons
            .iter()
            .filter(|r| r.reason == reason)
            .map(|r| r.count)
            .sum()
    }
}

impl Lab {
    /// Starts `vtep run` in `host` with `config` (TOML; a [`super::VtepConfig`]
    /// or a string), pins in a bpffs of its own, and waits until it is up.
    pub fn start_vtep(&self, host: &Host, config: impl Display) -> Daemon {
        // The suite runs against either engine: VTEP_ENGINE=xdp|afxdp.
        let engine = std::env::var("VTEP_ENGINE").ok();
        self.start_vtep_on(host, config, engine.as_deref())
    }

    /// Like [`Lab::start_vtep`], on `engine` (`vtep run --engine`; `None`:
    /// the config's) whatever `VTEP_ENGINE` says: for tests of one engine.
    pub fn start_vtep_on(&self, host: &Host, config: impl Display, engine: Option<&str>) -> Daemon {
        self.start_vtep_bin(&vtep_bin(), host, config, engine)
    }

    /// Like [`Lab::start_vtep_on`], with the `vtep` binary `bin` (another
    /// release, for the upgrade test).
    pub fn start_vtep_bin(
        &self,
        bin: &std::path::Path,
        host: &Host,
        config: impl Display,
        engine: Option<&str>,
    ) -> Daemon {
        self.mount_bpffs(host);
        let starts = self.register_vtep_host(host);
        let config_path = self.dir.join(format!("{}.vtep.{starts}.toml", host.name));
        let config_text = config.to_string();
        std::fs::write(&config_path, &config_text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        let log_level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
        let engine = engine.map(|e| format!(" --engine {e}")).unwrap_or_default();
        let mut daemon = Daemon {
            proc: host.spawn_as(
                "vtep",
                &format!(
                    "env RUST_LOG={log_level} {} run --config {} --pin-path {}{engine}",
                    bin.display(),
                    config_path.display(),
                    host.pin_path.display()
                ),
            ),
            host: host.name.clone(),
        };
        self.state.borrow_mut().daemons.push(DaemonRecord {
            netns: host.name.clone(),
            pid: daemon.pid(),
            log: daemon.proc.log_path().to_owned(),
        });
        // Ready when its own CLI says so (a previous release's pins are not
        // this build's to read).
        self.wait_ready(
            &host.with_cli(bin),
            &mut daemon,
            &Readiness::of(&config_text),
        );
        daemon
    }

    /// Records that `host` runs vtep; how many daemons were started there before.
    fn register_vtep_host(&self, host: &Host) -> usize {
        let mut state = self.state.borrow_mut();
        if !state.vtep_hosts.iter().any(|h| h.name == host.name) {
            state.vtep_hosts.push(host.clone());
        }
        state
            .daemons
            .iter()
            .filter(|d| d.netns == host.name)
            .count()
    }

    /// Waits until the daemon has applied `config`: its CLI answers, lists
    /// every VNI of the config, and the uplink carries XDP (attached last).
    /// The CLI alone answers as soon as the maps are pinned, before that.
    fn wait_ready(&self, host: &Host, daemon: &mut Daemon, config: &Readiness) {
        let started = Instant::now();
        let mut last = String::new();
        while started.elapsed() < START_TIMEOUT {
            if let Some(status) = daemon.proc.exited() {
                panic!(
                    "vtep run in {} exited ({status}) before it was up; its log:\n{}",
                    host.name,
                    daemon.log()
                );
            }
            match cmd::quietly(|| config.check(host)) {
                Ok(()) => return,
                Err(why) => last = why,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "vtep run in {} not up after {START_TIMEOUT:?}: {last}\nits log:\n{}",
            host.name,
            daemon.log()
        );
    }

    /// Runs `vtep <args> --pin-path <pins>` in `host`.
    pub fn vtep(&self, host: &Host, args: &str) -> Run {
        try_cli(host, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `vtep <args>` in `host`; its stdout. Panics with the lab's state if it fails.
    pub fn vtep_ok(&self, host: &Host, args: &str) -> String {
        let run = self.vtep(host, args);
        if !run.success() {
            panic!("{run}\n{}", self.diagnostics());
        }
        run.stdout
    }

    fn vtep_json<T: DeserializeOwned>(&self, host: &Host, args: &str) -> T {
        let json = self.vtep_ok(host, args);
        serde_json::from_str(&json).unwrap_or_else(|e| {
            panic!(
                "`vtep {args}` in {}: not the expected JSON ({e}):\n{json}",
                host.name
            )
        })
    }

    /// `vtep fdb show [vni V] -j`.
    pub fn fdb(&self, host: &Host, vni: Option<u32>) -> Vec<FdbEntry> {
        let filter = vni.map(|v| format!(" vni {v}")).unwrap_or_default();
        self.vtep_json(host, &format!("fdb show{filter} -j"))
    }

    /// The entry of `mac` in `vni` on `host`, if any.
    pub fn fdb_entry(&self, host: &Host, vni: u32, mac: &str) -> Option<FdbEntry> {
        self.fdb(host, Some(vni))
            .into_iter()
            .find(|e| e.vni == vni && e.mac.eq_ignore_ascii_case(mac))
    }

    /// Polls the entry of `mac` in `vni` on `host` until `expected` holds for
    /// it (or for its absence) and returns it; after `timeout`, panics saying
    /// `what` was expected, with the lab's state.
    pub fn wait_for_entry(
        &self,
        host: &Host,
        (vni, mac): (u32, &str),
        what: &str,
        timeout: Duration,
        expected: impl Fn(Option<&FdbEntry>) -> bool,
    ) -> Option<FdbEntry> {
        let mut entry = None;
        let held = cmd::wait_until(timeout, || {
            entry = self.fdb_entry(host, vni, mac);
            expected(entry.as_ref())
        });
        if !held {
            panic!(
                "{}: {mac} in vni {vni}: expected {what} within {timeout:?}, found {entry:?}\n{}",
                host.name,
                self.diagnostics()
            );
        }
        entry
    }

    /// `vtep stats -j`.
    pub fn stats(&self, host: &Host) -> Stats {
        self.vtep_json(host, "stats -j")
    }

    /// What a failure message should show: for every vtep host, the CLI's view
    /// (vni, fdb, stats), its links and the tail of its daemon's log.
    pub fn diagnostics(&self) -> String {
        cmd::quietly(|| self.describe_vtep_hosts())
    }

    fn describe_vtep_hosts(&self) -> String {
        let mut out = String::new();
        let state = self.state.borrow();
        for host in &state.vtep_hosts {
            let _ = writeln!(out, "===== vtep host {} ({})", host.name, host.underlay_ip);
            for args in ["vni show", "fdb show", "stats"] {
                let shown = match try_cli(host, args) {
                    Ok(r) => r.to_string(),
                    Err(e) => e,
                };
                let _ = writeln!(out, "--- vtep {args}: {shown}");
            }
            if let Ok(r) = try_run(
                &format!("ip -n {} -s link", host.name),
                cmd::DEFAULT_TIMEOUT,
            ) {
                let _ = writeln!(out, "--- ip -s link:\n{}", r.stdout.trim_end());
            }
            let last = state.daemons.iter().rev().find(|d| d.netns == host.name);
            if let Some(daemon) = last {
                let running = if pid_alive(daemon.pid) {
                    "running"
                } else {
                    "not running"
                };
                let text = std::fs::read_to_string(&daemon.log).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "--- vtep run, pid {} ({running}), {} (last {LOG_TAIL} lines):\n{}",
                    daemon.pid,
                    daemon.log.display(),
                    tail(&text, LOG_TAIL)
                );
            }
        }
        out
    }
}
