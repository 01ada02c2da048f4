//! The layout of the pinned maps, version by version: for each map that a
//! `vtep run` pins under `<pin-path>/maps/`, its type, key size, value size
//! and entries. A restart compares what is pinned with [`CURRENT`] and
//! migrates when they differ (`vtep-user`'s `datapath::migrate`).
//!
//! The version itself is pinned too, as the one record of the [`LAYOUT`]
//! map ([`LayoutRecord`]). Pins without it were made by vtep 0.1.0: they are
//! layout 1 when every map pinned has layout 1's shape.
//!
//! A new map is one line in the newest layout (pins of an older version
//! without it get it created empty); a changed key or value type is a new
//! version, whose table keeps the old shape in the older layout's, with a
//! converter in `datapath::migrate`. Older layouts are written with plain
//! numbers: they describe what was pinned, whatever the types are today.

use core::mem::size_of;

use crate::{
    FdbEntry, FdbKey, FloodList, NEIGH_CAPACITY, NeighEntry, PORT_CAPACITY, PortInfo, PortKey,
    PortList, Underlay, VNI_CAPACITY, VniCounters, VniInfo, VtepAddr, names, reason::REASON_COUNT,
};

/// The layout this build pins.
pub const VERSION: u32 = 3;

/// The map holding the layout version (one [`LayoutRecord`] at index 0).
pub const LAYOUT: &str = "LAYOUT";

/// Value of the [`LAYOUT`] map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayoutRecord {
    /// The layout of the maps pinned beside it.
    pub version: u32,
    pub _pad: u32,
}

#[cfg(feature = "user")]
// SAFETY: repr(C), plain integers, no implicit padding.
unsafe impl aya::Pod for LayoutRecord {}

/// `BPF_MAP_TYPE_*` of `linux/bpf.h`, for the maps vtep pins.
pub mod map_type {
    pub const HASH: u32 = 1;
    pub const ARRAY: u32 = 2;
    pub const PERCPU_HASH: u32 = 5;
    pub const PERCPU_ARRAY: u32 = 6;
    pub const DEVMAP_HASH: u32 = 25;
    pub const RINGBUF: u32 = 27;
}

/// How many entries a map has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entries {
    /// Always this many.
    Fixed(u32),
    /// As many as `[capacity] fdb` says (the FDB); changing it on restart
    /// recreates the map and copies every entry.
    FdbCapacity,
    /// One counter per reason. A pinned map with fewer (an older vtep,
    /// with fewer reasons) is recreated and its counts start again from
    /// zero; the log says so.
    Counters(u32),
}

/// What one pinned map looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapShape {
    pub name: &'static str,
    /// `BPF_MAP_TYPE_*` ([`map_type`]).
    pub map_type: u32,
    pub key_size: u32,
    /// Per CPU for the per-CPU types, as the kernel reports it.
    pub value_size: u32,
    pub entries: Entries,
}

const fn map(
    name: &'static str,
    map_type: u32,
    key_size: usize,
    value_size: usize,
    entries: Entries,
) -> MapShape {
    MapShape {
        name,
        map_type,
        key_size: key_size as u32,
        value_size: value_size as u32,
        entries,
    }
}

/// One version of the pinned maps.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub version: u32,
    pub maps: &'static [MapShape],
}

impl Layout {
    /// The shape of `name` in this layout.
    pub fn map(&self, name: &str) -> Option<&'static MapShape> {
        self.maps.iter().find(|m| m.name == name)
    }
}

use map_type::*;

