//! `cargo xtask demo`: vtep in a namespace lab, step by step, showing every
//! command the lab runs and the output of the interesting ones.
//!
//! Three hosts run vtep, a fourth switches with the Linux vxlan driver, all on
//! one underlay switch. Tenant A (VNI 100) has a workload on each host; tenant
//! B (VNI 200) reuses tenant A's MACs and addresses on the three vtep hosts.
//! The vtep hosts are dual-stack (198.18.0.N and 2001:db8::N): tenant C
//! (VNI 300) crosses the IPv6 underlay between h1 and h2, and tenant D
//! (VNI 400) has no flood list at all but the multicast group 239.1.1.1,
//! which h4's kernel vxlan device (`group 239.1.1.1 dev uplink`) joins too.

use std::thread::sleep;
use std::time::Duration;

use anyhow::bail;
use vtep_tests::lab::{
    self, GROUP4, Host, Lab, OVERLAY_MTU, OVERLAY6_MTU, Run, UPLINK, VXLAN_PORT, VniConfig,
    VtepConfig, Workload, mac, tenant_net,
};

use crate::cmd::{self, cargo};
use crate::setup;

const VNI_A: u32 = 100;
const VNI_B: u32 = 200;
/// Tenant C: over the IPv6 underlay, h1 and h2.
const VNI_C: u32 = 300;
/// Tenant D: multicast group mode, h1, h2 and h4 (kernel).
const VNI_D: u32 = 400;

fn section(title: &str) {
    println!("\n==> {title}\n");
}

/// Collects what did not go as the demo says it should.
#[derive(Default)]
struct Demo {
    surprises: Vec<String>,
}

impl Demo {
    /// Prints a command's output; notes a surprise if it did not end as `expected` says.
    fn show(&mut self, run: &Run, expected: Expect) {
        for text in [&run.stdout, &run.stderr] {
            if !text.trim().is_empty() {
                println!("{}", text.trim_end());
            }
        }
        match (expected, run.success()) {
            (Expect::Success, true) => {}
            (Expect::Failure, false) => println!("(fails, as it must)"),
            (Expect::Failure, true) => {
                self.surprises
                    .push(format!("`{}` succeeded but must fail", run.line));
            }
            (Expect::Success, false) => {
                self.surprises
                    .push(format!("`{}` failed ({})", run.line, run.status));
            }
        }
    }

