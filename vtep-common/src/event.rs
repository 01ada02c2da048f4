//! FDB events: a MAC learned, moved, aged out, added or removed, one
//! record each, as `vtep monitor` shows them.
//!
//! The XDP engine's learning writes an [`FdbEvent`] into the `FDB_EVENTS`
//! ring buffer (`BPF_MAP_TYPE_RINGBUF`, [`EVENT_RING_BYTES`]) on a new MAC
//! and on a move, never on a refresh; a record that does not fit (the ring
//! is full: no daemon reads it, or a MAC flood outruns it) is counted in
//! the per-CPU `FDB_EV_LOST` and costs nothing else. The daemon is the
//! ring's one reader; the AF_XDP engine, the ageing, the follower and the
//! CLI hand it the same records, and it passes them on to `vtep monitor`
//! clients, [`FdbEvent::to_bytes`] each.
//!
//! A record carries the entry before (`old`) and after (`new`) the event,
//! as the `FDB` map holds them (an entry of kind 0 is none), so a client
//! renders both with `vtep fdb show`'s words.

use core::mem::size_of;

use crate::{FdbEntry, FdbKey};

/// Size of the `FDB_EVENTS` ring buffer: about 2,300 records (a record
/// and its 8-byte header are 120 bytes) between two reads of the daemon.
/// The kernel wants a power-of-2 multiple of the page size.
pub const EVENT_RING_BYTES: u32 = 256 * 1024;

/// What happened to an FDB entry ([`FdbEvent::kind`]).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A new MAC was learned (`new`).
    Learned = 1,
    /// A learned MAC moved (`old` → `new`).
    Moved = 2,
    /// A learned MAC aged out (`old`).
    Aged = 3,
    /// An entry was added (CLI, follower; `new`), or replaced (`old` too).
    Added = 4,
    /// An entry was deleted (CLI, follower; `old`).
    Deleted = 5,
}

impl EventKind {
    /// Every kind, in code order.
    pub const ALL: [EventKind; 5] = [
        EventKind::Learned,
        EventKind::Moved,
        EventKind::Aged,
        EventKind::Added,
        EventKind::Deleted,
    ];

    /// The kind of code `code`, if it is one.
    pub fn from_code(code: u32) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| *k as u32 == code)
    }

    /// Whether the entry is gone after the event.
    pub const fn removes(self) -> bool {
        matches!(self, EventKind::Aged | EventKind::Deleted)
    }
}

/// One FDB event. Shared by the datapath (a ring-buffer record), the
/// daemon and its monitor clients (a datagram each).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdbEvent {
    /// `CLOCK_MONOTONIC` nanoseconds (`bpf_ktime_get_coarse_ns` in the
    /// datapath) when it happened.
    pub time_ns: u64,
    /// The MAC and its VNI.
    pub key: FdbKey,
    /// An [`EventKind`] code, host order.
    pub kind: u32,
    /// The entry before: moved from, aged out, deleted, replaced.
    pub old: FdbEntry,
    /// The entry after: learned, moved to, added.
    pub new: FdbEntry,
}

/// The size of a record: [`FdbEvent::to_bytes`]'s length.
pub const EVENT_LEN: usize = size_of::<FdbEvent>();

impl FdbEvent {
    /// The event `kind` of `key`, at `time_ns`.
    pub const fn new(
        kind: EventKind,
        key: FdbKey,
        old: FdbEntry,
        new: FdbEntry,
        time_ns: u64,
    ) -> Self {
        FdbEvent {
            time_ns,
            key,
            kind: kind as u32,
            old,
            new,
        }
    }

    /// Its kind, when the code is one.
    pub fn event_kind(&self) -> Option<EventKind> {
        EventKind::from_code(self.kind)
    }

    /// The bytes of the record, as the ring buffer holds it (host order,
    /// padding fields included).
    pub fn to_bytes(&self) -> [u8; EVENT_LEN] {
        let mut b = [0u8; EVENT_LEN];
        let mut w = Writer { b: &mut b, at: 0 };
        w.put(&self.time_ns.to_ne_bytes());
        w.put(&self.key.vni.to_ne_bytes());
        w.put(&self.key.mac);
        w.put(&self.key._pad);
        w.put(&self.kind.to_ne_bytes());
        for e in [&self.old, &self.new] {
            w.put(&e.last_seen_ns.to_ne_bytes());
            w.put(&e.remote.addr);
            w.put(&[e.remote.family]);
            w.put(&e.remote._pad);
            w.put(&e.ifindex.to_ne_bytes());
            w.put(&[e.kind, e.flags]);
            w.put(&e._pad);
        }
        b
    }

