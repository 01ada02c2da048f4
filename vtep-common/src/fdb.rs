//! The learning rule, one pure function both engines call.
//!
//! As the kernel bridge learns: a static entry is never replaced; a learned
//! entry whose MAC moved (new port, new remote VTEP) is replaced; a learned
//! entry that stays is refreshed at most once every [`REFRESH_NS`] (one
//! write per second per MAC, not per packet); a new MAC is learned only
//! while the VNI is under its `maxaddress`. Whether a VNI learns at all is
//! [`VniInfo::learns`]: the callers ask first, before they look the MAC up.

use crate::{FDB_F_LEARNED, FDB_KIND_LOCAL, FDB_KIND_REMOTE, FdbEntry, VniInfo, VtepAddr};

/// How stale a learned entry's timestamp may get before a packet refreshes
/// it. Ageing is counted in seconds, so a second of slack costs nothing.
pub const REFRESH_NS: u64 = 1_000_000_000;

/// Where a MAC is: behind an access port or a remote VTEP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// An access port (ifindex).
    Port(u32),
    /// A remote VTEP.
    Vtep(VtepAddr),
}

impl Place {
    /// Whether `e` puts the MAC here (flags and age aside).
    #[inline(always)]
    pub fn holds(&self, e: &FdbEntry) -> bool {
        match self {
            Place::Port(ifindex) => e.kind == FDB_KIND_LOCAL && e.ifindex == *ifindex,
            Place::Vtep(vtep) => e.kind == FDB_KIND_REMOTE && e.remote == *vtep,
        }
    }

    /// The learned entry for a MAC here, last seen at `now_ns`. Build it
    /// only to write it: a zero-filled FdbEntry costs the BPF target a
    /// byte-by-byte memset, too much for every packet.
    #[inline(always)]
    pub fn learned(&self, now_ns: u64) -> FdbEntry {
        match self {
            Place::Port(ifindex) => FdbEntry::local(*ifindex, FDB_F_LEARNED, now_ns),
            Place::Vtep(vtep) => FdbEntry::remote(*vtep, FDB_F_LEARNED, now_ns),
        }
    }
}

/// Whether a timestamp taken at `last_seen_ns` is due for a refresh at
/// `now_ns`. A timestamp ahead of `now_ns` (written from a finer clock, or
/// by a CPU whose coarse clock ticked first) is not due: `saturating_sub`;
/// `wrapping_sub` would call it 584 years old and write it every packet.
#[inline(always)]
pub const fn refresh_due(last_seen_ns: u64, now_ns: u64) -> bool {
    now_ns.saturating_sub(last_seen_ns) > REFRESH_NS
}

/// What learning does with one frame's source MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learn {
    /// Nothing to write: a static entry, or one here and seen lately.
    Keep,
    /// The entry is here but stale: write `now_ns` as its last-seen time.
    Refresh,
    /// A learned entry elsewhere: replace it with `place.learned(now_ns)`.
    Move,
    /// A new MAC under the VNI's limit: insert `place.learned(now_ns)` and
    /// count it.
    Insert,
    /// A new MAC, but the VNI has `maxaddress` learned MACs: count
    /// `learning-limit`, write nothing.
    Limit,
}

/// The learning rule for a MAC seen at `place` at `now_ns`, in a VNI that
/// learns, `existing` being its entry. `learned` gives the VNI's count of
/// learned MACs, called only for a new MAC in a VNI with a limit (`max`,
/// `maxaddress`, 0 = none): the XDP engine reads it from a map.
#[inline(always)]
pub fn learn_step(
    existing: Option<&FdbEntry>,
    place: &Place,
    now_ns: u64,
    learned: impl FnOnce() -> u64,
    max: u32,
) -> Learn {
    match existing {
        Some(e) if e.is_static() => Learn::Keep,
        Some(e) if !place.holds(e) => Learn::Move,
        Some(e) if refresh_due(e.last_seen_ns, now_ns) => Learn::Refresh,
        Some(_) => Learn::Keep,
        None if max != 0 && learned() >= u64::from(max) => Learn::Limit,
        None => Learn::Insert,
    }
}

impl VniInfo {
    /// Whether vtep learns source MACs in this VNI (`learning`).
    #[inline(always)]
    pub const fn learns(&self) -> bool {
        self.flags & crate::VNI_F_LEARNING != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FDB_F_FOLLOWED, FDB_F_STATIC, VNI_F_LEARNING};

    const VTEP: VtepAddr = VtepAddr::v4([198, 18, 0, 2]);
    const NOW: u64 = 10 * REFRESH_NS;

    fn never() -> u64 {
        panic!("the learned count is read only for a new MAC under a limit")
    }

    #[test]
    fn static_and_followed_entries_are_kept() {
        for flags in [FDB_F_STATIC, FDB_F_FOLLOWED] {
            let e = FdbEntry::local(3, flags, 0);
            assert_eq!(
                learn_step(Some(&e), &Place::Port(4), NOW, never, 1),
                Learn::Keep
            );
            assert_eq!(
                learn_step(Some(&e), &Place::Port(3), NOW, never, 1),
                Learn::Keep
            );
        }
    }

    #[test]
    fn a_learned_entry_that_moves_is_replaced() {
        let e = Place::Port(3).learned(NOW);
        assert_eq!(
            learn_step(Some(&e), &Place::Port(4), NOW, never, 1),
            Learn::Move
        );
        assert_eq!(
            learn_step(Some(&e), &Place::Vtep(VTEP), NOW, never, 1),
            Learn::Move
        );
        let r = Place::Vtep(VTEP).learned(NOW);
        let other = Place::Vtep(VtepAddr::v4([198, 18, 0, 3]));
        assert_eq!(learn_step(Some(&r), &other, NOW, never, 0), Learn::Move);
    }

    #[test]
    fn an_entry_that_stays_is_refreshed_once_a_second() {
        let p = Place::Vtep(VTEP);
        let lately = p.learned(NOW - REFRESH_NS);
        assert_eq!(learn_step(Some(&lately), &p, NOW, never, 0), Learn::Keep);
        let stale = p.learned(NOW - REFRESH_NS - 1);
        assert_eq!(learn_step(Some(&stale), &p, NOW, never, 0), Learn::Refresh);
        // A timestamp ahead of this CPU's clock is not due.
        let ahead = p.learned(NOW + 5);
        assert_eq!(learn_step(Some(&ahead), &p, NOW, never, 0), Learn::Keep);
    }

    #[test]
    fn a_new_mac_is_learned_under_the_limit() {
        let p = Place::Port(3);
        assert_eq!(learn_step(None, &p, NOW, never, 0), Learn::Insert);
        assert_eq!(learn_step(None, &p, NOW, || 1, 2), Learn::Insert);
        assert_eq!(learn_step(None, &p, NOW, || 2, 2), Learn::Limit);
        assert_eq!(learn_step(None, &p, NOW, || 7, 2), Learn::Limit);
    }

    #[test]
    fn learned_entries_say_where_and_when() {
        let e = Place::Port(3).learned(NOW);
        assert_eq!(e, FdbEntry::local(3, FDB_F_LEARNED, NOW));
        assert!(Place::Port(3).holds(&e));
        assert!(!Place::Port(4).holds(&e));
        assert!(!Place::Vtep(VTEP).holds(&e));
        assert!(Place::Vtep(VTEP).holds(&FdbEntry::remote(VTEP, FDB_F_STATIC, 0)));
    }

    #[test]
    fn learning_is_per_vni() {
        let mut info = VniInfo::default();
        assert!(!info.learns());
        info.flags = VNI_F_LEARNING;
        assert!(info.learns());
    }
}
