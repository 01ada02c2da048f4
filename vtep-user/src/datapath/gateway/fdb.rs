//! The FDB (`FDB`): static, learned and followed entries, the `bridge fdb` verbs, and ageing.

use std::collections::HashSet;

use super::*;
use crate::system::bpf_batch::{Cursor, Reader};

impl Gateway {
    pub fn fdb_get(&self, vni: u32, mac: Mac) -> Option<FdbEntry> {
        self.fdb.get(&FdbKey::new(vni, mac.0), 0).ok()
    }

    /// Adds or replaces a static entry (`bridge fdb add|replace`).
    pub fn fdb_set(&mut self, vni: u32, mac: Mac, entry: FdbEntry, mode: SetMode) -> Result<()> {
        self.vni_info(vni)?;
        let port = (entry.kind == FDB_KIND_LOCAL).then_some(entry.ifindex);
        check::fdb_set(
            self,
            vni,
            mac,
            port,
            entry.flags & FDB_F_FOLLOWED != 0,
            mode,
        )?;
        let key = FdbKey::new(vni, mac.0);
        let old = self.fdb.get(&key, 0).ok();
        self.fdb
            .insert(key, entry, 0)
            .map_err(map_err(names::FDB))?;
        self.note_vtep(&entry);
        if old.is_some_and(|o| o.flags & FDB_F_LEARNED != 0) {
            self.learned_add(vni, -1);
        }
        Ok(())
    }

    /// Deletes an entry (`bridge fdb del`).
    pub fn fdb_del(&mut self, vni: u32, mac: Mac) -> Result<()> {
        self.vni_info(vni)?;
        check::fdb_del(self, vni, mac)?;
        self.fdb_remove_counted(&FdbKey::new(vni, mac.0));
        Ok(())
    }

    /// Removes an entry the follower mirrored (`FDB_F_FOLLOWED`); any other
    /// entry is left alone. True when one was removed.
    pub fn fdb_del_followed(&mut self, key: &FdbKey) -> bool {
        match self.fdb.get(key, 0) {
            Ok(old) if old.flags & FDB_F_FOLLOWED != 0 => self.fdb.remove(key).is_ok(),
            _ => false,
        }
    }

    /// Writes an entry the follower mirrored, unless the map holds it
    /// already (the datapath's `last_seen_ns` of a followed entry is not
    /// compared, and kept). True when it wrote.
    pub fn fdb_put_followed(&mut self, key: &FdbKey, entry: &FdbEntry) -> Result<bool> {
        if let Ok(old) = self.fdb.get(key, 0)
            && old.same_place(entry)
            && old.flags == entry.flags
        {
            return Ok(false);
        }
        let old = self.fdb.get(key, 0).ok();
        self.fdb
            .insert(key, entry, 0)
            .map_err(map_err(names::FDB))?;
        self.note_vtep(entry);
        if old.is_some_and(|o| o.flags & FDB_F_LEARNED != 0) {
            self.learned_add(key.vni, -1);
        }
        Ok(true)
    }

    /// Removes an entry, keeping the VNI's learned count right.
    pub(super) fn fdb_remove_counted(&mut self, key: &FdbKey) {
        if let Ok(old) = self.fdb.get(key, 0)
            && self.fdb.remove(key).is_ok()
            && old.flags & FDB_F_LEARNED != 0
        {
            self.learned_add(key.vni, -1);
        }
    }

    pub(super) fn learned_add(&mut self, vni: u32, delta: i64) {
        if let Ok(n) = self.learned.get(&vni, 0) {
            let _ = self.learned.insert(vni, n.saturating_add_signed(delta), 0);
        }
    }

    /// Tells the ageing of entries the datapath learned (new and moved
    /// MACs, as the monitor's events say); `untold`: some may have been
    /// learned without an event (the ring was full, or no ring is read).
    /// With every learned entry known, ageing looks at those each call and
    /// walks the rest of the table slowly (see [`Gateway::age`]).
    pub fn note_learned(&mut self, learned: &[(FdbKey, FdbEntry)], untold: bool) {
        if untold {
            self.walk.index_whole = false;
            self.walk.pass_told = false;
        }
        for (k, e) in learned {
            self.note_vtep(e);
            self.index_learned(*k);
        }
    }

    /// Puts `key` in the index of learned entries, unless it is full: then
    /// the index no longer holds them all.
    fn index_learned(&mut self, key: FdbKey) {
        if self.walk.index.len() < MAX_INDEX {
            self.walk.index.insert(key);
        } else if !self.walk.index.contains(&key) {
            self.walk.index_whole = false;
            self.walk.pass_told = false;
        }
    }

