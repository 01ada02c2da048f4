//! Upgrades across map layouts: which layout the pins hold, and what a
//! `vtep run` of this build must do about it (`vtep_common::layout`).
//!
//! [`plan`] reads the pins and decides, touching nothing: adopt every map
//! as it is, or migrate (an older layout, or the FDB's size changed), or
//! refuse (a newer layout, shapes matching no known layout, an FDB larger
//! than `capacity.fdb`). A migration builds the new set of maps in
//! `<pin>/maps-new` (maps kept as they are pinned there too, new ones
//! created there and filled from the old ones), and the loader exchanges it
//! with `<pin>/maps` in one `renameat2(RENAME_EXCHANGE)`: at every moment
//! `<pin>/maps` is one complete set, the old or the new. What is left in
//! `<pin>/maps-new` is removed (at the end, or by the next `vtep run` after
//! a crash).

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsFd as _, AsRawFd as _},
        unix::ffi::OsStrExt as _,
    },
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, bail};
use aya::maps::{Array, HashMap, IterableMap as _, Map, MapData, MapInfo};
use vtep_common::{
    FdbEntry, FdbKey, Underlay, VtepAddr,
    layout::{self, Entries, Layout, LayoutRecord, MapShape},
    names,
};

use crate::{datapath::batch::lookup_batch, datapath::pins::Pins, model::config::Capacity};

/// The shape of a pinned map, as the kernel reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pinned {
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

impl Pinned {
    fn read(path: &Path) -> Result<Pinned> {
        let info = MapInfo::from_pin(path)
            .with_context(|| format!("reading the pinned map {}", path.display()))?;
        Ok(Pinned {
            map_type: info.map_type().map_or(u32::MAX, |t| t as u32),
            key_size: info.key_size(),
            value_size: info.value_size(),
            max_entries: info.max_entries(),
        })
    }

    /// Why this is not a map of `shape` (in any size `shape` allows), if it is not.
    pub fn mismatch(&self, shape: &MapShape) -> Option<String> {
        let entries_ok = match shape.entries {
            Entries::Fixed(n) => self.max_entries == n,
            Entries::FdbCapacity => self.max_entries > 0,
            Entries::Counters(n) => (1..=n).contains(&self.max_entries),
        };
        let same_kind = self.map_type == shape.map_type
            && self.key_size == shape.key_size
            && self.value_size == shape.value_size;
        (!same_kind || !entries_ok).then(|| {
            format!(
                "type {}, key {} B, value {} B, {} entries (expected type {}, key {} B, value {} B, {})",
                self.map_type,
                self.key_size,
                self.value_size,
                self.max_entries,
                shape.map_type,
                shape.key_size,
                shape.value_size,
                match shape.entries {
                    Entries::Fixed(n) => format!("{n} entries"),
                    Entries::FdbCapacity => "capacity.fdb entries".into(),
                    Entries::Counters(n) => format!("up to {n} entries"),
                }
            )
        })
    }
}

/// What becomes of one map of this build's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Pinned as this build wants it: used as it is.
    Adopt,
    /// Not pinned: created empty.
    Create,
    /// Pinned with fewer counters than this build has: created anew, its
    /// counts start again from zero.
    Reset { pinned: u32 },
    /// Pinned in another shape or size: created anew and filled from the
    /// pinned one.
    Move { pinned: Pinned, entries: usize },
}

/// What [`plan`] decided.
#[derive(Debug)]
pub struct Plan {
    /// The layout pinned; `None` when nothing is pinned yet.
    pub from: Option<u32>,
    /// Every map of this build's layout but [`layout::LAYOUT`], with what
    /// becomes of it.
    pub maps: Vec<(&'static MapShape, Action)>,
}

impl Plan {
    /// Nothing pinned yet.
    pub fn is_fresh(&self) -> bool {
        self.from.is_none()
    }

