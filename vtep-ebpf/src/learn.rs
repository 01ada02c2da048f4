//! Learning: (VNI, source MAC) → where the frame came from.
//!
//! Rules, as the kernel bridge applies them: a static entry is never
//! replaced; a learned entry that moves (new port, new remote VTEP) is
//! replaced; a learned entry that stays is refreshed at most once a second
//! (one write per second per MAC, not per packet); a new MAC is learned only
//! while the VNI is under its `maxaddress`, and counted.

use aya_ebpf::{
    bindings::BPF_NOEXIST, helpers::generated::bpf_ktime_get_coarse_ns, programs::XdpContext,
};
use aya_log_ebpf::{debug, info};
use vtep_common::{
    FDB_F_LEARNED, FDB_KIND_LOCAL, FdbEntry, FdbKey, Reason, VNI_F_LEARNING, VniInfo,
};

use crate::maps::{FDB, VNI_LEARNED, count};

/// How stale a learned entry's timestamp may get before a packet refreshes
/// it. Ageing is counted in seconds, so a second of slack costs nothing.
const REFRESH_NS: u64 = 1_000_000_000;

/// Learns that `mac` in `vni` is at `place` (a local port or a remote VTEP,
/// given as an entry with `last_seen_ns` 0). Logs (aya-log) a new MAC at
/// debug level and a move at info level; the daemon sets the level.
#[inline(always)]
pub fn learn(ctx: &XdpContext, vni: u32, info: &VniInfo, mac: [u8; 6], place: FdbEntry) {
    if info.flags & VNI_F_LEARNING == 0 {
        return;
    }
    let key = FdbKey::new(vni, mac);
    if let Some(e) = FDB.get_ptr_mut(key) {
        // SAFETY: a live map value; a racing writer can at worst tear the
        // timestamp of a learned entry, which the next packet refreshes.
        let e = unsafe { &mut *e };
        if e.is_static() {
            return;
        }
        // SAFETY: helper without arguments.
        let now = unsafe { bpf_ktime_get_coarse_ns() };
        if !e.same_place(&place) {
            let mut moved = place;
            moved.flags = FDB_F_LEARNED;
            moved.last_seen_ns = now;
            *e = moved;
            log_place(ctx, vni, &mac, &place, true);
        } else if now.wrapping_sub(e.last_seen_ns) > REFRESH_NS {
            e.last_seen_ns = now;
        }
        return;
    }
    let learned = VNI_LEARNED.get_ptr_mut(vni);
    if info.max_addresses != 0 {
        let n = match learned {
            // SAFETY: a live map value.
            Some(n) => unsafe { *n },
            None => 0,
        };
        if n >= u64::from(info.max_addresses) {
            count(Reason::LearningLimit);
            return;
        }
    }
    let mut entry = place;
    entry.flags = FDB_F_LEARNED;
    // SAFETY: helper without arguments.
    entry.last_seen_ns = unsafe { bpf_ktime_get_coarse_ns() };
    match FDB.insert(key, entry, u64::from(BPF_NOEXIST)) {
        Ok(()) => {
            log_place(ctx, vni, &mac, &place, false);
            if let Some(n) = learned {
                // SAFETY: a live map value, shared between CPUs.
                unsafe { atomic_inc(n) };
            }
        }
        // -EEXIST: another CPU learned it first; nothing to do.
        Err(-17) => {}
        Err(_) => count(Reason::FdbFull),
    }
}

/// In a kernel-fallback VNI (`VNI_F_KERNEL_FALLBACK`) the kernel learns,
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
pub fn kernel_must_see(vni: u32, mac: [u8; 6], place: &FdbEntry) -> bool {
    let Some(e) = FDB.get_ptr_mut(FdbKey::new(vni, mac)) else {
        return true;
    };
    // SAFETY: a live map value; a racing writer can at worst tear the
    // timestamp, which costs one more frame through the kernel.
    let e = unsafe { &mut *e };
    if !e.same_place(place) {
        return true;
    }
    // SAFETY: helper without arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    if now.wrapping_sub(e.last_seen_ns) > REFRESH_NS {
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
fn log_place(ctx: &XdpContext, vni: u32, mac: &[u8; 6], place: &FdbEntry, moved: bool) {
    let r = place.remote.addr;
    let vtep = u32::from_be_bytes([r[0], r[1], r[2], r[3]]);
    match (place.kind == FDB_KIND_LOCAL, moved) {
        (true, true) => info!(
            ctx,
            "vni {}: {:mac} moved to port {}", vni, *mac, place.ifindex
        ),
        (false, true) => info!(ctx, "vni {}: {:mac} moved to vtep {:i}", vni, *mac, vtep),
        (true, false) => debug!(
            ctx,
            "vni {}: learned {:mac} on port {}", vni, *mac, place.ifindex
        ),
        (false, false) => debug!(ctx, "vni {}: learned {:mac} at vtep {:i}", vni, *mac, vtep),
    }
}
