//! FRR in the lab: BGP EVPN between hosts, the way a data-centre host runs
//! it, so that vtep can follow what zebra writes into the kernel.
//!
//! Each host gets its own FRR instance: `zebra` and `bgpd` from the
//! distribution's package, started by the lab inside the host's namespace
//! with a path space of their own (`-N <netns>`: configuration in
//! `/etc/frr/<netns>/`, sockets and pid files in `/var/run/frr/<netns>/`, both
//! owned by `frr:frr`), in the foreground, their logs in the lab's directory.
//! `vtysh -N <netns>` talks to that instance. iBGP (AS 65000) over the
//! underlay addresses, address family `l2vpn evpn` only, `advertise-all-vni`,
//! in a full mesh or with host 1 as route reflector (see `docs/evpn.md`).
//!
//! Each EVPN host's VNIs are set up as FRR's EVPN documentation describes a
//! "traditional" bridge: one `vxlan<V>` device per VNI (`local`, `dstport
//! 4789`, `nolearning`) in a bridge `br<V>`, bridge learning off and
//! `neigh_suppress` on for the vxlan port, no `remote` and no flood entries:
//! EVPN writes those (type-3 routes), and the remote MACs (type-2).
//!
//! [`Frr`]'s `Drop` ends the daemons and removes both directories; the lab's
//! own cleanup (every process in its namespaces, and the directories of runs
//! that died: [`super::sweep_stale`]) backs it up.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cmd::{self, Proc, Run, try_run_argv, wait_until};
use super::{Host, Lab, Netns, Workload, mac, tenant_net};

/// Where the distribution's package installs the daemons.
pub const FRR_BIN: &str = "/usr/lib/frr";
/// Per-instance configuration directories: `<FRR_CONF_ROOT>/<netns>/`.
pub const FRR_CONF_ROOT: &str = "/etc/frr";
/// Per-instance socket and pid directories: `<FRR_RUN_ROOT>/<netns>/`.
pub const FRR_RUN_ROOT: &str = "/var/run/frr";
/// The AS of every host (iBGP).
pub const ASN: u32 = 65000;
/// How long a vtysh command may take.
const VTYSH_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of a daemon's log shown in failure messages.
const LOG_TAIL: usize = 25;

/// How the hosts peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peering {
    /// Every host with every other.
    FullMesh,
    /// Host 1 reflects routes; the others peer with it only.
    RouteReflector,
}

/// One host's FRR: zebra and bgpd, running until stopped or dropped.
pub struct Frr {
    netns: Netns,
    router_id: String,
    /// The underlay addresses of its BGP neighbours.
    neighbours: Vec<String>,
    /// Its neighbours are route-reflector clients.
    reflector: bool,
    conf_dir: PathBuf,
    run_dir: PathBuf,
    zebra: Option<Proc>,
    bgpd: Option<Proc>,
    starts: usize,
}

/// True when the distribution's FRR is installed (`cargo xtask setup`).
pub fn frr_installed() -> bool {
    ["zebra", "bgpd"]
        .iter()
        .all(|d| Path::new(FRR_BIN).join(d).is_file())
        && super::on_path("vtysh")
}

/// Creates `dir` owned by frr:frr (the daemons drop root for that user).
fn frr_dir(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    cmd::run_ok(&format!("chown frr:frr {}", dir.display()));
}

impl Lab {
    /// Host `n` with, per VNI of `vnis`, `vxlan<V>` and bridge `br<V>` set up
    /// as FRR's EVPN documentation describes (no flood list: EVPN writes
    /// it). Add workloads with [`Lab::kernel_workload`].
    pub fn evpn_host(&self, n: u8, vnis: &[u32]) -> Host {
        let host = self.host(n);
        for &vni in vnis {
            host.add_vxlan_bridge(vni);
            host.bridge(&format!(
                "link set dev vxlan{vni} learning off neigh_suppress on"
            ));
            host.ip(&format!("link set br{vni} up"));
        }
        host
    }

    /// One workload per EVPN host (see [`Lab::evpn_host`]) in `vni`:
    /// tenant 1's `<net>.<n>/24` with MAC `mac(n, 1, 1)` on host `n`, its
    /// access port in `br<vni>`.
    pub fn evpn_workloads(&self, hosts: &[Host], vni: u32) -> Vec<Workload> {
        hosts
            .iter()
            .map(|h| {
                let cidr = format!("{}.{}/24", tenant_net(1), h.n);
                self.kernel_workload(h, vni, (1, 1), &mac(h.n, 1, 1), &cidr)
            })
            .collect()
    }

