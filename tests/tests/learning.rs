//! Learning: local and remote source MACs are learned, age out, move, never
//! override static entries, and stop at a VNI's maxaddress.

use std::time::{Duration, Instant};

use vtep_tests::lab::{FdbEntry, Flood, Host, Lab, VniConfig, mac, tenant_net};

const VNI: u32 = 100;

/// How long learning may take to show in `fdb show` (it may go through userspace).
const LEARN_TIME: Duration = Duration::from_secs(3);

/// Where a learned MAC is expected.
#[derive(Clone, Copy, Debug)]
enum Place<'a> {
    Vtep(&'a str),
    Port(&'a str),
}

impl Place<'_> {
    fn learned(self, entry: Option<&FdbEntry>) -> bool {
        entry.is_some_and(|e| {
            e.is_learned()
                && match self {
                    Place::Vtep(dst) => e.dst.as_deref() == Some(dst),
                    Place::Port(port) => e.ifname.as_deref() == Some(port),
                }
        })
    }
}

/// Waits until `host` has learned `mac` at `place`; the entry.
fn expect_learned(lab: &Lab, host: &Host, mac: &str, place: Place) -> FdbEntry {
    lab.wait_for_entry(
        host,
        (VNI, mac),
        &format!("learned at {place:?}"),
        LEARN_TIME,
        |e| place.learned(e),
    )
    .expect("a learned entry")
}

#[test]
fn remote_and_local_macs_are_learned() {
    let lab = Lab::new("learning");
    let ov = lab.overlay(2, &VniConfig::new(VNI), Flood::FullMesh);
    lab.assert_ping(&ov.workloads[0], &ov.workloads[1].ip);

    for (i, j) in [(0, 1), (1, 0)] {
        let (host, local, remote) = (&ov.hosts[i], &ov.workloads[i], &ov.workloads[j]);
        let remote_vtep = &ov.hosts[j].underlay_ip;
        let entry = expect_learned(&lab, host, &remote.mac, Place::Vtep(remote_vtep));
        assert!(
            entry.age.is_some_and(|age| age < 60),
            "{}: {entry:?}",
            host.name
        );
        expect_learned(&lab, host, &local.mac, Place::Port(&local.port));
    }
}

#[test]
fn learned_entries_age_out() {
    const AGEING: u64 = 2;
    let lab = Lab::new("ageing");
    let ov = lab.overlay(
        2,
        &VniConfig::new(VNI).ageing(AGEING as u32),
        Flood::FullMesh,
    );
    let (h1, w1, w2) = (&ov.hosts[0], &ov.workloads[0], &ov.workloads[1]);
    lab.assert_ping(w1, &w2.ip);
    let silent_since = Instant::now();
    expect_learned(&lab, h1, &w2.mac, Place::Vtep(&ov.hosts[1].underlay_ip));

    let limit = Duration::from_secs(AGEING + 3);
    for mac in [&w2.mac, &w1.mac] {
        let left = limit.saturating_sub(silent_since.elapsed());
        lab.wait_for_entry(h1, (VNI, mac), "aged out", left, |e| e.is_none());
    }
    // The last-seen time is refreshed at most once a second per MAC, so an
    // entry may look up to a second older than its last frame.
    assert!(
        silent_since.elapsed() >= Duration::from_secs(AGEING - 1),
        "entries went before the ageing time ({:?} after the last frame)",
        silent_since.elapsed()
    );
}

