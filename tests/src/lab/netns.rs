//! The lab's pieces: a network namespace ([`Netns`]), a host namespace
//! ([`Host`]) and a workload behind an access port ([`Workload`]), with the
//! commands the tests run in them.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::{OVERLAY_MTU, Proc, Run, UPLINK, VXLAN_PORT, run, run_ok, underlay_ip6};

/// One network namespace of the lab.
#[derive(Clone, Debug)]
pub struct Netns {
    pub name: String,
    pub(super) logs: PathBuf,
}

static LOG_SEQ: AtomicU32 = AtomicU32::new(0);

impl Netns {
    /// `line` as run inside this namespace.
    pub fn cmdline(&self, line: &str) -> String {
        format!("ip netns exec {} {line}", self.name)
    }

    /// Runs `line` inside the namespace.
    pub fn exec(&self, line: &str) -> Run {
        run(&self.cmdline(line))
    }

    /// Runs `line` inside the namespace; its stdout, panics if it fails.
    pub fn exec_ok(&self, line: &str) -> String {
        run_ok(&self.cmdline(line))
    }

    /// `ip -n <ns> <args>`; its stdout, panics if it fails.
    pub fn ip(&self, args: &str) -> String {
        run_ok(&format!("ip -n {} {args}", self.name))
    }

    /// `bridge -n <ns> <args>`; its stdout, panics if it fails.
    pub fn bridge(&self, args: &str) -> String {
        run_ok(&format!("bridge -n {} {args}", self.name))
    }

    /// Starts `line` in the background inside the namespace, output to a log
    /// file in the lab's directory named after the program.
    pub fn spawn(&self, line: &str) -> Proc {
        let program = line.split_whitespace().next().unwrap_or("cmd");
        let label = Path::new(program)
            .file_name()
            .map_or("cmd".into(), |p| p.to_string_lossy());
        self.spawn_as(&label, line)
    }

    /// Like [`Netns::spawn`], the log file named after `label`.
    pub fn spawn_as(&self, label: &str, line: &str) -> Proc {
        let seq = LOG_SEQ.fetch_add(1, Ordering::Relaxed);
        let log = self.logs.join(format!("{}.{label}.{seq}.log", self.name));
        Proc::spawn(&self.cmdline(line), &log)
    }

    /// `ip -n <ns> -j <args>`, parsed; panics if it fails.
    pub fn ip_json(&self, args: &str) -> serde_json::Value {
        let json = self.ip(&format!("-j {args}"));
        serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("`ip -j {args}` printed no JSON ({e}): {json}"))
    }

    /// True if an XDP program is attached to `dev`.
    pub fn has_xdp(&self, dev: &str) -> bool {
        self.ip_json(&format!("link show dev {dev}"))[0]
            .get("xdp")
            .is_some()
    }

    /// Packet counters of `dev`.
    pub fn link_stats(&self, dev: &str) -> LinkStats {
        let link = self.ip_json(&format!("-s link show dev {dev}"));
        let counter = |dir: &str, name: &str| {
            link[0]["stats64"][dir][name]
                .as_u64()
                .unwrap_or_else(|| panic!("no stats64.{dir}.{name} for {dev}: {link}"))
        };
        LinkStats {
            rx_packets: counter("rx", "packets"),
            rx_dropped: counter("rx", "dropped"),
            tx_packets: counter("tx", "packets"),
            tx_dropped: counter("tx", "dropped"),
        }
    }
}

/// Counters of one interface (`ip -s link`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_dropped: u64,
}

/// A host: namespace `<p>-hN` with `uplink` at 198.18.0.N/24 on the underlay switch.
#[derive(Clone, Debug)]
pub struct Host {
    pub n: u8,
    pub netns: Netns,
    pub underlay_ip: String,
    /// The bpffs this host's vtep pins into (mounted by [`Lab::start_vtep`]).
    pub pin_path: PathBuf,
}

impl Deref for Host {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.netns
    }
}

impl Host {
    /// The kernel's VXLAN for `vni`: `vxlan<vni>` (local = this host's
    /// underlay address, port 4789, no learning, MTU 1450) in bridge
    /// `br<vni>`, the device up, the bridge not yet.
    pub fn add_vxlan_bridge(&self, vni: u32) {
        self.add_vxlan_bridge_with(vni, "");
    }

    /// The uplink's IPv6 address once [`Host::enable_ipv6`] ran: 2001:db8::N.
    pub fn underlay_ip6(&self) -> String {
        underlay_ip6(self.n)
    }

    /// Turns IPv6 on for the uplink alone (the lab keeps it off everywhere
    /// else) and gives it [`Host::underlay_ip6`]/64, without duplicate address
    /// detection (usable at once) and without router solicitations (nothing
    /// on the underlay answers them). Idempotent.
    pub fn enable_ipv6(&self) {
        self.exec_ok(&format!(
            "sysctl -qw net.ipv6.conf.{UPLINK}.disable_ipv6=0 \
             net.ipv6.conf.{UPLINK}.accept_ra=0 net.ipv6.conf.{UPLINK}.router_solicitations=0"
        ));
        self.ip(&format!(
            "-6 addr replace {}/64 dev {UPLINK} nodad",
            self.underlay_ip6()
        ));
    }

