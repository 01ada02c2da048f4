//! Multicast group mode: VNIs with a `group` and no flood list, on vtep
//! hosts and on hosts running the Linux vxlan driver
//! (`ip link add vxlan100 type vxlan id 100 group 239.1.1.1 dev uplink
//! dstport 4789`), over one underlay switch; and the membership vtep holds
//! on its uplink.
//!
//! The underlay switch (a Linux bridge) snoops IGMP and MLD, as it does by
//! default. For the IPv4 group it is also the querier (`mcast_querier 1`),
//! so it forwards the group only to the ports whose hosts reported it: the
//! test checks the group is in its multicast database for every host's port,
//! i.e. that vtep's reports got through. The lab's switch has no IPv6
//! address, so it cannot query MLD; with no querier a snooping bridge floods
//! group traffic to every port, and the IPv6 test checks the membership on
//! vtep's uplink instead.

use std::time::Duration;

use vtep_tests::lab::{
    GROUP4, GROUP6, Host, Lab, OVERLAY_MTU, OVERLAY6_MTU, UNDERLAY_BRIDGE, UPLINK, VXLAN_PORT,
    VniConfig, VtepConfig, Workload, mac, tenant_net, underlay_ip, underlay_ip6, wait_until,
};

const VNI: u32 = 100;

/// The family the underlay of one test uses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn group(self) -> &'static str {
        match self {
            Family::V4 => GROUP4,
            Family::V6 => GROUP6,
        }
    }

    fn mtu(self) -> u32 {
        match self {
            Family::V4 => OVERLAY_MTU,
            Family::V6 => OVERLAY6_MTU,
        }
    }

    /// Host `n`'s underlay address of this family.
    fn addr(self, n: u8) -> String {
        match self {
            Family::V4 => underlay_ip(n),
            Family::V6 => underlay_ip6(n),
        }
    }

    fn local(self, host: &Host) -> String {
        self.addr(host.n)
    }
}

/// Hosts 1 and 2 run vtep with `group` for VNI 100 and an empty flood list,
/// host 3 the kernel's vxlan driver in group mode (with learning); one
/// workload each, 192.0.2.N. Field order is drop order.
struct GroupLab {
    _daemons: Vec<vtep_tests::lab::Daemon>,
    workloads: Vec<Workload>,
    hosts: Vec<Host>,
}

fn group_lab(lab: &Lab, family: Family) -> GroupLab {
    let group = family.group();
    let mut hosts: Vec<Host> = (1..=2).map(|n| lab.host(n)).collect();
    let kernel_args = format!(
        "group {group} dev {UPLINK} local {} dstport {VXLAN_PORT}",
        family.addr(3)
    );
    let kernel = lab.kernel_vxlan_host_raw(3, VNI, &kernel_args, family.mtu(), &[]);
    if family == Family::V4 {
        // A querier that asks every second for a while: a report sent
        // before the switch port was up (the kernel host's device joins
        // as it comes up) is answered again within a second.
        lab.underlay_switch().ip(&format!(
            "link set {UNDERLAY_BRIDGE} type bridge mcast_snooping 1 mcast_querier 1 \
             mcast_query_response_interval 100 mcast_startup_query_interval 100 \
             mcast_startup_query_count 15"
        ));
    }
    let net = tenant_net(1);
    let mut workloads: Vec<Workload> = hosts
        .iter()
        .map(|h| {
            if family == Family::V6 {
                h.enable_ipv6();
            }
            lab.workload_mtu(
                h,
                (1, 1),
                &mac(h.n, 1, 1),
                &format!("{net}.{}/24", h.n),
                family.mtu(),
            )
        })
        .collect();
    workloads.push(lab.kernel_workload_mtu(
        &kernel,
        VNI,
        (1, 1),
        (&mac(3, 1, 1), &format!("{net}.3/24")),
        family.mtu(),
    ));
    let daemons = hosts
        .iter()
        .zip(&workloads)
        .map(|(h, w)| {
            let config = VtepConfig::new(&family.local(h))
                .vni(VniConfig::new(VNI).port(&w.port).group(group));
            lab.start_vtep(h, &config)
        })
        .collect();
    hosts.push(kernel);
    GroupLab {
        _daemons: daemons,
        workloads,
        hosts,
    }
}

