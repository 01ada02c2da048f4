//! The daemon's lifetime is not the datapath's: `vtep run` stops and starts
//! again under traffic without losing the FDB, and `vtep down` removes it all.

use std::thread::sleep;
use std::time::Duration;

use vtep_tests::lab::{Flood, Lab, UPLINK, VniConfig, mac, run_lock, wait_until};

const VNI: u32 = 100;
/// Echo requests per second of the background ping (`-i 0.05`).
const PING_RATE: u64 = 20;
/// Pings a restart may cost at most.
const MAX_LOST: u64 = 5;

/// `(transmitted, received)` from ping's summary line.
fn ping_summary(output: &str) -> Option<(u64, u64)> {
    let line = output.lines().find(|l| l.contains("packets transmitted"))?;
    let mut numbers = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse::<u64>().ok());
    Some((numbers.next()??, numbers.next()??))
}

#[test]
fn restart_under_traffic_keeps_forwarding_and_the_fdb() {
    let lab = Lab::new("restart");
    let mut ov = lab.overlay(2, &VniConfig::new(VNI), Flood::FullMesh);
    let (w1, w2) = (ov.workloads[0].clone(), ov.workloads[1].clone());
    let h1 = ov.hosts[0].clone();
    lab.assert_ping(&w1, &w2.ip);
    let pinned = mac(0xee, 1, 1);
    lab.vtep_ok(
        &h1,
        &format!("fdb add {pinned} vni {VNI} dst {}", ov.hosts[1].underlay_ip),
    );
    let before = lab.fdb(&h1, Some(VNI));

    let mut pinger = w1.spawn(&format!("ping -n -i 0.05 {}", w2.ip));
    sleep(Duration::from_secs(1));
    ov.stop(0);
    let requests = w2.stats().rx_packets;
    sleep(Duration::from_secs(1));
    let while_down = w2.stats().rx_packets - requests;
    assert!(
        while_down >= PING_RATE / 2,
        "only {while_down} packets reached {} in 1 s with vtep run stopped\n{}",
        w2.name,
        lab.diagnostics()
    );

    ov.restart(&lab, 0);
    sleep(Duration::from_secs(1));
    pinger.interrupt();
    let output = pinger.output();
    let (sent, received) =
        ping_summary(&output).unwrap_or_else(|| panic!("no ping summary in:\n{output}"));
    let lost = sent.saturating_sub(received);
    assert!(
        lost <= MAX_LOST,
        "{lost} of {sent} pings lost over the restart\n{}",
        lab.diagnostics()
    );

    let after = lab.fdb(&h1, Some(VNI));
    for entry in before.iter().filter(|e| !e.is_flood()) {
        assert!(
            after
                .iter()
                .any(|e| e.mac == entry.mac && e.dst == entry.dst && e.ifname == entry.ifname),
            "{entry:?} lost over the restart; now: {after:?}"
        );
    }
    assert!(
        after.iter().any(|e| e.mac == pinned && e.is_static()),
        "{after:?}"
    );
}

#[test]
fn down_removes_pins_and_datapath() {
    let lab = Lab::new("down");
    let mut ov = lab.overlay(2, &VniConfig::new(VNI), Flood::FullMesh);
    let h1 = ov.hosts[0].clone();
    lab.assert_ping(&ov.workloads[0], &ov.workloads[1].ip);
    ov.stop(0);
    lab.assert_ping(&ov.workloads[0], &ov.workloads[1].ip);

    let down = lab.vtep(&h1, "down");
    assert!(down.success(), "{down}");
    // A fresh bpffs holds only the kernel's own maps.debug and progs.debug.
    let pins: Vec<String> = std::fs::read_dir(&h1.pin_path)
        .unwrap_or_else(|e| panic!("{}: {e}", h1.pin_path.display()))
        .filter_map(|entry| Some(entry.ok()?.file_name().to_string_lossy().into_owned()))
        .filter(|name| !name.ends_with(".debug"))
        .collect();
    assert!(pins.is_empty(), "pins left after vtep down: {pins:?}");
    for dev in [UPLINK, &ov.workloads[0].port] {
        assert!(
            !h1.has_xdp(dev),
            "XDP still attached to {dev} after vtep down"
        );
    }
    lab.assert_no_ping(&ov.workloads[0], &ov.workloads[1].ip);
}

/// A daemon removes its run lock's file when it stops; `vtep down` removes
/// the one a killed daemon could not, and leaves a running daemon's alone.
#[test]
fn no_run_lock_outlives_its_daemon() {
    let lab = Lab::new("lock");
    let mut ov = lab.overlay(2, &VniConfig::new(VNI), Flood::FullMesh);
    let (h1, h2) = (ov.hosts[0].clone(), ov.hosts[1].clone());
    let lock = run_lock(&h1);
    assert!(lock.exists(), "vtep run is up without {}", lock.display());
    ov.stop(0);
    assert!(
        !lock.exists(),
        "vtep run stopped and left {}",
        lock.display()
    );

    ov.restart(&lab, 0);
    assert!(lock.exists(), "vtep run is up without {}", lock.display());
    let pid = libc::pid_t::try_from(ov.daemons[0].pid()).expect("a pid");
    // SAFETY: kill(2) has no memory-safety preconditions.
    let killed = unsafe { libc::kill(pid, libc::SIGKILL) };
    assert_eq!(killed, 0, "kill -9 {pid}");
    assert!(
        wait_until(Duration::from_secs(5), || !ov.daemons[0].is_running()),
        "vtep run (pid {pid}) lives on after SIGKILL"
    );
    assert!(
        lock.exists(),
        "a killed daemon cannot remove {}",
        lock.display()
    );
    let down = lab.vtep(&h1, "down");
    assert!(down.success(), "{down}");
    assert!(!lock.exists(), "vtep down left {}", lock.display());

    // A running daemon keeps its lock through `vtep down`.
    let down = lab.vtep(&h2, "down");
    assert!(down.success(), "{down}");
    assert!(
        run_lock(&h2).exists(),
        "vtep down removed the run lock of a running daemon"
    );
}
