//! The kernel-FDB follower (`[follow]`) without FRR: `bridge fdb` and `ip
//! link` by hand on a host whose vxlan device and bridge vtep mirrors.
//! Adds, replaces and deletes follow within a second; ports follow the
//! bridge; the CLI cannot change what the kernel owns; an overrun of the
//! event socket ends in a full resync. Devices over an IPv6 underlay
//! (`local 2001:db8::1`, IPv6 `dst` entries) and in multicast group mode
//! (`group 239.1.1.1 dev uplink`, the group as the VNI's) are followed too.

use std::time::{Duration, Instant};

use vtep_tests::lab::{
    Daemon, FLOOD_MAC, FdbEntry, GROUP4, Host, Lab, OVERLAY_MTU, OVERLAY6_MTU, UPLINK, VXLAN_PORT,
    VtepConfig, Workload, mac, require_xdp_engine, tenant_net, underlay_ip, underlay_ip6,
    wait_until,
};

const VNI: u32 = 100;
const VXLAN: &str = "vxlan100";
/// The follower's promise: a change in the kernel FDB is in vtep's maps
/// within this.
const FOLLOW_TIME: Duration = Duration::from_secs(1);

/// `[follow]` runs with the XDP engine only (`cargo xtask test` leaves this
/// file out of its AF_XDP pass).
fn skip() -> bool {
    require_xdp_engine();
    false
}

/// h1: `vxlan100` in `br100` (nolearning, as for EVPN) with workload w1,
/// followed by vtep; h2: the kernel's vxlan driver flooding to h1, with w2.
struct Setup {
    h1: Host,
    h2: Host,
    w1: Workload,
    w2: Workload,
}

fn setup(lab: &Lab, config: impl FnOnce(&Host) -> VtepConfig) -> (Setup, Daemon) {
    let h1 = lab.evpn_host(1, &[VNI]);
    let h2 = lab.kernel_vxlan_host(2, &[VNI], &[&h1.underlay_ip]);
    let net = tenant_net(1);
    let w1 = lab.kernel_workload(&h1, VNI, (1, 1), &mac(1, 1, 1), &format!("{net}.1/24"));
    let w2 = lab.kernel_workload(&h2, VNI, (1, 1), &mac(2, 1, 1), &format!("{net}.2/24"));
    let daemon = lab.start_vtep(&h1, config(&h1));
    (Setup { h1, h2, w1, w2 }, daemon)
}

/// Waits up to `timeout` for `mac`'s entry on `host` to satisfy `expected`;
/// how long it took.
fn follows(
    lab: &Lab,
    host: &Host,
    mac: &str,
    what: &str,
    timeout: Duration,
    expected: impl Fn(Option<&FdbEntry>) -> bool,
) -> Duration {
    let started = Instant::now();
    lab.wait_for_entry(host, (VNI, mac), what, timeout, expected);
    let took = started.elapsed();
    eprintln!("{mac}: {what} after {took:?}");
    took
}

fn remote_at(vtep: &str) -> impl Fn(Option<&FdbEntry>) -> bool + '_ {
    move |e| {
        e.is_some_and(|e| e.is_followed() && e.is_extern_learn() && e.dst.as_deref() == Some(vtep))
    }
}

