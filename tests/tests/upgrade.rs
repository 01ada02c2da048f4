//! Upgrades across map layouts: the previous release (`v0.1.0`, pins
//! without a layout version) replaced by this build under traffic, the FDB
//! grown to 1,048,576 entries on a restart, and pins of a layout from the
//! future refused untouched.

use std::collections::HashMap;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The layout this build pins (`vtep_common::layout::VERSION`).
const LAYOUT: u64 = 3;

use vtep_tests::lab::{
    Daemon, FdbEntry, Host, Lab, Proc, VniConfig, VtepConfig, Workload, mac, run_ok, tenant_net,
    upgrade, wait_until,
};

const VNI: u32 = 100;
/// The background ping: an echo request every 2 ms (`-i 0.002`), at least
/// [`PING_RATE`] a second on a loaded machine.
const PING_INTERVAL: &str = "0.002";
const PING_RATE: f64 = 100.0;
/// Static entries loaded with `vtep -batch` before the upgrade.
const STATIC_ENTRIES: u32 = 3_000;

/// Two vtep hosts, one workload each, flooding to each other; host 1 runs
/// `bin` (`None`: this build).
struct Upgrade {
    daemon: Daemon,
    config: VtepConfig,
    w1: Workload,
    w2: Workload,
    h1: Host,
    _h2: Daemon,
}

fn setup(lab: &Lab, bin: Option<&Path>) -> Upgrade {
    let (h1, h2) = (lab.host(1), lab.host(2));
    let net = tenant_net(1);
    let w1 = lab.workload(&h1, 1, 1, &mac(1, 1, 1), &format!("{net}.1/24"));
    let w2 = lab.workload(&h2, 1, 1, &mac(2, 1, 1), &format!("{net}.2/24"));
    let config = |host: &Host, w: &Workload, peer: &Host| {
        VtepConfig::new(&host.underlay_ip)
            .vni(VniConfig::new(VNI).port(&w.port).flood([&peer.underlay_ip]))
    };
    let c1 = config(&h1, &w1, &h2);
    let daemon = match bin {
        Some(bin) => {
            let engine = std::env::var("VTEP_ENGINE").ok();
            lab.start_vtep_bin(bin, &h1, &c1, engine.as_deref())
        }
        None => lab.start_vtep(&h1, &c1),
    };
    let d2 = lab.start_vtep(&h2, config(&h2, &w2, &h1));
    lab.assert_ping(&w1, &w2.ip);
    Upgrade {
        daemon,
        config: c1,
        w1,
        w2,
        // The previous release's daemon answers its own CLI.
        h1: match bin {
            Some(bin) => h1.with_cli(bin),
            None => h1,
        },
        _h2: d2,
    }
}

/// `vtep -batch` of `n` static remote entries in VNI, with the binary `bin`.
fn load_static(lab: &Lab, host: &Host, bin: &Path, n: u32) {
    let file = lab.dir().join(format!("{}.batch", host.name));
    let lines: String = (0..n)
        .map(|i| {
            format!(
                "fdb add 02:5e:{:02x}:{:02x}:{:02x}:01 vni {VNI} dst 198.18.0.200\n",
                i >> 16,
                (i >> 8) & 0xff,
                i & 0xff
            )
        })
        .collect();
    std::fs::write(&file, lines).expect("writing the batch file");
    host.exec_ok(&format!(
        "{} -batch {} --pin-path {}",
        bin.display(),
        file.display(),
        host.pin_path.display()
    ));
}

/// A MAC learned once on host 1's access port and then left to age: w1
/// sends one frame from it, then takes its own MAC back.
fn learn_and_leave(lab: &Lab, up: &mut Upgrade, stale: &str) {
    let own = up.w1.mac.clone();
    up.w1.set_mac(stale);
    up.w1.ping(&up.w2.ip, 1);
    up.w1.set_mac(&own);
    lab.assert_ping(&up.w1, &up.w2.ip);
    let h1 = up.h1.clone();
    lab.wait_for_entry(&h1, (VNI, stale), "learned", Duration::from_secs(5), |e| {
        e.is_some_and(FdbEntry::is_learned)
    });
}

/// `(transmitted, received)` of ping's summary.
fn ping_summary(output: &str) -> (u64, u64) {
    let line = output
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or_else(|| panic!("no ping summary in:\n{output}"));
    let mut numbers = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse::<u64>().expect("a number"));
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0))
}

/// Stops the background ping (started `started`); panics if it lost 1% or
/// more, or sent fewer than [`PING_RATE`] a second.
fn assert_under_one_percent_lost(lab: &Lab, (mut pinger, started): (Proc, Instant), what: &str) {
    pinger.interrupt();
    let secs = started.elapsed().as_secs_f64();
    let (sent, received) = ping_summary(&pinger.output());
    let lost = sent.saturating_sub(received);
    assert!(
        sent as f64 >= PING_RATE * secs,
        "only {sent} pings sent in {secs:.1} s over {what}"
    );
    assert!(
        lost * 100 < sent,
        "{lost} of {sent} pings lost over {what}\n{}",
        lab.diagnostics()
    );
    eprintln!("{what}: {lost} of {sent} pings lost in {secs:.1} s");
}

