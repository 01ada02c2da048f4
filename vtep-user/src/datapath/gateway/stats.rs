//! Counters: per-VNI traffic (`VNI_STATS`) and per-reason counts (`REASONS`), summed over CPUs.

use super::*;

/// Traffic and reason counters, summed over CPUs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub vnis: BTreeMap<u32, VniCounters>,
    pub reasons: Vec<(Reason, u64)>,
    /// FDB events `vtep monitor` lost (`Gateway::monitor_lost`).
    pub monitor_lost: u64,
}

impl Gateway {
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        for r in self.vni_stats.iter() {
            let (vni, per_cpu) = r.map_err(map_err(names::VNI_STATS))?;
            let mut sum = VniCounters::default();
            for c in per_cpu.iter() {
                sum.add(c);
            }
            s.vnis.insert(vni, sum);
        }
        for code in 0..REASON_COUNT {
            let per_cpu = self
                .reasons
                .get(&code, 0)
                .map_err(map_err(names::REASONS))?;
            let n: u64 = per_cpu.iter().sum();
            if let Some(r) = Reason::from_code(code) {
                s.reasons.push((r, n));
            }
        }
        s.monitor_lost = self.monitor_lost();
        Ok(s)
    }
}
