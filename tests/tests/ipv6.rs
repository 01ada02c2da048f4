//! The IPv6 underlay: vtep at 2001:db8::1 against the Linux vxlan driver
//! (`ip link add vxlan100 type vxlan id 100 local 2001:db8::2 dstport 4789`)
//! both ways, full-size inner frames, learning on both sides, zero UDP
//! checksums as `udp6zerocsumtx`/`udp6zerocsumrx` allow them, a dual-stack
//! vtep with a peer of each family, and TCP between vtep hosts.
//!
//! Workloads have MTU 1430 (`OVERLAY6_MTU`): inner MTU = underlay MTU − 70,
//! the 70 bytes being the outer IPv6 (40), UDP (8) and VXLAN (8) headers plus
//! the inner Ethernet header (14).

use vtep_tests::lab::{
    Host, Interop6, Lab, OVERLAY_MTU, OVERLAY6_MTU, UNDERLAY_MTU, VXLAN_PORT, VXLAN6_OVERHEAD,
    VniConfig, VtepConfig, Workload, mac, tenant_net, underlay_ip6,
};

const VNI: u32 = 100;
/// ICMP echo payload that makes an IPv4 packet of `mtu` bytes (20 IPv4 + 8 ICMP).
fn full_size_payload(mtu: u32) -> u32 {
    mtu - 28
}

/// Panics unless `from` gets 3 replies from `dst` to echo requests of exactly
/// `mtu` bytes with DF set (`ping -M do`): a full-size inner packet, not
/// fragmented on the way.
fn assert_full_size_ping(lab: &Lab, from: &Workload, dst: &str, mtu: u32) {
    let size = full_size_payload(mtu);
    let ping = from.exec(&format!("ping -n -M do -s {size} -c 3 -i 0.2 -w 5 {dst}"));
    assert!(
        ping.success(),
        "{} cannot send {mtu}-byte packets with DF to {dst}: {ping}\n{}",
        from.name,
        lab.diagnostics()
    );
}

/// vtep learned the kernel side's workload behind 2001:db8::2, the kernel's
/// vxlan device learned vtep's behind 2001:db8::1.
fn assert_learned_both_ways(lab: &Lab, i: &Interop6) {
    let entry = lab.fdb_entry(&i.vtep_host, VNI, &i.on_kernel.mac);
    assert!(
        entry
            .as_ref()
            .is_some_and(|e| e.is_learned()
                && e.dst.as_deref() == Some(i.kernel_host.underlay_ip6().as_str())),
        "vtep did not learn {} behind {}: {entry:?}\n{}",
        i.on_kernel.mac,
        i.kernel_host.underlay_ip6(),
        lab.diagnostics()
    );
    let learned = i.kernel_host.vxlan_fdb_dst(VNI, &i.on_vtep.mac);
    assert_eq!(
        learned.as_deref(),
        Some(i.vtep_host.underlay_ip6().as_str()),
        "the kernel's vxlan{VNI} did not learn {} behind vtep's IPv6 address:\n{}",
        i.on_vtep.mac,
        i.kernel_host.bridge(&format!("fdb show dev vxlan{VNI}"))
    );
}

#[test]
fn vtep_host_reaches_kernel_vxlan_host_over_ipv6() {
    let lab = Lab::new("ipv6 interop vtep first");
    let i = lab.interop6(VNI, "", |c| c);
    assert_eq!(OVERLAY6_MTU, UNDERLAY_MTU - VXLAN6_OVERHEAD);
    lab.assert_ping(&i.on_vtep, &i.on_kernel.ip);
    assert_learned_both_ways(&lab, &i);
    assert_full_size_ping(&lab, &i.on_vtep, &i.on_kernel.ip, OVERLAY6_MTU);
    let stats = lab.stats(&i.vtep_host);
    assert_eq!(
        stats.reason("mtu-exceeded"),
        0,
        "a {OVERLAY6_MTU}-byte inner packet must fit a {UNDERLAY_MTU}-byte IPv6 underlay\n{}",
        lab.diagnostics()
    );
}

#[test]
fn kernel_vxlan_host_reaches_vtep_host_over_ipv6() {
    let lab = Lab::new("ipv6 interop kernel first");
    let i = lab.interop6(VNI, "", |c| c);
    lab.assert_ping(&i.on_kernel, &i.on_vtep.ip);
    assert_learned_both_ways(&lab, &i);
    assert_full_size_ping(&lab, &i.on_kernel, &i.on_vtep.ip, OVERLAY6_MTU);
}