    /// The pins are another layout, or a map must be created anew: build a
    /// new set and exchange it for the pinned one.
    pub fn migrates(&self) -> bool {
        self.from.is_some_and(|v| v != layout::VERSION)
            || self
                .maps
                .iter()
                .any(|(_, a)| matches!(a, Action::Reset { .. } | Action::Move { .. }))
    }
}

/// The entries a map of `shape` gets under `capacity`.
pub fn max_entries(shape: &MapShape, capacity: &Capacity) -> u32 {
    match shape.entries {
        Entries::Fixed(n) | Entries::Counters(n) => n,
        Entries::FdbCapacity => capacity.fdb,
    }
}

/// The layout version pinned at `pins`: the [`layout::LAYOUT`] record, or 1
/// for pins without one (vtep 0.1.0); `None` when no map of any layout is
/// pinned.
pub fn pinned_version(pins: &Pins) -> Result<Option<u32>> {
    let path = pins.map(layout::LAYOUT);
    if !path.exists() {
        let any = layout::KNOWN
            .iter()
            .flat_map(|l| l.maps)
            .any(|m| pins.map(m.name).exists());
        return Ok(any.then_some(1));
    }
    let shape = layout::CURRENT
        .map(layout::LAYOUT)
        .context("the layout has no LAYOUT map")?;
    if let Some(why) = Pinned::read(&path)?.mismatch(shape) {
        bail!(corrupt(pins, &format!("{}: {why}", layout::LAYOUT)));
    }
    let record: Array<MapData, LayoutRecord> = Map::Array(MapData::from_pin(&path)?).try_into()?;
    Ok(Some(
        record
            .get(&0, 0)
            .with_context(|| format!("reading {}", path.display()))?
            .version,
    ))
}

fn corrupt(pins: &Pins, why: &str) -> String {
    format!(
        "the maps pinned at {} match no layout this vtep knows ({why}): refusing to use them, \
         nothing was changed. `vtep down --pin-path {}` removes them (and the tables in them)",
        pins.maps().display(),
        pins.root.display()
    )
}

/// Reads the pins and decides what `vtep run` does with them, changing
/// nothing. An error says why the pins cannot be used.
pub fn plan(pins: &Pins, capacity: &Capacity) -> Result<Plan> {
    let from = pinned_version(pins)?;
    if let Some(v) = from {
        if v > layout::VERSION {
            bail!(
                "the maps pinned at {} have layout {v}, made by a newer vtep; this one knows \
                 layouts up to {}: refusing to use them, nothing was changed. Run the newer \
                 vtep, or `vtep down --pin-path {}` to start afresh (that drops the tables)",
                pins.maps().display(),
                layout::VERSION,
                pins.root.display()
            );
        }
        let old = layout::known(v)
            .ok_or_else(|| anyhow::anyhow!(corrupt(pins, &format!("layout version {v}"))))?;
        check_shapes(pins, old)?;
    }
    let mut maps = Vec::new();
    for shape in layout::CURRENT
        .maps
        .iter()
        .filter(|m| m.name != layout::LAYOUT)
    {
        let path = pins.map(shape.name);
        let action = if !path.exists() {
            Action::Create
        } else {
            let pinned = Pinned::read(&path)?;
            let wanted = max_entries(shape, capacity);
            let same_kind = pinned.map_type == shape.map_type
                && pinned.key_size == shape.key_size
                && pinned.value_size == shape.value_size;
            match shape.entries {
                _ if same_kind && pinned.max_entries == wanted => Action::Adopt,
                Entries::Counters(_) if same_kind && pinned.max_entries < wanted => Action::Reset {
                    pinned: pinned.max_entries,
                },
                _ => {
                    let from = from.unwrap_or(layout::VERSION);
                    if mover(shape.name, from).is_none() {
                        bail!(corrupt(
                            pins,
                            &format!(
                                "{}: no conversion from layout {from}: {}",
                                shape.name,
                                pinned.mismatch(shape).unwrap_or_default()
                            )
                        ));
                    }
                    let entries = count_entries(&path, pinned.key_size)?;
                    if shape.entries == Entries::FdbCapacity && entries > wanted as usize {
                        bail!(
                            "{}: {entries} entries pinned, more than the {wanted} that \
                             capacity.fdb asks for: raise capacity.fdb to at least {entries} \
                             (or remove entries first); nothing was changed",
                            shape.name
                        );
                    }
                    Action::Move { pinned, entries }
                }
            }
        };
        maps.push((shape, action));
    }
    Ok(Plan { from, maps })
}

/// Every pinned map named in `old` must have its shape there.
fn check_shapes(pins: &Pins, old: &Layout) -> Result<()> {
    for shape in old.maps {
        let path = pins.map(shape.name);
        if !path.exists() {
            continue;
        }
        if let Some(why) = Pinned::read(&path)?.mismatch(shape) {
            bail!(corrupt(
                pins,
                &format!("{} of layout {}: {why}", shape.name, old.version)
            ));
        }
    }
    Ok(())
}

/// How many entries the pinned map at `path` (keys of `key_size` bytes)
/// holds, walked with `BPF_MAP_GET_NEXT_KEY`.
fn count_entries(path: &Path, key_size: u32) -> Result<usize> {
    const BPF_MAP_GET_NEXT_KEY: libc::c_long = 4;
    /// The element part of `union bpf_attr`.
    #[repr(C)]
    struct NextKeyAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        next_key: u64,
    }
    let map = MapData::from_pin(path)?;
    let mut key = vec![0u8; key_size as usize];
    let mut next = vec![0u8; key_size as usize];
    let mut count = 0;
    loop {
        let mut attr = NextKeyAttr {
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            _pad: 0,
            // The first call passes no key: the first key comes back.
            key: if count == 0 { 0 } else { key.as_ptr() as u64 },
            next_key: next.as_mut_ptr() as u64,
        };
        // SAFETY: attr points to two buffers of the map's key size, alive
        // for the call.
        match unsafe { bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) } {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(count),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        std::mem::swap(&mut key, &mut next);
        count += 1;
    }
}