    /// FRR on every host of `hosts`, peered as `peering` says (with
    /// [`Peering::RouteReflector`], host 1 reflects for the others).
    pub fn start_evpn_peering(&self, hosts: &[Host], peering: Peering) -> Vec<Frr> {
        hosts
            .iter()
            .map(|h| {
                let peers: Vec<&Host> = hosts
                    .iter()
                    .filter(|p| {
                        p.n != h.n && (peering == Peering::FullMesh || h.n == 1 || p.n == 1)
                    })
                    .collect();
                self.start_frr(h, &peers, peering)
            })
            .collect()
    }

    /// Starts FRR on `host`, peering with `peers` (iBGP, `l2vpn evpn`,
    /// `advertise-all-vni`). With [`Peering::RouteReflector`], give host 1
    /// every other host as peer, and the others host 1 only.
    pub fn start_frr(&self, host: &Host, peers: &[&Host], peering: Peering) -> Frr {
        assert!(
            frr_installed(),
            "FRR is not installed ({FRR_BIN}/zebra, bgpd, vtysh): run `cargo xtask setup`"
        );
        let conf_dir = Path::new(FRR_CONF_ROOT).join(&host.name);
        let run_dir = Path::new(FRR_RUN_ROOT).join(&host.name);
        self.remove_on_drop(&conf_dir);
        self.remove_on_drop(&run_dir);
        let mut frr = Frr {
            netns: host.netns.clone(),
            router_id: host.underlay_ip.clone(),
            neighbours: peers.iter().map(|p| p.underlay_ip.clone()).collect(),
            reflector: peering == Peering::RouteReflector && host.n == 1,
            conf_dir,
            run_dir,
            zebra: None,
            bgpd: None,
            starts: 0,
        };
        frr.start();
        frr
    }
}

impl Frr {
    fn write_config(&self) {
        frr_dir(&self.conf_dir);
        frr_dir(&self.run_dir);
        let hostname = &self.netns.name;
        let zebra =
            format!("frr defaults datacenter\nhostname {hostname}\nlog stdout informational\n");
        let mut bgp = format!(
            "frr defaults datacenter\nhostname {hostname}\nlog stdout informational\n!\n\
             router bgp {ASN}\n bgp router-id {}\n no bgp default ipv4-unicast\n",
            self.router_id
        );
        for n in &self.neighbours {
            // Retry a refused connection after 1 s, not the default 10 s.
            let _ = writeln!(
                bgp,
                " neighbor {n} remote-as {ASN}\n neighbor {n} timers connect 1"
            );
        }
        bgp.push_str(" !\n address-family l2vpn evpn\n");
        for n in &self.neighbours {
            let _ = writeln!(bgp, "  neighbor {n} activate");
            if self.reflector {
                let _ = writeln!(bgp, "  neighbor {n} route-reflector-client");
            }
        }
        bgp.push_str("  advertise-all-vni\n exit-address-family\n!\n");
        for (name, text) in [
            ("zebra.conf", zebra.as_str()),
            ("bgpd.conf", bgp.as_str()),
            ("vtysh.conf", ""),
        ] {
            let path = self.conf_dir.join(name);
            std::fs::write(&path, text)
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        }
        cmd::run_ok(&format!("chown -R frr:frr {}", self.conf_dir.display()));
    }

    fn daemon_line(&self, daemon: &str) -> String {
        let ns = &self.netns.name;
        format!(
            "{FRR_BIN}/{daemon} -N {ns} -F datacenter -f {}/{daemon}.conf -i {}/{daemon}.pid -P 0",
            self.conf_dir.display(),
            self.run_dir.display()
        )
    }