/// The kernel sends zero IPv6 UDP checksums (`udp6zerocsumtx`) and takes
/// them (`udp6zerocsumrx`); vtep with `udp6_zero_csum_rx` takes them, and
/// with `udp6_zero_csum_tx` sends them, and the kernel takes those.
#[test]
fn zero_udp6_checksums_interoperate_where_allowed() {
    let lab = Lab::new("ipv6 zero checksums allowed");
    let i = lab.interop6(VNI, "udp6zerocsumtx udp6zerocsumrx", |mut c| {
        c.underlay.udp6_zero_csum_rx = Some(true);
        c.underlay.udp6_zero_csum_tx = Some(true);
        c
    });
    let mut capture = i.kernel_host.spawn_as(
        "tcpdump",
        &format!(
            "tcpdump -nn -vv -l -i uplink -c 2 ip6 and udp dst port {VXLAN_PORT} and src host {}",
            i.vtep_host.underlay_ip6()
        ),
    );
    let started = vtep_tests::lab::wait_until(std::time::Duration::from_secs(5), || {
        capture.output().contains("listening on")
    });
    assert!(started, "tcpdump did not start: {}", capture.output());
    lab.assert_ping(&i.on_kernel, &i.on_vtep.ip);
    lab.assert_ping(&i.on_vtep, &i.on_kernel.ip);
    let stats = lab.stats(&i.vtep_host);
    assert_eq!(
        stats.reason("udp6-zero-csum"),
        0,
        "udp6_zero_csum_rx is set, yet zero checksums were refused\n{}",
        lab.diagnostics()
    );
    let captured = vtep_tests::lab::wait_until(std::time::Duration::from_secs(5), || {
        capture.exited().is_some()
    });
    let out = capture.output();
    assert!(
        captured,
        "tcpdump saw fewer than 2 packets from vtep:\n{out}"
    );
    // tcpdump flags a zero IPv6 UDP checksum as `[bad udp cksum 0x0000 -> …]`.
    let zero = out
        .lines()
        .filter(|l| l.contains(&format!(".{VXLAN_PORT}: ")))
        .filter(|l| l.contains("cksum 0x0000"))
        .count();
    assert_eq!(
        zero, 2,
        "vtep sent IPv6 UDP checksums despite udp6_zero_csum_tx:\n{out}"
    );
}

/// Without `udp6_zero_csum_rx`, vtep refuses the kernel's zero-checksum
/// packets, as the kernel's own UDP layer does, and counts them.
#[test]
fn zero_udp6_checksums_are_refused_by_default() {
    let lab = Lab::new("ipv6 zero checksums refused");
    let i = lab.interop6(VNI, "udp6zerocsumtx", |c| c);
    lab.assert_no_ping(&i.on_kernel, &i.on_vtep.ip);
    let refused = lab.stats(&i.vtep_host).reason("udp6-zero-csum");
    assert!(
        refused > 0,
        "zero-checksum VXLAN over IPv6 was not counted under udp6-zero-csum\n{}",
        lab.diagnostics()
    );
    assert!(
        lab.fdb_entry(&i.vtep_host, VNI, &i.on_kernel.mac).is_none(),
        "vtep learned from a packet it must refuse\n{}",
        lab.diagnostics()
    );
}

