//! Learning: (VNI, source MAC) → where the frame came from, by the rule of
//! `vtep_common::fdb::learn_step` (the AF_XDP engine's too), and the
//! kernel's view of a followed VNI's sources.

use aya_ebpf::{
    bindings::BPF_NOEXIST, helpers::generated::bpf_ktime_get_coarse_ns, programs::XdpContext,
};
use aya_log_ebpf::{debug, info};
use vtep_common::{
    AF_INET6, FdbEntry, FdbKey, Reason, VniInfo,
    event::{EventKind, FdbEvent},
    fdb::{Inserted, Learn, Place, granted, learn_step, refresh_due},
};

use crate::maps::{FDB, FDB_EV_LOST, FDB_EVENTS, VNI_LEARNED, count};

/// `-EEXIST`, as a map update with `BPF_NOEXIST` returns it for a key that
/// is there.
const EEXIST: i32 = 17;

/// Learns that `mac` in `vni` is at `place`. Reports a new MAC and a move
/// to `vtep monitor` ([`report`]; a refresh is no event), and logs
/// (aya-log) a new MAC at debug level and a move at info level; the daemon
/// sets the level.
#[inline(always)]
pub fn learn(ctx: &XdpContext, vni: u32, info: &VniInfo, mac: [u8; 6], place: Place) {
    if !info.learns() {
        return;
    }
    let key = FdbKey::new(vni, mac);
    let existing = FDB.get_ptr_mut(key);
    // SAFETY: helper without arguments.
    let now = || unsafe { bpf_ktime_get_coarse_ns() };
    // SAFETY: a live map value; a racing writer can at worst tear the
    // timestamp of a learned entry, which the next packet refreshes.
    let entry = existing.map(|e| unsafe { &*e });
    match (learn_step(entry, &place, now), existing) {
        (Learn::Refresh { now_ns }, Some(e)) => {
            // SAFETY: as above.
            unsafe { (*e).last_seen_ns = now_ns };
        }
        (Learn::Move { now_ns }, Some(e)) => {
            let new = place.learned(now_ns);
            // SAFETY: as above.
            let old = unsafe { core::ptr::replace(e, new) };
            report(EventKind::Moved, &key, &old, &new, now_ns);
            log_place(ctx, vni, &mac, &place, true);
        }
        (Learn::Reserve, _) => insert(ctx, &key, &place, info.max_addresses, now),
        _ => {}
    }
}

/// Inserts the entry of a new MAC at `place` into a slot reserved in its
/// VNI's learned count, giving the slot back when the VNI has `max`
/// learned MACs or the insert does not write. A VNI without a count is
/// being removed: nothing is learned in it.
#[inline(always)]
fn insert(ctx: &XdpContext, key: &FdbKey, place: &Place, max: u32, now: impl FnOnce() -> u64) {
    let vni = key.vni;
    let Some(n) = VNI_LEARNED.get_ptr_mut(vni) else {
        return;
    };
    // A plain read first: a flood over the limit costs no atomic write on
    // the count every CPU shares. The fetch-and-add decides.
    // SAFETY: a live map value, shared between CPUs.
    if !granted(unsafe { *n }, max) {
        count(Reason::LearningLimit);
        return;
    }
    // SAFETY: as above.
    if !granted(unsafe { atomic_add(n, 1) }, max) {
        // SAFETY: as above.
        unsafe { atomic_add(n, u64::MAX) };
        count(Reason::LearningLimit);
        return;
    }
    let now_ns = now();
    let new = place.learned(now_ns);
    let inserted = match FDB.insert(key, &new, u64::from(BPF_NOEXIST)) {
        Ok(()) => Inserted::Written,
        Err(e) if e == -EEXIST => Inserted::Exists,
        Err(_) => Inserted::Full,
    };
    if inserted.keeps_slot() {
        report(EventKind::Learned, key, &FdbEntry::default(), &new, now_ns);
        log_place(ctx, vni, &key.mac, place, false);
    } else {
        // SAFETY: as above.
        unsafe { atomic_add(n, u64::MAX) };
    }
    if let Some(r) = inserted.reason() {
        count(r);
    }
}