    /// Ages learned entries out, a slice of the FDB per call (the daemon
    /// calls it every second): removes those older than their VNI's
    /// `ageing`, and once a pass over the whole table is done, recounts each
    /// VNI's learned MACs. Returns the entries it aged out.
    ///
    /// A call reads a slice (`BPF_MAP_LOOKUP_BATCH`, from where the last
    /// one stopped), so the upkeep does not grow with the table: the slice
    /// is sized for a pass over the table to take a tenth of the shortest
    /// `ageing` ([`PASS_SHARE`]: 30 s of the default 300 s), from the size
    /// of the pass before, between [`MIN_SLICE`] and [`MAX_SLICE`] entries.
    /// An entry thus ages out at most a tenth of its ageing late, or
    /// `n / MAX_SLICE` seconds for a table of `n` entries if that is more
    /// (16 s at 1,048,576), plus a second. (The kernel's batch lookup is
    /// most of the cost, about 0.5 µs an entry here: a million entries in
    /// passes of 30 s took about 2% of a core.) While the VNIs' counts say no entry is
    /// learned (static and followed tables), one call in [`QUIET_TICKS`]
    /// reads a slice.
    ///
    /// Learned entries the daemon knows of (at most [`MAX_INDEX`], from
    /// the passes and [`Gateway::note_learned`]) are looked at every call,
    /// so they age out within a second. Once a whole pass has seen every
    /// learned entry while each one learned since was told of, the walk
    /// is only a check (for what was learned untold, and the counts): it
    /// reads [`MIN_SLICE`] entries once in [`QUIET_TICKS`] calls (a pass over
    /// a million entries takes about 34 minutes). A lost event, or more
    /// learned entries than the index holds, goes back to the short passes.
    ///
    /// The datapath reserves slots in the counts while this walks (an
    /// atomic add on the map value), and a write from here replaces the
    /// value: what a slice ages out is taken off the count at once, and the
    /// recount is written only over a count that did not change otherwise
    /// during the pass, and nothing is written over a count that is right.
    pub fn age(&mut self, now_ns: u64) -> Vec<(FdbKey, FdbEntry)> {
        let infos = self.vni_infos();
        // Followed VNIs hold no learned entries (the kernel learns): with
        // only those, the walk only looks for remote VTEPs.
        let learning = !infos.iter().all(|(_, i)| i.flags & VNI_F_FOLLOWED != 0);
        let ageing: BTreeMap<u32, u32> =
            infos.into_iter().map(|(v, i)| (v, i.ageing_secs)).collect();
        let counts: BTreeMap<u32, u64> = self.learned.iter().filter_map(|r| r.ok()).collect();
        // No learned entry by the counts (a static or followed table), or
        // every learned one in the index: a slice every QUIET_TICKS calls,
        // enough to correct a wrong count, to find what was learned untold
        // and to drop VTEPs no entry points to any more.
        let none_learned = counts.values().all(|&n| n == 0);
        let read_slice = if none_learned || self.walk.index_whole {
            self.walk.quiet = (self.walk.quiet + 1) % QUIET_TICKS;
            self.walk.quiet == 0
        } else {
            true
        };
        if none_learned && !read_slice {
            return Vec::new();
        }
        if read_slice && self.walk.at.is_none() {
            self.walk.pass_len = self.walk.read;
            self.walk.read = 0;
            self.walk.pass_told = true;
            self.walk.before = counts;
            self.walk.counts = ageing.keys().map(|&v| (v, 0)).collect();
            self.walk.aged.clear();
        }
        // A share of the shortest ageing, in calls (seconds), for a pass.
        let pass_ticks = ageing
            .values()
            .filter(|&&a| a != 0)
            .min()
            .map_or(1, |&a| (a / PASS_SHARE).max(1)) as usize;
        let slice_len = match self.walk.pass_len {
            // A check only: the fewest, for the slowest pass.
            _ if self.walk.index_whole => MIN_SLICE,
            0 => MAX_SLICE,
            n => n.div_ceil(pass_ticks).clamp(MIN_SLICE, MAX_SLICE),
        };
        log::trace!(
            "ageing: {} (a slice of {slice_len}; pass of {} so far {}, index {} whole {})",
            if read_slice {
                "walks"
            } else {
                "looks at the index"
            },
            self.walk.pass_len,
            self.walk.read,
            self.walk.index.len(),
            self.walk.index_whole
        );
        let mut slice = std::mem::take(&mut self.walk.slice);
        slice.clear();
        let next = if read_slice {
            self.fdb_read(self.walk.at.unwrap_or(Cursor::START), slice_len, &mut slice)
        } else {
            self.walk.at
        };
        self.walk.read += slice.len();
        let mut expired = Vec::new();
        for &(k, e) in &slice {
            if e.kind != FDB_KIND_LOCAL
                && let Some(vtep) = from_vtep(&e.remote)
            {
                self.walk.vteps.insert(vtep);
            }
            if !learning || e.flags & FDB_F_LEARNED == 0 {
                continue;
            }
            if expired_at(&ageing, &k, &e, now_ns) {
                expired.push((k, e, true));
            } else {
                *self.walk.counts.entry(k.vni).or_default() += 1;
                self.index_learned(k);
            }
        }
        // The learned entries known: each looked at (those not learned any
        // more, or gone, leave the index).
        let index = std::mem::take(&mut self.walk.index);
        for k in index {
            match self.fdb.get(&k, 0) {
                Ok(e) if learning && e.flags & FDB_F_LEARNED != 0 => {
                    if expired_at(&ageing, &k, &e, now_ns) {
                        if !expired.iter().any(|(x, _, _)| *x == k) {
                            expired.push((k, e, false));
                        }
                    } else {
                        self.walk.index.insert(k);
                    }
                }
                _ => {}
            }
        }
        let mut removed = Vec::new();
        let mut aged: BTreeMap<u32, u64> = BTreeMap::new();
        for (k, seen, in_slice) in expired {
            // Re-read: the datapath may have refreshed it since.
            match self.fdb.get(&k, 0) {
                Ok(e) if e == seen => {
                    if self.fdb.remove(&k).is_ok() {
                        removed.push((k, seen));
                        *aged.entry(k.vni).or_default() += 1;
                    }
                }
                Ok(_) => {
                    // Refreshed: counted by the pass if its slice held it.
                    if in_slice {
                        *self.walk.counts.entry(k.vni).or_default() += 1;
                    }
                    self.index_learned(k);
                }
                Err(_) => {}
            }
        }
        for (vni, n) in aged {
            self.learned_add(vni, -(n as i64));
            *self.walk.aged.entry(vni).or_default() += n;
        }
        self.walk.slice = slice;
        self.walk.at = next;
        if read_slice && next.is_none() {
            self.end_pass(learning);
        }
        if !removed.is_empty() {
            // Engines with a copy of the FDB reload it; a CLI change made
            // before this one still makes `remote_vteps` read the table.
            let seen = self.walk.generation == Some(self.generation());
            match self.bump_generation() {
                Ok(g) if seen => self.walk.generation = Some(g),
                _ => {}
            }
        }
        removed
    }

