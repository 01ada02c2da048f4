//! Every map of the datapath, and the counting helpers.
//!
//! Names, capacities and layouts come from `vtep_common`, so the loader and
//! the CLI agree with the programs by construction.

use aya_ebpf::{
    macros::map,
    maps::{Array, DevMapHash, HashMap, PerCpuArray, PerCpuHashMap, RingBuf, XskMap},
};
use vtep_common::{
    FDB_CAPACITY, FdbEntry, FdbKey, FloodList, NEIGH_CAPACITY, NeighEntry, PORT_CAPACITY, PortInfo,
    PortKey, PortList, Reason, Underlay, VNI_CAPACITY, VniCounters, VniInfo, VtepAddr,
    XSK_MAX_QUEUES, event::EVENT_RING_BYTES, header::is_multicast, reason::REASON_COUNT,
};

use crate::parse::CSUM_CHUNK;

/// (VNI, MAC) → local port or remote VTEP; static and learned.
#[map]
pub static FDB: HashMap<FdbKey, FdbEntry> = HashMap::with_max_entries(FDB_CAPACITY, 0);

/// VNI → its settings (learning, maxaddress, ageing, source check).
#[map]
pub static VNIS: HashMap<u32, VniInfo> = HashMap::with_max_entries(VNI_CAPACITY, 0);

/// VNI → number of learned MACs (for `maxaddress`); the datapath adds, the
/// daemon recounts when it ages entries out.
#[map]
pub static VNI_LEARNED: HashMap<u32, u64> = HashMap::with_max_entries(VNI_CAPACITY, 0);

/// VNI → per-CPU traffic counters.
#[map]
pub static VNI_STATS: PerCpuHashMap<u32, VniCounters> =
    PerCpuHashMap::with_max_entries(VNI_CAPACITY, 0);

/// (access port, VLAN) → VNI.
#[map]
pub static PORTS: HashMap<PortKey, PortInfo> = HashMap::with_max_entries(PORT_CAPACITY, 0);

/// VNI → its access ports (flooding).
#[map]
pub static VNI_PORTS: HashMap<u32, PortList> = HashMap::with_max_entries(VNI_CAPACITY, 0);

/// VNI → flood list (remote VTEPs for BUM traffic).
#[map]
pub static FLOOD: HashMap<u32, FloodList> = HashMap::with_max_entries(VNI_CAPACITY, 0);

/// ifindex → device, for XDP redirects: the uplink, and the access ports
/// whose far end takes XDP frames. A port missing here gets its frames
/// through TC instead (`bpf_redirect_map` falls back to XDP_PASS).
#[map]
pub static PORT_TX: DevMapHash = DevMapHash::with_max_entries(PORT_CAPACITY, 0);

/// This VTEP on the underlay (one entry).
#[map]
pub static UNDERLAY: Array<Underlay> = Array::with_max_entries(1, 0);

/// Remote VTEP → outer MACs and device, resolved by the daemon: used when
/// `bpf_fib_lookup` cannot answer.
#[map]
pub static NEIGH: HashMap<VtepAddr, NeighEntry> = HashMap::with_max_entries(NEIGH_CAPACITY, 0);

/// VNI → its multicast group (`group`): BUM frames of the VNI go to it as
/// well as to the flood list, and decap accepts VXLAN of the VNI sent to it.
#[map]
pub static VNI_GROUP: HashMap<u32, VtepAddr> = HashMap::with_max_entries(VNI_CAPACITY, 0);

/// [0]: bumped by the CLI after every change; [1]: the change a userspace
/// engine (AF_XDP) has applied, 0 when none runs. Not read by the programs.
#[map]
pub static GENERATION: Array<u64> = Array::with_max_entries(2, 0);

/// Per-CPU count of every reason a packet was not simply forwarded.
#[map]
pub static REASONS: PerCpuArray<u64> = PerCpuArray::with_max_entries(REASON_COUNT, 0);

/// Scratch space for summing a frame (the outer UDP checksum): one chunk
/// and the padding after it.
#[map]
pub static CSUM_SCRATCH: PerCpuArray<[u8; CSUM_CHUNK + 4]> = PerCpuArray::with_max_entries(1, 0);

/// AF_XDP engine: (interface slot × XSK_MAX_QUEUES + queue) → AF_XDP
/// socket.
#[map]
pub static XSKS: XskMap = XskMap::with_max_entries(PORT_CAPACITY * XSK_MAX_QUEUES, 0);

/// AF_XDP engine: ifindex → interface slot in `XSKS`.
#[map]
pub static XSK_SLOTS: HashMap<u32, u32> = HashMap::with_max_entries(PORT_CAPACITY, 0);

/// FDB events (`vtep_common::event::FdbEvent`) for `vtep monitor`: a
/// MAC learned or moved. The daemon is the one reader.
#[map]
pub static FDB_EVENTS: RingBuf = RingBuf::with_byte_size(EVENT_RING_BYTES, 0);

/// Per-CPU count of the FDB events `FDB_EVENTS` had no room for.
#[map]
pub static FDB_EV_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Counts one packet under `reason`.
#[inline(always)]
pub fn count(reason: Reason) {
    if let Some(c) = REASONS.get_ptr_mut(reason as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *c += 1 };
    }
}

/// Which direction of a VNI's counters to add to.
#[derive(Clone, Copy)]
pub enum Dir {
    /// Decapsulated from the underlay.
    Rx,
    /// Encapsulated to the underlay.
    Tx,
    /// Switched between local ports.
    Local,
}

/// Adds one packet of `bytes` to a VNI's counters.
#[inline(always)]
pub fn count_vni(vni: u32, dir: Dir, bytes: u64) {
    if let Some(c) = VNI_STATS.get_ptr_mut(vni) {
        // SAFETY: per-CPU value, no concurrent writer on this CPU.
        let c = unsafe { &mut *c };
        match dir {
            Dir::Rx => {
                c.rx_packets += 1;
                c.rx_bytes += bytes;
            }
            Dir::Tx => {
                c.tx_packets += 1;
                c.tx_bytes += bytes;
            }
            Dir::Local => {
                c.local_packets += 1;
                c.local_bytes += bytes;
            }
        }
    }
}

/// Counts one BUM frame flooded in a VNI.
#[inline(always)]
pub fn count_flood(vni: u32) {
    if let Some(c) = VNI_STATS.get_ptr_mut(vni) {
        // SAFETY: per-CPU value, no concurrent writer on this CPU.
        unsafe { (*c).flood_packets += 1 };
    }
}

/// The underlay, when configured.
#[inline(always)]
pub fn underlay() -> Option<&'static Underlay> {
    let ul = UNDERLAY.get(0)?;
    // Either family makes an underlay: IPv4, IPv6 or both.
    if ul.local.family == 0 && ul.local6.family == 0 {
        None
    } else {
        Some(ul)
    }
}

/// The FDB entry of destination `mac` in `vni`; none for a BUM frame, which
/// is flooded without a lookup.
#[inline(always)]
pub fn fdb_dst(vni: u32, mac: &[u8; 6]) -> Option<&'static FdbEntry> {
    if is_multicast(mac) {
        return None;
    }
    // SAFETY: a live map value, read only.
    unsafe { FDB.get(FdbKey::new(vni, *mac)) }
}
