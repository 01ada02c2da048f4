//! The learning rule, one pure function both engines call.
//!
//! As the kernel bridge learns: a static entry is never replaced; a learned
//! entry whose MAC moved (new port, new remote VTEP) is replaced; a learned
//! entry that stays is refreshed at most once every [`REFRESH_NS`] (one
//! write per second per MAC, not per packet); a new MAC is learned only
//! while the VNI is under its `maxaddress`. Whether a VNI learns at all is
//! [`VniInfo::learns`]: the callers ask first, before they look the MAC up.
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
    /// A new MAC under the VNI's limit: insert `place.learned(now_ns)` and
    /// count it.
    Insert { now_ns: u64 },
    /// A new MAC, but the VNI has `maxaddress` learned MACs: count
    /// `learning-limit`, write nothing.
    Limit,
}

/// The learning rule for a MAC seen at `place`, in a VNI that learns,
/// `existing` being its entry. Reads cost the XDP engine a helper call or a
/// map lookup each, so they are asked for only when the rule needs them:
/// `now` (the clock) not for a static entry nor a MAC over the limit,
/// `learned` (the VNI's count of learned MACs) only for a new MAC in a VNI
/// with a limit (`max`, `maxaddress`, 0 = none).
#[inline(always)]
pub fn learn_step(
    existing: Option<&FdbEntry>,
    place: &Place,
    now: impl FnOnce() -> u64,
    learned: impl FnOnce() -> u64,
    max: u32,
) -> Learn {
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
        None if max != 0 && learned() >= u64::from(max) => Learn::Limit,
        None => Learn::Insert { now_ns: now() },
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
    const INSERT: Learn = Learn::Insert { now_ns: NOW };

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
            assert_eq!(
                learn_step(Some(&e), &Place::Port(4), never, never, 1),
                Learn::Keep
            );
            assert_eq!(
                learn_step(Some(&e), &Place::Port(3), never, never, 1),
                Learn::Keep
            );
        }
    }

    #[test]
    fn a_learned_entry_that_moves_is_replaced() {
        let e = Place::Port(3).learned(NOW);
        assert_eq!(learn_step(Some(&e), &Place::Port(4), now, never, 1), MOVE);
        assert_eq!(
            learn_step(Some(&e), &Place::Vtep(VTEP), now, never, 1),
            MOVE
        );
        let r = Place::Vtep(VTEP).learned(NOW);
        let other = Place::Vtep(VtepAddr::v4([198, 18, 0, 3]));
        assert_eq!(learn_step(Some(&r), &other, now, never, 0), MOVE);
    }

    #[test]
    fn an_entry_that_stays_is_refreshed_once_a_second() {
        let p = Place::Vtep(VTEP);
        let lately = p.learned(NOW - REFRESH_NS);
        assert_eq!(learn_step(Some(&lately), &p, now, never, 0), Learn::Keep);
        let stale = p.learned(NOW - REFRESH_NS - 1);
        assert_eq!(learn_step(Some(&stale), &p, now, never, 0), REFRESH);
        // A timestamp ahead of this CPU's clock is not due.
        let ahead = p.learned(NOW + 5);
        assert_eq!(learn_step(Some(&ahead), &p, now, never, 0), Learn::Keep);
    }

    #[test]
    fn a_new_mac_is_learned_under_the_limit() {
        let p = Place::Port(3);
        assert_eq!(learn_step(None, &p, now, never, 0), INSERT);
        assert_eq!(learn_step(None, &p, now, || 1, 2), INSERT);
        assert_eq!(learn_step(None, &p, never, || 2, 2), Learn::Limit);
        assert_eq!(learn_step(None, &p, never, || 7, 2), Learn::Limit);
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
