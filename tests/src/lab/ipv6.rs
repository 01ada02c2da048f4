//! The IPv6 underlay's shape: a vtep host facing a host that uses the
//! kernel's vxlan driver over 2001:db8::/64 ([`Interop6`]).

use super::{
    Daemon, Host, Lab, OVERLAY6_MTU, VXLAN_PORT, VniConfig, VtepConfig, Workload, mac, tenant_net,
};

/// Host 1 runs vtep at 2001:db8::1, host 2 the kernel's vxlan driver at
/// 2001:db8::2 (with learning, as `ip link add` makes it); one VNI, one
/// workload each (tenant 1: `192.0.2.1` on host 1, `192.0.2.2` on host 2),
/// MTU [`OVERLAY6_MTU`] on both. Each side floods to the other.
/// Field order is drop order: the daemon ends first.
pub struct Interop6 {
    pub daemon: Daemon,
    pub vtep_host: Host,
    pub kernel_host: Host,
    pub on_vtep: Workload,
    pub on_kernel: Workload,
    /// What the daemon was started with.
    pub config: VtepConfig,
}

impl Lab {
    /// Builds an [`Interop6`] lab for `vni`: the kernel's device made with
    /// `kernel_options` as well (`udp6zerocsumtx`, say), vtep's configuration
    /// changed by `tune` (say, to set `udp6_zero_csum_rx`).
    pub fn interop6(
        &self,
        vni: u32,
        kernel_options: &str,
        tune: impl FnOnce(VtepConfig) -> VtepConfig,
    ) -> Interop6 {
        let vtep_host = self.host(1);
        vtep_host.enable_ipv6();
        let kernel_args = format!(
            "local {} dstport {VXLAN_PORT} {kernel_options}",
            super::underlay_ip6(2)
        );
        let kernel_host = self.kernel_vxlan_host_raw(
            2,
            vni,
            &kernel_args,
            OVERLAY6_MTU,
            &[&vtep_host.underlay_ip6()],
        );
        let net = tenant_net(1);
        let on_vtep = self.workload_mtu(
            &vtep_host,
            (1, 1),
            &mac(1, 1, 1),
            &format!("{net}.1/24"),
            OVERLAY6_MTU,
        );
        let on_kernel = self.kernel_workload_mtu(
            &kernel_host,
            vni,
            (1, 1),
            (&mac(2, 1, 1), &format!("{net}.2/24")),
            OVERLAY6_MTU,
        );
        let config = tune(
            VtepConfig::new(&vtep_host.underlay_ip6()).vni(
                VniConfig::new(vni)
                    .port(&on_vtep.port)
                    .flood([kernel_host.underlay_ip6()]),
            ),
        );
        Interop6 {
            daemon: self.start_vtep(&vtep_host, &config),
            vtep_host,
            kernel_host,
            on_vtep,
            on_kernel,
            config,
        }
    }
}

impl Host {
    /// The remote VTEP the kernel's `vxlan<vni>` holds for `mac`
    /// (`bridge fdb show dev vxlan<vni>`: `MAC dst ADDR ...`), if any: what its
    /// learning made of a frame from `mac`.
    pub fn vxlan_fdb_dst(&self, vni: u32, mac: &str) -> Option<String> {
        let fdb = self.bridge(&format!("fdb show dev vxlan{vni}"));
        fdb.lines()
            .filter(|l| {
                l.to_ascii_lowercase()
                    .starts_with(&mac.to_ascii_lowercase())
            })
            .find_map(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "dst")?;
                words.next().map(str::to_owned)
            })
    }
}
