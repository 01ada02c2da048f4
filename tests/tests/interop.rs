//! Interoperability with the Linux vxlan driver: a vtep host and a host
//! switching with `vxlan` + `bridge` exchange traffic both ways.

use vtep_tests::lab::{Interop, Lab};

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
