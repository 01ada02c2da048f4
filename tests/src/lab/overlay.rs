//! The lab's common shapes: one VNI stretched over `n` vtep hosts with one
//! workload each ([`Overlay`]), and a vtep host facing a host that uses the
//! kernel's vxlan driver ([`Interop`]).

use super::{Daemon, Host, Lab, VniConfig, VtepConfig, Workload, mac, tenant_net};

/// Whether [`Lab::overlay`] fills the flood lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flood {
    /// Every host floods to every other host.
    FullMesh,
    /// Empty flood lists: a test adds members (`vtep fdb append`) or static entries.
    Empty,
}

/// Hosts `1..=n` running vtep, each with workload 1 of tenant 1 on access port `t1w1`.
/// Field order is drop order: daemons end before anything else goes.
pub struct Overlay {
    pub daemons: Vec<Daemon>,
    /// `workloads[i]` is on `hosts[i]`: MAC `mac(n, 1, 1)`, address `192.0.2.<n>/24`.
    pub workloads: Vec<Workload>,
    pub hosts: Vec<Host>,
    /// What each daemon was started with, to start it again.
    pub configs: Vec<VtepConfig>,
}

impl Lab {
    /// Builds an [`Overlay`] of `n` hosts; every host's VNI is `vni` plus its
    /// access port and, with [`Flood::FullMesh`], the other hosts as flood list.
    pub fn overlay(&self, n: u8, vni: &VniConfig, flood: Flood) -> Overlay {
        let hosts: Vec<Host> = (1..=n).map(|i| self.host(i)).collect();
        let workloads: Vec<Workload> = hosts
            .iter()
            .map(|h| {
                let cidr = format!("{}.{}/24", tenant_net(1), h.n);
                self.workload(h, 1, 1, &mac(h.n, 1, 1), &cidr)
            })
            .collect();
        let configs: Vec<VtepConfig> = hosts
            .iter()
            .zip(&workloads)
            .map(|(host, workload)| {
                let peers = hosts
                    .iter()
                    .filter(|peer| peer.n != host.n && flood == Flood::FullMesh)
                    .map(|peer| &peer.underlay_ip);
                VtepConfig::new(&host.underlay_ip)
                    .vni(vni.clone().port(&workload.port).flood(peers))
            })
            .collect();
        let daemons = hosts
            .iter()
            .zip(&configs)
            .map(|(host, config)| self.start_vtep(host, config))
            .collect();
        Overlay {
            daemons,
            workloads,
            hosts,
            configs,
        }
    }
}

impl Overlay {
    /// Stops the daemon of `hosts[i]` (SIGTERM; the datapath stays).
    pub fn stop(&mut self, i: usize) {
        self.daemons[i].stop();
    }

    /// Starts the daemon of `hosts[i]` again, with its first configuration.
    pub fn restart(&mut self, lab: &Lab, i: usize) {
        self.daemons[i] = lab.start_vtep(&self.hosts[i], &self.configs[i]);
    }
}

/// Host 1 runs vtep, host 2 the kernel's vxlan driver; one VNI, one workload
/// each (tenant 1: `192.0.2.1` on host 1, `192.0.2.2` on host 2).
pub struct Interop {
    pub daemon: Daemon,
    pub vtep_host: Host,
    pub kernel_host: Host,
    pub on_vtep: Workload,
    pub on_kernel: Workload,
}

/// How [`Lab::interop_with`] builds its lab.
#[derive(Clone, Copy, Debug)]
pub struct InteropOptions {
    /// Both sides send outer UDP checksums (vtep's `udp_checksum = true`,
    /// the kernel's `udpcsum`).
    pub udp_checksum: bool,
    /// Queues of the vtep host's uplink (and of its switch port).
    pub uplink_queues: u32,
    /// The vtep engine, whatever `VTEP_ENGINE` says (`None`: as it says).
    pub engine: Option<&'static str>,
}

impl Default for InteropOptions {
    fn default() -> Self {
        InteropOptions {
            udp_checksum: false,
            uplink_queues: 1,
            engine: None,
        }
    }
}

impl Lab {
    /// Builds an [`Interop`] lab for `vni`, each side flooding to the other.
    pub fn interop(&self, vni: u32) -> Interop {
        self.interop_with(vni, InteropOptions::default())
    }

    /// Like [`Lab::interop`], built as `options` say.
    pub fn interop_with(&self, vni: u32, options: InteropOptions) -> Interop {
        let vtep_host = self.host_with_queues(1, options.uplink_queues);
        let kernel_host = self.kernel_vxlan_host_with(
            2,
            &[vni],
            &[&vtep_host.underlay_ip],
            if options.udp_checksum { "udpcsum" } else { "" },
        );
        let net = tenant_net(1);
        let on_vtep = self.workload(&vtep_host, 1, 1, &mac(1, 1, 1), &format!("{net}.1/24"));
        let on_kernel = self.kernel_workload(
            &kernel_host,
            vni,
            (1, 1),
            &mac(2, 1, 1),
            &format!("{net}.2/24"),
        );
        let mut config = VtepConfig::new(&vtep_host.underlay_ip);
        config.underlay.udp_checksum = options.udp_checksum.then_some(true);
        let config = config.vni(
            VniConfig::new(vni)
                .port(&on_vtep.port)
                .flood([&kernel_host.underlay_ip]),
        );
        let engine = options
            .engine
            .map(str::to_owned)
            .or_else(|| std::env::var("VTEP_ENGINE").ok());
        Interop {
            daemon: self.start_vtep_on(&vtep_host, config, engine.as_deref()),
            vtep_host,
            kernel_host,
            on_vtep,
            on_kernel,
        }
    }
}