/// vtep 0.1.0 (no [`LAYOUT`] map yet); its FDB's size became `[capacity]
/// fdb` just after the release, without a layout of its own.
pub const LAYOUT_1: Layout = Layout {
    version: 1,
    maps: &[
        map(names::GENERATION, ARRAY, 4, 8, Entries::Fixed(2)),
        map(names::FDB, HASH, 12, 40, Entries::FdbCapacity),
        map(names::VNIS, HASH, 4, 16, Entries::Fixed(4096)),
        map(names::VNI_LEARNED, HASH, 4, 8, Entries::Fixed(4096)),
        map(names::VNI_STATS, PERCPU_HASH, 4, 64, Entries::Fixed(4096)),
        map(names::PORTS, HASH, 8, 8, Entries::Fixed(1024)),
        map(names::VNI_PORTS, HASH, 4, 260, Entries::Fixed(4096)),
        map(names::FLOOD, HASH, 4, 1288, Entries::Fixed(4096)),
        map(names::PORT_TX, DEVMAP_HASH, 4, 8, Entries::Fixed(1024)),
        map(names::UNDERLAY, ARRAY, 4, 40, Entries::Fixed(1)),
        map(names::NEIGH, HASH, 20, 16, Entries::Fixed(1024)),
        map(names::REASONS, PERCPU_ARRAY, 4, 8, Entries::Counters(27)),
    ],
};

/// vtep 0.2: layout 1's maps, the [`LAYOUT`] map itself, and the FDB
/// event ring.
pub const LAYOUT_2: Layout = Layout {
    version: 2,
    maps: &[
        map(LAYOUT, ARRAY, 4, 8, Entries::Fixed(1)),
        map(names::GENERATION, ARRAY, 4, 8, Entries::Fixed(2)),
        map(names::FDB, HASH, 12, 40, Entries::FdbCapacity),
        map(names::VNIS, HASH, 4, 16, Entries::Fixed(4096)),
        map(names::VNI_LEARNED, HASH, 4, 8, Entries::Fixed(4096)),
        map(names::VNI_STATS, PERCPU_HASH, 4, 64, Entries::Fixed(4096)),
        map(names::PORTS, HASH, 8, 8, Entries::Fixed(1024)),
        map(names::VNI_PORTS, HASH, 4, 260, Entries::Fixed(4096)),
        map(names::FLOOD, HASH, 4, 1288, Entries::Fixed(4096)),
        map(names::PORT_TX, DEVMAP_HASH, 4, 8, Entries::Fixed(1024)),
        map(names::UNDERLAY, ARRAY, 4, 40, Entries::Fixed(1)),
        map(names::NEIGH, HASH, 20, 16, Entries::Fixed(1024)),
        map(names::REASONS, PERCPU_ARRAY, 4, 8, Entries::Counters(27)),
        map(names::FDB_EVENTS, RINGBUF, 0, 0, Entries::Fixed(256 * 1024)),
        map(names::FDB_EV_LOST, PERCPU_ARRAY, 4, 8, Entries::Counters(1)),
    ],
};

/// This build: an IPv6 address beside the IPv4 one, and the outer TOS
/// and flow label, in the underlay (68 bytes, converted from 40); each
/// VNI's multicast group.
pub const LAYOUT_3: Layout = Layout {
    version: 3,
    maps: &[
        map(
            LAYOUT,
            ARRAY,
            4,
            size_of::<LayoutRecord>(),
            Entries::Fixed(1),
        ),
        map(names::GENERATION, ARRAY, 4, 8, Entries::Fixed(2)),
        map(
            names::FDB,
            HASH,
            size_of::<FdbKey>(),
            size_of::<FdbEntry>(),
            Entries::FdbCapacity,
        ),
        map(
            names::VNIS,
            HASH,
            4,
            size_of::<VniInfo>(),
            Entries::Fixed(VNI_CAPACITY),
        ),
        map(names::VNI_LEARNED, HASH, 4, 8, Entries::Fixed(VNI_CAPACITY)),
        map(
            names::VNI_STATS,
            PERCPU_HASH,
            4,
            size_of::<VniCounters>(),
            Entries::Fixed(VNI_CAPACITY),
        ),
        map(
            names::PORTS,
            HASH,
            size_of::<PortKey>(),
            size_of::<PortInfo>(),
            Entries::Fixed(PORT_CAPACITY),
        ),
        map(
            names::VNI_PORTS,
            HASH,
            4,
            size_of::<PortList>(),
            Entries::Fixed(VNI_CAPACITY),
        ),
        map(
            names::FLOOD,
            HASH,
            4,
            size_of::<FloodList>(),
            Entries::Fixed(VNI_CAPACITY),
        ),
        // The value is the kernel's `struct bpf_devmap_val` (ifindex, program).
        map(
            names::PORT_TX,
            DEVMAP_HASH,
            4,
            8,
            Entries::Fixed(PORT_CAPACITY),
        ),
        map(
            names::UNDERLAY,
            ARRAY,
            4,
            size_of::<Underlay>(),
            Entries::Fixed(1),
        ),
        map(
            names::NEIGH,
            HASH,
            size_of::<VtepAddr>(),
            size_of::<NeighEntry>(),
            Entries::Fixed(NEIGH_CAPACITY),
        ),
        map(
            names::REASONS,
            PERCPU_ARRAY,
            4,
            8,
            Entries::Counters(REASON_COUNT),
        ),
        // FDB events for `vtep monitor`: a ring buffer (its size in bytes),
        // and the count of those it had no room for.
        map(
            names::FDB_EVENTS,
            RINGBUF,
            0,
            0,
            Entries::Fixed(crate::event::EVENT_RING_BYTES),
        ),
        map(names::FDB_EV_LOST, PERCPU_ARRAY, 4, 8, Entries::Counters(1)),
        map(
            names::VNI_GROUP,
            HASH,
            4,
            size_of::<VtepAddr>(),
            Entries::Fixed(VNI_CAPACITY),
        ),
    ],
};

