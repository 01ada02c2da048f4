//! Flooding: broadcast (ARP) and unknown unicast reach the other VTEPs through
//! the flood list, which the CLI can change at run time.

use vtep_tests::lab::{FLOOD_MAC, Flood, Lab, VniConfig};

const VNI: u32 = 100;

#[test]
fn arp_resolves_through_the_flood_list() {
    let lab = Lab::new("arp flood");
    // Learning off: every frame, request and reply, crosses by flooding.
    let ov = lab.overlay(2, &VniConfig::new(VNI).learning(false), Flood::FullMesh);
    let (w1, w2) = (&ov.workloads[0], &ov.workloads[1]);
    assert_eq!(w1.neighbour(&w2.ip), None);

    lab.assert_ping(w1, &w2.ip);
    assert_eq!(w1.neighbour(&w2.ip).as_deref(), Some(w2.mac.as_str()));
    assert_eq!(w2.neighbour(&w1.ip).as_deref(), Some(w1.mac.as_str()));

    for (host, peer) in [(&ov.hosts[0], &ov.hosts[1]), (&ov.hosts[1], &ov.hosts[0])] {
        let fdb = lab.fdb(host, Some(VNI));
        assert!(
            fdb.iter()
                .any(|e| e.is_flood() && e.dst.as_deref() == Some(peer.underlay_ip.as_str())),
            "{}: flood list member {} missing: {fdb:?}",
            host.name,
            peer.underlay_ip
        );
        assert!(
            !fdb.iter().any(|e| e.is_learned()),
            "{}: learned with learning off: {fdb:?}",
            host.name
        );
        let stats = lab.stats(host).vni(VNI);
        assert!(stats.flood_packets > 0, "{}: {stats:?}", host.name);
    }
}

#[test]
fn flood_list_members_are_added_and_removed_with_the_cli() {
    let lab = Lab::new("flood cli");
    let ov = lab.overlay(2, &VniConfig::new(VNI).learning(false), Flood::Empty);
    let (w1, w2) = (&ov.workloads[0], &ov.workloads[1]);
    lab.assert_no_ping(w1, &w2.ip);

    let peers = [(&ov.hosts[0], &ov.hosts[1]), (&ov.hosts[1], &ov.hosts[0])];
    for (host, peer) in peers {
        lab.vtep_ok(
            host,
            &format!("fdb append {FLOOD_MAC} vni {VNI} dst {}", peer.underlay_ip),
        );
        let flood: Vec<_> = lab
            .fdb(host, Some(VNI))
            .into_iter()
            .filter(|e| e.is_flood())
            .collect();
        assert_eq!(flood.len(), 1, "{}: {flood:?}", host.name);
        assert_eq!(flood[0].dst.as_deref(), Some(peer.underlay_ip.as_str()));
    }
    lab.assert_ping(w1, &w2.ip);

    // Without learning, even resolved neighbours are only reached by flooding.
    for (host, peer) in peers {
        lab.vtep_ok(
            host,
            &format!("fdb del {FLOOD_MAC} vni {VNI} dst {}", peer.underlay_ip),
        );
        let fdb = lab.fdb(host, Some(VNI));
        assert!(!fdb.iter().any(|e| e.is_flood()), "{}: {fdb:?}", host.name);
    }
    lab.assert_no_ping(w1, &w2.ip);
}