#[test]
fn a_moving_mac_updates_its_entry() {
    let lab = Lab::new("mac move");
    let ov = lab.overlay(3, &VniConfig::new(VNI), Flood::FullMesh);
    let (h1, w1) = (&ov.hosts[0], &ov.workloads[0]);
    // One MAC and address, held in turn by a workload on h2, on h3, and on h1
    // itself (a migrating VM); each lives on a second access port, t1w2.
    let moving_mac = mac(0xee, 1, 1);
    let cidr = format!("{}.10/24", tenant_net(1));
    let holders: Vec<_> = ov
        .hosts
        .iter()
        .rev()
        .map(|host| {
            let w = lab.workload(host, 1, 2, &moving_mac, &cidr);
            lab.vtep_ok(host, &format!("port add {} vni {VNI}", w.port));
            w.link_down();
            w
        })
        .collect();
    let (on_h3, on_h2, on_h1) = (&holders[0], &holders[1], &holders[2]);

    let moves = [
        (on_h2, None, Place::Vtep(&ov.hosts[1].underlay_ip)),
        (on_h3, Some(on_h2), Place::Vtep(&ov.hosts[2].underlay_ip)),
        (on_h1, Some(on_h3), Place::Port(&on_h1.port)),
    ];
    for (holder, previous, place) in moves {
        if let Some(previous) = previous {
            previous.link_down();
        }
        holder.link_up();
        lab.assert_ping(holder, &w1.ip);
        expect_learned(&lab, h1, &moving_mac, place);
    }
}

#[test]
fn learning_never_overrides_a_static_entry() {
    let lab = Lab::new("static beats learned");
    let mut ov = lab.overlay(2, &VniConfig::new(VNI), Flood::FullMesh);
    let h1 = &ov.hosts[0];
    let (port, w1_ip) = (ov.workloads[0].port.clone(), ov.workloads[0].ip.clone());
    let claimed = mac(0xee, 1, 1);
    lab.vtep_ok(h1, &format!("fdb add {claimed} vni {VNI} port {port}"));

    // w2 now sends from the MAC h1 has statically on its own access port:
    // ARP requests, flooded to h1. (No reply can come back: h1 sends
    // frames for that MAC to t1w1, where they came from.)
    let rx_before = lab.stats(h1).vni(VNI).rx_packets;
    ov.workloads[1].set_mac(&claimed);
    ov.workloads[1].exec(&format!("ping -n -c 3 -i 0.2 -w 2 {w1_ip}"));
    let rx_after = lab.stats(h1).vni(VNI).rx_packets;
    assert!(
        rx_after > rx_before,
        "nothing from {claimed} reached h1\n{}",
        lab.diagnostics()
    );

    let entry = lab.fdb_entry(h1, VNI, &claimed);
    assert!(
        entry
            .as_ref()
            .is_some_and(|e| e.is_static() && e.ifname.as_deref() == Some(port.as_str())),
        "static entry changed by learning: {entry:?}\n{}",
        lab.diagnostics()
    );
}

#[test]
fn maxaddress_limits_learning() {
    const MAXADDRESS: u32 = 2;
    let lab = Lab::new("maxaddress");
    let ov = lab.overlay(
        2,
        &VniConfig::new(VNI).maxaddress(MAXADDRESS),
        Flood::FullMesh,
    );
    let (h1, h2) = (&ov.hosts[0], &ov.hosts[1]);
    // Three sources behind h2 (w1 on h1 stays silent: nothing asks for it).
    let mut sources = vec![ov.workloads[1].clone()];
    for k in 2..=3 {
        let cidr = format!("{}.{}/24", tenant_net(1), 20 + k);
        let w = lab.workload(h2, 1, k, &mac(2, 1, k), &cidr);
        lab.vtep_ok(h2, &format!("port add {} vni {VNI}", w.port));
        sources.push(w);
    }
    // ARP requests for an address nobody has: broadcast, flooded to h1.
    let nobody = format!("{}.99", tenant_net(1));
    for source in &sources {
        source.exec(&format!("ping -n -c 2 -i 0.2 -w 2 {nobody}"));
    }

    let learned: Vec<_> = lab
        .fdb(h1, Some(VNI))
        .into_iter()
        .filter(|e| e.is_learned())
        .collect();
    assert_eq!(
        learned.len(),
        MAXADDRESS as usize,
        "{learned:?}\n{}",
        lab.diagnostics()
    );
    let limited = lab.stats(h1).reason("learning-limit");
    assert!(
        limited > 0,
        "no learning-limit counted\n{}",
        lab.diagnostics()
    );
}
