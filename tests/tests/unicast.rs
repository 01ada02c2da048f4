//! Unicast between workloads on different vtep hosts: through static FDB
//! entries pushed with the CLI, and through learned ones.

use vtep_tests::lab::{Flood, Lab, VniConfig};

const VNI: u32 = 100;

#[test]
fn static_fdb_entries_carry_unicast_both_ways() {
    let lab = Lab::new("unicast static");
    // No learning and no flood list: only what the CLI pushes can forward.
    let ov = lab.overlay(2, &VniConfig::new(VNI).learning(false), Flood::Empty);
    let (h1, h2) = (&ov.hosts[0], &ov.hosts[1]);
    let (w1, w2) = (&ov.workloads[0], &ov.workloads[1]);
    // Without ARP across the overlay the workloads need their neighbours given.
    w1.add_neighbour(w2);
    w2.add_neighbour(w1);
    lab.assert_no_ping(w1, &w2.ip);

    for (host, local, remote, remote_host) in [(h1, w1, w2, h2), (h2, w2, w1, h1)] {
        lab.vtep_ok(
            host,
            &format!("fdb add {} vni {VNI} dev {}", local.mac, local.port),
        );
        lab.vtep_ok(
            host,
            &format!(
                "fdb add {} vni {VNI} dst {}",
                remote.mac, remote_host.underlay_ip
            ),
        );
    }
    lab.assert_ping(w1, &w2.ip);
    lab.assert_ping(w2, &w1.ip);

    for host in [h1, h2] {
        let fdb = lab.fdb(host, Some(VNI));
        assert!(
            fdb.iter().all(|e| e.is_static()),
            "learning is off, yet {}: {fdb:?}",
            host.name
        );
        let stats = lab.stats(host).vni(VNI);
        assert!(
            stats.tx_packets > 0 && stats.rx_packets > 0,
            "{}: {stats:?}",
            host.name
        );
    }

    lab.vtep_ok(h1, &format!("fdb del {} vni {VNI}", w2.mac));
    lab.assert_no_ping(w1, &w2.ip);
}

#[test]
fn learned_entries_carry_unicast_both_ways_without_flooding() {
    let lab = Lab::new("unicast learned");
    let ov = lab.overlay(2, &VniConfig::new(VNI), Flood::FullMesh);
    let (w1, w2) = (&ov.workloads[0], &ov.workloads[1]);
    lab.assert_ping(w1, &w2.ip);
    lab.assert_ping(w2, &w1.ip);

    // Both MACs are learned and resolved now: more pings are pure unicast.
    let flooded = || -> Vec<u64> {
        ov.hosts
            .iter()
            .map(|h| lab.stats(h).vni(VNI).flood_packets)
            .collect()
    };
    let before = flooded();
    lab.assert_ping(w1, &w2.ip);
    lab.assert_ping(w2, &w1.ip);
    assert_eq!(
        flooded(),
        before,
        "known unicast was flooded\n{}",
        lab.diagnostics()
    );
}

#[test]
fn three_hosts_reach_each_other() {
    let lab = Lab::new("three hosts");
    let ov = lab.overlay(3, &VniConfig::new(VNI), Flood::FullMesh);
    for from in &ov.workloads {
        for to in ov.workloads.iter().filter(|to| to.name != from.name) {
            lab.assert_ping(from, &to.ip);
        }
    }
}