    /// The multicast groups the uplink is a member of (`ip maddr show`: the
    /// `inet` and `inet6` lines, without the link-layer ones).
    pub fn uplink_groups(&self) -> Vec<String> {
        self.ip(&format!("maddr show dev {UPLINK}"))
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                match words.next() {
                    Some("inet" | "inet6") => words.next().map(str::to_owned),
                    _ => None,
                }
            })
            .collect()
    }

    /// The kernel's VXLAN for `vni` made with exactly `args` after `type
    /// vxlan id <vni>`, MTU `mtu`, in bridge `br<vni>`; the device up, the
    /// bridge not yet. The bridge does not snoop multicast: snooping makes it
    /// join (and report) 224.0.0.106 itself, a report it would flood across
    /// the overlay behind the test's back.
    pub fn add_vxlan_bridge_raw(&self, vni: u32, args: &str, mtu: u32) {
        self.ip(&format!("link add vxlan{vni} type vxlan id {vni} {args}"));
        self.ip(&format!("link set vxlan{vni} mtu {mtu}"));
        self.ip(&format!("link add br{vni} type bridge mcast_snooping 0"));
        self.ip(&format!("link set vxlan{vni} master br{vni} up"));
    }

    /// Like [`Host::add_vxlan_bridge`], with more `ip link add … type vxlan`
    /// options (`udpcsum`, say).
    pub fn add_vxlan_bridge_with(&self, vni: u32, options: &str) {
        self.ip(&format!(
            "link add vxlan{vni} type vxlan id {vni} local {} dstport {VXLAN_PORT} nolearning {options}",
            self.underlay_ip
        ));
        self.ip(&format!("link set vxlan{vni} mtu {OVERLAY_MTU}"));
        self.ip(&format!("link add br{vni} type bridge"));
        self.ip(&format!("link set vxlan{vni} master br{vni} up"));
    }
}

/// A workload: namespace `<p>-hN-tM-wK` with `eth0`, joined to its host by the
/// access port `tMwK`.
#[derive(Clone, Debug)]
pub struct Workload {
    pub netns: Netns,
    /// The host's namespace.
    pub host: Netns,
    /// The access port: the host end of the workload's veth.
    pub port: String,
    pub mac: String,
    /// The address, without prefix length.
    pub ip: String,
}

impl Deref for Workload {
    type Target = Netns;
    fn deref(&self) -> &Netns {
        &self.netns
    }
}

impl Workload {
    /// `ping -c count` to `dst`, 0.2 s apart, waiting up to `count + 4` s in
    /// all for `count` replies; the last attempt's output.
    ///
    /// With `-w`, ping keeps sending until `count` replies arrive, but quits
    /// at the first error, such as the "host unreachable" of an ARP
    /// resolution that a previous, failed ping left behind; then it is run
    /// again, within the same deadline.
    pub fn ping_run(&self, dst: &str, count: u32) -> Run {
        let deadline = Instant::now() + Duration::from_secs(u64::from(count) + 4);
        loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .as_secs()
                .max(1);
            let ping = self.exec(&format!("ping -n -c {count} -i 0.2 -w {left} {dst}"));
            if ping.success() || Instant::now() + Duration::from_secs(1) >= deadline {
                return ping;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// True if `count` echo replies from `dst` arrive.
    pub fn ping(&self, dst: &str, count: u32) -> bool {
        self.ping_run(dst, count).success()
    }

    pub fn link_down(&self) {
        self.ip("link set eth0 down");
    }

    pub fn link_up(&self) {
        self.ip("link set eth0 up");
    }

    /// Gives `eth0` another MAC (taken down and up again).
    pub fn set_mac(&mut self, mac: &str) {
        self.link_down();
        self.ip(&format!("link set eth0 address {mac}"));
        self.link_up();
        self.mac = mac.to_owned();
    }

    /// A permanent neighbour entry for `other`, so no ARP is needed to reach it.
    pub fn add_neighbour(&self, other: &Workload) {
        self.ip(&format!(
            "neigh replace {} lladdr {} dev eth0 nud permanent",
            other.ip, other.mac
        ));
    }

    /// Counters of `eth0`.
    pub fn stats(&self) -> LinkStats {
        self.link_stats("eth0")
    }

    /// The MAC this workload's neighbour table holds for `ip`, if resolved.
    pub fn neighbour(&self, ip: &str) -> Option<String> {
        let neighbours = self.ip_json(&format!("neigh show to {ip} dev eth0"));
        neighbours[0]["lladdr"].as_str().map(str::to_owned)
    }
}
