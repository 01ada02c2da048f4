//! Two tenants (VNIs) with the same MACs and the same addresses on the same
//! hosts stay apart: nothing of one arrives in the other.

use vtep_tests::lab::{Host, Lab, LinkStats, VniConfig, VtepConfig, Workload, mac, tenant_net};

const VNI_A: u32 = 100;
const VNI_B: u32 = 200;

/// rx counters of `workloads` now.
fn received(workloads: &[&Workload]) -> Vec<LinkStats> {
    workloads.iter().map(|w| w.stats()).collect()
}

/// Panics if any of `workloads` received a packet since `before`.
fn assert_untouched(lab: &Lab, workloads: &[&Workload], before: &[LinkStats], what: &str) {
    for (w, before) in workloads.iter().zip(before) {
        let now = w.stats();
        assert_eq!(
            now.rx_packets,
            before.rx_packets,
            "{what} leaked into {}\n{}",
            w.name,
            lab.diagnostics()
        );
    }
}

fn config(host: &Host, peer: &Host, ports: [&[&Workload]; 2]) -> VtepConfig {
    [VNI_A, VNI_B].into_iter().zip(ports).fold(
        VtepConfig::new(&host.underlay_ip),
        |config, (vni, ws)| {
            let vni = ws
                .iter()
                .fold(VniConfig::new(vni), |vni, w| vni.port(&w.port))
                .flood([&peer.underlay_ip]);
            config.vni(vni)
        },
    )
}

#[test]
fn tenants_with_the_same_macs_and_addresses_stay_apart() {
    let lab = Lab::new("isolation");
    let (h1, h2) = (lab.host(1), lab.host(2));
    let net = tenant_net(1);
    let same = |host: u8, k: u8| (mac(host, 1, k), format!("{net}.{host}/24"));
    // Tenant A (VNI 100) and tenant B (VNI 200): identical MACs and addresses.
    let (m1, ip1) = same(1, 1);
    let (m2, ip2) = same(2, 1);
    let a1 = lab.workload(&h1, 1, 1, &m1, &ip1);
    let a2 = lab.workload(&h2, 1, 1, &m2, &ip2);
    let b1 = lab.workload(&h1, 2, 1, &m1, &ip1);
    let b2 = lab.workload(&h2, 2, 1, &m2, &ip2);
    // An address that exists only in tenant B.
    let b3 = lab.workload(&h2, 2, 2, &mac(2, 2, 3), &format!("{net}.3/24"));
    let _d1 = lab.start_vtep(&h1, config(&h1, &h2, [&[&a1], &[&b1]]));
    let _d2 = lab.start_vtep(&h2, config(&h2, &h1, [&[&a2], &[&b2, &b3]]));
    let tenant_a = [&a1, &a2];
    let tenant_b = [&b1, &b2, &b3];
    // Permanent neighbours between the workloads that talk: an ARP probe of
    // one tenant's own (a kernel re-confirming a stale entry, seconds after
    // a ping) must not be mistaken for a leak of the other's traffic.
    for (w, other) in [(&a1, &a2), (&a2, &a1), (&b1, &b2), (&b1, &b3), (&b2, &b1)] {
        w.add_neighbour(other);
    }

    let before = received(&tenant_b);
    lab.assert_ping(&a1, &a2.ip);
    lab.assert_ping(&a2, &a1.ip);
    lab.assert_no_ping(&a1, &b3.ip);
    assert_untouched(&lab, &tenant_b, &before, "tenant A's traffic");

    let before = received(&tenant_a);
    lab.assert_ping(&b1, &b2.ip);
    lab.assert_ping(&b1, &b3.ip);
    lab.assert_ping(&b2, &b1.ip);
    assert_untouched(&lab, &tenant_a, &before, "tenant B's traffic");

    // Each VNI has its own entry for the shared MAC, and only B knows b3.
    for vni in [VNI_A, VNI_B] {
        let entry = lab.fdb_entry(&h1, vni, &m2);
        assert!(
            entry
                .as_ref()
                .is_some_and(|e| e.dst.as_deref() == Some(h2.underlay_ip.as_str())),
            "vni {vni}: {entry:?}"
        );
    }
    assert_eq!(lab.fdb_entry(&h1, VNI_A, &b3.mac), None);
}