/// vtep at 198.18.0.1 and 2001:db8::1 floods VNI 100 to a kernel host over
/// IPv4 (198.18.0.2) and one over IPv6 (2001:db8::3): both receive the
/// flooded ARP request, both workloads answer, and vtep learns each behind
/// the address of its family.
#[test]
fn dual_stack_vtep_reaches_a_peer_of_each_family() {
    let lab = Lab::new("ipv6 dual stack");
    let h1 = lab.host(1);
    h1.enable_ipv6();
    let v4_peer = lab.kernel_vxlan_host(2, &[VNI], &[&h1.underlay_ip]);
    let v6_args = format!("local {} dstport {VXLAN_PORT}", underlay_ip6(3));
    let v6_peer = lab.kernel_vxlan_host_raw(3, VNI, &v6_args, OVERLAY6_MTU, &[&h1.underlay_ip6()]);
    let net = tenant_net(1);
    let w1 = lab.workload_mtu(
        &h1,
        (1, 1),
        &mac(1, 1, 1),
        &format!("{net}.1/24"),
        OVERLAY6_MTU,
    );
    let w2 = lab.kernel_workload_mtu(
        &v4_peer,
        VNI,
        (1, 1),
        (&mac(2, 1, 1), &format!("{net}.2/24")),
        OVERLAY_MTU,
    );
    let w3 = lab.kernel_workload_mtu(
        &v6_peer,
        VNI,
        (1, 1),
        (&mac(3, 1, 1), &format!("{net}.3/24")),
        OVERLAY6_MTU,
    );
    let config = VtepConfig::new(&h1.underlay_ip)
        .also_local(&h1.underlay_ip6())
        .vni(
            VniConfig::new(VNI)
                .port(&w1.port)
                .flood([v4_peer.underlay_ip.clone(), v6_peer.underlay_ip6()]),
        );
    let _daemon = lab.start_vtep(&h1, &config);

    // One broadcast from w1 (the ARP request for w2) must reach both peers.
    let before = [&v4_peer, &v6_peer].map(|h| h.link_stats(&format!("vxlan{VNI}")).rx_packets);
    lab.assert_ping(&w1, &w2.ip);
    let after = [&v4_peer, &v6_peer].map(|h| h.link_stats(&format!("vxlan{VNI}")).rx_packets);
    for ((peer, b), a) in [&v4_peer, &v6_peer].iter().zip(before).zip(after) {
        assert!(
            a > b,
            "the flooded ARP request did not reach {} ({b} -> {a} packets on vxlan{VNI})\n{}",
            peer.name,
            lab.diagnostics()
        );
    }
    lab.assert_ping(&w1, &w3.ip);
    lab.assert_ping(&w3, &w1.ip);
    lab.assert_ping(&w2, &w1.ip);
    for (w, dst) in [
        (&w2, v4_peer.underlay_ip.clone()),
        (&w3, v6_peer.underlay_ip6()),
    ] {
        let entry = lab.fdb_entry(&h1, VNI, &w.mac);
        assert!(
            entry
                .as_ref()
                .is_some_and(|e| e.dst.as_deref() == Some(dst.as_str())),
            "vtep did not learn {} behind {dst}: {entry:?}\n{}",
            w.mac,
            lab.diagnostics()
        );
    }
    assert_eq!(
        v6_peer.vxlan_fdb_dst(VNI, &w1.mac).as_deref(),
        Some(h1.underlay_ip6().as_str()),
        "the IPv6 peer did not learn {} behind 2001:db8::1",
        w1.mac
    );
}

/// vtep host `n` of an IPv6-only overlay: 2001:db8::n, workload 192.0.2.n
/// with MTU 1430, flooding to `peers`.
fn v6_gateway(lab: &Lab, n: u8, peers: &[u8]) -> (Host, Workload, VtepConfig) {
    let host = lab.host(n);
    host.enable_ipv6();
    let w = lab.workload_mtu(
        &host,
        (1, 1),
        &mac(n, 1, 1),
        &format!("{}.{n}/24", tenant_net(1)),
        OVERLAY6_MTU,
    );
    let config = VtepConfig::new(&host.underlay_ip6()).vni(
        VniConfig::new(VNI)
            .port(&w.port)
            .flood(peers.iter().map(|&p| underlay_ip6(p))),
    );
    (host, w, config)
}

#[test]
fn tcp_between_vtep_hosts_over_ipv6() {
    let lab = Lab::new("ipv6 iperf");
    let (h1, w1, c1) = v6_gateway(&lab, 1, &[2]);
    let (h2, w2, c2) = v6_gateway(&lab, 2, &[1]);
    let _d1 = lab.start_vtep(&h1, &c1);
    let _d2 = lab.start_vtep(&h2, &c2);
    lab.assert_ping(&w1, &w2.ip);
    assert_full_size_ping(&lab, &w1, &w2.ip, OVERLAY6_MTU);
    for (from, to) in [(&w1, &w2), (&w2, &w1)] {
        let r = lab.iperf(from, to, 3);
        assert!(
            r.sent_bytes > 0 && r.received_bytes > 0,
            "iperf3 {} -> {}: nothing crossed: {r:?}",
            from.name,
            to.name
        );
        eprintln!(
            "iperf3 over IPv6 {} -> {}: {:.0} Mbit/s, {} retransmits",
            from.name,
            to.name,
            r.bits_per_second / 1e6,
            r.retransmits
        );
    }
    let entry = lab.fdb_entry(&h1, VNI, &w2.mac);
    assert!(
        entry
            .as_ref()
            .is_some_and(|e| e.dst.as_deref() == Some(h2.underlay_ip6().as_str())),
        "h1 did not learn {} behind {}: {entry:?}",
        w2.mac,
        h2.underlay_ip6()
    );
}