#[test]
fn adds_replaces_and_deletes_follow_within_a_second() {
    if skip() {
        return;
    }
    let lab = Lab::new("follow");
    // underlay.local left out: taken from vxlan100.
    let (s, daemon) = setup(&lab, |h| {
        VtepConfig::new(&h.underlay_ip)
            .local_from_link()
            .follow([VXLAN])
    });
    assert!(
        daemon.log().contains(&format!(
            "underlay.local {}: taken from {VXLAN}",
            s.h1.underlay_ip
        )),
        "{}",
        daemon.log()
    );
    let (h1, h2) = (&s.h1, &s.h2);

    // Flood list: `bridge fdb append 00:00:00:00:00:00`.
    h1.bridge(&format!(
        "fdb append {FLOOD_MAC} dev {VXLAN} dst {}",
        h2.underlay_ip
    ));
    follows(
        &lab,
        h1,
        FLOOD_MAC,
        "a flood-list member",
        FOLLOW_TIME,
        |e| e.is_some_and(|e| e.is_followed() && e.is_flood()),
    );

    // A remote MAC: add, replace, replace back.
    let w2 = &s.w2.mac;
    h1.bridge(&format!("fdb add {w2} dev {VXLAN} dst {}", h2.underlay_ip));
    follows(&lab, h1, w2, "added", FOLLOW_TIME, |e| {
        e.is_some_and(|e| e.is_followed() && e.dst.as_deref() == Some(h2.underlay_ip.as_str()))
    });
    h1.bridge(&format!("fdb replace {w2} dev {VXLAN} dst 198.18.0.3"));
    follows(&lab, h1, w2, "replaced", FOLLOW_TIME, |e| {
        e.is_some_and(|e| e.dst.as_deref() == Some("198.18.0.3"))
    });
    // extern_learn, as zebra writes EVPN type-2 routes.
    h1.bridge(&format!(
        "fdb replace {w2} dev {VXLAN} dst {} extern_learn",
        h2.underlay_ip
    ));
    follows(
        &lab,
        h1,
        w2,
        "replaced back",
        FOLLOW_TIME,
        remote_at(&h2.underlay_ip),
    );

    // Traffic: the bridge learns w1 on its port (a frame vtep passes it),
    // vtep mirrors that and forwards on its XDP path.
    lab.assert_ping(&s.w1, &s.w2.ip);
    follows(
        &lab,
        h1,
        &s.w1.mac,
        "local, behind t1w1",
        FOLLOW_TIME,
        |e| e.is_some_and(|e| e.is_followed() && e.ifname.as_deref() == Some(s.w1.port.as_str())),
    );
    let before = lab.stats(h1).vni(VNI);
    lab.assert_ping(&s.w1, &s.w2.ip);
    let after = lab.stats(h1).vni(VNI);
    assert!(
        after.tx_packets > before.tx_packets && after.rx_packets > before.rx_packets,
        "the pings did not take vtep's XDP path: {before:?} -> {after:?}\n{}",
        lab.diagnostics()
    );

    // What the kernel owns cannot be changed with the CLI.
    for args in [
        format!("fdb del {w2} vni {VNI}"),
        format!("fdb replace {w2} vni {VNI} dst 198.18.0.9"),
        format!("fdb add {} vni {VNI} dst 198.18.0.9", mac(0xee, 1, 1)),
        format!("fdb append {FLOOD_MAC} vni {VNI} dst 198.18.0.9"),
        format!("fdb del {FLOOD_MAC} vni {VNI}"),
        format!("port del {}", s.w1.port),
        format!("vni del {VNI}"),
        format!("vni set {VNI} learning on"),
    ] {
        let run = lab.vtep(h1, &args);
        assert!(
            !run.success() && run.stderr.contains("mirrored from"),
            "`vtep {args}` must be refused, saying the kernel owns it: {run}"
        );
    }
    follows(
        &lab,
        h1,
        w2,
        "unchanged",
        FOLLOW_TIME,
        remote_at(&h2.underlay_ip),
    );

    // Deletes.
    h1.bridge(&format!("fdb del {w2} dev {VXLAN}"));
    follows(&lab, h1, w2, "deleted", FOLLOW_TIME, |e| e.is_none());
    h1.bridge(&format!(
        "fdb del {FLOOD_MAC} dev {VXLAN} dst {}",
        h2.underlay_ip
    ));
    follows(
        &lab,
        h1,
        FLOOD_MAC,
        "flood list emptied",
        FOLLOW_TIME,
        |e| e.is_none(),
    );
    // Without a known destination, the kernel forwards (here: floods to
    // nobody) and vtep counts the frames it passed.
    assert!(lab.stats(h1).reason("kernel-fallback") > 0);
}

