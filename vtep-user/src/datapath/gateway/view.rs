//! Whole-table reads and single-entry writes for the AF_XDP engine's view
//! of the tables, and the change counter (`GENERATION`) it follows.

use super::*;

/// Whole-table reads and single-entry writes for the AF_XDP engine, which
/// keeps a view of the tables in userspace (see `crate::control::afxdp::view`).
impl Gateway {
    /// Every FDB entry: read in batches (`BPF_MAP_LOOKUP_BATCH`, a syscall
    /// per thousands of entries, where iterating takes two per entry: with
    /// 100,000 followed entries that is the daemon's whole upkeep), else one
    /// by one.
    pub fn fdb_entries(&self) -> Vec<(FdbKey, FdbEntry)> {
        use aya::maps::IterableMap as _;
        use std::os::fd::{AsFd as _, AsRawFd as _};
        let fd = self.fdb.map().fd().as_fd().as_raw_fd();
        match lookup_batch::<FdbKey, FdbEntry>(fd) {
            Ok(all) => all,
            Err(e) => {
                log::debug!("FDB: batch lookup unavailable ({e}); iterating");
                self.fdb.iter().filter_map(|r| r.ok()).collect()
            }
        }
    }

    /// Writes one FDB entry as the datapath's learning does (no checks).
    pub fn fdb_learn(&mut self, key: &FdbKey, entry: &FdbEntry) -> Result<()> {
        self.fdb.insert(key, entry, 0).map_err(map_err(names::FDB))
    }

    /// Every VNI with its settings.
    pub fn vni_infos(&self) -> Vec<(u32, VniInfo)> {
        self.vnis.iter().filter_map(|r| r.ok()).collect()
    }

    /// The access ports of every VNI.
    pub fn vni_port_lists(&self) -> Vec<(u32, PortList)> {
        self.vni_ports.iter().filter_map(|r| r.ok()).collect()
    }

    /// The flood list of every VNI.
    pub fn flood_lists(&self) -> Vec<(u32, FloodList)> {
        self.flood.iter().filter_map(|r| r.ok()).collect()
    }

    /// Every resolved next hop.
    pub fn neigh_entries(&self) -> Vec<(VtepAddr, NeighEntry)> {
        self.neigh.iter().filter_map(|r| r.ok()).collect()
    }

    /// The multicast group of every VNI that has one (`VNI_GROUP`). Read
    /// through the pin, so a gateway handle opened before the map existed
    /// (a gateway of an older layout) sees none rather than failing.
    pub fn vni_groups(&self) -> Vec<(u32, VtepAddr)> {
        let path = self.pins.map(names::VNI_GROUP);
        let Ok(data) = MapData::from_pin(&path) else {
            return Vec::new();
        };
        let Ok(map) =
            Map::from_map_data(data).and_then(HashMap::<MapData, u32, VtepAddr>::try_from)
        else {
            return Vec::new();
        };
        map.iter().filter_map(|r| r.ok()).collect()
    }

    /// Learned MACs of `vni`, as the datapath counts them.
    pub fn learned(&self, vni: u32) -> Option<u64> {
        self.learned.get(&vni, 0).ok()
    }

    pub fn set_learned(&mut self, vni: u32, n: u64) {
        let _ = self.learned.insert(vni, n, 0);
    }

    /// Adds counts made outside the kernel (the AF_XDP engine) to the
    /// per-CPU counters, in the slot of CPU `cpu`.
    pub fn add_counters(
        &mut self,
        cpu: usize,
        reasons: &[u64],
        vnis: &BTreeMap<u32, VniCounters>,
    ) -> Result<()> {
        for (code, &n) in reasons.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let code = code as u32;
            let mut v: Vec<u64> = self
                .reasons
                .get(&code, 0)
                .map_err(map_err(names::REASONS))?
                .to_vec();
            if let Some(slot) = v.get_mut(cpu) {
                *slot += n;
            }
            let v = PerCpuValues::try_from(v)
                .map_err(|e| GatewayError::Invalid(format!("per-CPU values: {e}")))?;
            self.reasons
                .set(code, v, 0)
                .map_err(map_err(names::REASONS))?;
        }
        for (vni, delta) in vnis {
            let Ok(v) = self.vni_stats.get(vni, 0) else {
                continue;
            };
            let mut v: Vec<VniCounters> = v.to_vec();
            if let Some(slot) = v.get_mut(cpu) {
                slot.add(delta);
            }
            let v = PerCpuValues::try_from(v)
                .map_err(|e| GatewayError::Invalid(format!("per-CPU values: {e}")))?;
            self.vni_stats
                .insert(*vni, v, 0)
                .map_err(map_err(names::VNI_STATS))?;
        }
        Ok(())
    }
}

/// The change counter of [`names::GENERATION`].
impl Gateway {
    /// Tells engines with a copy of the tables that they changed; returns
    /// the new generation.
    pub fn bump_generation(&mut self) -> Result<u64> {
        let g = self.generation().wrapping_add(1).max(1);
        self.generation
            .set(0, g, 0)
            .map_err(map_err(names::GENERATION))?;
        Ok(g)
    }

    pub fn generation(&self) -> u64 {
        self.generation.get(&0, 0).unwrap_or(0)
    }

    /// The generation a userspace engine has applied; 0 when none runs.
    pub fn applied_generation(&self) -> u64 {
        self.generation.get(&1, 0).unwrap_or(0)
    }

    /// Records (engine side) that generation `g` is applied; 0 when the
    /// engine stops.
    pub fn set_applied_generation(&mut self, g: u64) {
        let _ = self.generation.set(1, g, 0);
    }

    /// Waits (CLI side) until a running userspace engine has applied
    /// generation `g`; false if it has not within `timeout`.
    pub fn wait_applied(&self, g: u64, timeout: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        loop {
            let applied = self.applied_generation();
            if applied == 0 || applied >= g {
                return true;
            }
            if start.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
