//! `vtep monitor -j`: a line per FDB event, as it happens, in order: MACs
//! learned (on an access port and behind a remote VTEP), a MAC that moves,
//! a static entry added and deleted with the CLI, learned MACs aged out.

use std::time::Duration;

use serde_json::Value;
use vtep_tests::lab::{Flood, Lab, Proc, VniConfig, mac, tenant_net, vtep_bin, wait_until};

const VNI: u32 = 100;
/// How long an event may take to reach the monitor (ageing runs once a second).
const EVENT_TIME: Duration = Duration::from_secs(5);

/// The JSON objects the monitor printed so far, one a line.
fn events(monitor: &Proc) -> Vec<Value> {
    monitor
        .output()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

/// Whether `e` is the event `event` of `mac`.
fn is(e: &Value, event: &str, mac: &str) -> bool {
    e["event"] == event
        && e["mac"]
            .as_str()
            .is_some_and(|m| m.eq_ignore_ascii_case(mac))
}

/// Waits until the monitor has printed the event `event` of `mac`; the
/// index of its first line.
fn wait_event(monitor: &Proc, event: &str, mac: &str) -> usize {
    let mut at = None;
    wait_until(EVENT_TIME, || {
        at = events(monitor).iter().position(|e| is(e, event, mac));
        at.is_some()
    });
    at.unwrap_or_else(|| {
        panic!(
            "no `{event}` event of {mac} within {EVENT_TIME:?}; the monitor printed:\n{}",
            monitor.output()
        )
    })
}

#[test]
fn fdb_events_are_printed_in_order() {
    let lab = Lab::new("monitor");
    let ov = lab.overlay(2, &VniConfig::new(VNI), Flood::FullMesh);
    let (h1, h2) = (&ov.hosts[0], &ov.hosts[1]);
    let (w1, w2) = (&ov.workloads[0], &ov.workloads[1]);
    let mut monitor = h1.spawn_as(
        "monitor",
        &format!(
            "{} monitor fdb -j --pin-path {}",
            vtep_bin().display(),
            h1.pin_path.display()
        ),
    );

    // The monitor is listening once it sees a change: replace a marker
    // until it does (the daemon may accept it a moment after it starts).
    let marker = mac(0xee, 9, 9);
    let seen = wait_until(EVENT_TIME, || {
        lab.vtep_ok(
            h1,
            &format!("fdb replace {marker} vni {VNI} dst 198.18.0.9"),
        );
        events(&monitor).iter().any(|e| e["mac"] == marker)
    });
    assert!(seen, "the monitor printed nothing:\n{}", monitor.output());

    // Learned: w1 on h1's access port, w2 behind h2.
    lab.assert_ping(w1, &w2.ip);
    let w1_learned = wait_event(&monitor, "learned", &w1.mac);
    let w2_learned = wait_event(&monitor, "learned", &w2.mac);
    let e = &events(&monitor);
    assert_eq!(e[w1_learned]["ifname"], w1.port.as_str(), "{e:?}");
    assert_eq!(e[w1_learned]["origin"], "datapath", "{e:?}");
    assert_eq!(e[w2_learned]["dst"], h2.underlay_ip.as_str(), "{e:?}");

    // A MAC behind h2, then behind a second access port of h1: a move.
    let moving = mac(0xee, 1, 1);
    let cidr = format!("{}.10/24", tenant_net(1));
    let on_h2 = lab.workload(h2, 1, 2, &moving, &cidr);
    lab.vtep_ok(h2, &format!("port add {} vni {VNI}", on_h2.port));
    let on_h1 = lab.workload(h1, 1, 2, &moving, &cidr);
    lab.vtep_ok(h1, &format!("port add {} vni {VNI}", on_h1.port));
    on_h1.link_down();
    lab.assert_ping(&on_h2, &w1.ip);
    let learned = wait_event(&monitor, "learned", &moving);
    on_h2.link_down();
    on_h1.link_up();
    lab.assert_ping(&on_h1, &w1.ip);
    let moved = wait_event(&monitor, "moved", &moving);
    let e = &events(&monitor);
    assert_eq!(e[learned]["dst"], h2.underlay_ip.as_str(), "{e:?}");
    assert_eq!(e[moved]["from"]["dst"], h2.underlay_ip.as_str(), "{e:?}");
    assert_eq!(e[moved]["ifname"], on_h1.port.as_str(), "{e:?}");

    // A static entry, added and deleted with the CLI.
    let fixed = mac(0xee, 2, 2);
    lab.vtep_ok(h1, &format!("fdb add {fixed} vni {VNI} dst 198.18.0.9"));
    lab.vtep_ok(h1, &format!("fdb del {fixed} vni {VNI}"));
    let added = wait_event(&monitor, "added", &fixed);
    let deleted = wait_event(&monitor, "deleted", &fixed);
    let e = &events(&monitor);
    assert_eq!(e[added]["origin"], "cli", "{e:?}");
    assert_eq!(e[added]["state"], "static", "{e:?}");
    assert_eq!(e[deleted]["deleted"], true, "{e:?}");

    // Everything learned ages out once the VNI's ageing is short.
    lab.vtep_ok(h1, &format!("vni set {VNI} ageing 1"));
    let aged: Vec<usize> = [&w1.mac, &w2.mac, &moving]
        .into_iter()
        .map(|m| wait_event(&monitor, "aged", m))
        .collect();
    let e = &events(&monitor);
    for &i in &aged {
        assert_eq!(e[i]["deleted"], true, "{e:?}");
        assert_eq!(e[i]["state"], "learned", "{e:?}");
    }

    // In order: each MAC's events, and the steps one after the other.
    let order = [
        w1_learned, w2_learned, learned, moved, added, deleted, aged[2],
    ];
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "events out of order {order:?}:\n{}",
        monitor.output()
    );
    assert!(aged[0] > w1_learned && aged[1] > w2_learned, "{e:?}");

    // Ctrl-C ends it quietly, with success.
    let status = monitor.interrupt();
    assert!(status.success(), "vtep monitor ended with {status}");
    assert!(
        monitor.output().lines().all(|l| l.starts_with('{')),
        "{}",
        monitor.output()
    );
}

