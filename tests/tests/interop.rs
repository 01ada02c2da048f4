//! Interoperability with the Linux vxlan driver: a vtep host and a host
//! switching with `vxlan` + `bridge` exchange traffic both ways.

use std::time::Duration;

use vtep_tests::lab::{Interop, InteropOptions, Lab, UPLINK, VXLAN_PORT, wait_until};

const VNI: u32 = 100;

/// Both sides learned the other's workload behind the other's VTEP.
fn assert_learned_both_ways(lab: &Lab, i: &Interop) {
    let entry = lab.fdb_entry(&i.vtep_host, VNI, &i.on_kernel.mac);
    assert!(
        entry
            .as_ref()
            .is_some_and(|e| e.dst.as_deref() == Some(i.kernel_host.underlay_ip.as_str())),
        "vtep did not learn the kernel host's workload: {entry:?}\n{}",
        lab.diagnostics()
    );
    let bridge_fdb = i.kernel_host.bridge(&format!("fdb show br br{VNI}"));
    assert!(
        bridge_fdb
            .lines()
            .any(|l| l.starts_with(&i.on_vtep.mac) && l.contains(&format!("dev vxlan{VNI}"))),
        "the kernel bridge did not learn vtep's workload on vxlan{VNI}:\n{bridge_fdb}"
    );
}

#[test]
fn vtep_host_reaches_kernel_vxlan_host() {
    let lab = Lab::new("interop vtep first");
    let i = lab.interop(VNI);
    lab.assert_ping(&i.on_vtep, &i.on_kernel.ip);
    assert_learned_both_ways(&lab, &i);
}

#[test]
fn kernel_vxlan_host_reaches_vtep_host() {
    let lab = Lab::new("interop kernel first");
    let i = lab.interop(VNI);
    lab.assert_ping(&i.on_kernel, &i.on_vtep.ip);
    assert_learned_both_ways(&lab, &i);
}

/// With `udp_checksum = true`, vtep's VXLAN packets carry an outer UDP
/// checksum, and it is right: the kernel verifies a non-zero checksum before
/// its vxlan driver sees the packet (a wrong one is dropped and counted in
/// `UdpInCsumErrors`), and tcpdump on the kernel host checks each one. The
/// ARP request goes through TC flooding, the pings through XDP encap: both
/// ways of building the outer header are covered. The kernel side sends
/// checksums too (`udpcsum`), which vtep's decap takes.
#[test]
fn udp_checksums_are_sent_and_right() {
    let lab = Lab::new("interop udp checksum");
    let i = lab.interop_with(
        VNI,
        InteropOptions {
            udp_checksum: true,
            ..InteropOptions::default()
        },
    );
    // Packets from vtep, as the kernel host receives them.
    let mut capture = i.kernel_host.spawn_as(
        "tcpdump",
        &format!(
            "tcpdump -nn -vv -l -i {UPLINK} -c 4 udp dst port {VXLAN_PORT} and src host {}",
            i.vtep_host.underlay_ip
        ),
    );
    assert!(
        wait_until(Duration::from_secs(5), || capture
            .output()
            .contains("listening on")),
        "tcpdump did not start: {}",
        capture.output()
    );
    lab.assert_ping(&i.on_vtep, &i.on_kernel.ip);
    let finished = wait_until(Duration::from_secs(5), || capture.exited().is_some());
    let out = capture.output();
    assert!(
        finished,
        "tcpdump saw fewer than 4 packets from vtep:\n{out}"
    );
    // Each packet's outer UDP line: `… [udp sum ok] …`, `[bad udp cksum …]`
    // or `[no cksum]`.
    let verdicts: Vec<&str> = out
        .lines()
        .filter(|l| l.contains(&format!(".{VXLAN_PORT}: ")))
        .collect();
    assert_eq!(verdicts.len(), 4, "4 VXLAN packets in:\n{out}");
    assert!(
        verdicts.iter().all(|l| l.contains("[udp sum ok]")),
        "vtep sent a VXLAN packet without a right UDP checksum:\n{out}"
    );
    assert!(
        out.contains("ARP") && out.contains("ICMP echo request"),
        "the capture lacks the flooded ARP request or the encapsulated ping:\n{out}"
    );
    let errors = i.kernel_host.exec_ok("nstat -az UdpInCsumErrors");
    assert!(
        errors
            .lines()
            .filter(|l| l.starts_with("UdpInCsumErrors"))
            .all(|l| l.split_whitespace().nth(1) == Some("0")),
        "the kernel host counted UDP checksum errors:\n{errors}"
    );
    lab.assert_ping(&i.on_kernel, &i.on_vtep.ip);
}