    /// The record in `b`, which must be exactly [`EVENT_LEN`] bytes.
    pub fn from_bytes(b: &[u8]) -> Option<FdbEvent> {
        if b.len() != EVENT_LEN {
            return None;
        }
        let mut r = Reader { b, at: 0 };
        let time_ns = u64::from_ne_bytes(r.take());
        let vni = u32::from_ne_bytes(r.take());
        let mac = r.take();
        let key_pad = r.take();
        let kind = u32::from_ne_bytes(r.take());
        let mut entry = || FdbEntry {
            last_seen_ns: u64::from_ne_bytes(r.take()),
            remote: crate::VtepAddr {
                addr: r.take(),
                family: r.take::<1>()[0],
                _pad: r.take(),
            },
            ifindex: u32::from_ne_bytes(r.take()),
            kind: r.take::<1>()[0],
            flags: r.take::<1>()[0],
            _pad: r.take(),
        };
        let old = entry();
        let new = entry();
        Some(FdbEvent {
            time_ns,
            key: FdbKey {
                vni,
                mac,
                _pad: key_pad,
            },
            kind,
            old,
            new,
        })
    }
}

struct Writer<'a> {
    b: &'a mut [u8; EVENT_LEN],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.b[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.b[self.at..self.at + N]);
        self.at += N;
        out
    }
}

#[cfg(feature = "user")]
// SAFETY: #[repr(C)], Copy, every padding byte an explicit field (its
// members are Pod for the same reason).
unsafe impl aya::Pod for FdbEvent {}

#[cfg(test)]
mod tests {
    use core::mem::offset_of;

    use super::*;
    use crate::{FDB_F_LEARNED, FDB_F_STATIC, VtepAddr};

    fn moved() -> FdbEvent {
        FdbEvent::new(
            EventKind::Moved,
            FdbKey::new(100, [2, 0, 0, 0, 0, 5]),
            FdbEntry::local(7, FDB_F_LEARNED, 3_000_000_000),
            FdbEntry::remote(VtepAddr::v4([198, 18, 0, 2]), FDB_F_LEARNED, 9_000_000_000),
            9_000_000_000,
        )
    }

    /// The layout is ABI between the eBPF object, the daemon and its
    /// clients: no implicit padding, 8-aligned for the ring buffer.
    #[test]
    fn the_record_has_no_implicit_padding() {
        assert_eq!(EVENT_LEN, 8 + 12 + 4 + 40 + 40);
        assert_eq!(core::mem::align_of::<FdbEvent>(), 8);
        assert_eq!(offset_of!(FdbEvent, key), 8);
        assert_eq!(offset_of!(FdbEvent, kind), 20);
        assert_eq!(offset_of!(FdbEvent, old), 24);
        assert_eq!(offset_of!(FdbEvent, new), 64);
    }

    /// The encoding is the record's memory: what the ring buffer holds is
    /// what `from_bytes` reads.
    #[test]
    fn bytes_are_the_records_memory() {
        let e = moved();
        // SAFETY: FdbEvent is plain data of EVENT_LEN bytes, no implicit
        // padding (above).
        let raw: [u8; EVENT_LEN] = unsafe { core::mem::transmute(e) };
        assert_eq!(e.to_bytes(), raw);
        let b = e.to_bytes();
        assert_eq!(&b[0..8], &9_000_000_000u64.to_ne_bytes());
        assert_eq!(&b[8..12], &100u32.to_ne_bytes());
        assert_eq!(&b[12..18], &[2, 0, 0, 0, 0, 5]);
        assert_eq!(&b[20..24], &2u32.to_ne_bytes());
        // old: local port 7; new: remote 198.18.0.2.
        assert_eq!(&b[24 + 28..24 + 32], &7u32.to_ne_bytes());
        assert_eq!(&b[64 + 8..64 + 12], &[198, 18, 0, 2]);
    }

    #[test]
    fn records_round_trip() {
        for kind in EventKind::ALL {
            let e = FdbEvent {
                kind: kind as u32,
                ..moved()
            };
            assert_eq!(FdbEvent::from_bytes(&e.to_bytes()), Some(e));
            assert_eq!(e.event_kind(), Some(kind));
        }
        let added = FdbEvent::new(
            EventKind::Added,
            FdbKey::new(7, [2, 0, 0, 0, 1, 2]),
            FdbEntry::default(),
            FdbEntry::local(3, FDB_F_STATIC, 0),
            1,
        );
        assert_eq!(FdbEvent::from_bytes(&added.to_bytes()), Some(added));
    }

    #[test]
    fn malformed_records_are_refused() {
        let b = moved().to_bytes();
        assert_eq!(FdbEvent::from_bytes(&b[..EVENT_LEN - 1]), None);
        assert_eq!(FdbEvent::from_bytes(&[]), None);
        let mut long = [0u8; EVENT_LEN + 1];
        long[..EVENT_LEN].copy_from_slice(&b);
        assert_eq!(FdbEvent::from_bytes(&long), None);
        let unknown = FdbEvent { kind: 9, ..moved() };
        assert_eq!(unknown.event_kind(), None);
        assert_eq!(EventKind::from_code(0), None);
    }

    #[test]
    fn removals_are_aged_and_deleted() {
        let removes: [bool; 5] = EventKind::ALL.map(EventKind::removes);
        assert_eq!(removes, [false, false, true, false, true]);
    }
}