/// Every entry of `before` (but the flood list) is in `after`, in the same
/// place and state; `stale` (learned, no traffic since) no younger than it was.
fn assert_every_entry_kept(before: &[FdbEntry], after: &[FdbEntry], stale: &str) {
    let now: HashMap<(u32, &str), &FdbEntry> =
        after.iter().map(|e| ((e.vni, e.mac.as_str()), e)).collect();
    let mut kept = 0;
    for old in before.iter().filter(|e| !e.is_flood()) {
        let new = now
            .get(&(old.vni, old.mac.as_str()))
            .unwrap_or_else(|| panic!("{old:?} lost; {} entries now", after.len()));
        assert_eq!(
            (&new.dst, &new.ifname, &new.state),
            (&old.dst, &old.ifname, &old.state),
            "{} changed",
            old.mac
        );
        if old.mac == stale {
            let (was, is) = (old.age.unwrap_or(0), new.age.unwrap_or(0));
            assert!(
                was >= 2 && is >= was,
                "{stale}: {was} s old before, {is} s after: its age was not kept"
            );
        }
        kept += 1;
    }
    eprintln!("{kept} FDB entries kept");
}

/// Starts this build's `vtep run` and waits until it is up: the lab's
/// readiness (the CLI answers) comes while a migration still runs, on the
/// old maps.
fn start_migrating(lab: &Lab, host: &Host, config: &VtepConfig) -> Daemon {
    let daemon = lab.start_vtep(host, config);
    assert!(
        wait_until(Duration::from_secs(60), || daemon.log().contains("vtep up")),
        "vtep run not up after 60 s:\n{}",
        daemon.log()
    );
    daemon
}

/// Prints what the daemon's log says about the migration.
fn show_migration(log: &str) {
    for line in log
        .lines()
        .filter(|l| l.contains("migrat") || l.contains("FDB:"))
    {
        eprintln!("  {line}");
    }
}

/// `bpftool map show pinned PATH -j`.
fn map_show(path: &Path) -> serde_json::Value {
    let json = run_ok(&format!("bpftool map show pinned {} -j", path.display()));
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("bpftool: {e}: {json}"))
}

/// The layout version pinned at `host`'s pins (the first word of the record).
fn pinned_layout(host: &Host) -> Option<u64> {
    let path = host.pin_path.join("maps/LAYOUT");
    if !path.exists() {
        return None;
    }
    let json = run_ok(&format!("bpftool map dump pinned {} -j", path.display()));
    let dump: serde_json::Value = serde_json::from_str(&json).expect("bpftool JSON");
    let bytes: Vec<u8> = dump[0]["value"]
        .as_array()
        .expect("a value")
        .iter()
        .map(|b| {
            let s = b.as_str().expect("a hex byte");
            u8::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex")
        })
        .collect();
    Some(u64::from(u32::from_ne_bytes(
        bytes[..4].try_into().expect("4 bytes"),
    )))
}

fn start_ping(up: &Upgrade) -> (Proc, Instant) {
    let started = Instant::now();
    let pinger = up
        .w1
        .spawn(&format!("ping -n -i {PING_INTERVAL} {}", up.w2.ip));
    sleep(Duration::from_secs(1));
    (pinger, started)
}

#[test]
fn upgrade_from_the_previous_release_under_traffic_keeps_fdb_and_counters() {
    let base = upgrade::base_vtep().unwrap_or_else(|e| panic!("{e}"));
    let lab = Lab::new("upgrade");
    let mut up = setup(&lab, Some(&base));
    let mut h1 = up.h1.clone();
    assert_eq!(pinned_layout(&h1), None, "v0.1.0 pins no layout version");
    load_static(&lab, &h1, &base, STATIC_ENTRIES);
    let stale = mac(1, 1, 0x77);
    learn_and_leave(&lab, &mut up, &stale);
    sleep(Duration::from_secs(2));

    let pinger = start_ping(&up);
    let before = lab.fdb(&h1, Some(VNI));
    let counted = lab.stats(&h1).vni(VNI);
    assert!(
        before.len() > STATIC_ENTRIES as usize,
        "{} entries",
        before.len()
    );
    up.daemon.stop();
    h1.cli = None;
    // This build's CLI on the previous release's pins says so plainly,
    // changing nothing (not "invalid value size" of the first map it reads).
    let refused = lab.vtep(&h1, "fdb show");
    assert!(
        !refused.success() && refused.stderr.contains("layout 1, an older vtep's"),
        "this CLI on layout-1 pins: {refused}"
    );
    up.h1 = h1.clone();
    up.daemon = start_migrating(&lab, &h1, &up.config);
    sleep(Duration::from_secs(1));
    assert_under_one_percent_lost(&lab, pinger, "the upgrade from v0.1.0");

    let log = up.daemon.log();
    show_migration(&log);
    assert!(
        log.contains(&format!("layout 1, this vtep's is {LAYOUT}: migrating"))
            && log.contains(&format!("migrated to layout {LAYOUT}")),
        "no migration in the log:\n{log}"
    );
    assert_eq!(pinned_layout(&h1), Some(LAYOUT));
    assert!(
        !h1.pin_path.join("maps-new").exists(),
        "maps-new left behind"
    );
    let after = lab.fdb(&h1, Some(VNI));
    assert_every_entry_kept(&before, &after, &stale);
    // No layout since 1 changes a counter map: the counts go on.
    let now = lab.stats(&h1).vni(VNI);
    assert!(
        now.tx_packets >= counted.tx_packets && now.rx_packets >= counted.rx_packets,
        "VNI counters went back: {counted:?} before, {now:?} after"
    );
}

