//! The FDB events of `vtep monitor`: the datapath's ring buffer
//! (`FDB_EVENTS`) and the count of events it had no room for
//! (`FDB_EV_LOST`). Opened on demand from their pins, so a gateway pinned
//! by a vtep without them still opens (and has lost nothing).

use aya::maps::RingBuf;

use super::*;

impl Gateway {
    /// The datapath's FDB events, for their one reader, the daemon.
    pub fn fdb_events(&self) -> Result<RingBuf<MapData>> {
        self.pinned(names::FDB_EVENTS)
    }

    fn events_lost_map(&self) -> Result<PerCpuArray<MapData, u64>> {
        self.pinned(names::FDB_EV_LOST)
    }

    /// The pinned map `name`, typed.
    fn pinned<T: TryFrom<Map, Error = MapError>>(&self, name: &'static str) -> Result<T> {
        let data = MapData::from_pin(self.pins.map(name)).map_err(map_err(name))?;
        let map = Map::from_map_data(data).map_err(map_err(name))?;
        map.try_into().map_err(map_err(name))
    }

    /// FDB events lost before the daemon could pass them on (the ring, or
    /// the AF_XDP engine's channel, was full), summed over CPUs; 0 when
    /// the map is not pinned.
    pub fn monitor_lost(&self) -> u64 {
        if !self.pins.map(names::FDB_EV_LOST).exists() {
            return 0;
        }
        self.events_lost_map()
            .and_then(|m| m.get(&0, 0).map_err(map_err(names::FDB_EV_LOST)))
            .map(|per_cpu| per_cpu.iter().sum())
            .unwrap_or(0)
    }

    /// Adds `n` lost events to CPU `cpu`'s count (the AF_XDP engine's).
    pub fn add_monitor_lost(&mut self, cpu: usize, n: u64) -> Result<()> {
        let mut map = self.events_lost_map()?;
        let mut v: Vec<u64> = map
            .get(&0, 0)
            .map_err(map_err(names::FDB_EV_LOST))?
            .to_vec();
        if let Some(slot) = v.get_mut(cpu) {
            *slot += n;
        }
        let v = PerCpuValues::try_from(v)
            .map_err(|e| GatewayError::Invalid(format!("per-CPU values: {e}")))?;
        map.set(0, v, 0).map_err(map_err(names::FDB_EV_LOST))
    }
}
