//! vtep under BGP EVPN: three hosts, each with FRR (zebra + bgpd) writing
//! its kernel's FDB, and vtep following that FDB (`[follow]`).
//!
//! What must hold: a workload's MAC, learned by one host's bridge, reaches
//! vtep's maps on every other host through EVPN within seconds; traffic
//! between workloads on different hosts crosses the overlay on vtep's XDP
//! path (its counters say so, the kernel vxlan device's barely move);
//! withdrawing a workload or a whole host removes its entries everywhere;
//! restarting FRR or vtep on one host converges again by itself.

use std::time::{Duration, Instant};

use vtep_tests::lab::{
    Daemon, FdbEntry, Frr, Host, Lab, Peering, VtepConfig, Workload, frr_installed, mac,
    require_xdp_engine, tenant_net,
};

const VNI: u32 = 100;
const VXLAN: &str = "vxlan100";
/// BGP sessions come up within this (connect retry is 1 s).
const BGP_UP: Duration = Duration::from_secs(30);
/// An EVPN route reaches the other hosts' kernels, and vtep's maps, within this.
const EVPN_TIME: Duration = Duration::from_secs(10);

/// vtep follows the kernel only with its XDP engine (`cargo xtask test`
/// leaves this file out of its AF_XDP pass); FRR must be installed.
fn skip() -> bool {
    require_xdp_engine();
    assert!(
        frr_installed(),
        "FRR is not installed: run `cargo xtask setup` (apt-get install frr)"
    );
    false
}

/// Hosts `1..=n`, each with FRR, a workload (`192.0.2.<n>`, MAC `mac(n, 1, 1)`)
/// in `br100` and vtep following `vxlan100`. Field order is drop order.
struct Fabric {
    daemons: Vec<Daemon>,
    frr: Vec<Frr>,
    workloads: Vec<Workload>,
    hosts: Vec<Host>,
}

fn vtep_config(host: &Host) -> VtepConfig {
    VtepConfig::new(&host.underlay_ip)
        .local_from_link()
        .follow([VXLAN])
}

fn fabric(lab: &Lab, n: u8, peering: Peering) -> Fabric {
    let hosts: Vec<Host> = (1..=n).map(|i| lab.evpn_host(i, &[VNI])).collect();
    let workloads = lab.evpn_workloads(&hosts, VNI);
    let frr = lab.start_evpn_peering(&hosts, peering);
    for f in &frr {
        f.wait_established(BGP_UP);
    }
    let daemons = hosts
        .iter()
        .map(|h| lab.start_vtep(h, vtep_config(h)))
        .collect();
    Fabric {
        daemons,
        frr,
        workloads,
        hosts,
    }
}

impl Fabric {
    /// The lab's vtep view and every host's FRR view, for failure messages.
    fn diagnostics(&self, lab: &Lab) -> String {
        let mut out = lab.diagnostics();
        for f in &self.frr {
            out.push_str(&f.diagnostics());
        }
        out
    }