#[test]
fn a_bigger_fdb_on_restart_keeps_every_entry_under_traffic() {
    let lab = Lab::new("grow");
    let mut up = setup(&lab, None);
    let h1 = up.h1.clone();
    let vtep = vtep_tests::lab::vtep_bin();
    let fdb = h1.pin_path.join("maps/FDB");
    assert_eq!(map_show(&fdb)["max_entries"], 262_144);
    load_static(&lab, &h1, &vtep, STATIC_ENTRIES);
    let stale = mac(1, 1, 0x78);
    learn_and_leave(&lab, &mut up, &stale);
    sleep(Duration::from_secs(2));

    // Too small for what is pinned: refused, nothing touched.
    let id = map_show(&fdb)["id"].clone();
    up.daemon.stop();
    let small = up.config.clone().fdb_capacity(1_024);
    let refused = run_vtep(&lab, &h1, &small);
    assert!(
        !refused.success(),
        "vtep run took an FDB too small: {refused}"
    );
    assert!(
        refused.stderr.contains("capacity.fdb") && refused.stderr.contains("nothing was changed"),
        "{refused}"
    );
    assert_eq!(map_show(&fdb)["id"], id, "the pinned FDB was replaced");
    up.daemon = start_migrating(&lab, &h1, &up.config);

    let pinger = start_ping(&up);
    let before = lab.fdb(&h1, Some(VNI));
    up.daemon.stop();
    up.config = up.config.clone().fdb_capacity(1_048_576);
    up.daemon = start_migrating(&lab, &h1, &up.config);
    sleep(Duration::from_secs(1));
    assert_under_one_percent_lost(&lab, pinger, "the FDB's growth");

    let shown = map_show(&fdb);
    assert_eq!(shown["max_entries"], 1_048_576, "{shown}");
    assert_ne!(shown["id"], id, "the FDB was not recreated");
    let log = up.daemon.log();
    show_migration(&log);
    let moved = "entries moved to a table of 1,048,576";
    assert!(log.contains(moved), "no `{moved}` in the log:\n{log}");
    let after = lab.fdb(&h1, Some(VNI));
    assert_every_entry_kept(&before, &after, &stale);
    assert_eq!(pinned_layout(&h1), Some(LAYOUT));
}

#[test]
fn pins_of_a_newer_layout_are_refused_untouched() {
    let lab = Lab::new("future");
    let mut up = setup(&lab, None);
    let h1 = up.h1.clone();
    up.daemon.stop();
    let layout = h1.pin_path.join("maps/LAYOUT");
    run_ok(&format!(
        "bpftool map update pinned {} key 0 0 0 0 value 99 0 0 0 0 0 0 0",
        layout.display()
    ));
    let ids = |host: &Host| -> Vec<(String, serde_json::Value)> {
        let mut ids: Vec<_> = std::fs::read_dir(host.pin_path.join("maps"))
            .expect("the maps")
            .map(|e| e.expect("an entry").path())
            .map(|p| (p.display().to_string(), map_show(&p)["id"].clone()))
            .collect();
        ids.sort_by(|a, b| a.0.cmp(&b.0));
        ids
    };
    let pinned = ids(&h1);

    let refused = run_vtep(&lab, &h1, &up.config);
    assert!(!refused.success(), "vtep run took layout 99: {refused}");
    assert!(
        refused.stderr.contains("layout 99") && refused.stderr.contains("newer vtep"),
        "{refused}"
    );
    assert_eq!(ids(&h1), pinned, "pins changed by a refused vtep run");
    assert_eq!(pinned_layout(&h1), Some(99));
    // The datapath still forwards, and `vtep down` still removes it all.
    lab.assert_ping(&up.w1, &up.w2.ip);
    let down = lab.vtep(&h1, "down");
    assert!(down.success(), "{down}");
    assert!(!layout.exists(), "vtep down left {}", layout.display());
}

/// `vtep run` with `config` in the foreground, expected to end (a refusal).
fn run_vtep(lab: &Lab, host: &Host, config: &VtepConfig) -> vtep_tests::lab::Run {
    let path = lab.dir().join(format!("{}.refused.toml", host.name));
    std::fs::write(&path, config.to_string()).expect("writing the config");
    lab.vtep(host, &format!("run --config {}", path.display()))
}