#[test]
fn bridge_ports_are_access_ports_while_they_are_in_the_bridge() {
    if skip() {
        return;
    }
    let lab = Lab::new("follow ports");
    let (s, _daemon) = setup(&lab, |h| VtepConfig::new(&h.underlay_ip).follow([VXLAN]));
    let h1 = &s.h1;
    let is_port = |name: &str| {
        let ports: serde_json::Value =
            serde_json::from_str(&lab.vtep_ok(h1, "port show -j")).expect("port show -j");
        ports.as_array().is_some_and(|l| {
            l.iter().any(|p| {
                p["ifname"].as_str() == Some(name) && p["vni"].as_u64() == Some(VNI.into())
            })
        })
    };
    assert!(is_port(&s.w1.port), "{}", lab.diagnostics());
    assert!(!is_port(VXLAN), "the vxlan device is not an access port");

    // A workload joins the bridge.
    let cidr = format!("{}.11/24", tenant_net(1));
    let w = lab.kernel_workload(h1, VNI, (1, 2), &mac(1, 1, 2), &cidr);
    let joined = wait_until(FOLLOW_TIME, || is_port(&w.port));
    assert!(
        joined,
        "{} did not become an access port\n{}",
        w.port,
        lab.diagnostics()
    );
    lab.assert_ping(&w, &s.w1.ip);
    follows(&lab, h1, &w.mac, "local", FOLLOW_TIME, |e| {
        e.is_some_and(|e| e.ifname.as_deref() == Some(w.port.as_str()))
    });
    assert!(h1.has_xdp(&w.port), "no XDP program on {}", w.port);

    // ... and leaves it: no longer vtep's, its entries go.
    h1.ip(&format!("link set {} nomaster", w.port));
    let left = wait_until(FOLLOW_TIME, || !is_port(&w.port));
    assert!(
        left,
        "{} is still an access port\n{}",
        w.port,
        lab.diagnostics()
    );
    follows(&lab, h1, &w.mac, "gone with its port", FOLLOW_TIME, |e| {
        e.is_none()
    });
    assert!(!h1.has_xdp(&w.port), "XDP still on {}", w.port);
}

#[test]
fn an_overrun_of_the_event_socket_ends_in_a_full_resync() {
    if skip() {
        return;
    }
    const N: usize = 2000;
    let lab = Lab::new("follow overrun");
    // A receive buffer of a few events: a batch of thousands overruns it.
    let (s, daemon) = setup(&lab, |h| {
        VtepConfig::new(&h.underlay_ip)
            .follow([VXLAN])
            .follow_rcvbuf(4096)
    });
    let h1 = &s.h1;
    let macs: Vec<String> = (0..N)
        .map(|i| format!("02:00:aa:00:{:02x}:{:02x}", i / 256, i % 256))
        .collect();
    let batch = |verb: &str, tail: &str| {
        let path = lab.dir().join(format!("{verb}.batch"));
        let lines: Vec<String> = macs
            .iter()
            .map(|m| format!("fdb {verb} {m} dev {VXLAN}{tail}"))
            .collect();
        std::fs::write(&path, lines.join("\n") + "\n").expect("write batch");
        h1.bridge(&format!("-batch {}", path.display()));
    };
    let mirrored = || {
        lab.fdb(h1, Some(VNI))
            .iter()
            .filter(|e| e.is_followed() && e.mac.starts_with("02:00:aa"))
            .count()
    };
    let dst = format!(" dst {}", s.h2.underlay_ip);
    let started = Instant::now();
    // The daemon, stopped meanwhile, cannot keep up: the events overrun
    // its socket's buffer for sure.
    daemon.paused(|| batch("add", &dst));
    let all = wait_until(Duration::from_secs(10), || mirrored() == N);
    assert!(
        all,
        "{} of {N} entries mirrored after 10 s\n{}",
        mirrored(),
        lab.diagnostics()
    );
    eprintln!(
        "{N} entries mirrored {:?} after the batch started",
        started.elapsed()
    );
    assert!(
        daemon.log().contains("resync (events lost (ENOBUFS))"),
        "no overrun, or no resync after it:\n{}",
        daemon.log()
    );
    batch("del", "");
    let none = wait_until(Duration::from_secs(10), || mirrored() == 0);
    assert!(none, "{} entries left\n{}", mirrored(), lab.diagnostics());
}

