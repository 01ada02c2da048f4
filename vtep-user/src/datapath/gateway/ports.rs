//! Access ports: port → VNI (`PORTS`), each VNI's ports (`VNI_PORTS`) and the redirect map (`PORT_TX`).

use vtep_common::ListFull;

use super::*;

impl Gateway {
    /// The VNI of access port `ifindex`, if it is one.
    pub fn port_vni(&self, ifindex: u32) -> Option<u32> {
        self.ports
            .get(&PortKey::untagged(ifindex), 0)
            .ok()
            .map(|p| p.vni)
    }

    /// Every access port: (ifindex, VNI).
    pub fn port_list(&self) -> Vec<(u32, u32)> {
        let mut v: Vec<(u32, u32)> = self
            .ports
            .iter()
            .filter_map(|r| r.ok())
            .map(|(k, p)| (k.ifindex, p.vni))
            .collect();
        v.sort_unstable();
        v
    }

    /// Makes `ifindex` an access port of `vni` in the maps (attaching the
    /// programs is the loader's job: see [`crate::datapath::loader::attach`]).
    pub fn port_set(&mut self, ifindex: u32, ifname: &str, vni: u32) -> Result<()> {
        self.vni_info(vni)?;
        check::port_set(self, ifindex, ifname, vni)?;
        let mut list = self.vni_ports.get(&vni, 0).unwrap_or_default();
        if !list.contains(ifindex) {
            list.push(ifindex)
                .map_err(|ListFull| GatewayError::PortListFull(vni))?;
            self.vni_ports
                .insert(vni, list, 0)
                .map_err(map_err(names::VNI_PORTS))?;
        }
        self.ports
            .insert(PortKey::untagged(ifindex), PortInfo { vni, flags: 0 }, 0)
            .map_err(map_err(names::PORTS))
    }

    /// Removes access port `ifname` from the maps, detaches its programs and
    /// flushes the FDB entries that point to it.
    pub fn port_del(&mut self, ifname: &str) -> Result<()> {
        let (ifindex, _) = check::port_del(self, ifname, iface::ifindex(ifname))?;
        self.port_del_index(ifindex, ifname)
    }

    /// Removes access port `ifindex` (named `ifname` in messages).
    pub fn port_del_index(&mut self, ifindex: u32, ifname: &str) -> Result<()> {
        loader::detach(&self.pins, ifindex)
            .map_err(|e| GatewayError::Attach(format!("{ifname}: {e:#}")))?;
        if let Some(vni) = self.port_vni(ifindex)
            && let Ok(mut list) = self.vni_ports.get(&vni, 0)
        {
            list.remove(ifindex);
            self.vni_ports
                .insert(vni, list, 0)
                .map_err(map_err(names::VNI_PORTS))?;
        }
        let _ = self.ports.remove(&PortKey::untagged(ifindex));
        self.set_xdp_tx(ifindex, false)?;
        let stale: Vec<FdbKey> = self
            .fdb
            .iter()
            .filter_map(|r| r.ok())
            .filter(|(_, e)| e.kind == FDB_KIND_LOCAL && e.ifindex == ifindex)
            .map(|(k, _)| k)
            .collect();
        for k in stale {
            self.fdb_remove_counted(&k);
        }
        Ok(())
    }
}
