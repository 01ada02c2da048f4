//! The FDB (`FDB`): static, learned and followed entries, the `bridge fdb` verbs, and ageing.

use super::*;

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

    /// Removes learned entries older than their VNI's `ageing`, and
    /// recounts each VNI's learned MACs. Returns the entries aged out.
    ///
    /// The datapath reserves slots in the counts while this walks (an
    /// atomic add on the map value), and a write from here replaces the
    /// value: the recount is written only over a count that did not change
    /// during the walk (else the aged-out entries are taken off the count),
    /// and nothing is written over a count that is right.
    pub fn age(&mut self, now_ns: u64) -> Vec<(FdbKey, FdbEntry)> {
        let infos: Vec<(u32, VniInfo)> = self.vnis.iter().filter_map(|r| r.ok()).collect();
        // Followed VNIs hold no learned entries (the kernel learns): with
        // only those, there is nothing to walk the FDB for.
        if infos.iter().all(|(_, i)| i.flags & VNI_F_FOLLOWED != 0) {
            return Vec::new();
        }
        let ageing: BTreeMap<u32, u32> =
            infos.into_iter().map(|(v, i)| (v, i.ageing_secs)).collect();
        let before: BTreeMap<u32, u64> = self.learned.iter().filter_map(|r| r.ok()).collect();
        let mut counts: BTreeMap<u32, u64> = ageing.keys().map(|&v| (v, 0)).collect();
        let mut aged: BTreeMap<u32, u64> = BTreeMap::new();
        let mut expired = Vec::new();
        for (k, e) in self.fdb_entries() {
            if e.flags & FDB_F_LEARNED == 0 {
                continue;
            }
            let limit = ageing.get(&k.vni).copied().unwrap_or(0);
            let age_ns = now_ns.saturating_sub(e.last_seen_ns);
            if limit != 0 && age_ns > u64::from(limit) * 1_000_000_000 {
                expired.push((k, e));
            } else {
                *counts.entry(k.vni).or_default() += 1;
            }
        }
        let mut removed = Vec::new();
        for (k, seen) in expired {
            // Re-read: the datapath may have refreshed it since.
            match self.fdb.get(&k, 0) {
                Ok(e) if e == seen => {
                    if self.fdb.remove(&k).is_ok() {
                        removed.push((k, seen));
                        *aged.entry(k.vni).or_default() += 1;
                    }
                }
                Ok(_) => *counts.entry(k.vni).or_default() += 1,
                Err(_) => {}
            }
        }
        for (vni, n) in counts {
            let now = self.learned.get(&vni, 0).ok();
            let want = match now {
                Some(c) if before.get(&vni) != Some(&c) => {
                    c.saturating_sub(aged.get(&vni).copied().unwrap_or(0))
                }
                _ => n,
            };
            if now != Some(want) && self.vni_exists(vni) {
                let _ = self.learned.insert(vni, want, 0);
            }
        }
        removed
    }

    /// Every remote VTEP this gateway sends to (flood lists and FDB).
    pub fn remote_vteps(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self
            .fdb_entries()
            .into_iter()
            .filter(|(_, e)| e.kind != FDB_KIND_LOCAL)
            .filter_map(|(_, e)| from_vtep(&e.remote))
            .collect();
        for vni in self.vni_ids() {
            v.extend(self.flood_list(vni));
        }
        v.sort_unstable();
        v.dedup();
        v
    }
}