/// Moves the entries of one map to its new table: a first copy, then,
/// once the programs use the new table, what changed in the old one
/// meanwhile (it stays readable through our file descriptor).
pub trait Mover {
    /// Copies every entry; how many.
    fn copy(&mut self) -> Result<usize>;
    /// Copies what changed in the old table since [`Mover::copy`] and not
    /// in the new one (where the programs may have learned since); how many.
    fn recopy(&mut self) -> Result<usize>;
}

/// Makes the [`Mover`] of a map from its old and new tables.
pub type MakeMover = fn(old: MapData, new: MapData) -> Result<Box<dyn Mover>>;

/// The converter of `name` pinned at layout `from`, if this build has one.
/// Identity when only `max_entries` differs; a real conversion (another
/// `V` type) when a layout changes a value type.
pub fn mover(name: &str, from: u32) -> Option<MakeMover> {
    match (name, from) {
        (names::FDB, 1..=3) => Some(|old, new| {
            Ok(Box::new(HashMover::<FdbKey, FdbEntry, FdbEntry>::new(
                old,
                new,
                |v| *v,
            )?))
        }),
        (names::UNDERLAY, 1 | 2) => Some(|old, new| {
            Ok(Box::new(ArrayMover::<UnderlayV2, Underlay>::new(
                old,
                new,
                UnderlayV2::convert,
            )?))
        }),
        _ => None,
    }
}

/// `UNDERLAY`'s value in layouts 1 and 2 (40 bytes): one IPv4 address, no
/// TOS or flow label.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct UnderlayV2 {
    local: VtepAddr,
    uplink_ifindex: u32,
    port: u16,
    srcport_min: u16,
    srcport_max: u16,
    ttl: u8,
    flags: u8,
    uplink_mac: [u8; 6],
    mtu: u16,
}

// SAFETY: repr(C), plain integers, no implicit padding (40 bytes).
unsafe impl aya::Pod for UnderlayV2 {}

impl UnderlayV2 {
    /// The same underlay in layout 3: the IPv4 address where it was (an
    /// IPv6 one was refused then), TOS 0 and the flow label from the hash
    /// (what the old datapath sent had no other), the flags' bits as they
    /// were.
    fn convert(&self) -> Underlay {
        Underlay {
            local: self.local,
            local6: VtepAddr::NONE,
            uplink_ifindex: self.uplink_ifindex,
            flowlabel: 0,
            port: self.port,
            srcport_min: self.srcport_min,
            srcport_max: self.srcport_max,
            ttl: self.ttl,
            tos: 0,
            flags: self.flags,
            _pad: 0,
            uplink_mac: self.uplink_mac,
            mtu: self.mtu,
            _pad2: [0; 2],
        }
    }
}

