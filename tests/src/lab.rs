//! The namespace lab: hosts, an underlay switch and workloads built from network
//! namespaces and veth pairs with `ip`, `bridge` and `ethtool`, and vtep daemons
//! (or the kernel's vxlan driver) running in the hosts.
//!
//! Shape (see `docs/lab.md`):
//!
//! ```text
//!  <p>-h1-t1-w1 [eth0]──[t1w1] <p>-h1 [uplink]──[h1]┐
//!                                                   ├ br0  <p>-ul   (the "physical" underlay)
//!  <p>-h2-t1-w1 [eth0]──[t1w1] <p>-h2 [uplink]──[h2]┘
//! ```
//!
//! Safety: everything lives in namespaces this run created, named with a
//! prefix `vt<pid>-<n>`; the underlay uses 198.18.0.0/24, tenants use the
//! TEST-NETs, MACs are locally administered. [`Lab`]'s `Drop` ends every
//! process in its namespaces, runs `vtep down`, unmounts its bpffs instances
//! and deletes its namespaces, also when a test panics; [`sweep_stale`] removes
//! what runs whose process died left behind. IPv6 is disabled in every lab
//! namespace so that no router solicitation or MLD report wakes up learning or
//! flooding behind a test's back.

mod cmd;
mod config;
mod frr;
mod iperf;
mod ipv6;
mod netns;
mod overlay;
pub mod upgrade;
mod vtep;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

pub use cmd::{Proc, Run, pid_alive, quietly, run, run_ok, set_trace, try_run, wait_until};
pub use config::{FdbConfig, FollowConfig, Underlay, VniConfig, VtepConfig};
pub use frr::{Frr, Peering, frr_installed};
pub use iperf::Iperf;
pub use ipv6::Interop6;
pub use netns::{Host, LinkStats, Netns, Workload};
pub use overlay::{Flood, Interop, InteropOptions, Overlay};
pub use vtep::{Daemon, FdbEntry, ReasonCount, Stats, VniStats, vtep_bin};

/// The uplink's name in every host namespace.
pub const UPLINK: &str = "uplink";
/// The underlay switch: a bridge in `<p>-ul`.
pub const UNDERLAY_BRIDGE: &str = "br0";
/// MTU of the underlay (the veths' default).
pub const UNDERLAY_MTU: u32 = 1500;
/// Bytes VXLAN over IPv4 adds to an inner Ethernet frame:
/// outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
pub const VXLAN_OVERHEAD: u32 = 50;
/// MTU of every workload interface: the rule is inner MTU = underlay MTU − 50,
/// so that a full-size inner packet still fits the underlay once encapsulated.
pub const OVERLAY_MTU: u32 = UNDERLAY_MTU - VXLAN_OVERHEAD;
/// Bytes VXLAN over IPv6 adds to an inner Ethernet frame:
/// outer IPv6 (40) + UDP (8) + VXLAN (8) + inner Ethernet (14).
pub const VXLAN6_OVERHEAD: u32 = 70;
/// MTU of a workload whose overlay crosses an IPv6 underlay: inner MTU =
/// underlay MTU − 70 (the MTU the kernel gives a vxlan device over IPv6).
pub const OVERLAY6_MTU: u32 = UNDERLAY_MTU - VXLAN6_OVERHEAD;
/// The VXLAN port (IANA).
pub const VXLAN_PORT: u16 = 4789;
/// The flood-list "MAC" of `fdb append` / `fdb show`.
pub const FLOOD_MAC: &str = "00:00:00:00:00:00";

/// The IPv4 multicast group of the lab's group-mode VNIs.
pub const GROUP4: &str = "239.1.1.1";
/// The IPv6 multicast group of the lab's group-mode VNIs (site-local scope).
pub const GROUP6: &str = "ff05::100";

