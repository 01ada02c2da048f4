//! Learning: (VNI, source MAC) → where the frame came from, by the rule of
//! `vtep_common::fdb::learn_step` (the AF_XDP engine's too), and the
//! kernel's view of a followed VNI's sources.

use aya_ebpf::{
    bindings::BPF_NOEXIST, helpers::generated::bpf_ktime_get_coarse_ns, programs::XdpContext,
};
use aya_log_ebpf::{debug, info};
use vtep_common::{
    FdbKey, Reason, VniInfo,
    fdb::{Learn, Place, learn_step, refresh_due},
};

use crate::maps::{FDB, VNI_LEARNED, count};

/// `-EEXIST`, as a map update with `BPF_NOEXIST` returns it for a key that
/// is there.
const EEXIST: i32 = 17;

/// Learns that `mac` in `vni` is at `place`. Logs (aya-log) a new MAC at
/// debug level and a move at info level; the daemon sets the level.
#[inline(always)]
pub fn learn(ctx: &XdpContext, vni: u32, info: &VniInfo, mac: [u8; 6], place: Place) {
    if !info.learns() {
        return;
    }
    let key = FdbKey::new(vni, mac);
    let existing = FDB.get_ptr_mut(key);
    // SAFETY: helper without arguments.
    let now = || unsafe { bpf_ktime_get_coarse_ns() };
    let learned = || match VNI_LEARNED.get_ptr_mut(vni) {
        // SAFETY: a live map value.
        Some(n) => unsafe { *n },
        None => 0,
    };
    // SAFETY: a live map value; a racing writer can at worst tear the
    // timestamp of a learned entry, which the next packet refreshes.
    let entry = existing.map(|e| unsafe { &*e });
    match (
        learn_step(entry, &place, now, learned, info.max_addresses),
        existing,
    ) {
        (Learn::Refresh { now_ns }, Some(e)) => {
            // SAFETY: as above.
            unsafe { (*e).last_seen_ns = now_ns };
        }
        (Learn::Move { now_ns }, Some(e)) => {
            // SAFETY: as above.
            unsafe { *e = place.learned(now_ns) };
            log_place(ctx, vni, &mac, &place, true);
        }
        (Learn::Insert { now_ns }, _) => insert(ctx, &key, &place, now_ns),
        (Learn::Limit, _) => count(Reason::LearningLimit),
        _ => {}
    }
}

/// Inserts the entry of a new MAC at `place`, and counts it in its VNI.
#[inline(always)]
fn insert(ctx: &XdpContext, key: &FdbKey, place: &Place, now: u64) {
    match FDB.insert(key, place.learned(now), u64::from(BPF_NOEXIST)) {
        Ok(()) => {
            let vni = key.vni;
            log_place(ctx, vni, &key.mac, place, false);
            if let Some(n) = VNI_LEARNED.get_ptr_mut(vni) {
                // SAFETY: a live map value, shared between CPUs.
                unsafe { atomic_inc(n) };
            }
        }
        // Another CPU learned it first; nothing to do.
        Err(e) if e == -EEXIST => {}
        Err(_) => count(Reason::FdbFull),
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

/// `*counter += 1` as one BPF atomic add (`lock *(u64 *)(r + 0) += 1`):
/// several CPUs may learn MACs of one VNI at once. (`core`'s atomics have no
/// read-modify-write for the BPF target.)
///
/// # Safety
/// `counter` must point to a live, 8-byte aligned u64 (a map value).
#[inline(always)]
unsafe fn atomic_inc(counter: *mut u64) {
    // SAFETY: the caller's contract.
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({p} + 0) += {v}",
            p = in(reg) counter,
            v = in(reg) 1u64,
            options(nostack),
        );
    }
}

#[inline(always)]
fn log_place(ctx: &XdpContext, vni: u32, mac: &[u8; 6], place: &Place, moved: bool) {
    match (*place, moved) {
        (Place::Port(port), true) => info!(ctx, "vni {}: {:mac} moved to port {}", vni, *mac, port),
        (Place::Port(port), false) => {
            debug!(ctx, "vni {}: learned {:mac} on port {}", vni, *mac, port)
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