    /// Waits until `expected` holds for `mac`'s entry on `host` (or its
    /// absence); panics after `timeout` with both views.
    fn wait_entry(
        &self,
        lab: &Lab,
        host: usize,
        mac: &str,
        what: &str,
        expected: impl Fn(Option<&FdbEntry>) -> bool,
    ) {
        let started = Instant::now();
        let mut entry = None;
        while started.elapsed() < EVPN_TIME {
            entry = lab.fdb_entry(&self.hosts[host], VNI, mac);
            if expected(entry.as_ref()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{}: {mac}: expected {what} within {EVPN_TIME:?}, found {entry:?}\n{}",
            self.hosts[host].name,
            self.diagnostics(lab)
        );
    }

    /// Waits until `host`'s flood list of the VNI is exactly `vteps`.
    fn wait_flood_list(&self, lab: &Lab, host: usize, vteps: &[&str]) {
        let mut want: Vec<String> = vteps.iter().map(|v| (*v).to_owned()).collect();
        want.sort();
        let started = Instant::now();
        let mut got = Vec::new();
        while started.elapsed() < EVPN_TIME {
            got = lab
                .fdb(&self.hosts[host], Some(VNI))
                .into_iter()
                .filter(|e| e.is_flood() && e.is_followed())
                .filter_map(|e| e.dst)
                .collect();
            got.sort();
            if got == want {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "{}: flood list {got:?}, expected {want:?} (EVPN type-3 routes) within {EVPN_TIME:?}\n{}",
            self.hosts[host].name,
            self.diagnostics(lab)
        );
    }

    /// `mac` is mirrored on every host: behind its own host's port there,
    /// behind that host's VTEP everywhere else.
    fn wait_everywhere(&self, lab: &Lab, owner: usize) {
        let w = &self.workloads[owner];
        for i in 0..self.hosts.len() {
            if i == owner {
                let port = w.port.clone();
                self.wait_entry(lab, i, &w.mac, "local, mirrored from the bridge", |e| {
                    e.is_some_and(|e| e.is_followed() && e.ifname.as_deref() == Some(&port))
                });
            } else {
                let vtep = self.hosts[owner].underlay_ip.clone();
                self.wait_entry(lab, i, &w.mac, "remote, from EVPN type-2", |e| {
                    e.is_some_and(|e| {
                        e.is_followed() && e.is_extern_learn() && e.dst.as_deref() == Some(&vtep)
                    })
                });
            }
        }
    }

    /// Waits until no host but `owner` mirrors anything of `owner`: not its
    /// workload's MAC, not its VTEP in a flood list.
    fn wait_gone_everywhere(&self, lab: &Lab, owner: usize, mac: &str) {
        for i in (0..self.hosts.len()).filter(|&i| i != owner) {
            self.wait_entry(lab, i, mac, "no entry (withdrawn)", |e| e.is_none());
        }
    }

    fn ip(&self, i: usize) -> &str {
        &self.hosts[i].underlay_ip
    }
}

/// Pings so that every bridge learns its workload and EVPN spreads it.
fn converge(lab: &Lab, f: &Fabric) {
    let n = f.hosts.len();
    for i in 0..n {
        lab.assert_ping(&f.workloads[i], &f.workloads[(i + 1) % n].ip);
    }
    for i in 0..n {
        f.wait_everywhere(lab, i);
    }
}

#[test]
fn evpn_macs_reach_every_host_and_traffic_takes_the_xdp_path() {
    if skip() {
        return;
    }
    let lab = Lab::new("evpn");
    let f = fabric(&lab, 3, Peering::FullMesh);
    // Type-3 routes: every host floods to the two others.
    for i in 0..3 {
        let others: Vec<&str> = (0..3).filter(|&j| j != i).map(|j| f.ip(j)).collect();
        f.wait_flood_list(&lab, i, &others);
    }
    converge(&lab, &f);

    // Workload 1 → workload 2, once the MACs are known: vtep's XDP path
    // carries it (encap on h1, decap on h2, and back), the kernel's vxlan
    // devices see only the frames vtep passes to let the bridges refresh
    // their entries (about one per MAC per second).
    const PINGS: u64 = 200;
    let (h1, h2) = (&f.hosts[0], &f.hosts[1]);
    let before = (lab.stats(h1).vni(VNI), lab.stats(h2).vni(VNI));
    let kernel_before = (h1.link_stats(VXLAN), h2.link_stats(VXLAN));
    let ping = f.workloads[0].exec(&format!(
        "ping -n -q -c {PINGS} -i 0.01 -w 20 {}",
        f.workloads[1].ip
    ));
    assert!(ping.success(), "{ping}\n{}", f.diagnostics(&lab));
    let after = (lab.stats(h1).vni(VNI), lab.stats(h2).vni(VNI));
    let kernel_after = (h1.link_stats(VXLAN), h2.link_stats(VXLAN));
    let encap_h1 = after.0.tx_packets - before.0.tx_packets;
    let decap_h2 = after.1.rx_packets - before.1.rx_packets;
    let encap_h2 = after.1.tx_packets - before.1.tx_packets;
    let decap_h1 = after.0.rx_packets - before.0.rx_packets;
    let kernel_tx = (kernel_after.0.tx_packets - kernel_before.0.tx_packets)
        + (kernel_after.1.tx_packets - kernel_before.1.tx_packets);
    eprintln!(
        "{PINGS} pings w1 -> w2: vtep encap h1 {encap_h1}, decap h2 {decap_h2}, encap h2 \
         {encap_h2}, decap h1 {decap_h1}; kernel vxlan devices sent {kernel_tx}"
    );
    let floor = PINGS * 9 / 10;
    assert!(
        encap_h1 >= floor && decap_h2 >= floor && encap_h2 >= floor && decap_h1 >= floor,
        "{PINGS} pings: vtep encapsulated {encap_h1} on h1 and {encap_h2} on h2, decapsulated \
         {decap_h2} on h2 and {decap_h1} on h1: not the XDP path\n{}",
        f.diagnostics(&lab)
    );
    assert!(
        kernel_tx <= PINGS / 10,
        "the kernel vxlan devices sent {kernel_tx} packets during {PINGS} pings: the XDP path \
         should carry them\n{}",
        f.diagnostics(&lab)
    );
    let stats = lab.stats(h1);
    assert!(
        stats.reason("kernel-fallback") + stats.reason("bridge-refresh") > 0,
        "no frame was passed to the kernel (ARP, refresh): {stats:?}"
    );
}

#[test]
fn withdrawing_a_workload_or_a_host_removes_its_entries_everywhere() {
    if skip() {
        return;
    }
    let lab = Lab::new("evpn withdraw");
    let mut f = fabric(&lab, 3, Peering::RouteReflector);
    converge(&lab, &f);

    // A workload goes: its port leaves (the container's veth is deleted).
    let w2 = f.workloads[1].clone();
    f.hosts[1].ip(&format!("link del {}", w2.port));
    f.wait_gone_everywhere(&lab, 1, &w2.mac);
    f.wait_entry(&lab, 1, &w2.mac, "no entry (its port is gone)", |e| {
        e.is_none()
    });
    let ports = lab.vtep_ok(&f.hosts[1], "port show");
    assert!(
        !ports.contains(&w2.port),
        "{} is still an access port on h2:\n{ports}",
        w2.port
    );
    // Nothing else went with it.
    f.wait_everywhere(&lab, 0);
    f.wait_everywhere(&lab, 2);

    // A whole host goes: its BGP speaker stops; the others withdraw its
    // routes (type-2 and type-3).
    let w3 = f.workloads[2].clone();
    f.frr[2].stop();
    f.wait_gone_everywhere(&lab, 2, &w3.mac);
    let (h1_ip, h2_ip) = (f.ip(0).to_owned(), f.ip(1).to_owned());
    f.wait_flood_list(&lab, 0, &[&h2_ip]);
    f.wait_flood_list(&lab, 1, &[&h1_ip]);
    // h1's workload is still known on h2.
    f.wait_entry(&lab, 1, &f.workloads[0].mac, "still behind h1", |e| {
        e.is_some_and(|e| e.dst.as_deref() == Some(h1_ip.as_str()))
    });
}

#[test]
fn restarting_frr_or_vtep_converges_again() {
    if skip() {
        return;
    }
    let lab = Lab::new("evpn restart");
    let mut f = fabric(&lab, 3, Peering::FullMesh);
    converge(&lab, &f);

    // FRR restarts on h2: its routes are withdrawn and come back; h2's
    // kernel FDB is emptied and filled again; vtep follows both ways.
    f.frr[1].stop();
    f.wait_gone_everywhere(&lab, 1, &f.workloads[1].mac.clone());
    f.frr[1].start();
    for fr in &f.frr {
        fr.wait_established(BGP_UP);
    }
    for i in 0..3 {
        f.wait_everywhere(&lab, i);
    }
    let others: Vec<&str> = [0, 2].iter().map(|&j| f.ip(j)).collect();
    f.wait_flood_list(&lab, 1, &others);
    lab.assert_ping(&f.workloads[1], &f.workloads[0].ip);

    // vtep stops on h1; meanwhile a workload leaves h3 and another arrives
    // there. The next vtep adopts its pinned maps and resyncs them.
    f.daemons[0].stop();
    let w3 = f.workloads[2].clone();
    f.hosts[2].ip(&format!("link del {}", w3.port));
    let cidr = format!("{}.30/24", tenant_net(1));
    let newcomer = lab.kernel_workload(&f.hosts[2], VNI, (1, 2), &mac(3, 1, 2), &cidr);
    lab.assert_ping(&newcomer, &f.workloads[1].ip);
    let started = Instant::now();
    f.daemons[0] = lab.start_vtep(&f.hosts[0], vtep_config(&f.hosts[0]));
    let h3 = f.ip(2).to_owned();
    f.wait_entry(
        &lab,
        0,
        &newcomer.mac,
        "the newcomer, mirrored at start",
        |e| e.is_some_and(|e| e.is_followed() && e.dst.as_deref() == Some(&h3)),
    );
    f.wait_entry(
        &lab,
        0,
        &w3.mac,
        "no entry (left while vtep was down)",
        |e| e.is_none(),
    );
    eprintln!(
        "vtep on h1 converged {:?} after its start",
        started.elapsed()
    );
    lab.assert_ping(&f.workloads[0], &newcomer.ip);
    assert!(
        f.daemons[0].log().contains("follow: resync (start)"),
        "no resync at start in the log:\n{}",
        f.daemons[0].log()
    );
}