/// Every pair of workloads pings, in both directions, with nothing but the
/// group to resolve ARP; then every vtep host has learned the others'
/// workloads behind their unicast addresses, the kernel host vtep's, and
/// more pings are not flooded.
fn assert_group_mode(lab: &Lab, g: &GroupLab, family: Family) {
    let group = family.group();
    for (i, from) in g.workloads.iter().enumerate() {
        for to in &g.workloads[i + 1..] {
            lab.assert_ping(from, &to.ip);
            lab.assert_ping(to, &from.ip);
        }
    }
    for vtep_host in &g.hosts[..2] {
        let fdb = lab.fdb(vtep_host, Some(VNI));
        assert!(
            fdb.iter()
                .any(|e| e.is_flood() && e.dst.as_deref() == Some(group)),
            "{}: `vtep fdb show` lists no {} dst {group} entry: {fdb:?}",
            vtep_host.name,
            vtep_tests::lab::FLOOD_MAC
        );
        for (other, w) in g.hosts.iter().zip(&g.workloads) {
            if other.n == vtep_host.n {
                continue;
            }
            let entry = fdb.iter().find(|e| e.mac.eq_ignore_ascii_case(&w.mac));
            assert!(
                entry
                    .is_some_and(|e| e.is_learned()
                        && e.dst.as_deref() == Some(family.local(other).as_str())),
                "{}: {} not learned behind {} (the unicast source of group frames): {entry:?}\n{}",
                vtep_host.name,
                w.mac,
                family.local(other),
                lab.diagnostics()
            );
        }
    }
    let kernel = &g.hosts[2];
    for (h, w) in g.hosts[..2].iter().zip(&g.workloads) {
        assert_eq!(
            kernel.vxlan_fdb_dst(VNI, &w.mac).as_deref(),
            Some(family.local(h).as_str()),
            "the kernel host did not learn {} behind {}:\n{}",
            w.mac,
            family.local(h),
            kernel.bridge(&format!("fdb show dev vxlan{VNI}"))
        );
    }
    // Every MAC is known now: unicast goes VTEP to VTEP, nothing is flooded.
    let flooded = || -> Vec<u64> {
        g.hosts[..2]
            .iter()
            .map(|h| lab.stats(h).vni(VNI).flood_packets)
            .collect()
    };
    let before = flooded();
    for to in &g.workloads[1..] {
        lab.assert_ping(&g.workloads[0], &to.ip);
    }
    assert_eq!(
        flooded(),
        before,
        "known unicast went to the group\n{}",
        lab.diagnostics()
    );
    for h in &g.hosts[..2] {
        let stats = lab.stats(h);
        assert_eq!(
            stats.reason("unknown-group"),
            0,
            "{}: frames to its own group refused\n{}",
            h.name,
            lab.diagnostics()
        );
    }
}

#[test]
fn ipv4_group_with_kernel_vxlan_hosts() {
    let lab = Lab::new("multicast ipv4");
    let g = group_lab(&lab, Family::V4);
    // IGMP reports of every host reached the snooping switch.
    let ports: Vec<String> = g.hosts.iter().map(|h| format!("h{}", h.n)).collect();
    let in_mdb = wait_until(Duration::from_secs(15), || {
        let mdb = lab.underlay_switch().bridge("mdb show");
        ports.iter().all(|p| {
            mdb.lines()
                .any(|l| l.contains(&format!("port {p} ")) && l.contains(GROUP4))
        })
    });
    assert!(
        in_mdb,
        "the switch has not seen every host's report for {GROUP4}:\n{}",
        lab.underlay_switch().bridge("mdb show")
    );
    assert_group_mode(&lab, &g, Family::V4);
}

#[test]
fn ipv6_group_with_kernel_vxlan_hosts() {
    let lab = Lab::new("multicast ipv6");
    let g = group_lab(&lab, Family::V6);
    for h in &g.hosts {
        let groups = h.uplink_groups();
        assert!(
            groups.iter().any(|a| a == GROUP6),
            "{}: uplink not in {GROUP6}: {groups:?}",
            h.name
        );
    }
    assert_group_mode(&lab, &g, Family::V6);
}

/// The groups of a VNI are joined on the uplink while `vtep run` runs, stay
/// joined once it stopped (the datapath keeps forwarding), and are left by
/// `vtep down`.
#[test]
fn group_membership_outlives_the_daemon_until_vtep_down() {
    let lab = Lab::new("multicast membership");
    let h1 = lab.host(1);
    h1.enable_ipv6();
    let config = VtepConfig::new(&h1.underlay_ip)
        .also_local(&h1.underlay_ip6())
        .vni(VniConfig::new(VNI).group(GROUP4))
        .vni(VniConfig::new(VNI + 1).group(GROUP6));
    let before = h1.uplink_groups();
    assert!(
        !before.iter().any(|a| a == GROUP4 || a == GROUP6),
        "the uplink is in a group before vtep ran: {before:?}"
    );
    let has_both = || {
        let groups = h1.uplink_groups();
        groups.iter().any(|a| a == GROUP4) && groups.iter().any(|a| a == GROUP6)
    };
    let mut daemon = lab.start_vtep(&h1, &config);
    assert!(
        wait_until(Duration::from_secs(5), has_both),
        "vtep run did not join {GROUP4} and {GROUP6} on {UPLINK}: {:?}\n{}",
        h1.uplink_groups(),
        lab.diagnostics()
    );
    let igmp = h1.exec_ok("cat /proc/net/igmp");
    assert!(
        igmp.contains("010101EF"),
        "/proc/net/igmp lacks {GROUP4} (010101EF):\n{igmp}"
    );
    daemon.stop();
    assert!(
        has_both(),
        "the daemon stopped and the membership went with it: {:?}",
        h1.uplink_groups()
    );
    lab.vtep_ok(&h1, "down");
    let left = wait_until(Duration::from_secs(5), || {
        let groups = h1.uplink_groups();
        !groups.iter().any(|a| a == GROUP4 || a == GROUP6)
    });
    assert!(
        left,
        "`vtep down` left the uplink in a group: {:?}",
        h1.uplink_groups()
    );
}
