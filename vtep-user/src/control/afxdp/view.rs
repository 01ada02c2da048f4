//! The AF_XDP engine's view of the gateway's tables.
//!
//! The engine reads the same BPF maps as the XDP engine, but a syscall per
//! lookup would cost more than the packet: it keeps a copy in userspace and
//! writes what it learns through to the maps at once, under the learning
//! rule both engines share (`vtep_common::fdb::learn_step`: static entries
//! stay, moves replace, a refresh at most once a second, `maxaddress`). Counters are kept locally
//! and added to the per-CPU maps every [`FLUSH`].
//!
//! Each worker thread (one per queue) has a view of its own; what they
//! share is in [`Shared`].
//!
//! The copy of the FDB is reloaded when the generation (`GENERATION`)
//! moves — a CLI change, checked every [`WATCH`], or entries the daemon
//! aged out — and, at most every [`RELOAD`], when another worker learned:
//! an idle engine does not read a large FDB again and again. The other
//! tables (small: VNIs, ports, flood lists, groups, next hops the daemon
//! resolves) are reloaded every [`RELOAD`].

use std::{
    collections::BTreeMap,
    hash::{BuildHasherDefault, Hasher},
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use vtep_common::{
    FdbEntry, FdbKey, MAX_FLOOD, MAX_VNI_PORTS, NeighEntry, Reason, Underlay, VniCounters, VniInfo,
    VtepAddr,
    event::{EventKind, FdbEvent},
    fdb::{Inserted, Learn, Place, granted, learn_step},
    header::is_multicast,
    reason::REASON_COUNT,
};

use crate::{
    control::events,
    datapath::gateway::{Gateway, GatewayError},
    system::clock,
};

/// How often the tables other than the FDB are reloaded (next hops the
/// daemon resolves), and the FDB after another worker learned.
pub const RELOAD: Duration = Duration::from_millis(500);
/// How often the CLI's change counter (`GENERATION`) is checked: a CLI
/// change is reloaded within this.
pub const WATCH: Duration = Duration::from_millis(10);
/// How often local counters are added to the maps.
pub const FLUSH: Duration = Duration::from_millis(100);

/// A multiply-rotate hasher for the packet loop's small fixed-size keys
/// (VNIs, ifindexes, (VNI, MAC)): SipHash, std's default, costs more than
/// the rest of a lookup. The keys come from the maps, not from packets an
/// attacker chooses freely, except MACs, whose table is bounded by
/// `maxaddress` and the FDB's capacity.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A HashMap with [`FastHasher`].
pub type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// The engine's copy of the tables, as its packet loop reads them.
#[derive(Default)]
pub struct Snapshot {
    pub underlay: Underlay,
    pub fdb: HashMap<FdbKey, FdbEntry>,
    pub vnis: HashMap<u32, VniInfo>,
    /// Access port ifindex → VNI.
    pub ports: HashMap<u32, u32>,
    /// VNI → its access ports.
    pub vni_ports: HashMap<u32, Vec<u32>>,
    /// VNI → flood list (VTEPs of either family).
    pub flood: HashMap<u32, Vec<VtepAddr>>,
    /// VNI → its multicast group (`VNI_GROUP`).
    pub groups: HashMap<u32, VtepAddr>,
    /// Remote VTEP (either family) → next hop.
    pub neigh: HashMap<VtepAddr, NeighEntry>,
}

/// What the workers of one engine share.
#[derive(Debug, Default)]
pub struct Shared {
    /// The CLI change (`GENERATION`) each worker has applied: the engine
    /// has applied the oldest of them, and the CLI waits for that.
    applied: Mutex<Vec<u64>>,
    /// Workers add their counters to the same per-CPU slot: one at a time.
    flush: Mutex<()>,
    /// Learning re-reads an entry and reserves a slot in its VNI's learned
    /// count before writing them: one worker at a time, so `maxaddress`
    /// holds (a map value has no atomic read-modify-write from userspace).
    learn: Mutex<()>,
    /// FDB writes by the workers' learning, all workers together: another
    /// worker's make a view reload its FDB.
    learned: AtomicU64,
}

impl Shared {
    pub fn new(workers: usize) -> Arc<Shared> {
        Arc::new(Shared {
            applied: Mutex::new(vec![0; workers]),
            ..Shared::default()
        })
    }
}

/// Locks `m` even if a holder panicked: what the engine's locks guard (a
/// unit, numbers, map handles) is whole either way.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The view: tables, the gateway they come from, and local counters.
pub struct View {
    pub t: Snapshot,
    gw: Gateway,
    /// When the FDB was last reloaded, and the other tables.
    loaded: Instant,
    tables_loaded: Instant,
    /// `shared.learned` as this view knows it: its own writes since the
    /// FDB was loaded, and everyone's before.
    learned_seen: u64,
    watched: Instant,
    generation: u64,
    flushed: Instant,
    reasons: [u64; REASON_COUNT as usize],
    vni_counters: BTreeMap<u32, VniCounters>,
    cpu: usize,
    shared: Arc<Shared>,
    /// This worker's place in `shared.applied`.
    worker: usize,
}

impl View {
    /// The view of worker `worker` of an engine whose workers share `shared`.
    pub fn new(gw: Gateway, shared: Arc<Shared>, worker: usize) -> Result<Self, GatewayError> {
        let cpu = clock::nr_cpus()?.saturating_sub(1);
        let mut v = View {
            t: Snapshot::default(),
            gw,
            loaded: Instant::now(),
            tables_loaded: Instant::now(),
            learned_seen: 0,
            watched: Instant::now(),
            generation: 0,
            flushed: Instant::now(),
            reasons: [0; REASON_COUNT as usize],
            vni_counters: BTreeMap::new(),
            cpu,
            shared,
            worker,
        };
        v.reload()?;
        Ok(v)
    }

    /// Reloads the tables from the maps.
    pub fn reload(&mut self) -> Result<(), GatewayError> {
        // Before the read: a write during it makes the next tick read again.
        self.learned_seen = self.shared.learned.load(Ordering::Relaxed);
        self.t.fdb = self.gw.fdb_entries().into_iter().collect();
        self.reload_tables()?;
        let generation = self.gw.generation();
        self.generation = generation;
        self.publish_applied(generation.max(1));
        self.loaded = Instant::now();
        Ok(())
    }

    /// Reloads the tables but the FDB.
    fn reload_tables(&mut self) -> Result<(), GatewayError> {
        let gw = &self.gw;
        let t = &mut self.t;
        t.underlay = gw.underlay()?;
        t.vnis = gw.vni_infos().into_iter().collect();
        t.ports = gw.port_list().into_iter().collect();
        t.vni_ports = gw
            .vni_port_lists()
            .into_iter()
            .map(|(v, l)| (v, l.ifindex[..(l.len as usize).min(MAX_VNI_PORTS)].to_vec()))
            .collect();
        t.flood = gw
            .flood_lists()
            .into_iter()
            .map(|(v, l)| {
                let n = (l.len as usize).min(MAX_FLOOD);
                (
                    v,
                    l.vteps[..n]
                        .iter()
                        .copied()
                        .filter(VtepAddr::is_set)
                        .collect(),
                )
            })
            .collect();
        t.groups = gw
            .vni_groups()
            .into_iter()
            .filter(|(_, g)| g.is_multicast())
            .collect();
        t.neigh = gw.neigh_entries().into_iter().collect();
        self.tables_loaded = Instant::now();
        Ok(())
    }

    /// Records that this worker has applied CLI change `g`, and tells the
    /// CLI the oldest change any worker has applied (0, "do not wait",
    /// until every worker has loaded its tables once).
    fn publish_applied(&mut self, g: u64) {
        let mut applied = lock(&self.shared.applied);
        if let Some(mine) = applied.get_mut(self.worker) {
            *mine = g;
        }
        let oldest = applied.iter().copied().min().unwrap_or(0);
        self.gw.set_applied_generation(oldest);
    }

    /// Housekeeping between batches: reload and flush when due.
    pub fn tick(&mut self) {
        let mut due = false;
        if self.watched.elapsed() >= WATCH {
            self.watched = Instant::now();
            due = self.gw.generation() != self.generation
                || (self.loaded.elapsed() >= RELOAD
                    && self.shared.learned.load(Ordering::Relaxed) != self.learned_seen);
        }
        if due && let Err(e) = self.reload() {
            log::warn!("afxdp: reloading the tables: {e}");
            self.loaded = Instant::now();
        } else if !due
            && self.tables_loaded.elapsed() >= RELOAD
            && let Err(e) = self.reload_tables()
        {
            log::warn!("afxdp: reloading the tables: {e}");
            self.tables_loaded = Instant::now();
        }
        if self.flushed.elapsed() >= FLUSH {
            self.flush();
        }
    }

    /// The engine stops: the CLI no longer waits for it.
    pub fn release(&mut self) {
        let _applied = lock(&self.shared.applied);
        self.gw.set_applied_generation(0);
    }

    /// Adds the local counters to the maps.
    pub fn flush(&mut self) {
        let _one_at_a_time = lock(&self.shared.flush);
        match self
            .gw
            .add_counters(self.cpu, &self.reasons, &self.vni_counters)
        {
            Ok(()) => {
                self.reasons = [0; REASON_COUNT as usize];
                self.vni_counters.clear();
            }
            Err(e) => log::warn!("afxdp: flushing counters: {e}"),
        }
        self.flushed = Instant::now();
    }

    /// The access ports of `vni`, into `out` (cleared first).
    pub fn ports_of(&self, vni: u32, out: &mut Vec<u32>) {
        out.clear();
        out.extend(self.t.vni_ports.get(&vni).into_iter().flatten());
    }

    /// The flood list of `vni`, into `out` (cleared first).
    pub fn flood_list_of(&self, vni: u32, out: &mut Vec<VtepAddr>) {
        out.clear();
        out.extend(self.t.flood.get(&vni).into_iter().flatten());
    }

    /// The multicast group of `vni`, if it has one.
    pub fn group_of(&self, vni: u32) -> Option<VtepAddr> {
        self.t.groups.get(&vni).copied()
    }

    /// The entry of destination `mac` in `vni`; none for a BUM frame,
    /// which is flooded without a lookup.
    pub fn dst_entry(&self, vni: u32, mac: &[u8; 6]) -> Option<&FdbEntry> {
        if is_multicast(mac) {
            return None;
        }
        self.t.fdb.get(&FdbKey::new(vni, *mac))
    }

    pub fn count(&mut self, reason: Reason) {
        self.reasons[reason as usize] += 1;
    }

    pub fn vni_counters(&mut self, vni: u32) -> &mut VniCounters {
        self.vni_counters.entry(vni).or_default()
    }

    /// Learns that `mac` in `vni` is at `place` (`learn_step`). The copy
    /// says whether anything needs writing; the map, read again first, has
    /// the last word (the CLI may have changed the entry since the reload).
    /// A new MAC and a move are reported to `vtep monitor`
    /// ([`events::report`]), as the XDP engine's learning reports them.
    pub fn learn(&mut self, vni: u32, mac: [u8; 6], place: Place, now_ns: u64) {
        let Some(info) = self.t.vnis.get(&vni).copied() else {
            return;
        };
        if !info.learns() {
            return;
        }
        let key = FdbKey::new(vni, mac);
        if let Some(e) = self.t.fdb.get(&key)
            && learn_step(Some(e), &place, || now_ns) == Learn::Keep
        {
            return;
        }
        let shared = self.shared.clone();
        let _one_at_a_time = lock(&shared.learn);
        let current = self.gw.fdb_get(vni, crate::model::addr::Mac(mac));
        let step = learn_step(current.as_ref(), &place, || now_ns);
        // A refresh only moves the last-seen time: no other worker needs it.
        let moved = matches!(step, Learn::Move { .. });
        let now_ns = match step {
            Learn::Keep => {
                if let Some(e) = current {
                    self.t.fdb.insert(key, e);
                }
                return;
            }
            Learn::Move { now_ns } => {
                let to = match place {
                    Place::Port(_) => "a port",
                    Place::Vtep(_) => "a vtep",
                };
                log::info!("vni {vni}: {} moved to {to}", crate::model::addr::Mac(mac));
                now_ns
            }
            Learn::Refresh { now_ns } => now_ns,
            Learn::Reserve => return self.insert(&key, place, info.max_addresses, now_ns),
        };
        let entry = place.learned(now_ns);
        if self.gw.fdb_learn(&key, &entry).is_err() {
            self.count(Reason::FdbFull);
            return;
        }
        if moved {
            self.wrote();
        }
        self.t.fdb.insert(key, entry);
        if let Some(old) = current
            && !old.same_place(&entry)
        {
            events::report(FdbEvent::new(EventKind::Moved, key, old, entry, now_ns));
        }
    }

    /// Tells the other workers that this one wrote a new or moved FDB entry.
    fn wrote(&mut self) {
        self.shared.learned.fetch_add(1, Ordering::Relaxed);
        self.learned_seen = self.learned_seen.wrapping_add(1);
    }

    /// Inserts a new MAC's entry into a slot reserved in its VNI's learned
    /// count, as the XDP engine does (`vtep-ebpf/src/learn.rs`): another
    /// worker may have learned MACs of this VNI since the reload, so the
    /// map's count, not the copy's; the slot is given back unless the entry
    /// is written. A VNI without a count is being removed: nothing is
    /// learned in it. The caller holds `shared.learn`.
    fn insert(&mut self, key: &FdbKey, place: Place, max: u32, now_ns: u64) {
        let vni = key.vni;
        let Some(before) = self.gw.learned(vni) else {
            return;
        };
        if !granted(before, max) {
            self.count(Reason::LearningLimit);
            return;
        }
        self.gw.set_learned(vni, before + 1);
        let entry = place.learned(now_ns);
        let inserted = match self.gw.fdb_learn(key, &entry) {
            Ok(()) => Inserted::Written,
            Err(_) => Inserted::Full,
        };
        if inserted.keeps_slot() {
            self.wrote();
            self.t.fdb.insert(*key, entry);
            events::report(FdbEvent::new(
                EventKind::Learned,
                *key,
                FdbEntry::default(),
                entry,
                now_ns,
            ));
        } else {
            self.gw.set_learned(vni, before);
        }
        if let Some(r) = inserted.reason() {
            self.count(r);
        }
    }
}
