//! Path MTU across the overlay: workloads with MTU 1500 over a 1500-byte
//! underlay, which leaves 1450 bytes for an inner IP packet. vtep answers
//! a packet too large once encapsulated as the kernel's vxlan driver does,
//! with an ICMP "fragmentation needed" (IPv4 with DF) or ICMPv6 "packet too
//! big" carrying MTU 1450, from the destination; the sender's kernel lowers
//! its path MTU and TCP goes on with smaller segments. Without the error
//! the connection would stall (a PMTU black hole: Linux does not probe by
//! default). An IPv4 packet without DF is only dropped.
//!
//! Run against either engine (`VTEP_ENGINE`), as the rest of the suite.

use vtep_tests::lab::{Flood, Lab, Overlay, UNDERLAY_MTU, VXLAN_OVERHEAD, VniConfig, Workload};

const VNI: u32 = 100;
const SECONDS: u32 = 2;
/// The workloads' MTU: the underlay's, more than the overlay carries.
const WORKLOAD_MTU: u32 = UNDERLAY_MTU;
/// What vtep's errors tell them.
const INNER_MTU: u32 = UNDERLAY_MTU - VXLAN_OVERHEAD;

/// Two vtep hosts, their workloads' MTU (and their access ports') raised
/// to 1500.
fn lab_with_big_workloads(name: &str) -> (Lab, Overlay) {
    let lab = Lab::new(name);
    let ov = lab.overlay(2, &VniConfig::new(VNI), Flood::FullMesh);
    for w in &ov.workloads {
        w.host
            .ip(&format!("link set {} mtu {WORKLOAD_MTU}", w.port));
        w.ip(&format!("link set eth0 mtu {WORKLOAD_MTU}"));
    }
    (lab, ov)
}

/// `w` under another address (of the same interface), for iperf3.
fn at(w: &Workload, ip: &str) -> Workload {
    Workload {
        netns: w.netns.clone(),
        host: w.host.clone(),
        port: w.port.clone(),
        mac: w.mac.clone(),
        ip: ip.to_owned(),
    }
}

/// The path MTU `from`'s kernel has cached towards `dst` (`ip route get`),
/// if any.
fn cached_mtu(from: &Workload, dst: &str) -> Option<u32> {
    let route = from.exec_ok(&format!("ip route get {dst}"));
    let words: Vec<&str> = route.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "mtu")
        .and_then(|w| w[1].parse().ok())
}

/// `mtu-exceeded` and `pmtu-sent` of host 1.
fn pmtu_counts(lab: &Lab, ov: &Overlay) -> (u64, u64) {
    let s = lab.stats(&ov.hosts[0]);
    (s.reason("mtu-exceeded"), s.reason("pmtu-sent"))
}

#[test]
fn tcp_over_ipv4_converges_on_the_inner_mtu() {
    let (lab, ov) = lab_with_big_workloads("pmtu ipv4");
    let (w1, w2) = (&ov.workloads[0], &ov.workloads[1]);
    lab.assert_ping(w1, &w2.ip);

    // Without DF: dropped, no error (the outer packet is sent with DF, so
    // nothing would fragment it either).
    let before = pmtu_counts(&lab, &ov);
    let big = w1.exec(&format!(
        "ping -n -c 1 -W 1 -M dont -s {} {}",
        WORKLOAD_MTU - 28,
        w2.ip
    ));
    assert!(
        !big.success(),
        "a 1500-byte packet without DF crossed: {big}"
    );
    let after = pmtu_counts(&lab, &ov);
    assert!(
        after.0 > before.0,
        "no mtu-exceeded: {before:?} -> {after:?}"
    );
    assert_eq!(after.1, before.1, "an error for a packet without DF");
    assert_eq!(cached_mtu(w1, &w2.ip), None, "a path MTU from nowhere");

    // TCP (DF on every segment): full-size segments get errors, the path
    // MTU drops to 1450, the transfer completes.
    let r = lab.iperf(w1, w2, SECONDS);
    assert!(
        r.received_bytes > 1_000_000,
        "TCP did not get through: {r:?}\n{}",
        lab.diagnostics()
    );
    let (exceeded, sent) = pmtu_counts(&lab, &ov);
    assert!(
        exceeded > after.0 && sent > after.1,
        "mtu-exceeded {exceeded}, pmtu-sent {sent} (before {after:?})"
    );
    assert_eq!(cached_mtu(w1, &w2.ip), Some(INNER_MTU));
    eprintln!(
        "iperf3: {} bytes, {:.0} Mbit/s; mtu-exceeded {exceeded}, pmtu-sent {sent}",
        r.received_bytes,
        r.bits_per_second / 1e6
    );
}

#[test]
fn tcp_over_ipv6_converges_on_the_inner_mtu() {
    let (lab, ov) = lab_with_big_workloads("pmtu ipv6");
    let (w1, w2) = (&ov.workloads[0], &ov.workloads[1]);
    let (a1, a2) = ("2001:db8:100::1", "2001:db8:100::2");
    for (w, a) in [(w1, a1), (w2, a2)] {
        // The lab's namespaces start with IPv6 off.
        w.exec_ok("sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0");
        w.ip(&format!("addr add {a}/64 dev eth0 nodad"));
    }
    lab.assert_ping(w1, &w2.ip);
    lab.assert_ping(w1, a2);
    assert_eq!(cached_mtu(w1, a2), None, "a path MTU from nowhere");
    let before = pmtu_counts(&lab, &ov);

    let r = lab.iperf(&at(w1, a1), &at(w2, a2), SECONDS);
    assert!(
        r.received_bytes > 1_000_000,
        "TCP over IPv6 did not get through: {r:?}\n{}",
        lab.diagnostics()
    );
    let after = pmtu_counts(&lab, &ov);
    assert!(
        after.0 > before.0 && after.1 > before.1,
        "no packet-too-big: {before:?} -> {after:?}"
    );
    assert_eq!(cached_mtu(w1, a2), Some(INNER_MTU));
}
