//! The lab itself, without vtep: namespaces, the underlay switch, the kernel's
//! vxlan driver, and cleanup. If these fail, nothing else can be trusted.

use std::path::Path;

use vtep_tests::lab::{self, Lab, is_mounted, mac, pid_alive, run, run_ok, sweep_stale};

fn netns_exists(name: &str) -> bool {
    run_ok("ip netns list")
        .lines()
        .any(|line| line.split_whitespace().next() == Some(name))
}

#[test]
fn plain_veth_pair_pings() {
    let lab = Lab::new("plain veth");
    let a = lab.netns("a");
    let b = lab.netns("b");
    run_ok(&format!(
        "ip link add eth0 netns {} type veth peer name eth0 netns {}",
        a.name, b.name
    ));
    for (ns, addr) in [(&a, "192.0.2.1/24"), (&b, "192.0.2.2/24")] {
        ns.ip(&format!("addr add {addr} dev eth0"));
        ns.ip("link set eth0 up");
    }
    let ping = a.exec("ping -n -c 2 -i 0.2 -w 5 192.0.2.2");
    assert!(ping.success(), "{ping}");
}

#[test]
fn kernel_vxlan_hosts_ping_across_the_underlay() {
    let lab = Lab::new("kernel vxlan pair");
    let h1 = lab.kernel_vxlan_host(1, &[100], &[&lab::underlay_ip(2)]);
    let h2 = lab.kernel_vxlan_host(2, &[100], &[&lab::underlay_ip(1)]);
    let w1 = lab.kernel_workload(&h1, 100, (1, 1), &mac(1, 1, 1), "192.0.2.1/24");
    let w2 = lab.kernel_workload(&h2, 100, (1, 1), &mac(2, 1, 1), "192.0.2.2/24");
    lab.assert_ping(&w1, &w2.ip);
    lab.assert_ping(&w2, &w1.ip);
    assert_eq!(w1.neighbour(&w2.ip).as_deref(), Some(w2.mac.as_str()));
    assert_eq!(w1.stats().rx_dropped, 0);
}

#[test]
fn drop_removes_namespaces_and_mounts() {
    let (namespaces, pins, dir, sleeper) = {
        let lab = Lab::new("cleanup");
        let host = lab.host(1);
        let workload = lab.workload(&host, 1, 1, &mac(1, 1, 1), "192.0.2.1/24");
        lab.mount_bpffs(&host);
        assert!(is_mounted(&host.pin_path));
        // A process nobody stops (its guard leaked) must not outlive the lab.
        let sleeper = workload.spawn("sleep 600");
        let pid = sleeper.pid();
        std::mem::forget(sleeper);
        (
            lab.namespaces(),
            host.pin_path.clone(),
            lab.dir().to_owned(),
            pid,
        )
    };
    assert!(!pid_alive(sleeper), "pid {sleeper} outlived its lab");
    assert_eq!(namespaces.len(), 3, "{namespaces:?}");
    for name in &namespaces {
        assert!(!netns_exists(name), "namespace {name} left behind");
    }
    assert!(!is_mounted(&pins), "{} still mounted", pins.display());
    assert!(!pins.exists(), "{} left behind", pins.display());
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn sweep_removes_what_dead_runs_left() {
    lab::require_root();
    let mut exited = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let dead_pid = exited.id();
    exited.wait().expect("wait true");
    let name = format!("vt{dead_pid}-0-h1");
    let pins = Path::new(lab::PIN_ROOT).join(&name);
    run_ok(&format!("ip netns add {name}"));
    std::fs::create_dir_all(&pins).expect("create pin dir");
    run_ok(&format!("mount -t bpf bpf {}", pins.display()));

    sweep_stale();

    let leftover = netns_exists(&name);
    let mounted = is_mounted(&pins);
    if leftover {
        run(&format!("ip netns del {name}"));
    }
    if mounted {
        run(&format!("umount {}", pins.display()));
    }
    assert!(!leftover, "sweep left namespace {name}");
    assert!(!mounted, "sweep left {} mounted", pins.display());
    assert!(!pins.exists(), "sweep left {}", pins.display());
}