    /// A pass over the FDB is done: each VNI's count is set to the learned
    /// entries it saw, if nothing but this pass changed the count meanwhile;
    /// the remote VTEPs it saw replace those of the pass before.
    fn end_pass(&mut self, learning: bool) {
        self.walk.index_whole = self.walk.pass_told;
        let counts = std::mem::take(&mut self.walk.counts);
        for (vni, n) in counts.into_iter().filter(|_| learning) {
            let now = self.learned.get(&vni, 0).ok();
            let untouched = self
                .walk
                .before
                .get(&vni)
                .map(|b| b.saturating_sub(self.walk.aged.get(&vni).copied().unwrap_or(0)));
            if now.is_some() && now != untouched {
                // Learned or removed meanwhile: the aged-out entries are
                // off the count already, and the recount is stale.
                continue;
            }
            if now != Some(n) && self.vni_exists(vni) {
                let _ = self.learned.insert(vni, n, 0);
            }
        }
        self.walk.last_vteps = std::mem::take(&mut self.walk.vteps);
    }

    /// Every remote VTEP this gateway sends to (flood lists and FDB): those
    /// of the FDB as [`Gateway::age`]'s walk saw them (in this pass and the
    /// one before), with what this handle wrote, and after a change by the
    /// CLI (the generation moved) the whole table read once.
    pub fn remote_vteps(&mut self) -> Vec<IpAddr> {
        let g = self.generation();
        if self.walk.generation != Some(g) {
            self.walk.generation = Some(g);
            let all = self.fdb_entries();
            self.walk.vteps.extend(
                all.iter()
                    .filter(|(_, e)| e.kind != FDB_KIND_LOCAL)
                    .filter_map(|(_, e)| from_vtep(&e.remote)),
            );
        }
        let mut v: Vec<IpAddr> = self
            .walk
            .vteps
            .iter()
            .chain(&self.walk.last_vteps)
            .copied()
            .collect();
        for vni in self.vni_ids() {
            v.extend(self.flood_list(vni));
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Reads the walk's next slice into `out`, in the walk's buffers (a
    /// slice a second: no allocation each time); where the next one starts.
    fn fdb_read(
        &mut self,
        from: Cursor,
        max: usize,
        out: &mut Vec<(FdbKey, FdbEntry)>,
    ) -> Option<Cursor> {
        use aya::maps::IterableMap as _;
        use std::os::fd::{AsFd as _, AsRawFd as _};
        let fd = self.fdb.map().fd().as_fd().as_raw_fd();
        match self.walk.reader.lookup_from(fd, from, max, out) {
            Ok(next) => next,
            Err(e) => {
                log::debug!("FDB: batch lookup unavailable ({e}); iterating");
                out.extend(self.fdb.iter().filter_map(|r| r.ok()));
                None
            }
        }
    }

    /// Notes the remote VTEP of an entry this handle writes, for
    /// [`Gateway::remote_vteps`].
    fn note_vtep(&mut self, entry: &FdbEntry) {
        if entry.kind != FDB_KIND_LOCAL
            && let Some(vtep) = from_vtep(&entry.remote)
        {
            self.walk.vteps.insert(vtep);
        }
    }
}

/// Whether learned entry `e` of `k` is older than its VNI's ageing (0:
/// never ages) at `now_ns`.
fn expired_at(ageing: &BTreeMap<u32, u32>, k: &FdbKey, e: &FdbEntry, now_ns: u64) -> bool {
    let limit = ageing.get(&k.vni).copied().unwrap_or(0);
    limit != 0 && now_ns.saturating_sub(e.last_seen_ns) > u64::from(limit) * 1_000_000_000
}

/// The fewest and the most FDB entries [`Gateway::age`] reads per call
/// (whole chunks of 4,096: a slice is at least its size, rounded up).
pub const MIN_SLICE: usize = 4_096;
pub const MAX_SLICE: usize = 65_536;
/// A pass over the FDB takes at most 1 / PASS_SHARE of the shortest ageing.
pub const PASS_SHARE: u32 = 10;
/// With no learned entries (by the counts), [`Gateway::age`] reads a slice
/// once in this many calls.
pub const QUIET_TICKS: u32 = 8;
/// The most learned entries [`Gateway::age`] looks at one by one each
/// call (a lookup each); with more, it finds them by walking the table
/// ([`PASS_SHARE`]).
pub const MAX_INDEX: usize = 4_096;

/// Where the daemon's walk of the FDB stands (ageing, remote VTEPs): a
/// slice per tick, see [`Gateway::age`].
#[derive(Default)]
pub struct FdbWalk {
    /// The slice's buffers, kept from one tick to the next.
    reader: Reader<FdbKey, FdbEntry>,
    slice: Vec<(FdbKey, FdbEntry)>,
    /// Where the next slice starts; `None`: a pass starts.
    at: Option<Cursor>,
    /// The VNIs' learned counts when this pass started.
    before: BTreeMap<u32, u64>,
    /// Learned entries kept so far in this pass, per VNI.
    counts: BTreeMap<u32, u64>,
    /// Entries aged out in this pass, per VNI (taken off the counts).
    aged: BTreeMap<u32, u64>,
    /// Remote VTEPs of the entries seen in this pass (and written through
    /// this handle), and of the whole pass before.
    vteps: HashSet<IpAddr>,
    last_vteps: HashSet<IpAddr>,
    /// The generation whose changes `vteps` has seen (`None`: none yet).
    generation: Option<u64>,
    /// Calls since the last slice while no entry was learned.
    quiet: u32,
    /// Entries read in this pass, and in the whole pass before (the first
    /// pass reads [`MAX_SLICE`] a call).
    read: usize,
    pass_len: usize,
    /// The learned entries the daemon knows of: seen by a pass, or told
    /// of by [`Gateway::note_learned`] (the datapath's new and moved MACs).
    /// At most [`MAX_INDEX`].
    index: HashSet<FdbKey>,
    /// `index` holds every learned entry: a whole pass saw them all while
    /// nothing was learned that the daemon was not told of. Then a pass
    /// may take the whole shortest ageing, since the index is what ages.
    index_whole: bool,
    /// Nothing has been learned untold (nor has the index overflowed)
    /// since this pass started.
    pass_told: bool,
}