/// Where the lab mounts one bpffs per vtep host (outside /sys, so that every
/// `ip netns exec` sees the same instance).
pub const PIN_ROOT: &str = "/run/vtep-lab";
/// The run lock file `vtep run` holds for `host`'s gateway, in
/// `/run/vtep` (its pin path with the slashes as `%`, as vtep names it).
pub fn run_lock(host: &Host) -> PathBuf {
    let name = host.pin_path.to_string_lossy().replace('/', "%");
    Path::new("/run/vtep").join(format!("{name}.lock"))
}

/// Where the lab keeps configurations and logs; kept after a failed run.
pub const LOG_ROOT: &str = "/tmp/vtep-lab";

/// Tools the lab shells out to (`cargo xtask setup` installs them).
const TOOLS: [&str; 6] = ["ip", "bridge", "ethtool", "ping", "iperf3", "mount"];

/// The underlay address of host `n`.
pub fn underlay_ip(n: u8) -> String {
    format!("198.18.0.{n}")
}

/// The IPv6 underlay address of host `n` (2001:db8::/64, documentation space),
/// which [`Host::enable_ipv6`] gives its uplink.
pub fn underlay_ip6(n: u8) -> String {
    format!("2001:db8::{n}")
}

/// The /24 of tenant `t` (1, 2, 3): TEST-NET-1, -2, -3, without the last octet.
pub fn tenant_net(t: u8) -> &'static str {
    match t {
        1 => "192.0.2",
        2 => "198.51.100",
        3 => "203.0.113",
        _ => panic!("the lab has three tenant networks (1..=3), not {t}"),
    }
}

/// A locally administered MAC naming host, tenant and workload: `02:00:00:hh:tt:kk`.
pub fn mac(host: u8, tenant: u8, k: u8) -> String {
    format!("02:00:00:{host:02x}:{tenant:02x}:{k:02x}")
}

/// What the lab says when it does not run as root.
pub const NEEDS_ROOT: &str = "the vtep lab needs root (network namespaces, veth, bpffs, BPF): \
     run it as root, e.g. `sudo -E cargo xtask test`";

/// True if the process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Panics with a clear message unless the process is root: namespaces, veths,
/// bpffs and BPF programs all need it.
/// Panics unless the suite runs against the XDP engine (`VTEP_ENGINE` unset
/// or `xdp`): for tests of what only that engine does, which must fail
/// loudly rather than pass without testing anything.
pub fn require_xdp_engine() {
    let engine = std::env::var("VTEP_ENGINE").unwrap_or_else(|_| "xdp".into());
    assert!(
        engine == "xdp",
        "this test needs the XDP engine ([follow]); VTEP_ENGINE={engine}"
    );
}

pub fn require_root() {
    assert!(is_root(), "{NEEDS_ROOT}");
}

/// True if `tool` is an executable file in a PATH directory.
pub(crate) fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
}

fn require_tools() {
    let missing: Vec<&str> = TOOLS.into_iter().filter(|tool| !on_path(tool)).collect();
    assert!(
        missing.is_empty(),
        "the vtep lab needs {missing:?} on PATH: run `cargo xtask setup`"
    );
}

/// The lab of one test: its namespaces, bpffs mounts, daemons and logs.
pub struct Lab {
    prefix: String,
    dir: PathBuf,
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    /// Every namespace created, in creation order.
    namespaces: Vec<String>,
    /// Every bpffs mounted.
    mounts: Vec<PathBuf>,
    /// Directories to remove when the lab goes (FRR's per-host ones).
    dirs: Vec<PathBuf>,
    /// Hosts that ran vtep.
    vtep_hosts: Vec<Host>,
    /// Every daemon started: its host's namespace, pid and log.
    daemons: Vec<DaemonRecord>,
    underlay: Option<Netns>,
}

/// What the lab remembers of a daemon, for failure messages.
struct DaemonRecord {
    netns: String,
    pid: u32,
    log: PathBuf,
}

static LAB_SEQ: AtomicU32 = AtomicU32::new(0);

