//! TCP across the overlay with iperf3, between vtep hosts and towards the
//! kernel's vxlan driver.
//!
//! Workloads have MTU 1450 (`OVERLAY_MTU`): inner MTU = underlay MTU − 50,
//! the 50 bytes being the outer IPv4 (20), UDP (8) and VXLAN (8) headers plus
//! the inner Ethernet header (14). Full-size segments then fit the 1500-byte
//! underlay once encapsulated.

use vtep_tests::lab::{
    Flood, Iperf, Lab, OVERLAY_MTU, UNDERLAY_MTU, VXLAN_OVERHEAD, VniConfig, Workload,
};

const VNI: u32 = 100;
const SECONDS: u32 = 3;

fn mtu(w: &Workload) -> u64 {
    w.ip_json("link show dev eth0")[0]["mtu"]
        .as_u64()
        .expect("an mtu")
}

fn assert_transferred(result: &Iperf) {
    assert!(
        result.sent_bytes > 0 && result.received_bytes > 0,
        "nothing crossed: {result:?}"
    );
    eprintln!(
        "iperf3: {} bytes in {SECONDS} s, {:.0} Mbit/s, {} retransmits",
        result.received_bytes,
        result.bits_per_second / 1e6,
        result.retransmits
    );
}

#[test]
fn tcp_between_vtep_hosts() {
    let lab = Lab::new("iperf vtep");
    let ov = lab.overlay(2, &VniConfig::new(VNI), Flood::FullMesh);
    let (w1, w2) = (&ov.workloads[0], &ov.workloads[1]);
    assert_eq!(OVERLAY_MTU, UNDERLAY_MTU - VXLAN_OVERHEAD);
    assert_eq!(mtu(w1), u64::from(OVERLAY_MTU));
    lab.assert_ping(w1, &w2.ip);
    assert_transferred(&lab.iperf(w1, w2, SECONDS));
}

#[test]
fn tcp_between_vtep_and_kernel_vxlan_hosts() {
    let lab = Lab::new("iperf interop");
    let i = lab.interop(VNI);
    let (w1, w2) = (&i.on_vtep, &i.on_kernel);
    lab.assert_ping(w1, &w2.ip);
    assert_transferred(&lab.iperf(w1, w2, SECONDS));
    assert_transferred(&lab.iperf(w2, w1, SECONDS));
}
