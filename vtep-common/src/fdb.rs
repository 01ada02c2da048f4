//! The learning rule, one pure function both engines call.
//!
//! As the kernel bridge learns: a static entry is never replaced; a learned
//! entry whose MAC moved (new port, new remote VTEP) is replaced; a learned
//! entry that stays is refreshed at most once every [`REFRESH_NS`] (one
//! write per second per MAC, not per packet); a new MAC is learned only
//! while the VNI is under its `maxaddress`. Whether a VNI learns at all is
//! [`VniInfo::learns`]: the callers ask first, before they look the MAC up.
//!
//! `maxaddress` is a bound, not a hint: several CPUs (and both engines)
//! learn at once, so a new MAC first reserves a slot in its VNI's learned
//! count (an atomic fetch-and-add of 1, [`Learn::Reserve`]), is inserted
//! only when [`granted`] says the count before it was under the limit, and
//! gives the slot back (an atomic add of -1) when it was not, or when the
//! insert did not write ([`Inserted::keeps_slot`]: another CPU inserted the
//! MAC first, or the FDB is full). Checking the count, inserting, then
//! counting would let two CPUs pass the check for the last slot.
//!
//! Beside it, the switching rule both engines share: [`forward`].

use crate::{FDB_F_LEARNED, FDB_KIND_LOCAL, FDB_KIND_REMOTE, FdbEntry, Reason, VniInfo, VtepAddr};

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

/// What learning does with one frame's source MAC; `now_ns` is the time
/// to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learn {
    /// Nothing to write: a static entry, or one here and seen lately.
    Keep,
    /// The entry is here but stale: write `now_ns` as its last-seen time.
    Refresh { now_ns: u64 },
    /// A learned entry elsewhere: replace it with `place.learned(now_ns)`.
    Move { now_ns: u64 },
    /// A new MAC: reserve a slot in the VNI's learned count (fetch-and-add
    /// 1); if [`granted`], insert `place.learned(now)` and settle the slot
    /// by what the insert did ([`Inserted`]); if not, give the slot back and
    /// count `learning-limit`.
    Reserve,
}

/// Whether a slot reserved in a VNI's learned count is granted: `before`
/// is the count the fetch-and-add returned (the MACs learned or reserved
/// before this one), `max` the VNI's `maxaddress` (0 = none). Every
/// reservation sees a different `before`, so exactly `max` are granted.
#[inline(always)]
pub const fn granted(before: u64, max: u32) -> bool {
    max == 0 || before < max as u64
}

/// What the insert of a new MAC (`BPF_NOEXIST`) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// The entry is written: the reserved slot counts it.
    Written,
    /// Another CPU inserted the MAC first (its own slot counts it).
    Exists,
    /// The FDB is full: count `fdb-full`.
    Full,
}

impl Inserted {
    /// Whether the reserved slot is kept; else it is given back, so the
    /// count stays the number of learned entries.
    #[inline(always)]
    pub const fn keeps_slot(self) -> bool {
        matches!(self, Inserted::Written)
    }

    /// The drop reason to count, if any.
    #[inline(always)]
    pub const fn reason(self) -> Option<Reason> {
        match self {
            Inserted::Full => Some(Reason::FdbFull),
            _ => None,
        }
    }
}

/// The learning rule for a MAC seen at `place`, in a VNI that learns,
/// `existing` being its entry. The clock costs the XDP engine a helper
/// call, so `now` is read only when the rule needs it: not for a static
/// entry, nor for a new MAC, whose caller reads it once its slot is
/// [`granted`].
#[inline(always)]
pub fn learn_step(existing: Option<&FdbEntry>, place: &Place, now: impl FnOnce() -> u64) -> Learn {
    match existing {
        Some(e) if e.is_static() => Learn::Keep,
        Some(e) => {
            let now_ns = now();
            if !place.holds(e) {
                Learn::Move { now_ns }
            } else if refresh_due(e.last_seen_ns, now_ns) {
                Learn::Refresh { now_ns }
            } else {
                Learn::Keep
            }
        }
        None => Learn::Reserve,
    }
}

/// Where a frame goes, by the FDB entry of its destination MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Unknown or BUM destination: flood.
    Flood,
    /// Behind this access port.
    Port(u32),
    /// Behind this remote VTEP: encapsulate.
    Vtep(VtepAddr),
}

