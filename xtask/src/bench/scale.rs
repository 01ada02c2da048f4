//! `cargo xtask bench --scale`: what a large FDB costs. A benchmark, not a
//! test: it reports numbers and asserts none beyond "the entries are there".
//!
//! Lab: one host running vtep (XDP engine) with one VNI (learning on, the
//! default ageing, so the daemon's ageing has the whole table to look at)
//! and an FDB map big enough for the entries. Static entries behind 64
//! remote VTEPs are loaded with `vtep -batch`.
//!
//! Measured:
//! - loading: 1,000 entries, then the rest (up to `entries`), each one
//!   `vtep -batch` (entries/s of the big batch);
//! - the idle daemon's CPU (utime + stime from /proc/PID/stat, % of one
//!   core) with 1,000 entries and with all of them, static, then with one
//!   MAC learned (the workload's ARP request) besides them: with no learned
//!   entry the ageing reads a slice of the table every 8 s, with one every
//!   second, as for a table of learned entries;
//! - `vtep fdb show > /dev/null` and `fdb show -j`: wall time and the CLI's
//!   peak RSS (`wait4`'s ru_maxrss);
//! - the FDB map's kernel memory (`bytes_memlock` of `bpftool map show`,
//!   preallocated: per slot and per entry loaded);
//! - the encap program's cost per packet (`vtep pktgen cost`, BPF_PROG_TEST_RUN
//!   on private maps) with 1,000 and with `entries` entries in its FDB, in the
//!   same run, looking up an entry that is present.
//!
//! Output: a markdown table on stdout and `target/bench/scale.json`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use vtep_tests::lab::{self, Host, Lab, VniConfig, VtepConfig};

use super::follow::{clock_ticks, cpu_ticks, fdb_map_memory, rss_kib};

const VNI: u32 = 100;
/// Remote VTEPs the entries are spread over (nothing is sent to them).
const REMOTE_VTEPS: usize = 64;
/// The small table the large one is compared with.
const SMALL: usize = 1_000;

/// How many entries, and how long the daemon is watched idle.
pub struct Options {
    pub entries: usize,
    pub idle: Duration,
    /// BPF_PROG_TEST_RUN runs per cost measurement.
    pub repeat: u32,
}

impl Options {
    /// The full benchmark: a million entries.
    pub fn full() -> Options {
        Options {
            entries: 1_000_000,
            idle: Duration::from_secs(20),
            repeat: 5_000_000,
        }
    }

    /// CI's smoke test (`--quick`): 100,000 entries, short windows.
    pub fn quick() -> Options {
        Options {
            entries: 100_000,
            idle: Duration::from_secs(2),
            repeat: 500_000,
        }
    }
}

/// The MAC of entry `i`: `02:03:` and `i` on four bytes.
fn entry_mac(i: usize) -> String {
    let b = (i as u32).to_be_bytes();
    format!("02:03:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3])
}

/// A `vtep -batch` file adding entries `from..to`.
fn batch_file(dir: &Path, from: usize, to: usize) -> anyhow::Result<std::path::PathBuf> {
    use std::fmt::Write as _;
    let path = dir.join(format!("scale-{from}-{to}.batch"));
    let mut text = String::with_capacity((to - from) * 56);
    for i in from..to {
        let vtep = 1 + i % REMOTE_VTEPS;
        let _ = writeln!(
            text,
            "fdb add {} vni {VNI} dst 198.18.1.{vtep}",
            entry_mac(i)
        );
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The FDB map's size for `n` entries: a power of two with room to spare,
/// never below the default.
fn capacity(n: usize) -> u32 {
    let want = (n + SMALL).next_power_of_two() as u32;
    want.max(262_144)
}

/// `vtep ARGS --pin-path P` in `host` (not started).
fn vtep_command(host: &Host, args: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &host.name])
        .arg(lab::vtep_bin())
        .args(args.split_whitespace())
        .arg("--pin-path")
        .arg(&host.pin_path)
        .stdin(Stdio::null());
    cmd
}

/// Runs `vtep ARGS` in `host` with its stdout thrown away: (wall time, peak
/// RSS in KiB).
fn timed_cli(host: &Host, args: &str) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    // `ip netns exec` execs the command in its own process: the child's
    // rusage is vtep's.
    let child = vtep_command(host, args)
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting vtep {args}"))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our child, not waited for yet (Child never waits on
    // drop); status and usage are valid for writes.
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if rc != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("vtep {args} failed (wait status {status})");
    }
    Ok((wall, usage.ru_maxrss as u64))
}

/// The daemon's CPU over `window`, as a share of one core.
fn idle_cpu(pid: u32, window: Duration) -> f64 {
    let before = cpu_ticks(pid);
    sleep(window);
    (cpu_ticks(pid) - before) as f64 / clock_ticks() as f64 / window.as_secs_f64()
}