    /// Starts zebra, then bgpd (again, after [`Frr::stop`]).
    pub fn start(&mut self) {
        self.stop();
        self.starts += 1;
        // A previous instance's sockets would let bgpd start before this
        // zebra listens (and wait out its reconnect timer).
        let _ = std::fs::remove_dir_all(&self.run_dir);
        self.write_config();
        let zebra = self.netns.spawn_as(
            &format!("zebra.{}", self.starts),
            &self.daemon_line("zebra"),
        );
        // bgpd talks to zebra over its zserv socket: wait for it.
        let api = self.run_dir.join("zserv.api");
        if !wait_until(Duration::from_secs(10), || api.exists()) {
            panic!(
                "zebra in {} did not open {} within 10 s; its log:\n{}",
                self.netns.name,
                api.display(),
                zebra.output()
            );
        }
        self.zebra = Some(zebra);
        self.bgpd = Some(
            self.netns
                .spawn_as(&format!("bgpd.{}", self.starts), &self.daemon_line("bgpd")),
        );
    }

    /// Stops bgpd, then zebra (SIGTERM: bgpd tells its peers, which withdraw
    /// its routes at once; zebra removes what it installed).
    pub fn stop(&mut self) {
        for p in [self.bgpd.take(), self.zebra.take()].into_iter().flatten() {
            let mut p = p;
            p.stop();
        }
    }

    /// True while both daemons run.
    pub fn is_running(&mut self) -> bool {
        [self.zebra.as_mut(), self.bgpd.as_mut()]
            .into_iter()
            .all(|p| p.is_some_and(|p| p.exited().is_none()))
    }

    /// `vtysh -N <netns> -c <command>`.
    pub fn vtysh(&self, command: &str) -> Run {
        try_run_argv(
            &["vtysh", "-N", &self.netns.name, "-c", command],
            VTYSH_TIMEOUT,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The number of BGP neighbours whose EVPN session is established.
    pub fn established(&self) -> usize {
        let run = cmd::quietly(|| self.vtysh("show bgp l2vpn evpn summary json"));
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&run.stdout) else {
            return 0;
        };
        v["peers"].as_object().map_or(0, |peers| {
            peers
                .values()
                .filter(|p| p["state"].as_str() == Some("Established"))
                .count()
        })
    }

    /// Waits until every neighbour's EVPN session is established; panics
    /// after `timeout` with FRR's view.
    pub fn wait_established(&self, timeout: Duration) {
        let want = self.neighbours.len();
        if !wait_until(timeout, || self.established() == want) {
            panic!(
                "{}: {} of {want} BGP EVPN sessions up after {timeout:?}\n{}",
                self.netns.name,
                self.established(),
                self.diagnostics()
            );
        }
    }

    /// What a failure message should show: sessions, EVPN VNIs and MACs, the
    /// kernel FDB, and the tails of the daemons' logs.
    pub fn diagnostics(&self) -> String {
        cmd::quietly(|| {
            let mut out = format!("===== FRR in {}\n", self.netns.name);
            for c in [
                "show bgp l2vpn evpn summary",
                "show evpn vni",
                "show evpn mac vni all",
            ] {
                let r = self.vtysh(c);
                let _ = writeln!(out, "--- vtysh -c '{c}':\n{}{}", r.stdout, r.stderr);
            }
            if let Ok(r) = cmd::try_run(
                &format!("bridge -n {} fdb show", self.netns.name),
                cmd::DEFAULT_TIMEOUT,
            ) {
                let fdb: Vec<&str> = r
                    .stdout
                    .lines()
                    .filter(|l| !l.starts_with("33:33") && !l.starts_with("01:00:5e"))
                    .collect();
                let _ = writeln!(out, "--- bridge fdb show:\n{}", fdb.join("\n"));
            }
            for p in [&self.zebra, &self.bgpd].into_iter().flatten() {
                let log = p.output();
                let lines: Vec<&str> = log.lines().collect();
                let _ = writeln!(
                    out,
                    "--- {} (last {LOG_TAIL} lines):\n{}",
                    p.log_path().display(),
                    lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n")
                );
            }
            out
        })
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        self.stop();
        for dir in [&self.conf_dir, &self.run_dir] {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The FRR directories of lab runs (`<root>/vt<pid>-...`), for the sweep.
pub(super) fn lab_dirs() -> Vec<PathBuf> {
    [FRR_CONF_ROOT, FRR_RUN_ROOT]
        .iter()
        .filter_map(|root| std::fs::read_dir(root).ok())
        .flat_map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| super::owner_pid(&n.to_string_lossy()).is_some())
        })
        .collect()
}