    /// Pings `dst` from `from` three times, showing ping's report.
    fn ping(&mut self, from: &Workload, dst: &str, expected: Expect) {
        let ping = from.exec(&format!("ping -n -c 3 -i 0.2 -w 5 {dst}"));
        self.show(&ping, expected);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Success,
    Failure,
}

#[derive(clap::Args)]
pub struct Options {
    /// The BGP EVPN walk-through instead: three hosts running FRR (zebra,
    /// bgpd), vtep following what EVPN writes into their kernels.
    #[arg(long)]
    evpn: bool,
    /// vtep's metrics instead: the gateways serve /metrics, the
    /// distribution's Prometheus scrapes them inside the lab while traffic
    /// flows, and a headless Chromium screenshots its graph page into
    /// docs/img/metrics-*.png (installs chromium first if it is missing).
    #[arg(long, conflicts_with = "evpn")]
    metrics: bool,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    cmd::ensure_root()?;
    setup::ensure()?;
    if options.metrics {
        setup::ensure_metrics()?;
    }
    section("build vtep (release)");
    cmd::run(cargo().args(["build", "--release", "-p", "vtep"]))?;
    // SAFETY: xtask has started no thread (only child processes) so far.
    unsafe { std::env::set_var("VTEP_BIN", cmd::vtep_bin()) };
    lab::set_trace(true);
    let surprises = if options.evpn {
        crate::demo_evpn::walk_through()
    } else if options.metrics {
        crate::demo_metrics::walk_through()?
    } else {
        walk_through()
    };
    if !surprises.is_empty() {
        bail!(
            "the demo did not go as described:\n  {}",
            surprises.join("\n  ")
        );
    }
    println!("\ndemo finished; the lab is gone");
    Ok(())
}

/// Workload 1 of `tenant` on `host`, with MAC `mac(host, 1, 1)` and address
/// `192.0.2.<host>` whatever the tenant: tenants A and B use the same ones.
fn tenant_workload(lab: &Lab, host: &Host, tenant: u8) -> Workload {
    tenant_workload_mtu(lab, host, tenant, OVERLAY_MTU)
}

/// Like [`tenant_workload`], with MTU `mtu` (1430 over the IPv6 underlay).
fn tenant_workload_mtu(lab: &Lab, host: &Host, tenant: u8, mtu: u32) -> Workload {
    let cidr = format!("{}.{}/24", tenant_net(1), host.n);
    lab.workload_mtu(host, (tenant, 1), &mac(host.n, 1, 1), &cidr, mtu)
}

/// vtep's config on `host` (dual-stack): tenant A floods to the other vtep
/// hosts and the kernel-vxlan host, tenant B to the other vtep hosts only,
/// tenant C (if `port_c`) to `peer_c`'s IPv6 address, tenant D (if
/// `port_d`) to the group alone.
fn config(
    host: &Host,
    vtep_peers: [&Host; 2],
    kernel: &Host,
    ports: [&Workload; 2],
    (port_c, peer_c): (Option<&Workload>, &Host),
    port_d: Option<&Workload>,
) -> VtepConfig {
    let flood_b = vtep_peers.map(|p| &p.underlay_ip);
    let flood_a = flood_b.into_iter().chain([&kernel.underlay_ip]);
    let mut config = VtepConfig::new(&host.underlay_ip)
        .also_local(&host.underlay_ip6())
        .vni(VniConfig::new(VNI_A).port(&ports[0].port).flood(flood_a))
        .vni(VniConfig::new(VNI_B).port(&ports[1].port).flood(flood_b));
    if let Some(c) = port_c {
        config = config.vni(
            VniConfig::new(VNI_C)
                .port(&c.port)
                .flood([peer_c.underlay_ip6()]),
        );
    }
    if let Some(d) = port_d {
        config = config.vni(VniConfig::new(VNI_D).port(&d.port).group(GROUP4));
    }
    config
}

fn walk_through() -> Vec<String> {
    let mut demo = Demo::default();

    section(
        "1. The lab: an underlay switch (IPv4 and IPv6), vtep on h1, h2 and h3, Linux vxlan on h4",
    );
    let lab = Lab::new("demo");
    let (h1, h2, h3) = (lab.host(1), lab.host(2), lab.host(3));
    for h in [&h1, &h2, &h3] {
        h.enable_ipv6();
    }
    let vteps = [&h1, &h2, &h3].map(|h| h.underlay_ip.as_str());
    let h4 = lab.kernel_vxlan_host(4, &[VNI_A], &vteps);
    // Tenant D on h4: the kernel's group mode, no flood list.
    h4.add_vxlan_bridge_raw(
        VNI_D,
        &format!(
            "group {GROUP4} dev {UPLINK} local {} dstport {VXLAN_PORT}",
            h4.underlay_ip
        ),
        OVERLAY_MTU,
    );
    h4.ip(&format!("link set br{VNI_D} up"));
    let [a1, a2, a3] = [&h1, &h2, &h3].map(|h| tenant_workload(&lab, h, 1));
    let a4 = lab.kernel_workload(&h4, VNI_A, (1, 1), &mac(4, 1, 1), "192.0.2.4/24");
    let [b1, b2, b3] = [&h1, &h2, &h3].map(|h| tenant_workload(&lab, h, 2));
    let [c1, c2] = [&h1, &h2].map(|h| tenant_workload_mtu(&lab, h, 3, OVERLAY6_MTU));
    let [g1, g2] = [&h1, &h2].map(|h| tenant_workload(&lab, h, 4));
    let g4 = lab.kernel_workload(&h4, VNI_D, (4, 1), &mac(4, 1, 1), "192.0.2.4/24");

    section("2. vtep's configuration on h1");
    let config1 = config(
        &h1,
        [&h2, &h3],
        &h4,
        [&a1, &b1],
        (Some(&c1), &h2),
        Some(&g1),
    );
    let config2 = config(
        &h2,
        [&h1, &h3],
        &h4,
        [&a2, &b2],
        (Some(&c2), &h1),
        Some(&g2),
    );
    let config3 = config(&h3, [&h1, &h2], &h4, [&a3, &b3], (None, &h1), None);
    println!("{config1}");

    section("3. Start vtep on h1, h2 and h3");
    let mut d1 = lab.start_vtep(&h1, &config1);
    let d2 = lab.start_vtep(&h2, &config2);
    let d3 = lab.start_vtep(&h3, &config3);
    demo.show(&lab.vtep(&h1, "vni show"), Expect::Success);

    section("4. Ping across the overlay: ARP is flooded, then the MACs are learned");
    demo.ping(&a1, &a2.ip, Expect::Success);
    demo.ping(&a1, &a3.ip, Expect::Success);
    demo.ping(&a2, &a3.ip, Expect::Success);

    section("5. h1's forwarding database");
    demo.show(&lab.vtep(&h1, "fdb show"), Expect::Success);

    section("6. Interoperating with the Linux vxlan driver on h4");
    demo.ping(&a1, &a4.ip, Expect::Success);
    demo.show(
        &h4.exec(&format!("bridge fdb show br br{VNI_A}")),
        Expect::Success,
    );

    section("7. Tenant B (VNI 200): tenant A's MACs and addresses, isolated");
    demo.ping(&b1, &b2.ip, Expect::Success);
    demo.ping(&b1, &b3.ip, Expect::Success);
    // a4's address exists only in tenant A (on h4).
    demo.ping(&b1, &a4.ip, Expect::Failure);

    section("8. Tenant C (VNI 300) over the IPv6 underlay: inner MTU 1430 = 1500 - 70");
    demo.ping(&c1, &c2.ip, Expect::Success);
    let full_size = c1.exec(&format!(
        "ping -n -M do -s {} -c 3 -i 0.2 -w 5 {}",
        OVERLAY6_MTU - 28,
        c2.ip
    ));
    demo.show(&full_size, Expect::Success);
    demo.show(
        &lab.vtep(&h1, &format!("fdb show vni {VNI_C}")),
        Expect::Success,
    );

    section(
        "9. Tenant D (VNI 400): no flood list, the multicast group 239.1.1.1 (h4: Linux vxlan)",
    );
    demo.show(
        &h1.exec(&format!("ip maddr show dev {UPLINK}")),
        Expect::Success,
    );
    demo.ping(&g1, &g4.ip, Expect::Success);
    demo.ping(&g1, &g2.ip, Expect::Success);
    demo.show(
        &lab.vtep(&h1, &format!("fdb show vni {VNI_D}")),
        Expect::Success,
    );
    demo.show(
        &h4.exec(&format!("bridge fdb show dev vxlan{VNI_D}")),
        Expect::Success,
    );

    section("10. A static entry from the CLI");
    let static_mac = mac(0xee, 1, 1);
    let add = format!("fdb add {static_mac} vni {VNI_A} dst {}", h2.underlay_ip);
    demo.show(&lab.vtep(&h1, &add), Expect::Success);
    demo.show(
        &lab.vtep(&h1, &format!("fdb show vni {VNI_A}")),
        Expect::Success,
    );

    section("11. TCP across the overlay (workload MTU 1450 = underlay 1500 - 50 of VXLAN)");
    let iperf = lab.iperf(&a1, &a2, 3);
    println!(
        "{} bytes in 3 s: {:.0} Mbit/s, {} retransmits",
        iperf.received_bytes,
        iperf.bits_per_second / 1e6,
        iperf.retransmits
    );

    section("12. Restart vtep on h1 under traffic: the datapath keeps forwarding");
    let mut pinger = a1.spawn(&format!("ping -n -i 0.05 {}", a2.ip));
    sleep(Duration::from_secs(1));
    d1.stop();
    println!("vtep run on h1 stopped; pinging for 1 s without it");
    sleep(Duration::from_secs(1));
    d1 = lab.start_vtep(&h1, &config1);
    sleep(Duration::from_secs(1));
    pinger.interrupt();
    let output = pinger.output();
    let summary: Vec<&str> = output
        .lines()
        .skip_while(|l| !l.starts_with("---"))
        .collect();
    println!("{}", summary.join("\n"));
    demo.show(
        &lab.vtep(&h1, &format!("fdb show vni {VNI_A}")),
        Expect::Success,
    );

    section("13. h1's counters");
    demo.show(&lab.vtep(&h1, "stats"), Expect::Success);

    section("14. Teardown: stop the daemons, vtep down, delete the namespaces");
    drop((d1, d2, d3));
    drop(lab);
    demo.surprises
}