/// The switching rule of both engines, for a frame that came in at `from`
/// and whose destination has the entry `dst` (`None`: unknown, or BUM,
/// which the callers do not look up). A frame never goes back where it came
/// from: to its own port it is a `hairpin`, from the underlay to a remote
/// VTEP a `split-horizon` drop. In a followed VNI the kernel takes what
/// this does not forward (`kernel-fallback`).
#[inline(always)]
pub fn forward(from: &Place, dst: Option<&FdbEntry>) -> Result<Forward, Reason> {
    let Some(e) = dst else {
        return Ok(Forward::Flood);
    };
    match from {
        Place::Port(port) if e.kind == FDB_KIND_LOCAL && e.ifindex == *port => Err(Reason::Hairpin),
        _ if e.kind == FDB_KIND_LOCAL => Ok(Forward::Port(e.ifindex)),
        Place::Port(_) => Ok(Forward::Vtep(e.remote)),
        // What came from the underlay never goes back to it.
        Place::Vtep(_) => Err(Reason::SplitHorizon),
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
    const MOVE: Learn = Learn::Move { now_ns: NOW };
    const REFRESH: Learn = Learn::Refresh { now_ns: NOW };

    fn never() -> u64 {
        panic!("read when the rule does not need it")
    }

    fn now() -> u64 {
        NOW
    }

    #[test]
    fn static_and_followed_entries_are_kept() {
        for flags in [FDB_F_STATIC, FDB_F_FOLLOWED] {
            let e = FdbEntry::local(3, flags, 0);
            assert_eq!(learn_step(Some(&e), &Place::Port(4), never), Learn::Keep);
            assert_eq!(learn_step(Some(&e), &Place::Port(3), never), Learn::Keep);
        }
    }

    #[test]
    fn a_learned_entry_that_moves_is_replaced() {
        let e = Place::Port(3).learned(NOW);
        assert_eq!(learn_step(Some(&e), &Place::Port(4), now), MOVE);
        assert_eq!(learn_step(Some(&e), &Place::Vtep(VTEP), now), MOVE);
        let r = Place::Vtep(VTEP).learned(NOW);
        let other = Place::Vtep(VtepAddr::v4([198, 18, 0, 3]));
        assert_eq!(learn_step(Some(&r), &other, now), MOVE);
    }

    #[test]
    fn an_entry_that_stays_is_refreshed_once_a_second() {
        let p = Place::Vtep(VTEP);
        let lately = p.learned(NOW - REFRESH_NS);
        assert_eq!(learn_step(Some(&lately), &p, now), Learn::Keep);
        let stale = p.learned(NOW - REFRESH_NS - 1);
        assert_eq!(learn_step(Some(&stale), &p, now), REFRESH);
        // A timestamp ahead of this CPU's clock is not due.
        let ahead = p.learned(NOW + 5);
        assert_eq!(learn_step(Some(&ahead), &p, now), Learn::Keep);
    }

    #[test]
    fn a_new_mac_reserves_a_slot_first() {
        assert_eq!(learn_step(None, &Place::Port(3), never), Learn::Reserve);
        assert_eq!(learn_step(None, &Place::Vtep(VTEP), never), Learn::Reserve);
    }

    #[test]
    fn exactly_maxaddress_slots_are_granted() {
        assert!(granted(0, 0));
        assert!(granted(u64::MAX, 0));
        assert!(granted(0, 2));
        assert!(granted(1, 2));
        assert!(!granted(2, 2));
        assert!(!granted(7, 2));
        // However the reservations of many CPUs interleave, each sees a
        // count of its own: the fetch-and-adds hand out 0, 1, 2, ...
        let max = 500;
        let granted_slots = (0..20_000u64)
            .filter(|&before| granted(before, max))
            .count();
        assert_eq!(granted_slots, 500);
    }

    /// The learned count as both engines keep it: a slot is reserved
    /// before the insert and given back unless the insert wrote.
    fn settle(count: &mut u64, max: u32, insert: impl FnOnce() -> Inserted) -> Option<Inserted> {
        let before = *count;
        *count += 1;
        if !granted(before, max) {
            *count -= 1;
            return None;
        }
        let i = insert();
        if !i.keeps_slot() {
            *count -= 1;
        }
        Some(i)
    }

    #[test]
    fn a_slot_is_kept_only_when_the_insert_wrote() {
        let mut count = 1;
        assert_eq!(
            settle(&mut count, 3, || Inserted::Exists),
            Some(Inserted::Exists)
        );
        assert_eq!(count, 1);
        assert_eq!(
            settle(&mut count, 3, || Inserted::Full),
            Some(Inserted::Full)
        );
        assert_eq!(count, 1);
        assert_eq!(
            settle(&mut count, 3, || Inserted::Written),
            Some(Inserted::Written)
        );
        assert_eq!(
            settle(&mut count, 3, || Inserted::Written),
            Some(Inserted::Written)
        );
        assert_eq!(count, 3);
        assert_eq!(
            settle(&mut count, 3, || panic!("inserted over the limit")),
            None
        );
        assert_eq!(count, 3);
        assert_eq!(Inserted::Full.reason(), Some(Reason::FdbFull));
        assert_eq!(Inserted::Exists.reason(), None);
        assert_eq!(Inserted::Written.reason(), None);
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
    fn frames_are_forwarded_but_never_back() {
        let port = Place::Port(3);
        let vtep = Place::Vtep(VTEP);
        let local = FdbEntry::local(4, FDB_F_STATIC, 0);
        let own = FdbEntry::local(3, FDB_F_LEARNED, 0);
        let remote = FdbEntry::remote(VtepAddr::v4([198, 18, 0, 3]), FDB_F_LEARNED, 0);
        assert_eq!(forward(&port, None), Ok(Forward::Flood));
        assert_eq!(forward(&vtep, None), Ok(Forward::Flood));
        assert_eq!(forward(&port, Some(&local)), Ok(Forward::Port(4)));
        assert_eq!(forward(&vtep, Some(&local)), Ok(Forward::Port(4)));
        assert_eq!(forward(&vtep, Some(&own)), Ok(Forward::Port(3)));
        assert_eq!(forward(&port, Some(&own)), Err(Reason::Hairpin));
        assert_eq!(
            forward(&port, Some(&remote)),
            Ok(Forward::Vtep(remote.remote))
        );
        assert_eq!(forward(&vtep, Some(&remote)), Err(Reason::SplitHorizon));
    }

    #[test]
    fn learning_is_per_vni() {
        let mut info = VniInfo::default();
        assert!(!info.learns());
        info.flags = VNI_F_LEARNING;
        assert!(info.learns());
    }
}
