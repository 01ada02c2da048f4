//! `cargo xtask bench --follow`: how the kernel-FDB follower (`[follow]`)
//! scales. A benchmark, not a test: it reports numbers and asserts none
//! beyond "it converged".
//!
//! Lab: h1 has `vxlan100` in `br100` (as for EVPN) with a workload, vtep
//! following it; h2 switches with the kernel's vxlan driver, with a second
//! workload. 100,000 remote MACs (over 64 remote VTEPs) are written into
//! h1's kernel FDB with `bridge -batch`, as zebra would for a large fabric.
//!
//! Measured:
//! - live add: vtep running, the batch adds them; time until the last one is
//!   in vtep's FDB map (polled with `bpftool map lookup`), against the time
//!   the kernel took for the batch itself;
//! - under traffic: the same deletes, then adds, while a ping flood crosses
//!   the overlay on vtep's XDP path (its counters say how many);
//! - initial sync: vtep started on an empty pin path with the 100,000
//!   entries in the kernel: the dump and mirror at start (the daemon's log
//!   says how long), and the wall clock from start to the last entry;
//! - memory: the FDB map's (preallocated) memlock per slot and the key and
//!   value sizes, the daemon's RSS growth per entry, and, for comparison,
//!   the kernel's slab growth per vxlan FDB entry (approximate: the whole
//!   host's slab moves).
//!
//! Output: a table on stdout and `target/bench/follow.json`.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use vtep_tests::lab::{self, FLOOD_MAC, Host, Lab, VtepConfig, Workload, mac, tenant_net};

const VNI: u32 = 100;
const VXLAN: &str = "vxlan100";
/// Remote VTEPs the MACs are spread over (not reachable: nothing is sent).
const REMOTE_VTEPS: usize = 64;
/// Longest a phase may take before the benchmark gives up.
const PHASE_LIMIT: Duration = Duration::from_secs(120);

/// How many entries, and where results go.
pub struct Options {
    pub entries: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options { entries: 100_000 }
    }
}

/// The MAC of entry `i`: `02:01:` and `i` on four bytes.
fn entry_mac(i: usize) -> [u8; 6] {
    let b = (i as u32).to_be_bytes();
    [0x02, 0x01, b[0], b[1], b[2], b[3]]
}

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Writes a `bridge -batch` file: `verb` of every entry.
fn batch_file(dir: &Path, verb: &str, n: usize) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("follow-{verb}.batch"));
    let mut text = String::with_capacity(n * 64);
    for i in 0..n {
        let m = mac_text(entry_mac(i));
        if verb == "add" {
            let vtep = 1 + i % REMOTE_VTEPS;
            text.push_str(&format!("fdb add {m} dev {VXLAN} dst 198.18.1.{vtep}\n"));
        } else {
            text.push_str(&format!("fdb del {m} dev {VXLAN}\n"));
        }
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Whether vtep's FDB map (pinned under `pins`) holds `mac` in VNI 100: one
/// `bpftool map lookup` of the `FdbKey` bytes (VNI in host order, MAC, pad).
fn in_map(pins: &Path, m: [u8; 6]) -> bool {
    let mut key = VNI.to_ne_bytes().to_vec();
    key.extend_from_slice(&m);
    key.extend_from_slice(&[0, 0]);
    let hex: Vec<String> = key.iter().map(|b| format!("{b:02x}")).collect();
    let line = format!(
        "bpftool map lookup pinned {} key hex {}",
        pins.join("maps/FDB").display(),
        hex.join(" ")
    );
    lab::quietly(|| lab::try_run(&line, Duration::from_secs(10))).is_ok_and(|r| r.success())
}

/// Entries of VNI 100 vtep mirrored from the kernel (`fdb show -j`).
fn mirrored(lab: &Lab, h: &Host) -> usize {
    lab::quietly(|| {
        lab.fdb(h, Some(VNI))
            .iter()
            .filter(|e| e.is_followed() && e.mac.starts_with("02:01:"))
            .count()
    })
}

/// Runs a `bridge -batch` in `h` and polls vtep's map for the batch's last
/// entry; (kernel's batch time, time to the last entry in vtep).
fn follow_batch(
    h: &Host,
    pins: &Path,
    batch: &Path,
    last: [u8; 6],
    present: bool,
) -> anyhow::Result<(Duration, Duration)> {
    let started = Instant::now();
    let mut proc = h.spawn(&format!("bridge -batch {}", batch.display()));
    let mut kernel = None;
    let mirrored = loop {
        if kernel.is_none()
            && let Some(status) = proc.exited()
        {
            if !status.success() {
                bail!(
                    "bridge -batch {} failed: {}",
                    batch.display(),
                    proc.output()
                );
            }
            kernel = Some(started.elapsed());
        }
        if in_map(pins, last) == present {
            break started.elapsed();
        }
        if started.elapsed() > PHASE_LIMIT {
            bail!("vtep did not follow the batch within {PHASE_LIMIT:?}");
        }
        sleep(Duration::from_millis(5));
    };
    let status = proc.stop();
    let kernel = kernel.unwrap_or_else(|| {
        // Finished between the last check and the stop.
        if status.success() {
            started.elapsed()
        } else {
            Duration::ZERO
        }
    });
    Ok((kernel, mirrored))
}

pub(super) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
pub(super) fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    // After the command: state is field 3; utime and stime are 14 and 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let at = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    at(14) + at(15)
}