impl Lab {
    /// A new, empty lab. Panics unless root and the tools are present; sweeps
    /// what dead runs left behind first.
    pub fn new(name_hint: &str) -> Lab {
        require_root();
        require_tools();
        sweep_stale();
        let prefix = format!(
            "vt{}-{}",
            std::process::id(),
            LAB_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = Path::new(LOG_ROOT).join(&prefix);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        eprintln!("lab {prefix} ({name_hint}): logs in {}", dir.display());
        Lab {
            prefix,
            dir,
            state: RefCell::new(State::default()),
        }
    }

    /// The prefix of every namespace of this lab, `vt<pid>-<n>`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Directory of configurations and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Names of the namespaces created so far.
    pub fn namespaces(&self) -> Vec<String> {
        self.state.borrow().namespaces.clone()
    }

    /// Creates namespace `<prefix>-<suffix>`: lo up, IPv6 off.
    pub fn netns(&self, suffix: &str) -> Netns {
        let name = format!("{}-{suffix}", self.prefix);
        run_ok(&format!("ip netns add {name}"));
        self.state.borrow_mut().namespaces.push(name.clone());
        let netns = Netns {
            name,
            logs: self.dir.clone(),
        };
        netns.exec_ok(
            "sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1",
        );
        netns.ip("link set lo up");
        netns
    }

    /// The namespace of the underlay switch (bridge [`UNDERLAY_BRIDGE`]),
    /// created on first use.
    pub fn underlay_switch(&self) -> Netns {
        self.underlay()
    }

    /// The underlay switch, created on first use.
    fn underlay(&self) -> Netns {
        if let Some(ul) = &self.state.borrow().underlay {
            return ul.clone();
        }
        let ul = self.netns("ul");
        ul.ip(&format!("link add {UNDERLAY_BRIDGE} type bridge"));
        ul.ip(&format!("link set {UNDERLAY_BRIDGE} up"));
        self.state.borrow_mut().underlay = Some(ul.clone());
        ul
    }

    /// Host `n` (1..=254): namespace `<p>-hN`, `uplink` 198.18.0.N/24 on the underlay switch.
    pub fn host(&self, n: u8) -> Host {
        self.host_with_queues(n, 1)
    }

    /// Like [`Lab::host`], with `queues` receive and transmit queues on the
    /// uplink and on its switch port (a multi-queue NIC, as far as a veth
    /// goes: the switch spreads flows over the queues by their hash).
    pub fn host_with_queues(&self, n: u8, queues: u32) -> Host {
        let ul = self.underlay();
        let netns = self.netns(&format!("h{n}"));
        let switch_port = format!("h{n}");
        let q = format!("numtxqueues {queues} numrxqueues {queues}");
        run_ok(&format!(
            "ip link add {UPLINK} netns {} {q} type veth peer name {switch_port} netns {} {q}",
            netns.name, ul.name
        ));
        ul.ip(&format!(
            "link set {switch_port} master {UNDERLAY_BRIDGE} up"
        ));
        // The switch is the "physical network": it must take frames a vtep
        // redirects into the uplink with XDP, which a veth only does with GRO
        // on (or an XDP program) at the receiving end.
        ul.exec_ok(&format!("ethtool -K {switch_port} gro on"));
        let underlay_ip = underlay_ip(n);
        netns.ip(&format!("addr add {underlay_ip}/24 dev {UPLINK}"));
        netns.ip(&format!("link set {UPLINK} up"));
        let pin_path = Path::new(PIN_ROOT).join(&netns.name);
        Host {
            n,
            netns,
            underlay_ip,
            pin_path,
        }
    }

    /// Workload `k` of tenant `tenant` on `host`: namespace `<host>-tM-wK`, `eth0`
    /// with `mac` and `cidr` (e.g. "192.0.2.1/24"), MTU [`OVERLAY_MTU`], and
    /// the access port `tMwK` up in the host. Nothing is done to the access
    /// port's peer beyond that (in particular no GRO): that is vtep's job.
    pub fn workload(&self, host: &Host, tenant: u8, k: u8, mac: &str, cidr: &str) -> Workload {
        self.workload_mtu(host, (tenant, k), mac, cidr, OVERLAY_MTU)
    }

    /// Like [`Lab::workload`], `eth0` and the access port with MTU `mtu`
    /// ([`OVERLAY6_MTU`] for an overlay over an IPv6 underlay).
    pub fn workload_mtu(
        &self,
        host: &Host,
        (tenant, k): (u8, u8),
        mac: &str,
        cidr: &str,
        mtu: u32,
    ) -> Workload {
        let netns = self.netns(&format!("h{}-t{tenant}-w{k}", host.n));
        let port = format!("t{tenant}w{k}");
        run_ok(&format!(
            "ip link add eth0 netns {} type veth peer name {port} netns {}",
            netns.name, host.name
        ));
        netns.ip(&format!("link set eth0 address {mac} mtu {mtu}"));
        netns.ip(&format!("addr add {cidr} dev eth0"));
        netns.ip("link set eth0 up");
        host.ip(&format!("link set {port} mtu {mtu} up"));
        let ip = cidr.split('/').next().unwrap_or(cidr).to_owned();
        Workload {
            netns,
            host: host.netns.clone(),
            port,
            mac: mac.to_owned(),
            ip,
        }
    }

    /// Host `n` switching with the Linux vxlan driver instead of vtep: per VNI a
    /// `vxlanV` (local 198.18.0.N, port 4789, no learning, MTU 1450) in bridge
    /// `brV`, flooding head-end to each address of `peers`. Attach workloads
    /// with [`Lab::kernel_workload`].
    pub fn kernel_vxlan_host(&self, n: u8, vnis: &[u32], peers: &[&str]) -> Host {
        self.kernel_vxlan_host_with(n, vnis, peers, "")
    }

    /// Like [`Lab::kernel_vxlan_host`], its vxlan devices created with
    /// `options` as well.
    pub fn kernel_vxlan_host_with(
        &self,
        n: u8,
        vnis: &[u32],
        peers: &[&str],
        options: &str,
    ) -> Host {
        let host = self.host(n);
        for &vni in vnis {
            host.add_vxlan_bridge_with(vni, options);
            host.ip(&format!("link set br{vni} up"));
            for peer in peers {
                host.bridge(&format!("fdb append {FLOOD_MAC} dev vxlan{vni} dst {peer}"));
            }
        }
        host
    }

    /// Host `n` switching with the Linux vxlan driver, its uplink with IPv6
    /// ([`Host::enable_ipv6`]): one `vxlan<vni>` in bridge `br<vni>`, made with
    /// `ip link add vxlan<vni> type vxlan id <vni> <args>` (say `local
    /// 2001:db8::2 dstport 4789`, or `group 239.1.1.1 dev uplink ...`), MTU
    /// `mtu`, flooding head-end to each address of `peers`; the bridge up.
    pub fn kernel_vxlan_host_raw(
        &self,
        n: u8,
        vni: u32,
        args: &str,
        mtu: u32,
        peers: &[&str],
    ) -> Host {
        let host = self.host(n);
        host.enable_ipv6();
        host.add_vxlan_bridge_raw(vni, args, mtu);
        host.ip(&format!("link set br{vni} up"));
        for peer in peers {
            host.bridge(&format!("fdb append {FLOOD_MAC} dev vxlan{vni} dst {peer}"));
        }
        host
    }

    /// A workload on a kernel vxlan host, its access port in bridge `br<vni>`,
    /// with MTU `mtu`.
    pub fn kernel_workload_mtu(
        &self,
        host: &Host,
        vni: u32,
        (tenant, k): (u8, u8),
        (mac, cidr): (&str, &str),
        mtu: u32,
    ) -> Workload {
        let workload = self.workload_mtu(host, (tenant, k), mac, cidr, mtu);
        host.ip(&format!("link set {} master br{vni}", workload.port));
        workload
    }

    /// A workload on a [`Lab::kernel_vxlan_host`], its access port in bridge `br<vni>`.
    pub fn kernel_workload(
        &self,
        host: &Host,
        vni: u32,
        (tenant, k): (u8, u8),
        mac: &str,
        cidr: &str,
    ) -> Workload {
        let workload = self.workload(host, tenant, k, mac, cidr);
        host.ip(&format!("link set {} master br{vni}", workload.port));
        workload
    }

    /// Panics, with the lab's state, unless `from` gets 3 replies from `dst`.
    pub fn assert_ping(&self, from: &Workload, dst: &str) {
        let ping = from.ping_run(dst, 3);
        if !ping.success() {
            panic!(
                "{} cannot reach {dst}: {ping}\n{}",
                from.name,
                self.diagnostics()
            );
        }
    }

    /// Panics, with the lab's state, if `from` gets any reply from `dst`.
    pub fn assert_no_ping(&self, from: &Workload, dst: &str) {
        let ping = from.exec(&format!("ping -n -c 3 -i 0.2 -w 3 {dst}"));
        if ping.success() || ping.stdout.contains("bytes from") {
            panic!(
                "{} reached {dst}, which it must not: {ping}\n{}",
                from.name,
                self.diagnostics()
            );
        }
    }

    /// Removes `dir` (and what is in it) when the lab is dropped.
    pub fn remove_on_drop(&self, dir: &Path) {
        let mut state = self.state.borrow_mut();
        if !state.dirs.iter().any(|d| d == dir) {
            state.dirs.push(dir.to_owned());
        }
    }

    /// Mounts the bpffs `host` pins into ([`Host::pin_path`]), once.
    pub fn mount_bpffs(&self, host: &Host) {
        let dir = host.pin_path.as_path();
        if self.state.borrow().mounts.iter().any(|m| m == dir) {
            return;
        }
        std::fs::create_dir_all(dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        run_ok(&format!("mount -t bpf bpf {}", dir.display()));
        self.state.borrow_mut().mounts.push(dir.to_owned());
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let state = self.state.get_mut();
        end_netns_processes(&state.namespaces);
        for host in &state.vtep_hosts {
            vtep::down(host);
        }
        // Every daemon is gone and `vtep down` ran: no run lock is left.
        let locks: Vec<PathBuf> = state
            .vtep_hosts
            .iter()
            .map(run_lock)
            .filter(|lock| lock.exists())
            .collect();
        for dir in state.mounts.iter().rev() {
            unmount(dir);
        }
        for dir in &state.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
        for name in state.namespaces.iter().rev() {
            delete_netns(name);
        }
        if std::thread::panicking() {
            eprintln!(
                "lab {}: kept configurations and logs in {}",
                self.prefix,
                self.dir.display()
            );
            for lock in &locks {
                eprintln!("lab {}: {} was left behind", self.prefix, lock.display());
                let _ = std::fs::remove_file(lock);
            }
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
            for lock in &locks {
                let _ = std::fs::remove_file(lock);
            }
            assert!(
                locks.is_empty(),
                "lab {}: run locks left after its daemons stopped and `vtep down`: {locks:?}",
                self.prefix
            );
        }
    }
}

/// The pid in a lab name `vt<pid>-<n>` or `vt<pid>-<n>-...`, if it is one.
fn owner_pid(name: &str) -> Option<u32> {
    let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mut parts = name.strip_prefix("vt")?.splitn(3, '-');
    let (pid, seq) = (parts.next()?, parts.next()?);
    if !is_number(pid) || !is_number(seq) {
        return None;
    }
    pid.parse().ok()
}

/// True for a lab name whose run's process is gone.
fn is_stale(name: &str) -> bool {
    owner_pid(name).is_some_and(|pid| pid != std::process::id() && !pid_alive(pid))
}

/// Removes the namespaces and bpffs mounts of lab runs whose process died
/// (killed, or crashed past their guards). Runs at every [`Lab::new`].
pub fn sweep_stale() {
    cmd::quietly(sweep);
}

fn sweep() {
    let netns_list = try_run("ip netns list", cmd::DEFAULT_TIMEOUT)
        .map(|r| r.stdout)
        .unwrap_or_default();
    let stale: Vec<String> = netns_list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| is_stale(name))
        .map(str::to_owned)
        .collect();
    end_netns_processes(&stale);
    for dir in lab_mounts().iter().filter(|dir| {
        dir.file_name()
            .is_some_and(|name| is_stale(&name.to_string_lossy()))
    }) {
        unmount(dir);
    }
    for name in &stale {
        delete_netns(name);
    }
    for dir in frr::lab_dirs() {
        if dir
            .file_name()
            .is_some_and(|name| is_stale(&name.to_string_lossy()))
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Every mount point, from /proc/mounts.
fn mount_points() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(PathBuf::from)
        .collect()
}

/// bpffs mount points under [`PIN_ROOT`].
fn lab_mounts() -> Vec<PathBuf> {
    mount_points()
        .into_iter()
        .filter(|path| path.parent() == Some(Path::new(PIN_ROOT)))
        .collect()
}

/// True if `dir` is a mount point (of anything).
pub fn is_mounted(dir: &Path) -> bool {
    mount_points().iter().any(|mountpoint| mountpoint == dir)
}

/// SIGTERM to every process in `namespaces`, SIGKILL to those still there after the grace time.
fn end_netns_processes(namespaces: &[String]) {
    let pids = || -> Vec<u32> {
        cmd::quietly(|| {
            namespaces
                .iter()
                .filter_map(|ns| try_run(&format!("ip netns pids {ns}"), cmd::DEFAULT_TIMEOUT).ok())
                .flat_map(|r| {
                    r.stdout
                        .split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<u32>>()
                })
                .filter(|&pid| pid_alive(pid))
                .collect()
        })
    };
    let running = pids();
    if running.is_empty() {
        return;
    }
    for &pid in &running {
        cmd::signal(pid, libc::SIGTERM);
    }
    if !wait_until(cmd::TERM_GRACE, || {
        running.iter().all(|&pid| !pid_alive(pid))
    }) {
        for pid in pids() {
            eprintln!("lab: pid {pid} ignored SIGTERM; SIGKILL");
            cmd::signal(pid, libc::SIGKILL);
        }
    }
}

fn unmount(dir: &Path) {
    let shown = dir.display();
    let plain = try_run(&format!("umount {shown}"), cmd::DEFAULT_TIMEOUT);
    if !plain.as_ref().is_ok_and(Run::success)
        && let Err(e) = try_run(&format!("umount -l {shown}"), cmd::DEFAULT_TIMEOUT)
    {
        eprintln!("lab: cannot unmount {shown}: {e}");
    }
    let _ = std::fs::remove_dir(dir);
}

fn delete_netns(name: &str) {
    match try_run(&format!("ip netns del {name}"), cmd::DEFAULT_TIMEOUT) {
        Ok(r) if r.success() => {}
        Ok(r) => eprintln!("lab: {r}"),
        Err(e) => eprintln!("lab: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_reads_only_lab_names() {
        assert_eq!(owner_pid("vt123-0-h1"), Some(123));
        assert_eq!(owner_pid("vt123-0-ul"), Some(123));
        assert_eq!(owner_pid("vtep-0"), None);
        assert_eq!(owner_pid("vt-0"), None);
        assert_eq!(owner_pid("vt12x-0"), None);
        assert_eq!(owner_pid("xvt12-0"), None);
        assert_eq!(owner_pid("vt12-foo"), None);
        assert_eq!(owner_pid("vt12"), None);
    }

    #[test]
    fn overlay_mtu_leaves_room_for_vxlan() {
        assert_eq!(OVERLAY_MTU, 1450);
        assert_eq!(OVERLAY6_MTU, 1430);
    }
}
