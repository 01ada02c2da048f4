//! VNIs: their settings (`VNIS`), learned counts (`VNI_LEARNED`), counters (`VNI_STATS`) and whether they are followed.

use super::*;

impl Gateway {
    pub fn vni_info(&self, vni: u32) -> Result<VniInfo> {
        self.vnis.get(&vni, 0).map_err(|e| {
            if is_not_found(&e) {
                GatewayError::UnknownVni(vni)
            } else {
                map_err(names::VNIS)(e)
            }
        })
    }

    pub fn vni_exists(&self, vni: u32) -> bool {
        self.vnis.get(&vni, 0).is_ok()
    }

    /// True when `vni` mirrors a kernel vxlan device (`[follow]`): the
    /// follower owns it, its entries and its flood list.
    pub fn vni_followed(&self, vni: u32) -> bool {
        self.vnis
            .get(&vni, 0)
            .is_ok_and(|i| i.flags & VNI_F_FOLLOWED != 0)
    }

    /// Creates a VNI, or with `replace` updates its settings and its group
    /// (ports and flood list are set separately). The group is checked
    /// before anything is written, and joined before the VNI is created: a
    /// refused or failed one changes nothing.
    pub fn vni_set(&mut self, v: &VniConfig, replace: bool) -> Result<()> {
        check::vni_set(self, v.id, replace)?;
        check::vni_group(self, v.group)?;
        let mut flags = 0;
        if v.learning {
            flags |= VNI_F_LEARNING;
        }
        if v.check_source {
            flags |= VNI_F_CHECK_SOURCE;
        }
        let info = VniInfo {
            flags,
            max_addresses: v.maxaddress,
            ageing_secs: v.ageing,
            _pad: 0,
        };
        let existed = self.vni_exists(v.id);
        if let Some(g) = v.group {
            // Joined first: the VNI does not take group frames it cannot get.
            self.group_join(g)?;
        }
        self.vni_put(v.id, info)?;
        if let Err(e) = self.vni_group_set(v.id, v.group) {
            if !existed {
                let _ = self.vni_remove(v.id);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Creates or updates a followed VNI (`VNI_F_FOLLOWED`: the
    /// kernel learns and ages, vtep does not). `learning`: the kernel's
    /// vxlan device learns remote MACs, so the datapath lets it see remote
    /// sources (`VNI_F_LEARNING`). For the follower only.
    pub fn vni_follow(&mut self, vni: u32, learning: bool) -> Result<()> {
        let info = VniInfo {
            flags: VNI_F_FOLLOWED | if learning { VNI_F_LEARNING } else { 0 },
            max_addresses: 0,
            ageing_secs: 0,
            _pad: 0,
        };
        if self.vni_info(vni).is_ok_and(|i| i == info) {
            return Ok(());
        }
        self.vni_put(vni, info)
    }

    /// Removes a followed VNI with its ports, flood list and entries, as
    /// [`Gateway::vni_del`] (for the follower, and for a config that takes
    /// the VNI over).
    pub fn vni_unfollow(&mut self, vni: u32) -> Result<()> {
        if !self.vni_followed(vni) {
            return Ok(());
        }
        self.vni_remove(vni)
    }

    /// Writes a VNI's settings, with zeroed counters for a new one.
    pub(super) fn vni_put(&mut self, vni: u32, info: VniInfo) -> Result<()> {
        if self.vni_stats.get(&vni, 0).is_err() {
            let zero = PerCpuValues::try_from(vec![VniCounters::default(); clock::nr_cpus()?])
                .map_err(|e| GatewayError::Invalid(format!("per-CPU values: {e}")))?;
            self.vni_stats
                .insert(vni, zero, 0)
                .map_err(map_err(names::VNI_STATS))?;
        }
        if self.learned.get(&vni, 0).is_err() {
            self.learned
                .insert(vni, 0, 0)
                .map_err(map_err(names::VNI_LEARNED))?;
        }
        self.vnis.insert(vni, info, 0).map_err(map_err(names::VNIS))
    }

    /// Removes a VNI with everything in it: its access ports (detached),
    /// flood list, FDB entries and counters.
    pub fn vni_del(&mut self, vni: u32) -> Result<()> {
        self.vni_info(vni)?;
        check::owned(self, vni)?;
        self.vni_remove(vni)
    }

    pub(super) fn vni_remove(&mut self, vni: u32) -> Result<()> {
        self.vni_info(vni)?;
        for ifindex in self.vni_ports(vni) {
            let ifname = iface::ifname(ifindex).unwrap_or_else(|| format!("if{ifindex}"));
            self.port_del_index(ifindex, &ifname)?;
        }
        // While the VNI still says whether it is followed.
        self.vni_group_forget(vni);
        self.vnis.remove(&vni).map_err(map_err(names::VNIS))?;
        let keys: Vec<FdbKey> = self
            .fdb
            .keys()
            .filter_map(|k| k.ok())
            .filter(|k| k.vni == vni)
            .collect();
        for k in keys {
            let _ = self.fdb.remove(&k);
        }
        let _ = self.flood.remove(&vni);
        let _ = self.vni_ports.remove(&vni);
        let _ = self.learned.remove(&vni);
        let _ = self.vni_stats.remove(&vni);
        Ok(())
    }

    pub fn vni_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.vnis.keys().filter_map(|k| k.ok()).collect();
        ids.sort_unstable();
        ids
    }

    /// The access ports of `vni` (ifindexes, in the order it floods them).
    pub fn vni_ports(&self, vni: u32) -> Vec<u32> {
        self.vni_ports
            .get(&vni, 0)
            .map(|l| l.ifindex[..(l.len as usize).min(MAX_VNI_PORTS)].to_vec())
            .unwrap_or_default()
    }
}