pub(super) fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as u64 } else { 100 }
}

fn slab_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `bpftool map show` of the pinned FDB: (bytes_memlock, max_entries).
pub(super) fn fdb_map_memory(pins: &Path) -> anyhow::Result<(u64, u64)> {
    let line = format!(
        "bpftool -j map show pinned {}",
        pins.join("maps/FDB").display()
    );
    let out = lab::quietly(|| lab::run_ok(&line));
    let v: Value = serde_json::from_str(&out).context("bpftool -j map show")?;
    Ok((
        v["bytes_memlock"].as_u64().unwrap_or(0),
        v["max_entries"].as_u64().unwrap_or(0),
    ))
}

/// The `in N ms` of the daemon's `follow: resync (start)` log line.
fn resync_ms(log: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains("follow: resync (start)"))?;
    let (_, tail) = line.rsplit_once(" in ")?;
    tail.trim().strip_suffix(" ms")?.parse().ok()
}

/// (sent, received) from ping's summary.
fn ping_summary(output: &str) -> (u64, u64) {
    let Some(line) = output.lines().find(|l| l.contains("packets transmitted")) else {
        return (0, 0);
    };
    let mut n = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .filter_map(|w| w.parse::<u64>().ok());
    (n.next().unwrap_or(0), n.next().unwrap_or(0))
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// The row of a batch of `n` entries that the kernel applied in `kernel`
/// and vtep had mirrored after `vtep`, with `overruns` resyncs meanwhile.
fn batch_row(what: &str, n: usize, (kernel, vtep): (Duration, Duration), overruns: usize) -> Value {
    json!({
        "measure": what,
        "entries": n,
        "kernel_batch_s": secs(kernel),
        "mirrored_s": secs(vtep),
        "lag_s": secs(vtep.saturating_sub(kernel)),
        "rate_per_s": n as f64 / secs(vtep),
        "overrun_resyncs": overruns,
    })
}

/// Runs the benchmark; prints the table, writes `target/bench/follow.json`,
/// returns the rows.
pub fn run(options: &Options, out_dir: &Path) -> anyhow::Result<Vec<Value>> {
    let n = options.entries;
    println!("\n==> bench --follow: {n} kernel FDB entries followed by vtep");
    let lab = Lab::new("bench follow");
    let h1 = lab.evpn_host(1, &[VNI]);
    let h2 = lab.kernel_vxlan_host(2, &[VNI], &[&h1.underlay_ip]);
    let net = tenant_net(1);
    let w1: Workload = lab.kernel_workload(&h1, VNI, (1, 1), &mac(1, 1, 1), &format!("{net}.1/24"));
    let w2: Workload = lab.kernel_workload(&h2, VNI, (1, 1), &mac(2, 1, 1), &format!("{net}.2/24"));
    h1.bridge(&format!(
        "fdb append {FLOOD_MAC} dev {VXLAN} dst {}",
        h2.underlay_ip
    ));
    h1.bridge(&format!(
        "fdb add {} dev {VXLAN} dst {}",
        w2.mac, h2.underlay_ip
    ));
    let config = VtepConfig::new(&h1.underlay_ip).follow([VXLAN]);
    let mut daemon = lab.start_vtep(&h1, config.clone());
    let pins = h1.pin_path.clone();
    let add = batch_file(lab.dir(), "add", n)?;
    let del = batch_file(lab.dir(), "del", n)?;
    let last = entry_mac(n - 1);
    let mut rows = Vec::new();

    let overruns = |d: &lab::Daemon| d.log().matches("resync (events lost").count();

    // 1. Live add, no traffic.
    let rss_before = rss_kib(daemon.pid());
    let slab_before = slab_kib();
    let (kernel, vtep) = follow_batch(&h1, &pins, &add, last, true)?;
    let slab_after = slab_kib();
    let count = mirrored(&lab, &h1);
    let rss_after = rss_kib(daemon.pid());
    if count != n {
        bail!(
            "after the batch vtep mirrors {count} of {n} entries; its log:\n{}",
            daemon.log()
        );
    }
    let overruns_idle = overruns(&daemon);
    rows.push(batch_row(
        "live add (vtep running, no traffic)",
        n,
        (kernel, vtep),
        overruns_idle,
    ));

    // The daemon's own upkeep (ageing, next hops: each walks the FDB once a
    // second) with the entries in its maps, idle.
    let cpu_before = cpu_ticks(daemon.pid());
    let idle = Duration::from_secs(5);
    sleep(idle);
    let idle_cpu =
        (cpu_ticks(daemon.pid()) - cpu_before) as f64 / clock_ticks() as f64 / secs(idle);

    // 2. Under traffic: delete all, add all, while a ping flood crosses the
    // overlay (w1 -> w2, on vtep's XDP path).
    lab.assert_ping(&w1, &w2.ip);
    let stats_before = lab.stats(&h1).vni(VNI);
    let mut flood = w1.spawn(&format!("ping -f -q -w 60 {}", w2.ip));
    sleep(Duration::from_millis(500));
    let traffic_started = Instant::now();
    let (kernel_del, vtep_del) = follow_batch(&h1, &pins, &del, last, false)?;
    let overruns_del = overruns(&daemon) - overruns_idle;
    let (kernel_add, vtep_add) = follow_batch(&h1, &pins, &add, last, true)?;
    let overruns_add = overruns(&daemon) - overruns_idle - overruns_del;
    let traffic_time = traffic_started.elapsed();
    flood.interrupt();
    let (sent, received) = ping_summary(&flood.output());
    let stats_after = lab.stats(&h1).vni(VNI);
    let count = mirrored(&lab, &h1);
    if count != n {
        bail!(
            "after the batches under traffic vtep mirrors {count} of {n} entries; its log:\n{}",
            daemon.log()
        );
    }
    let encap = stats_after.tx_packets - stats_before.tx_packets;
    let traffic = json!({
        "ping_flood_sent": sent,
        "ping_flood_received": received,
        "vtep_encapsulated": encap,
        "seconds": secs(traffic_time),
    });
    for (what, kernel, vtep, overruns) in [
        (
            "live delete under traffic",
            kernel_del,
            vtep_del,
            overruns_del,
        ),
        ("live add under traffic", kernel_add, vtep_add, overruns_add),
    ] {
        let mut row = batch_row(what, n, (kernel, vtep), overruns);
        row["traffic"] = traffic.clone();
        rows.push(row);
    }

    // 3. Initial sync: a fresh vtep (empty maps) with the entries in the kernel.
    daemon.stop();
    let down = lab.vtep(&h1, "down");
    if !down.success() {
        bail!("vtep down: {down}");
    }
    let started = Instant::now();
    let daemon = lab.start_vtep(&h1, config);
    // The resync writes in no particular order: its log line marks the end.
    while !daemon.log().contains("follow: resync (start)") {
        if started.elapsed() > PHASE_LIMIT {
            bail!(
                "no initial resync within {PHASE_LIMIT:?}:\n{}",
                daemon.log()
            );
        }
        sleep(Duration::from_millis(5));
    }
    let wall = started.elapsed();
    let count = mirrored(&lab, &h1);
    if count != n {
        bail!(
            "after the initial sync vtep mirrors {count} of {n} entries; its log:\n{}",
            daemon.log()
        );
    }
    let resync = resync_ms(&daemon.log());
    rows.push(json!({
        "measure": "initial sync (dump at start, empty maps)",
        "entries": n,
        "mirrored_s": resync.map(|ms| ms as f64 / 1000.0),
        "from_start_s": secs(wall),
        "rate_per_s": resync.map(|ms| n as f64 / (ms.max(1) as f64 / 1000.0)),
    }));

    // 4. Memory.
    let (memlock, slots) = fdb_map_memory(&pins)?;
    let key = 12u64;
    let value = 40u64;
    rows.push(json!({
        "measure": "memory",
        "entries": n,
        "fdb_map_memlock_bytes": memlock,
        "fdb_map_slots": slots,
        "fdb_map_bytes_per_slot": memlock as f64 / slots.max(1) as f64,
        "fdb_key_value_bytes": key + value,
        "daemon_rss_growth_bytes_per_entry": (rss_after.saturating_sub(rss_before) * 1024) as f64 / n as f64,
        "daemon_idle_cpu_share": idle_cpu,
        "kernel_slab_growth_bytes_per_entry": (slab_after.saturating_sub(slab_before) * 1024) as f64 / n as f64,
    }));
    drop(daemon);
    drop(lab);

    print_table(&rows);
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let path = out_dir.join("follow.json");
    std::fs::write(&path, serde_json::to_string_pretty(&rows)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("\nresults: {}", path.display());
    Ok(rows)
}

fn print_table(rows: &[Value]) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("\nfollower: kernel FDB -> vtep's maps ({cpus} CPUs)");
    println!(
        "{:<42} {:>8} {:>9} {:>9} {:>8} {:>10}  notes",
        "measure", "entries", "kernel s", "vtep s", "lag ms", "entries/s"
    );
    let f = |v: &Value| v.as_f64().map_or("-".into(), |x| format!("{x:.2}"));
    for r in rows.iter().filter(|r| r["measure"] != "memory") {
        let mut notes = Vec::new();
        if let Some(o) = r["overrun_resyncs"].as_u64() {
            notes.push(format!("{o} overrun resync(s)"));
        }
        if let Some(w) = r["from_start_s"].as_f64() {
            notes.push(format!("{w:.2} s from vtep run to mirrored"));
        }
        println!(
            "{:<42} {:>8} {:>9} {:>9} {:>8} {:>10}  {}",
            r["measure"].as_str().unwrap_or(""),
            r["entries"],
            f(&r["kernel_batch_s"]),
            f(&r["mirrored_s"]),
            r["lag_s"]
                .as_f64()
                .map_or("-".into(), |x| format!("{:.0}", x * 1000.0)),
            r["rate_per_s"]
                .as_f64()
                .map_or("-".into(), |x| format!("{x:.0}")),
            notes.join("; "),
        );
    }
    if let Some(t) = rows.iter().find_map(|r| r.get("traffic")) {
        println!(
            "traffic meanwhile: ping -f w1 -> w2, {} sent, {} received over {:.1} s; vtep encapsulated {} on XDP",
            t["ping_flood_sent"],
            t["ping_flood_received"],
            t["seconds"].as_f64().unwrap_or(0.0),
            t["vtep_encapsulated"]
        );
    }
    if let Some(m) = rows.iter().find(|r| r["measure"] == "memory") {
        println!(
            "memory: FDB map {} slots, {:.1} MiB memlock ({:.0} B/slot, preallocated; key+value {} B); \
             daemon RSS +{:.1} B/entry; kernel slab +{:.0} B/entry (vxlan fdb, approx.)\n\
             daemon CPU while idle with the entries mirrored: {:.1} % of a core",
            m["fdb_map_slots"],
            m["fdb_map_memlock_bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
            m["fdb_map_bytes_per_slot"].as_f64().unwrap_or(0.0),
            m["fdb_key_value_bytes"],
            m["daemon_rss_growth_bytes_per_entry"]
                .as_f64()
                .unwrap_or(0.0),
            m["kernel_slab_growth_bytes_per_entry"]
                .as_f64()
                .unwrap_or(0.0),
            m["daemon_idle_cpu_share"].as_f64().unwrap_or(0.0) * 100.0,
        );
    }
}