#[test]
fn devices_that_appear_and_go_are_followed() {
    if skip() {
        return;
    }
    let lab = Lab::new("follow devices");
    let h1 = lab.host(1);
    let config = VtepConfig::new(&h1.underlay_ip).follow(["vxlan200", "vxlan300"]);
    let daemon = lab.start_vtep(&h1, config);
    let followed = |vni: u64| {
        let vnis: serde_json::Value =
            serde_json::from_str(&lab.vtep_ok(&h1, "vni show -j")).expect("vni show -j");
        vnis.as_array().is_some_and(|l| {
            l.iter()
                .any(|v| v["vni"].as_u64() == Some(vni) && v["followed"].as_bool() == Some(true))
        })
    };
    assert!(!followed(200));
    h1.ip(&format!(
        "link add vxlan200 type vxlan id 200 local {} dstport 4789 nolearning",
        h1.underlay_ip
    ));
    h1.ip("link set vxlan200 up");
    // The kernel's default port (8472), not the underlay's: not followed.
    h1.ip(&format!(
        "link add vxlan300 type vxlan id 300 local {} dstport 8472 nolearning",
        h1.underlay_ip
    ));
    assert!(
        wait_until(FOLLOW_TIME, || followed(200)),
        "vxlan200 not followed\n{}",
        lab.diagnostics()
    );
    assert!(!followed(300), "vxlan300 uses another port: not followable");
    assert!(
        wait_until(FOLLOW_TIME, || daemon.log().contains("uses UDP port 8472")),
        "no word on vxlan300 in the log:\n{}",
        daemon.log()
    );
    // Outer UDP checksums (the kernel's default), which this underlay does
    // not send: followed, and said in the log.
    assert!(
        wait_until(FOLLOW_TIME, || daemon
            .log()
            .contains("vxlan200 sends outer UDP checksums")),
        "no word on vxlan200's checksums in the log:\n{}",
        daemon.log()
    );
    h1.bridge(&format!(
        "fdb append {FLOOD_MAC} dev vxlan200 dst 198.18.0.2"
    ));
    h1.ip("link del vxlan200");
    assert!(
        wait_until(FOLLOW_TIME, || !followed(200)),
        "VNI 200 still followed after vxlan200 went\n{}",
        lab.diagnostics()
    );
}

/// h1: `vxlan100` over the IPv6 underlay (`local 2001:db8::1`, nolearning)
/// in `br100` with workload w1, followed by vtep, which takes its IPv6
/// local address from the device; h2: the kernel's vxlan driver at
/// 2001:db8::2 flooding to h1, with w2.
fn setup6(lab: &Lab) -> (Setup, Daemon) {
    let args = |n| format!("local {} dstport {VXLAN_PORT} nolearning", underlay_ip6(n));
    let h1 = lab.kernel_vxlan_host_raw(1, VNI, &args(1), OVERLAY6_MTU, &[]);
    let h2 = lab.kernel_vxlan_host_raw(2, VNI, &args(2), OVERLAY6_MTU, &[&underlay_ip6(1)]);
    let net = tenant_net(1);
    let w = |h: &Host| {
        let n = h.n;
        let cidr = format!("{net}.{n}/24");
        lab.kernel_workload_mtu(h, VNI, (1, 1), (&mac(n, 1, 1), &cidr), OVERLAY6_MTU)
    };
    let (w1, w2) = (w(&h1), w(&h2));
    let daemon = lab.start_vtep(
        &h1,
        VtepConfig::new(&h1.underlay_ip6())
            .local_from_link()
            .follow([VXLAN]),
    );
    (Setup { h1, h2, w1, w2 }, daemon)
}

