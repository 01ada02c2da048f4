//! The AF_XDP engine's threads: one worker per receive queue.
//!
//! Host 1 runs vtep on the AF_XDP engine whatever `VTEP_ENGINE` says (the
//! xtask runs this file in the AF_XDP pass only); its uplink, and the
//! underlay switch's port towards it, have two queues, over which the
//! switch spreads flows by their hash. Host 2 runs the kernel's vxlan
//! driver, whose outer source port follows each inner flow.

use std::time::Duration;

use vtep_tests::lab::{Interop, InteropOptions, Lab, wait_until};

const VNI: u32 = 100;
const QUEUES: u32 = 2;

/// Frames worker `queue` processed, from its last words in the log
/// (`AF_XDP engine, queue Q: N frames in R rounds, …`).
fn frames_of(log: &str, queue: u32) -> Option<u64> {
    let prefix = format!("AF_XDP engine, queue {queue}: ");
    let line = log
        .lines()
        .find(|l| l.contains(&prefix) && l.contains(" frames in "))?;
    let rest = &line[line.find(&prefix)? + prefix.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn each_receive_queue_gets_a_worker_and_traffic_crosses_them_all() {
    let lab = Lab::new("afxdp queues");
    let Interop {
        mut daemon,
        on_vtep,
        on_kernel,
        ..
    } = lab.interop_with(
        VNI,
        InteropOptions {
            uplink_queues: QUEUES,
            engine: Some("afxdp"),
            ..InteropOptions::default()
        },
    );
    // The access port (a veth) has one queue: queue 1's worker reaches it
    // through a packet socket.
    for line in [
        format!("AF_XDP engine: {QUEUES} worker thread(s)"),
        "has no queue 1; frames for it go through a packet socket".to_owned(),
    ] {
        assert!(
            wait_until(Duration::from_secs(5), || daemon.log().contains(&line)),
            "no `{line}` in the log:\n{}",
            daemon.log()
        );
    }

    lab.assert_ping(&on_vtep, &on_kernel.ip);
    // Eight flows each way: decap spreads over the uplink's queues, encap
    // comes in on the access port's one queue.
    let to_vtep = lab.iperf_streams(&on_kernel, &on_vtep, 2, 8);
    let from_vtep = lab.iperf_streams(&on_vtep, &on_kernel, 2, 8);
    for (what, r) in [("to vtep", to_vtep), ("from vtep", from_vtep)] {
        assert!(
            r.received_bytes > 0,
            "iperf3 {what}: nothing crossed: {r:?}"
        );
    }

    daemon.stop();
    let log = daemon.log();
    for q in 0..QUEUES {
        let frames = frames_of(&log, q);
        eprintln!("queue {q}: {frames:?} frames");
        assert!(
            frames.is_some_and(|n| n > 0),
            "the worker of queue {q} processed {frames:?} frames: the flows did not spread \
             over the queues, or a worker did not run\n{log}"
        );
    }
}