#[test]
fn without_a_daemon_monitor_says_so() {
    let lab = Lab::new("monitor none");
    let host = lab.host(1);
    let run = vtep_tests::lab::run(&host.cmdline(&format!(
        "{} monitor --pin-path {}",
        vtep_bin().display(),
        host.pin_path.display()
    )));
    assert!(!run.success(), "{run}");
    assert!(
        run.stderr
            .contains("no `vtep run` daemon for the gateway at"),
        "{run}"
    );
}

/// Text lines, with `-t` the time first; a reader that goes away (as
/// `vtep monitor | head -1` does) ends the monitor quietly, with success.
#[test]
fn text_lines_and_a_reader_that_goes_away() {
    use std::{
        io::{BufRead as _, BufReader},
        process::{Command, Stdio},
        sync::mpsc,
    };
    let lab = Lab::new("monitor text");
    let ov = lab.overlay(1, &VniConfig::new(VNI), Flood::FullMesh);
    let h1 = &ov.hosts[0];
    let bin = vtep_bin();
    let pin = h1.pin_path.display().to_string();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &h1.name])
        .arg(&bin)
        .args(["monitor", "-t", "--pin-path", &pin])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vtep monitor starts");
    let stdout = child.stdout.take().expect("its stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut first = String::new();
        let mut stdout = BufReader::new(stdout);
        let _ = stdout.read_line(&mut first);
        let _ = tx.send(first);
        // The reader goes away: its end of the pipe closes here.
    });
    let marker = mac(0xee, 9, 9);
    let mut first = None;
    for _ in 0..20 {
        lab.vtep_ok(
            h1,
            &format!("fdb replace {marker} vni {VNI} dst 198.18.0.9"),
        );
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(250)) {
            first = Some(line);
            break;
        }
    }
    reader.join().expect("the reader thread");
    let first = first.unwrap_or_default();
    if first.is_empty() {
        let _ = child.kill();
        let out = child.wait_with_output().expect("vtep monitor's exit");
        panic!(
            "no line from vtep monitor ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // `[2026-12-01T23:20:31.123456] 02:ee:.. dst 198.18.0.9 vni 100 origin cli added`
    let (stamp, rest) = first.split_once("] ").expect("a timestamp first");
    assert!(
        stamp.starts_with("[20") && stamp.len() == 27 && stamp.as_bytes()[11] == b'T',
        "{first:?}"
    );
    assert!(
        rest == format!("{marker} dst 198.18.0.9 vni {VNI} origin cli added\n")
            || rest == format!("{marker} dst 198.18.0.9 vni {VNI} origin cli replaced\n"),
        "{first:?}"
    );

    // The next event finds the pipe closed.
    let ended = wait_until(EVENT_TIME, || {
        lab.vtep_ok(
            h1,
            &format!("fdb replace {marker} vni {VNI} dst 198.18.0.8"),
        );
        matches!(child.try_wait(), Ok(Some(_)))
    });
    if !ended {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("vtep monitor's exit");
    assert!(ended, "vtep monitor still runs with its reader gone");
    assert!(out.status.success(), "{:?}", out);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