/// The layout this build pins.
pub const CURRENT: Layout = LAYOUT_3;

/// Every layout a `vtep run` of this build can migrate from, oldest first.
pub const KNOWN: [Layout; 3] = [LAYOUT_1, LAYOUT_2, LAYOUT_3];

/// The layout of `version`, if this build knows it.
pub fn known(version: u32) -> Option<&'static Layout> {
    KNOWN.iter().find(|l| l.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_layout_is_the_newest_and_pins_every_pinned_map() {
        assert_eq!(CURRENT.version, VERSION);
        assert_eq!(KNOWN.last().map(|l| l.version), Some(VERSION));
        for name in names::PINNED {
            assert!(
                CURRENT.map(name).is_some(),
                "{name} missing from layout {VERSION}"
            );
        }
        assert_eq!(
            CURRENT.maps.len(),
            names::PINNED.len() + 1,
            "only LAYOUT besides"
        );
        assert!(CURRENT.map(LAYOUT).is_some());
    }

    #[test]
    fn versions_increase_and_names_are_unique() {
        for pair in KNOWN.windows(2) {
            assert!(pair[0].version < pair[1].version);
        }
        for layout in KNOWN {
            for (i, m) in layout.maps.iter().enumerate() {
                assert!(
                    layout.maps[i + 1..].iter().all(|o| o.name != m.name),
                    "{} twice in layout {}",
                    m.name,
                    layout.version
                );
            }
        }
    }

    /// Layout 3 changes the underlay's value (40 → 68 bytes, converted) and
    /// adds the VNI groups; every other map of layout 2 stays as it is.
    #[test]
    fn layout_3_changes_only_the_underlay() {
        for old in LAYOUT_2.maps {
            let new = LAYOUT_3.map(old.name).expect(old.name);
            match old.name {
                names::UNDERLAY => assert_eq!((old.value_size, new.value_size), (40, 68)),
                names::REASONS => assert_eq!(new.entries, Entries::Counters(REASON_COUNT)),
                _ => assert_eq!(new, old, "{} changed", old.name),
            }
        }
        assert!(LAYOUT_2.map(names::VNI_GROUP).is_none());
    }

    /// Layout 2 adds the version record and changes no map of layout 1: a
    /// migration from 1 copies nothing (unless the FDB's size changes).
    #[test]
    fn layout_2_keeps_every_map_of_layout_1() {
        for old in LAYOUT_1.maps {
            assert_eq!(LAYOUT_2.map(old.name), Some(old), "{} changed", old.name);
        }
        assert_eq!(
            LAYOUT_1.map(names::FDB).map(|m| m.entries),
            Some(Entries::FdbCapacity)
        );
        assert_eq!(crate::FDB_CAPACITY, 262_144);
    }
}