/// Writes the event `kind` of `key` (`old` → `new`) into `FDB_EVENTS`
/// for the daemon, or counts it in `FDB_EV_LOST` when the ring is full:
/// never waited on, and the frame goes on either way.
#[inline(always)]
fn report(kind: EventKind, key: &FdbKey, old: &FdbEntry, new: &FdbEntry, now_ns: u64) {
    match FDB_EVENTS.reserve::<FdbEvent>(0) {
        Some(mut slot) => {
            slot.write(FdbEvent::new(kind, *key, *old, *new, now_ns));
            slot.submit(0);
        }
        None => {
            if let Some(c) = FDB_EV_LOST.get_ptr_mut(0) {
                // SAFETY: per-CPU slot, no concurrent writer on this CPU.
                unsafe { *c += 1 };
            }
        }
    }
}

/// In a kernel-fallback VNI (`VNI_F_FOLLOWED`) the kernel learns,
/// not vtep: the follower mirrors what its bridge and vxlan device know. But
/// a frame vtep forwards itself never reaches the bridge, so the bridge would
/// let the entry of a busy workload age out — and zebra would withdraw its
/// EVPN route. So the kernel must see each source MAC now and then: this
/// returns true (pass the frame, untouched, to the kernel) when the source
/// is not mirrored at `place` yet (new, or moved: the kernel learns it and
/// the follower mirrors it), or when the kernel last saw it more than a
/// second ago. The mirrored entry's `last_seen_ns` (unused otherwise for
/// followed entries) records when; like learning's refresh, it is written
/// at most once a second per MAC.
#[inline(always)]
pub fn kernel_must_see(vni: u32, mac: [u8; 6], place: &Place) -> bool {
    let Some(e) = FDB.get_ptr_mut(FdbKey::new(vni, mac)) else {
        return true;
    };
    // SAFETY: a live map value; a racing writer can at worst tear the
    // timestamp, which costs one more frame through the kernel.
    let e = unsafe { &mut *e };
    if !place.holds(e) {
        return true;
    }
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if refresh_due(e.last_seen_ns, now) {
        e.last_seen_ns = now;
        return true;
    }
    false
}

/// `*counter += v` as one BPF atomic fetch-and-add
/// (`v = atomic_fetch_add((u64 *)(r + 0), v)`), returning the value before:
/// several CPUs may learn MACs of one VNI at once. `v = u64::MAX` gives a
/// slot back (wrapping: -1). (`core`'s atomics have no read-modify-write
/// for the BPF target.)
///
/// # Safety
/// `counter` must point to a live, 8-byte aligned u64 (a map value).
#[inline(always)]
unsafe fn atomic_add(counter: *mut u64, v: u64) -> u64 {
    let mut v = v;
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!(
            "{v} = atomic_fetch_add((u64 *)({p} + 0), {v})",
            p = in(reg) counter,
            v = inout(reg) v,
            options(nostack),
        );
    }
    v
}

/// Logs where a MAC was learned, or moved to (a VTEP of either family).
#[inline(always)]
fn log_place(ctx: &XdpContext, vni: u32, mac: &[u8; 6], place: &Place, moved: bool) {
    match (*place, moved) {
        (Place::Port(port), true) => info!(ctx, "vni {}: {:mac} moved to port {}", vni, *mac, port),
        (Place::Port(port), false) => {
            debug!(ctx, "vni {}: learned {:mac} on port {}", vni, *mac, port)
        }
        (Place::Vtep(vtep), moved) if vtep.family == AF_INET6 => {
            let vtep = vtep.addr;
            if moved {
                info!(ctx, "vni {}: {:mac} moved to vtep {:i}", vni, *mac, vtep)
            } else {
                debug!(ctx, "vni {}: learned {:mac} at vtep {:i}", vni, *mac, vtep)
            }
        }
        (Place::Vtep(vtep), moved) => {
            let r = vtep.addr;
            let vtep = u32::from_be_bytes([r[0], r[1], r[2], r[3]]);
            if moved {
                info!(ctx, "vni {}: {:mac} moved to vtep {:i}", vni, *mac, vtep)
            } else {
                debug!(ctx, "vni {}: learned {:mac} at vtep {:i}", vni, *mac, vtep)
            }
        }
    }
}
