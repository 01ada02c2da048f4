//! Access ports added and removed at run time with `vtep port add|del`.

use vtep_tests::lab::{Flood, Lab, Overlay, VniConfig, Workload, mac, tenant_net};

const VNI: u32 = 100;

/// A two-host overlay plus a second workload on h2 (access port `t1w2`,
/// not in the configuration).
fn overlay_and_newcomer(lab: &Lab) -> (Overlay, Workload) {
    let ov = lab.overlay(2, &VniConfig::new(VNI), Flood::FullMesh);
    let cidr = format!("{}.10/24", tenant_net(1));
    let newcomer = lab.workload(&ov.hosts[1], 1, 2, &mac(2, 1, 2), &cidr);
    (ov, newcomer)
}

#[test]
fn a_port_added_at_run_time_forwards_until_deleted() {
    let lab = Lab::new("port add del");
    let (ov, newcomer) = overlay_and_newcomer(&lab);
    let (h2, w1) = (&ov.hosts[1], &ov.workloads[0]);
    lab.assert_no_ping(&newcomer, &w1.ip);

    lab.vtep_ok(h2, &format!("port add {} vni {VNI}", newcomer.port));
    lab.assert_ping(&newcomer, &w1.ip);
    lab.assert_ping(w1, &newcomer.ip);

    lab.vtep_ok(h2, &format!("port del {}", newcomer.port));
    lab.assert_no_ping(&newcomer, &w1.ip);
}

/// A container's interface often comes up after the gateway learns of its
/// port: vtep must still be able to deliver into it once it is up.
#[test]
fn a_port_added_before_its_workload_is_up_forwards_once_up() {
    let lab = Lab::new("port add down");
    let (ov, newcomer) = overlay_and_newcomer(&lab);
    let (h2, w1) = (&ov.hosts[1], &ov.workloads[0]);
    newcomer.link_down();
    lab.vtep_ok(h2, &format!("port add {} vni {VNI}", newcomer.port));
    newcomer.link_up();
    lab.assert_ping(&newcomer, &w1.ip);
}
