//! `cargo xtask demo --evpn`: vtep in front of hosts that run BGP EVPN with
//! FRR, step by step.
//!
//! Three hosts on one underlay switch. Each has `vxlan100` in bridge `br100`
//! set up as FRR's EVPN documentation says, a workload on the bridge, and
//! its own FRR (zebra + bgpd, iBGP, `l2vpn evpn`, host 1 reflecting routes).
//! EVPN fills each kernel's FDB; vtep on each host follows it (`[follow]`)
//! and forwards on its XDP path what the kernel's tables know.

use std::time::Duration;

use vtep_tests::lab::{self, Frr, Host, Lab, Peering, Run, VtepConfig};

const VNI: u32 = 100;
const VXLAN: &str = "vxlan100";

fn section(title: &str) {
    println!("\n==> {title}\n");
}

/// Prints a command's output; notes a surprise unless it ended as `ok` says.
fn show(surprises: &mut Vec<String>, run: &Run, ok: bool) {
    for text in [&run.stdout, &run.stderr] {
        if !text.trim().is_empty() {
            println!("{}", text.trim_end());
        }
    }
    match (ok, run.success()) {
        (true, false) => surprises.push(format!("`{}` failed ({})", run.line, run.status)),
        (false, true) => surprises.push(format!("`{}` succeeded but must fail", run.line)),
        (false, false) => println!("(fails, as it must)"),
        (true, true) => {}
    }
}

/// Prints FRR's answer to `command` on one host.
fn vtysh(surprises: &mut Vec<String>, frr: &Frr, command: &str) {
    let run = frr.vtysh(command);
    show(surprises, &run, true);
}

/// Polls until `cond` holds; notes a surprise saying `what` otherwise.
fn wait(surprises: &mut Vec<String>, what: &str, cond: impl FnMut() -> bool) {
    let held = lab::quietly(|| lab::wait_until(Duration::from_secs(15), cond));
    if held {
        println!("({what})");
    } else {
        surprises.push(format!("not within 15 s: {what}"));
    }
}

pub fn walk_through() -> Vec<String> {
    let mut s = Vec::new();

    section("1. Three hosts: vxlan100 in br100 as FRR's EVPN documentation says, a workload each");
    let lab = Lab::new("demo evpn");
    let hosts: Vec<Host> = (1..=3).map(|n| lab.evpn_host(n, &[VNI])).collect();
    let workloads = lab.evpn_workloads(&hosts, VNI);

    section("2. FRR on each host: zebra and bgpd, iBGP with h1 as route reflector");
    let mut frr = lab.start_evpn_peering(&hosts, Peering::RouteReflector);
    for f in &frr {
        f.wait_established(Duration::from_secs(30));
    }
    vtysh(&mut s, &frr[0], "show bgp l2vpn evpn summary");

    section("3. vtep on each host, following vxlan100 (local address and port from the device)");
    let config = |h: &Host| {
        VtepConfig::new(&h.underlay_ip)
            .local_from_link()
            .follow([VXLAN])
    };
    println!("{}", config(&hosts[0]));
    let daemons: Vec<_> = hosts.iter().map(|h| lab.start_vtep(h, config(h))).collect();
    show(&mut s, &lab.vtep(&hosts[0], "vni show"), true);

    section("4. EVPN type-3 routes: each kernel's flood list, mirrored by vtep");
    wait(&mut s, "h1 floods to h2 and h3", || {
        lab.fdb(&hosts[0], Some(VNI))
            .iter()
            .filter(|e| e.is_flood() && e.is_followed())
            .count()
            == 2
    });
    show(
        &mut s,
        &hosts[0].exec(&format!("bridge fdb show dev {VXLAN}")),
        true,
    );
    show(&mut s, &lab.vtep(&hosts[0], "fdb show"), true);

    section("5. A ping: the bridges learn the workloads, EVPN type-2 routes carry them");
    let ping = workloads[0].exec(&format!("ping -n -c 3 -i 0.2 -w 5 {}", workloads[1].ip));
    show(&mut s, &ping, true);
    let w1 = workloads[0].mac.clone();
    wait(&mut s, "h3 has w1's MAC behind h1", || {
        lab.fdb_entry(&hosts[2], VNI, &w1)
            .is_some_and(|e| e.dst.as_deref() == Some(hosts[0].underlay_ip.as_str()))
    });
    vtysh(&mut s, &frr[2], &format!("show evpn mac vni {VNI}"));
    show(&mut s, &lab.vtep(&hosts[2], "fdb show"), true);

    section("6. Traffic between hosts takes vtep's XDP path; the kernel's vxlan device idles");
    let before = hosts[0].link_stats(VXLAN).tx_packets;
    let flood = workloads[0].exec(&format!(
        "ping -n -q -c 500 -i 0.005 -w 20 {}",
        workloads[1].ip
    ));
    show(&mut s, &flood, true);
    show(&mut s, &lab.vtep(&hosts[0], "stats"), true);
    let kernel = hosts[0].link_stats(VXLAN).tx_packets - before;
    println!(
        "the kernel's {VXLAN} on h1 sent {kernel} packets meanwhile (vtep passes it one frame per MAC per second, so the bridge keeps its entries)"
    );

    section("7. What EVPN wrote belongs to the kernel: the CLI refuses to change it");
    let w2 = workloads[1].mac.clone();
    show(
        &mut s,
        &lab.vtep(&hosts[0], &format!("fdb del {w2} vni {VNI}")),
        false,
    );

    section("8. A workload goes (its veth is deleted on h2): EVPN withdraws it everywhere");
    hosts[1].ip(&format!("link del {}", workloads[1].port));
    wait(&mut s, "h1 and h3 dropped w2's MAC", || {
        [0, 2]
            .iter()
            .all(|&i| lab.fdb_entry(&hosts[i], VNI, &w2).is_none())
    });
    show(&mut s, &lab.vtep(&hosts[0], "fdb show"), true);

    section("9. A host goes (FRR stops on h3): its routes are withdrawn, vtep follows");
    frr[2].stop();
    let h3 = hosts[2].underlay_ip.clone();
    wait(&mut s, "h1 no longer floods to h3", || {
        !lab.fdb(&hosts[0], Some(VNI))
            .iter()
            .any(|e| e.dst.as_deref() == Some(h3.as_str()))
    });
    show(&mut s, &lab.vtep(&hosts[0], "fdb show"), true);

    section("10. Teardown: stop vtep and FRR, vtep down, delete the namespaces");
    drop(daemons);
    drop(frr);
    drop(lab);
    s
}