/// Loads entries `from..to` with one `vtep -batch`; its time.
fn load(lab: &Lab, h: &Host, from: usize, to: usize) -> anyhow::Result<Duration> {
    let file = batch_file(lab.dir(), from, to)?;
    let started = Instant::now();
    let out = vtep_command(h, &format!("-batch {}", file.display()))
        .output()
        .context("running vtep -batch")?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!(
            "vtep -batch of {} entries failed: {}",
            to - from,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

/// The benchmark's entries in the gateway's FDB, counted in `fdb show`'s
/// lines.
fn count_entries(h: &Host) -> anyhow::Result<usize> {
    use std::io::BufRead as _;
    let mut child = vtep_command(h, &format!("fdb show vni {VNI}"))
        .stdout(Stdio::piped())
        .spawn()
        .context("running vtep fdb show")?;
    let out = child.stdout.take().context("fdb show's stdout")?;
    let n = std::io::BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .filter(|l| l.starts_with("02:03:"))
        .count();
    if !child.wait()?.success() {
        bail!("vtep fdb show failed");
    }
    Ok(n)
}

/// Learned MACs of the VNI (`vtep vni show`: `... learned N ...`).
fn learned_macs(h: &Host) -> u64 {
    let out = vtep_command(h, "vni show").output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    text.unwrap_or_default()
        .split_whitespace()
        .skip_while(|w| *w != "learned")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `vtep pktgen cost` of the encap program (64-byte frames, IPv4
/// underlay) with `n` entries in its FDB: ns per packet, and the floor of
/// the same run.
fn encap_cost(lab: &Lab, n: usize, repeat: u32) -> anyhow::Result<(f64, f64)> {
    let ns = lab.netns(&format!("cost{n}"));
    let run = ns.exec(&format!(
        "{} pktgen cost -j --repeat {repeat} --sizes 64 --fdb-entries {n} --underlays ipv4",
        lab::vtep_bin().display()
    ));
    if !run.success() {
        bail!("vtep pktgen cost --fdb-entries {n}: {run}");
    }
    let v: Value = serde_json::from_str(run.stdout.trim())
        .with_context(|| format!("`vtep pktgen cost -j` printed no result: {}", run.stdout))?;
    let encap = v["programs"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["direction"] == "encap"))
        .and_then(|p| p["ns"].as_f64())
        .context("no encap row in `vtep pktgen cost -j`")?;
    Ok((encap, v["floor_ns"].as_f64().unwrap_or(0.0)))
}

fn step(what: &str) {
    println!("  {what}");
}

/// Runs the benchmark; prints the table, writes `out_dir/scale.json`,
/// returns the result.
pub fn run(options: &Options, out_dir: &Path) -> anyhow::Result<Value> {
    let n = options.entries.max(SMALL * 2);
    let idle = options.idle;
    println!(
        "\n==> bench --scale: {n} static FDB entries (idle windows of {} s)",
        idle.as_secs()
    );
    let lab = Lab::new("bench scale");
    let h1 = lab.host(1);
    let cap = capacity(n);
    let w1 = lab.workload(&h1, 1, 1, &lab::mac(1, 1, 1), "192.0.2.1/24");
    let config = VtepConfig::new(&h1.underlay_ip)
        .fdb_capacity(cap)
        .vni(VniConfig::new(VNI).port(&w1.port));
    let daemon = lab.start_vtep_on(&h1, config, Some("xdp"));

    step(&format!("loading {SMALL} entries (vtep -batch)"));
    let small_load = load(&lab, &h1, 0, SMALL)?;
    sleep(Duration::from_secs(1));
    step(&format!(
        "daemon idle with {SMALL} entries, {} s",
        idle.as_secs()
    ));
    let cpu_small = idle_cpu(daemon.pid(), idle);

    step(&format!("loading {} more entries (vtep -batch)", n - SMALL));
    let big_load = load(&lab, &h1, SMALL, n)?;
    let loaded = count_entries(&h1)?;
    if loaded != n {
        bail!("{loaded} of {n} entries are in the FDB after the batches");
    }
    sleep(Duration::from_secs(2));
    step(&format!(
        "daemon idle with {n} static entries, {} s",
        idle.as_secs()
    ));
    let cpu_big = idle_cpu(daemon.pid(), idle);
    // One MAC learned (the workload's ARP request): the daemon's ageing
    // then reads a slice every second, as with a table of learned entries.
    let _ = lab::quietly(|| w1.ping_run("192.0.2.9", 1));
    let learned = lab::wait_until(Duration::from_secs(5), || learned_macs(&h1) > 0);
    if !learned {
        bail!("the workload's MAC was not learned");
    }
    step(&format!(
        "daemon idle with {n} entries and a learned one, {} s",
        idle.as_secs()
    ));
    let cpu_learning = idle_cpu(daemon.pid(), idle);

    step(&format!("vtep fdb show > /dev/null ({n} entries)"));
    let (show_text, rss_text) = timed_cli(&h1, "fdb show")?;
    step("vtep fdb show -j > /dev/null");
    let (show_json, rss_json) = timed_cli(&h1, "fdb show -j")?;
    let (memlock, slots) = fdb_map_memory(&h1.pin_path)?;
    let daemon_rss = rss_kib(daemon.pid());
    drop(daemon);

    step(&format!(
        "encap program cost with {SMALL} and {n} entries (BPF_PROG_TEST_RUN)"
    ));
    let (cost_small, floor_small) = encap_cost(&lab, SMALL, options.repeat)?;
    let (cost_big, floor_big) = encap_cost(&lab, n, options.repeat)?;
    drop(lab);

    let result = json!({
        "entries": n,
        "fdb_map_slots": slots,
        "load": {
            "small_entries": SMALL,
            "small_s": small_load.as_secs_f64(),
            "big_entries": n - SMALL,
            "big_s": big_load.as_secs_f64(),
            "entries_per_s": (n - SMALL) as f64 / big_load.as_secs_f64(),
        },
        "daemon_idle_cpu_share": {
            "seconds": idle.as_secs_f64(),
            "small": cpu_small,
            "big": cpu_big,
            "big_learning": cpu_learning,
        },
        "daemon_rss_kib": daemon_rss,
        "show": {
            "text_s": show_text.as_secs_f64(),
            "text_max_rss_kib": rss_text,
            "json_s": show_json.as_secs_f64(),
            "json_max_rss_kib": rss_json,
        },
        "memory": {
            "fdb_map_memlock_bytes": memlock,
            "bytes_per_slot": memlock as f64 / slots.max(1) as f64,
            "bytes_per_entry_loaded": memlock as f64 / n as f64,
        },
        "encap_cost_ns": {
            "small": cost_small,
            "big": cost_big,
            "floor_small": floor_small,
            "floor_big": floor_big,
            "repeat": options.repeat,
        },
    });
    print_table(&result);
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let path = out_dir.join("scale.json");
    std::fs::write(&path, serde_json::to_string_pretty(&result)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("\nresults: {}", path.display());
    Ok(result)
}

fn print_table(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let n = r["entries"].as_u64().unwrap_or(0);
    let mib = |kib: &Value| f(kib) / 1024.0;
    println!(
        "\nscale: {n} static FDB entries, FDB map of {} slots",
        r["fdb_map_slots"]
    );
    println!("| measure | {SMALL} entries | {n} entries |");
    println!("|---|---:|---:|");
    println!(
        "| load with `vtep -batch` | {:.2} s | {:.2} s ({:.0} entries/s) |",
        f(&r["load"]["small_s"]),
        f(&r["load"]["big_s"]),
        f(&r["load"]["entries_per_s"])
    );
    println!(
        "| idle daemon CPU, static entries ({:.0} s) | {:.2} % of a core | {:.2} % of a core |",
        f(&r["daemon_idle_cpu_share"]["seconds"]),
        f(&r["daemon_idle_cpu_share"]["small"]) * 100.0,
        f(&r["daemon_idle_cpu_share"]["big"]) * 100.0
    );
    println!(
        "| idle daemon CPU, one MAC learned | | {:.2} % of a core |",
        f(&r["daemon_idle_cpu_share"]["big_learning"]) * 100.0
    );
    println!(
        "| `vtep fdb show > /dev/null` | | {:.2} s, max RSS {:.1} MiB |",
        f(&r["show"]["text_s"]),
        mib(&r["show"]["text_max_rss_kib"])
    );
    println!(
        "| `vtep fdb show -j > /dev/null` | | {:.2} s, max RSS {:.1} MiB |",
        f(&r["show"]["json_s"]),
        mib(&r["show"]["json_max_rss_kib"])
    );
    println!(
        "| encap program, 64 B (BPF_PROG_TEST_RUN) | {:.1} ns (floor {:.0}) | {:.1} ns (floor {:.0}) |",
        f(&r["encap_cost_ns"]["small"]),
        f(&r["encap_cost_ns"]["floor_small"]),
        f(&r["encap_cost_ns"]["big"]),
        f(&r["encap_cost_ns"]["floor_big"])
    );
    println!(
        "| FDB map memlock (preallocated) | | {:.1} MiB: {:.0} B/slot, {:.0} B/entry loaded |",
        f(&r["memory"]["fdb_map_memlock_bytes"]) / 1048576.0,
        f(&r["memory"]["bytes_per_slot"]),
        f(&r["memory"]["bytes_per_entry_loaded"])
    );
    println!(
        "| daemon RSS | | {:.1} MiB |",
        r["daemon_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0
    );
}