#[test]
fn a_device_over_an_ipv6_underlay_is_followed_with_its_ipv6_entries() {
    if skip() {
        return;
    }
    let lab = Lab::new("follow ipv6");
    let (s, daemon) = setup6(&lab);
    let (h1, h2) = (&s.h1, &s.h2);
    let (local6, remote6) = (h1.underlay_ip6(), h2.underlay_ip6());
    assert!(
        daemon
            .log()
            .contains(&format!("underlay.local {local6}: taken from {VXLAN}")),
        "{}",
        daemon.log()
    );

    h1.bridge(&format!("fdb append {FLOOD_MAC} dev {VXLAN} dst {remote6}"));
    follows(
        &lab,
        h1,
        FLOOD_MAC,
        "an IPv6 flood-list member",
        FOLLOW_TIME,
        |e| {
            e.is_some_and(|e| {
                e.is_followed() && e.is_flood() && e.dst.as_deref() == Some(remote6.as_str())
            })
        },
    );
    let w2 = &s.w2.mac;
    h1.bridge(&format!("fdb add {w2} dev {VXLAN} dst {remote6}"));
    follows(
        &lab,
        h1,
        w2,
        "added",
        FOLLOW_TIME,
        remote_at_followed(&remote6),
    );
    h1.bridge(&format!("fdb replace {w2} dev {VXLAN} dst 2001:db8::3"));
    follows(&lab, h1, w2, "replaced", FOLLOW_TIME, |e| {
        e.is_some_and(|e| e.dst.as_deref() == Some("2001:db8::3"))
    });
    h1.bridge(&format!("fdb replace {w2} dev {VXLAN} dst {remote6}"));
    follows(
        &lab,
        h1,
        w2,
        "replaced back",
        FOLLOW_TIME,
        remote_at_followed(&remote6),
    );

    // `vtep fdb show` says it as `bridge fdb show` does.
    let show = lab.vtep_ok(h1, &format!("fdb show vni {VNI}"));
    assert!(
        show.lines()
            .any(|l| l.starts_with(w2.as_str()) && l.contains(&format!("dst {remote6}"))),
        "`vtep fdb show` does not list {w2} dst {remote6}:\n{show}"
    );

    h1.bridge(&format!("fdb del {w2} dev {VXLAN}"));
    follows(&lab, h1, w2, "deleted", FOLLOW_TIME, |e| e.is_none());
    h1.bridge(&format!("fdb del {FLOOD_MAC} dev {VXLAN} dst {remote6}"));
    follows(
        &lab,
        h1,
        FLOOD_MAC,
        "flood list emptied",
        FOLLOW_TIME,
        |e| e.is_none(),
    );
}

#[test]
fn traffic_of_a_followed_ipv6_device_takes_the_xdp_path() {
    if skip() {
        return;
    }
    let lab = Lab::new("follow ipv6 traffic");
    let (s, _daemon) = setup6(&lab);
    let (h1, h2) = (&s.h1, &s.h2);
    let remote6 = h2.underlay_ip6();
    h1.bridge(&format!("fdb append {FLOOD_MAC} dev {VXLAN} dst {remote6}"));
    h1.bridge(&format!("fdb add {} dev {VXLAN} dst {remote6}", s.w2.mac));
    follows(
        &lab,
        h1,
        &s.w2.mac,
        "added",
        FOLLOW_TIME,
        remote_at_followed(&remote6),
    );
    // The bridge learns w1 on its port from what vtep passes it.
    lab.assert_ping(&s.w1, &s.w2.ip);
    follows(&lab, h1, &s.w1.mac, "local", FOLLOW_TIME, |e| {
        e.is_some_and(|e| e.is_followed() && e.ifname.as_deref() == Some(s.w1.port.as_str()))
    });
    let before = lab.stats(h1).vni(VNI);
    lab.assert_ping(&s.w1, &s.w2.ip);
    let after = lab.stats(h1).vni(VNI);
    assert!(
        after.tx_packets > before.tx_packets && after.rx_packets > before.rx_packets,
        "the pings over IPv6 did not take vtep's XDP path: {before:?} -> {after:?}\n{}",
        lab.diagnostics()
    );
}