/// An array map's values, converted index by index.
struct ArrayMover<Vo: aya::Pod, Vn: aya::Pod> {
    old: Array<MapData, Vo>,
    new: Array<MapData, Vn>,
    convert: fn(&Vo) -> Vn,
    /// The old array as [`Mover::copy`] saw it.
    copied: Vec<Vo>,
}

impl<Vo: aya::Pod + PartialEq, Vn: aya::Pod> ArrayMover<Vo, Vn> {
    fn new(old: MapData, new: MapData, convert: fn(&Vo) -> Vn) -> Result<Self> {
        Ok(ArrayMover {
            old: Map::Array(old).try_into()?,
            new: Map::Array(new).try_into()?,
            convert,
            copied: Vec::new(),
        })
    }

    fn read_old(&self) -> Result<Vec<Vo>> {
        (0..self.old.len().min(self.new.len()))
            .map(|i| self.old.get(&i, 0).context("reading the old array"))
            .collect()
    }
}

impl<Vo: aya::Pod + PartialEq, Vn: aya::Pod> Mover for ArrayMover<Vo, Vn> {
    fn copy(&mut self) -> Result<usize> {
        self.copied = self.read_old()?;
        for (i, v) in self.copied.iter().enumerate() {
            self.new
                .set(i as u32, (self.convert)(v), 0)
                .context("writing the new array")?;
        }
        Ok(self.copied.len())
    }

