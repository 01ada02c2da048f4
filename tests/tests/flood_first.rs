//! No flood copy lost for want of a neighbour: a gateway started with a flood
//! list of two peers whose underlay neighbours it has never resolved answers
//! the very first ARP request of its workload on the first try.
//!
//! The workload's kernel sends its first ARP request at once and repeats it
//! only after a second (`retrans_time`), so a first echo reply within half a
//! second means the first request's flood copies got through; and vtep counts
//! `flood-failed` 0.

use vtep_tests::lab::{
    Host, Lab, OVERLAY_MTU, OVERLAY6_MTU, UPLINK, VXLAN_PORT, VniConfig, VtepConfig, mac,
    tenant_net, underlay_ip6,
};

const VNI: u32 = 100;
/// The longest first round trip that still means "answered on the first try".
const FIRST_TRY_MS: f64 = 500.0;

/// The round-trip time `ping -c 1` printed (`time=0.123 ms`), if any.
fn rtt_ms(ping_output: &str) -> Option<f64> {
    let at = ping_output.find("time=")? + "time=".len();
    ping_output[at..].split_whitespace().next()?.parse().ok()
}

/// Kernel hosts 2 and 3 (flooding to host 1 over `v6` or IPv4), then vtep on
/// host 1 flooding to both, and at once one ping from its workload to host
/// 2's.
fn first_arp_is_answered(lab: &Lab, v6: bool) {
    let h1 = lab.host(1);
    let mtu = if v6 { OVERLAY6_MTU } else { OVERLAY_MTU };
    let local = |h: &Host| {
        if v6 {
            h.underlay_ip6()
        } else {
            h.underlay_ip.clone()
        }
    };
    if v6 {
        h1.enable_ipv6();
    }
    let peers: Vec<Host> = (2..=3)
        .map(|n| {
            let addr = if v6 {
                underlay_ip6(n)
            } else {
                vtep_tests::lab::underlay_ip(n)
            };
            let args = format!("local {addr} dstport {VXLAN_PORT} nolearning");
            lab.kernel_vxlan_host_raw(n, VNI, &args, mtu, &[&local(&h1)])
        })
        .collect();
    let net = tenant_net(1);
    let w1 = lab.workload_mtu(&h1, (1, 1), &mac(1, 1, 1), &format!("{net}.1/24"), mtu);
    let peer_workloads: Vec<_> = peers
        .iter()
        .map(|p| {
            lab.kernel_workload_mtu(
                p,
                VNI,
                (1, 1),
                (&mac(p.n, 1, 1), &format!("{net}.{}/24", p.n)),
                mtu,
            )
        })
        .collect();
    // Host 1 has not resolved the peers' underlay neighbours: forget what the
    // lab's setup may have taught it.
    h1.ip(&format!("neigh flush dev {UPLINK}"));
    let neighbours = h1.ip(&format!("neigh show dev {UPLINK}"));
    assert!(
        peers.iter().all(|p| !neighbours.contains(&local(p))),
        "host 1 knows a peer's neighbour before vtep runs:\n{neighbours}"
    );
    let config = VtepConfig::new(&local(&h1)).vni(
        VniConfig::new(VNI)
            .port(&w1.port)
            .flood(peers.iter().map(local)),
    );
    let _daemon = lab.start_vtep(&h1, &config);
    let ping = w1.exec(&format!("ping -n -c 1 -W 3 {}", peer_workloads[0].ip));
    let rtt = rtt_ms(&ping.stdout);
    assert!(
        ping.success() && rtt.is_some_and(|ms| ms < FIRST_TRY_MS),
        "the first ping was not answered within {FIRST_TRY_MS} ms (rtt {rtt:?}): the first \
         ARP request's flood copies were lost\n{ping}\n{}",
        lab.diagnostics()
    );
    let stats = lab.stats(&h1);
    assert_eq!(
        stats.reason("flood-failed"),
        0,
        "flood copies were dropped\n{}",
        lab.diagnostics()
    );
    // The other peer got the request too.
    lab.assert_ping(&w1, &peer_workloads[1].ip);
}

#[test]
fn the_first_arp_is_answered_on_the_first_try() {
    let lab = Lab::new("first arp");
    first_arp_is_answered(&lab, false);
}

#[test]
fn the_first_arp_is_answered_on_the_first_try_over_ipv6() {
    let lab = Lab::new("first arp ipv6");
    first_arp_is_answered(&lab, true);
}

#[test]
fn rtt_is_read_from_ping_output() {
    let out = "64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=0.512 ms\n";
    assert_eq!(rtt_ms(out), Some(0.512));
    assert_eq!(rtt_ms("1 packets transmitted, 0 received"), None);
}