#[test]
fn a_group_devices_group_is_the_vnis_group() {
    if skip() {
        return;
    }
    let lab = Lab::new("follow group");
    // h1 learns (group mode needs it: the group carries what is unknown);
    // h2 does not, so its unicast to w1 goes to the group as well.
    let args = |n, extra| {
        format!(
            "group {GROUP4} dev {UPLINK} local {} dstport {VXLAN_PORT}{extra}",
            underlay_ip(n)
        )
    };
    let h1 = lab.kernel_vxlan_host_raw(1, VNI, &args(1, ""), OVERLAY_MTU, &[]);
    let h2 = lab.kernel_vxlan_host_raw(2, VNI, &args(2, " nolearning"), OVERLAY_MTU, &[]);
    let net = tenant_net(1);
    let w1 = lab.kernel_workload(&h1, VNI, (1, 1), &mac(1, 1, 1), &format!("{net}.1/24"));
    let w2 = lab.kernel_workload(&h2, VNI, (1, 1), &mac(2, 1, 1), &format!("{net}.2/24"));
    let daemon = lab.start_vtep(&h1, VtepConfig::new(&h1.underlay_ip).follow([VXLAN]));
    assert!(
        wait_until(FOLLOW_TIME, || daemon
            .log()
            .contains(&format!("VNI {VNI}: group {GROUP4}"))),
        "the group was not mirrored:\n{}",
        daemon.log()
    );
    // The VNI's group, not a flood-list member: `vni show` has it as the
    // group and an empty flood list; `fdb show` lists it once, as
    // `bridge fdb show` lists a group device's group.
    let vnis: serde_json::Value =
        serde_json::from_str(&lab.vtep_ok(&h1, "vni show -j")).expect("vni show -j");
    let vni = vnis
        .as_array()
        .and_then(|a| a.iter().find(|v| v["vni"] == VNI))
        .unwrap_or_else(|| panic!("VNI {VNI} not in vni show: {vnis}"));
    assert_eq!(
        vni["group"],
        GROUP4,
        "the VNI's group\n{}",
        lab.diagnostics()
    );
    assert_eq!(
        vni["flood"],
        serde_json::json!([]),
        "the group is in the flood list\n{}",
        lab.diagnostics()
    );
    let listed = lab
        .fdb(&h1, Some(VNI))
        .iter()
        .filter(|e| e.is_flood() && e.dst.as_deref() == Some(GROUP4))
        .count();
    assert_eq!(
        listed,
        1,
        "fdb show lists the group once\n{}",
        lab.diagnostics()
    );

    // w2's frames reach h1 through the group (h2 learns nothing); vtep
    // decapsulates those to w1 on its XDP path, since the group is the
    // VNI's; the kernel's device learns w2 behind h2, and vtep mirrors it.
    lab.assert_ping(&w2, &w1.ip);
    follows(
        &lab,
        &h1,
        &w2.mac,
        "learned by the kernel",
        FOLLOW_TIME,
        |e| e.is_some_and(|e| e.is_followed() && e.dst.as_deref() == Some(h2.underlay_ip.as_str())),
    );
    let before = lab.stats(&h1).vni(VNI);
    lab.assert_ping(&w2, &w1.ip);
    let after = lab.stats(&h1).vni(VNI);
    assert!(
        after.rx_packets > before.rx_packets,
        "no frame sent to {GROUP4} was decapsulated by vtep: {before:?} -> {after:?}\n{}",
        lab.diagnostics()
    );
    assert!(
        after.tx_packets > before.tx_packets,
        "w1's replies did not take vtep's XDP path: {before:?} -> {after:?}\n{}",
        lab.diagnostics()
    );

    // The device goes: so does the group.
    h1.ip(&format!("link del {VXLAN}"));
    assert!(
        wait_until(FOLLOW_TIME, || daemon
            .log()
            .contains(&format!("VNI {VNI}: no group"))),
        "the group stayed after {VXLAN} went:\n{}",
        daemon.log()
    );
}

fn remote_at_followed(vtep: &str) -> impl Fn(Option<&FdbEntry>) -> bool + '_ {
    move |e| e.is_some_and(|e| e.is_followed() && e.dst.as_deref() == Some(vtep))
}