    fn recopy(&mut self) -> Result<usize> {
        let now = self.read_old()?;
        let mut n = 0;
        for (i, v) in now.iter().enumerate() {
            if self.copied.get(i) != Some(v) {
                self.new
                    .set(i as u32, (self.convert)(v), 0)
                    .context("writing the new array")?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// A hash map's entries, converted value by value.
struct HashMover<K: aya::Pod, Vo: aya::Pod, Vn: aya::Pod> {
    old: HashMap<MapData, K, Vo>,
    new: HashMap<MapData, K, Vn>,
    convert: fn(&Vo) -> Vn,
    /// The old table as [`Mover::copy`] saw it, sorted by key.
    copied: Vec<(K, Vo)>,
}

impl<K, Vo, Vn> HashMover<K, Vo, Vn>
where
    K: aya::Pod + Ord,
    Vo: aya::Pod + PartialEq,
    Vn: aya::Pod + PartialEq,
{
    fn new(old: MapData, new: MapData, convert: fn(&Vo) -> Vn) -> Result<Self> {
        Ok(HashMover {
            old: Map::HashMap(old).try_into()?,
            new: Map::HashMap(new).try_into()?,
            convert,
            copied: Vec::new(),
        })
    }

    fn read_old(&self) -> Result<Vec<(K, Vo)>> {
        let mut entries = lookup_batch::<K, Vo>(self.old.map().fd().as_fd().as_raw_fd())
            .context("reading the old table")?;
        entries.sort_unstable_by_key(|e| e.0);
        Ok(entries)
    }

    /// The value the first copy wrote for `key`, if any.
    fn first_copy(&self, key: &K) -> Option<Vn> {
        let i = self.copied.binary_search_by(|e| e.0.cmp(key)).ok()?;
        Some((self.convert)(&self.copied[i].1))
    }
}

impl<K, Vo, Vn> Mover for HashMover<K, Vo, Vn>
where
    K: aya::Pod + Ord,
    Vo: aya::Pod + PartialEq,
    Vn: aya::Pod + PartialEq,
{
    fn copy(&mut self) -> Result<usize> {
        self.copied = self.read_old()?;
        for (k, v) in &self.copied {
            self.new
                .insert(k, (self.convert)(v), 0)
                .context("writing the new table")?;
        }
        Ok(self.copied.len())
    }

    fn recopy(&mut self) -> Result<usize> {
        let now = self.read_old()?;
        let mut changed = 0;
        // Written since the copy (learned, moved, refreshed): taken unless
        // the new table has a change of its own for the key.
        for (k, v) in &now {
            let before = self.copied.binary_search_by(|e| e.0.cmp(k)).ok();
            if before.is_some_and(|i| self.copied[i].1 == *v) {
                continue;
            }
            let untouched = match self.new.get(k, 0) {
                Ok(current) => self.first_copy(k) == Some(current),
                Err(_) => true,
            };
            if untouched {
                self.new.insert(k, (self.convert)(v), 0)?;
                changed += 1;
            }
        }
        // Removed since the copy: removed from the new table too, unless
        // it changed there.
        for (k, _) in &self.copied {
            if now.binary_search_by(|e| e.0.cmp(k)).is_ok() {
                continue;
            }
            if self.new.get(k, 0).ok() == self.first_copy(k) {
                let _ = self.new.remove(k);
                changed += 1;
            }
        }
        Ok(changed)
    }
}

/// Where a migration builds the new set of maps.
pub fn staging(pins: &Pins) -> PathBuf {
    pins.root.join("maps-new")
}

/// Removes every pin under `dir` and `dir` itself (a set left by an
/// interrupted migration, or the old set after one).
pub fn remove_set(dir: &Path) -> Result<usize> {
    let entries = match std::fs::read_dir(dir) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut removed = 0;
    for entry in entries {
        let path = entry?.path();
        std::fs::remove_file(&path).with_context(|| format!("unpinning {}", path.display()))?;
        removed += 1;
    }
    std::fs::remove_dir(dir).with_context(|| format!("removing {}", dir.display()))?;
    Ok(removed)
}

/// Exchanges the directories `a` and `b` atomically (both must exist).
pub fn exchange(a: &Path, b: &Path) -> Result<()> {
    let (ca, cb) = (
        CString::new(a.as_os_str().as_bytes())?,
        CString::new(b.as_os_str().as_bytes())?,
    );
    // SAFETY: two valid NUL-terminated paths, alive for the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("exchanging {} and {}", a.display(), b.display()));
    }
    Ok(())
}

/// Pins a new [`layout::LAYOUT`] map saying this build's version at `path`
/// (written first, then pinned: a pinned record is always complete).
pub fn pin_layout_record(path: &Path) -> Result<()> {
    let shape = layout::CURRENT
        .map(layout::LAYOUT)
        .context("the layout has no LAYOUT map")?;
    let fd = create_map(shape, layout::LAYOUT)?;
    let data = MapData::from_fd(fd)?;
    let mut record: Array<MapData, LayoutRecord> = Map::Array(data).try_into()?;
    record.set(
        0,
        LayoutRecord {
            version: layout::VERSION,
            _pad: 0,
        },
        0,
    )?;
    record
        .pin(path)
        .with_context(|| format!("pinning {}", path.display()))?;
    Ok(())
}

/// `BPF_MAP_CREATE` of a map of `shape` (fixed size) named `name`.
fn create_map(shape: &MapShape, name: &str) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd as _;
    const BPF_MAP_CREATE: libc::c_long = 0;
    /// The first members of the `BPF_MAP_CREATE` part of `union bpf_attr`.
    #[repr(C)]
    #[derive(Default)]
    struct CreateAttr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        map_flags: u32,
        inner_map_fd: u32,
        numa_node: u32,
        map_name: [u8; 16],
    }
    let Entries::Fixed(max_entries) = shape.entries else {
        bail!("{name}: only fixed-size maps are created here");
    };
    let mut attr = CreateAttr {
        map_type: shape.map_type,
        key_size: shape.key_size,
        value_size: shape.value_size,
        max_entries,
        ..CreateAttr::default()
    };
    for (dst, src) in attr.map_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src;
    }
    // SAFETY: attr is a valid, initialised prefix of union bpf_attr.
    let fd = unsafe { bpf(BPF_MAP_CREATE, &mut attr) }
        .with_context(|| format!("creating the {name} map"))?;
    // SAFETY: a new file descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// `bpf(cmd, attr, sizeof attr)`: its result, or the error.
///
/// # Safety
/// `attr` must be the part of `union bpf_attr` that `cmd` reads, and every
/// pointer in it valid for the call.
unsafe fn bpf<A>(cmd: libc::c_long, attr: &mut A) -> io::Result<libc::c_long> {
    // SAFETY: as the caller promises.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut A, std::mem::size_of::<A>()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every map whose key or value changed since an older layout has a
    /// converter from it (only max_entries may differ without one, and
    /// then only where the size is `[capacity] fdb`'s).
    #[test]
    fn every_changed_map_has_a_converter() {
        for old in layout::KNOWN {
            for shape in layout::CURRENT.maps {
                let Some(was) = old.map(shape.name) else {
                    continue;
                };
                let resized = shape.entries == Entries::FdbCapacity;
                if was != shape || resized {
                    let reset = matches!(
                        (was.entries, shape.entries),
                        (Entries::Counters(_), Entries::Counters(_))
                    ) && was.key_size == shape.key_size
                        && was.value_size == shape.value_size;
                    assert!(
                        reset || mover(shape.name, old.version).is_some(),
                        "{} from layout {}: no converter",
                        shape.name,
                        old.version
                    );
                }
            }
        }
    }

    /// The second copy takes what changed in the old table since the first
    /// (learned, moved, removed) unless the new table changed it too.
    /// Needs root (BPF maps).
    #[test]
    fn the_second_copy_takes_what_changed_in_the_old_table_only() {
        let shape = MapShape {
            name: names::FDB,
            map_type: layout::map_type::HASH,
            key_size: std::mem::size_of::<FdbKey>() as u32,
            value_size: std::mem::size_of::<FdbEntry>() as u32,
            entries: Entries::Fixed(64),
        };
        let table = || MapData::from_fd(create_map(&shape, "test_fdb").expect("a map")).unwrap();
        let (old, new) = (table(), table());
        let key = |k: u8| FdbKey::new(100, [2, 0, 0, 0, 0, k]);
        let at = |port: u32| FdbEntry::local(port, vtep_common::FDB_F_LEARNED, 1_000);
        let mut writer: HashMap<MapData, FdbKey, FdbEntry> =
            Map::HashMap(MapData::from_fd(old.fd().as_fd().try_clone_to_owned().unwrap()).unwrap())
                .try_into()
                .unwrap();
        let mut reader: HashMap<MapData, FdbKey, FdbEntry> =
            Map::HashMap(MapData::from_fd(new.fd().as_fd().try_clone_to_owned().unwrap()).unwrap())
                .try_into()
                .unwrap();
        for k in 1..=4 {
            writer.insert(key(k), at(1), 0).unwrap();
        }
        let mut mover = HashMover::<FdbKey, FdbEntry, FdbEntry>::new(old, new, |v| *v).unwrap();
        assert_eq!(mover.copy().unwrap(), 4);
        // The old programs, until the swap: 2 moves, 3 ages out, 5 is learned, 4 moves.
        writer.insert(key(2), at(2), 0).unwrap();
        writer.remove(&key(3)).unwrap();
        writer.insert(key(5), at(1), 0).unwrap();
        writer.insert(key(4), at(3), 0).unwrap();
        // The new programs, already: 4 moves elsewhere, 6 is learned.
        reader.insert(key(4), at(4), 0).unwrap();
        reader.insert(key(6), at(1), 0).unwrap();
        assert_eq!(mover.recopy().unwrap(), 3, "2, 3 and 5");
        let port = |k: u8| reader.get(&key(k), 0).ok().map(|e| e.ifindex);
        assert_eq!(
            [1, 2, 3, 4, 5, 6].map(port),
            [Some(1), Some(2), None, Some(4), Some(1), Some(1)]
        );
    }

    #[test]
    fn shapes_are_checked_field_by_field() {
        let fdb = layout::CURRENT.map(names::FDB).unwrap();
        let good = Pinned {
            map_type: fdb.map_type,
            key_size: fdb.key_size,
            value_size: fdb.value_size,
            max_entries: 1_048_576,
        };
        assert_eq!(good.mismatch(fdb), None);
        let bad = Pinned {
            value_size: fdb.value_size + 8,
            ..good
        };
        let why = bad.mismatch(fdb).expect("a value of another size");
        assert!(
            why.starts_with(&format!(
                "type 1, key 12 B, value {} B,",
                fdb.value_size + 8
            )),
            "{why}"
        );
        let reasons = layout::CURRENT.map(names::REASONS).unwrap();
        let fewer = Pinned {
            map_type: reasons.map_type,
            key_size: 4,
            value_size: 8,
            max_entries: 3,
        };
        assert_eq!(fewer.mismatch(reasons), None);
    }
}
