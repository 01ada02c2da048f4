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
    FDB_F_LEARNED, FDB_KIND_LOCAL, FDB_KIND_REMOTE, FdbEntry, FdbKey, Reason, VNI_F_LEARNING,
    VniInfo, VtepAddr,
};

use crate::maps::{FDB, VNI_LEARNED, count};

/// How stale a learned entry's timestamp may get before a packet refreshes
/// it. Ageing is counted in seconds, so a second of slack costs nothing.
const REFRESH_NS: u64 = 1_000_000_000;

/// Where a frame's source MAC was seen.
#[derive(Clone, Copy)]
pub enum Place {
    /// An access port (ifindex).
    Port(u32),
    /// A remote VTEP.
    Vtep(VtepAddr),
}

impl Place {
    /// Whether `e` puts the MAC here (flags and age aside).
    #[inline(always)]
    fn holds(&self, e: &FdbEntry) -> bool {
        match self {
            Place::Port(ifindex) => e.kind == FDB_KIND_LOCAL && e.ifindex == *ifindex,
            Place::Vtep(vtep) => e.kind == FDB_KIND_REMOTE && e.remote == *vtep,
        }
    }

    /// The learned entry for a MAC here, last seen at `now_ns`. Built only
    /// when an entry is written: a zero-filled FdbEntry costs a call to the
    /// BPF target's byte-by-byte memset, too much for every packet.
    #[inline(always)]
    fn learned(&self, now_ns: u64) -> FdbEntry {
        match self {
            Place::Port(ifindex) => FdbEntry::local(*ifindex, FDB_F_LEARNED, now_ns),
            Place::Vtep(vtep) => FdbEntry::remote(*vtep, FDB_F_LEARNED, now_ns),
        }
    }
}

/// Learns that `mac` in `vni` is at `place`. Logs (aya-log) a new MAC at
/// debug level and a move at info level; the daemon sets the level.
#[inline(always)]
pub fn learn(ctx: &XdpContext, vni: u32, info: &VniInfo, mac: [u8; 6], place: Place) {
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
        if !place.holds(e) {
            *e = place.learned(now);
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
    // SAFETY: helper without arguments.
    let entry = place.learned(unsafe { bpf_ktime_get_coarse_ns() });
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
