//! Loading the datapath, attaching it to interfaces, and taking it down.
//!
//! The object is loaded with every map pinned by name under `<pin>/maps`
//! (an existing pin is reused: that is how a restart or an upgrade keeps the
//! FDB), its programs are pinned under `<pin>/progs`, and each attachment is
//! a BPF link pinned under `<pin>/links` (`xdp-IFINDEX`, `tc-IFINDEX`). A new
//! `vtep run` replaces the program of an existing link atomically
//! (`bpf_link_update`), so forwarding never stops across a restart.

use std::{io, path::Path, time::Instant};

use anyhow::{Context as _, Result};
use aya::{
    EbpfLoader,
    programs::{
        LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        tc::{SchedClassifierLink, TcAttachOptions},
        xdp::XdpLink,
    },
    sys::SyscallError,
};
use vtep_common::{layout, names, programs};

use crate::{
    datapath::{migrate, pins::Pins},
    model::config::{Capacity, EngineKind},
};

/// The eBPF object, built by build.rs from the vtep-ebpf crate.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vtep-ebpf"));

/// The eBPF object vtep loads (for tools and tests that load it themselves,
/// such as the BPF_PROG_TEST_RUN fixtures).
pub fn object() -> &'static [u8] {
    EBPF_OBJECT
}

/// Which programs an interface gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Uplink,
    AccessPort,
}

impl Role {
    /// The (XDP, TC) programs of this role under `engine`.
    fn programs(self, engine: EngineKind) -> (&'static str, &'static str) {
        match (self, engine) {
            (Role::Uplink, EngineKind::Xdp) => (programs::UPLINK_XDP, programs::UPLINK_TC),
            (Role::AccessPort, EngineKind::Xdp) => (programs::ACCESS_XDP, programs::ACCESS_TC),
            (Role::Uplink, EngineKind::Afxdp) => (programs::XSK_UPLINK, programs::UPLINK_TC),
            (Role::AccessPort, EngineKind::Afxdp) => (programs::XSK_ACCESS, programs::ACCESS_TC),
        }
    }
}

/// The AF_XDP engine's maps (its sockets and their slots), from the loaded object.
pub struct EngineMaps {
    pub xsks: aya::maps::XskMap<aya::maps::MapData>,
    pub slots: aya::maps::HashMap<aya::maps::MapData, u32, u32>,
}

/// The eBPF programs' log records (aya-log), for the daemon to print.
pub type DatapathLog = aya_log::EbpfLogger<&'static dyn log::Log>;

/// What [`load`] did.
pub struct Loaded {
    /// Existing pinned maps were adopted (a restart or an upgrade).
    pub adopted: bool,
    /// The programs' log records, when the log map could be opened.
    pub log: Option<DatapathLog>,
    /// The AF_XDP engine's maps (its sockets and their slots).
    pub engine_maps: Option<EngineMaps>,
}

/// The aya-log level the programs log at: the daemon's own level.
fn datapath_log_level() -> u8 {
    use aya_log_common::Level;
    (match log::max_level() {
        log::LevelFilter::Off => 0,
        log::LevelFilter::Error => Level::Error as u8,
        log::LevelFilter::Warn => Level::Warn as u8,
        log::LevelFilter::Info => Level::Info as u8,
        log::LevelFilter::Debug => Level::Debug as u8,
        log::LevelFilter::Trace => Level::Trace as u8,
    }) as u8
}

/// Loads the datapath: maps reused from (or pinned to) `<pin>/maps`,
/// programs verified and (re)pinned to `<pin>/progs`. Maps created here get
/// the sizes of `capacity`. Pins of another layout, or with another FDB
/// size than `capacity` asks, are migrated ([`migrate`]): a new set of maps
/// filled from the old, the programs swapped onto every pinned link, the old
/// set removed. Pins this build cannot use are refused, untouched.
pub fn load(pins: &Pins, capacity: &Capacity) -> Result<Loaded> {
    let plan = migrate::plan(pins, capacity)?;
    for dir in [pins.maps(), pins.progs(), pins.links()] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let staging = migrate::staging(pins);
    if migrate::remove_set(&staging)? > 0 {
        log::info!(
            "removed {}, left by an interrupted migration",
            staging.display()
        );
    }
    let migrates = plan.migrates();
    if migrates {
        std::fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
        match plan.from {
            Some(from) if from != layout::VERSION => log::info!(
                "the pinned maps are layout {from}, this vtep's is {}: migrating",
                layout::VERSION
            ),
            _ => log::info!("the pinned maps need new tables: migrating"),
        }
    }
    let started = Instant::now();
    let mut loader = EbpfLoader::new();
    let level = datapath_log_level();
    loader.override_global("AYA_LOG_LEVEL", &level, false);
    loader.map_max_entries(names::FDB, capacity.fdb);
    // A migration creates every map that is not adopted in the staging set.
    for (shape, action) in &plan.maps {
        let dir = match action {
            migrate::Action::Adopt => pins.maps(),
            _ if migrates => staging.clone(),
            _ => pins.maps(),
        };
        loader.map_pin_path(shape.name, dir.join(shape.name));
    }
    let mut ebpf = loader
        .load(EBPF_OBJECT)
        .context("loading the eBPF object (maps)")?;
    for name in XDP_PROGRAMS {
        load_xdp(&mut ebpf, name)?;
    }
    for name in TC_PROGRAMS {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing from the object"))?
            .try_into()?;
        verify(|| prog.load()).with_context(|| format!("loading program {name} (verifier)"))?;
    }
    let mut movers = Vec::new();
    if migrates {
        movers = fill_staging(pins, &plan, capacity, &staging)?;
        migrate::exchange(&staging, &pins.maps())?;
    } else if !pins.map(layout::LAYOUT).exists() {
        migrate::pin_layout_record(&pins.map(layout::LAYOUT))?;
    }
    for name in XDP_PROGRAMS {
        let prog: &mut Xdp = ebpf.program_mut(name).context(name)?.try_into()?;
        repin(pins, name, |p| prog.pin(p))?;
    }
    for name in TC_PROGRAMS {
        let prog: &mut SchedClassifier = ebpf.program_mut(name).context(name)?.try_into()?;
        repin(pins, name, |p| prog.pin(p))?;
    }
    if migrates {
        let swapped = swap_pinned_links(pins)?;
        for (name, mover, copied) in &mut movers {
            let again = mover.recopy()?;
            log::info!(
                "{name}: {} entries moved to a table of {} ({} more after the programs were swapped)",
                Thousands(*copied + again),
                Thousands(max_entries_of(&plan, name, capacity) as usize),
                Thousands(again)
            );
        }
        // `staging` holds the old set now.
        migrate::remove_set(&staging)?;
        log::info!(
            "migrated to layout {} in {:.1} s: {swapped} link(s) swapped onto the new programs",
            layout::VERSION,
            started.elapsed().as_secs_f64()
        );
    }
    let log = match aya_log::EbpfLogger::init(&mut ebpf) {
        Ok(l) => Some(l),
        Err(e) => {
            log::warn!("datapath log records unavailable: {e}");
            None
        }
    };
    let engine_maps = match (ebpf.take_map(names::XSKS), ebpf.take_map(names::XSK_SLOTS)) {
        (Some(x), Some(s)) => Some(EngineMaps {
            xsks: x.try_into()?,
            slots: s.try_into()?,
        }),
        _ => None,
    };
    Ok(Loaded {
        adopted: !plan.is_fresh(),
        log,
        engine_maps,
    })
}

const XDP_PROGRAMS: [&str; 4] = [
    programs::UPLINK_XDP,
    programs::ACCESS_XDP,
    programs::XSK_UPLINK,
    programs::XSK_ACCESS,
];
const TC_PROGRAMS: [&str; 2] = [programs::UPLINK_TC, programs::ACCESS_TC];

fn max_entries_of(plan: &migrate::Plan, name: &str, capacity: &Capacity) -> u32 {
    plan.maps
        .iter()
        .find(|(s, _)| s.name == name)
        .map_or(0, |(s, _)| migrate::max_entries(s, capacity))
}

/// A map being moved: its name, its mover, the entries of the first copy.
type Moving = (&'static str, Box<dyn migrate::Mover>, usize);

/// Completes the new set in `staging` (where the load created the maps not
/// adopted): the adopted maps pinned there too, the moved ones filled from
/// the old, the layout record. Returns the movers, for the second copy.
fn fill_staging(
    pins: &Pins,
    plan: &migrate::Plan,
    capacity: &Capacity,
    staging: &Path,
) -> Result<Vec<Moving>> {
    let mut movers = Vec::new();
    for (shape, action) in &plan.maps {
        let (old, new) = (pins.map(shape.name), staging.join(shape.name));
        match *action {
            migrate::Action::Adopt => {
                aya::maps::MapData::from_pin(&old)?
                    .pin(&new)
                    .with_context(|| format!("pinning {}", new.display()))?;
            }
            migrate::Action::Create => log::info!("{}: new in this layout, created", shape.name),
            migrate::Action::Reset { pinned } => log::warn!(
                "{}: pinned by an older vtep with {pinned} entries, this one needs {}: \
                 its counters start again from zero",
                shape.name,
                migrate::max_entries(shape, capacity)
            ),
            migrate::Action::Move { pinned, entries } => {
                let from = plan.from.unwrap_or(layout::VERSION);
                let make = migrate::mover(shape.name, from)
                    .with_context(|| format!("{}: no conversion from layout {from}", shape.name))?;
                let mut mover = make(
                    aya::maps::MapData::from_pin(&old)?,
                    aya::maps::MapData::from_pin(&new)?,
                )?;
                log::info!(
                    "{}: copying {} entries from a table of {} (layout {from}) to one of {}",
                    shape.name,
                    Thousands(entries),
                    Thousands(pinned.max_entries as usize),
                    Thousands(migrate::max_entries(shape, capacity) as usize)
                );
                let copied = mover.copy()?;
                movers.push((shape.name, mover, copied));
            }
        }
    }
    migrate::pin_layout_record(&staging.join(layout::LAYOUT))?;
    Ok(movers)
}

/// Puts the program of the same name, as pinned now, on every pinned link:
/// after a migration, the programs on the links still use the old maps.
fn swap_pinned_links(pins: &Pins) -> Result<usize> {
    let dir = pins.links();
    let mut swapped = 0;
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    // TC before XDP, as `attach` does.
    paths.sort_by_key(|p| {
        p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("xdp-"))
    });
    for path in paths {
        let Some(link) = pinned_link(&path)? else {
            continue;
        };
        let prog_id = link
            .info()
            .with_context(|| format!("reading {}", path.display()))?
            .program_id();
        let name = aya::programs::loaded_programs()
            .filter_map(|p| p.ok())
            .find(|p| p.id() == prog_id)
            .and_then(|p| p.name_as_str().map(str::to_owned))
            .with_context(|| format!("{}: its program is gone", path.display()))?;
        let is_xdp = XDP_PROGRAMS.contains(&name.as_str());
        if !is_xdp && !TC_PROGRAMS.contains(&name.as_str()) {
            log::warn!(
                "{}: runs {name}, not a vtep program: left alone",
                path.display()
            );
            continue;
        }
        if is_xdp {
            let mut prog = Xdp::from_pin(
                pins.prog(&name),
                aya_obj::programs::XdpAttachType::Interface,
            )?;
            let id = prog.attach_to_link(XdpLink::try_from(link)?)?;
            drop(prog.take_link(id)?);
        } else {
            let mut prog = SchedClassifier::from_pin(pins.prog(&name))?;
            let id = prog.attach_to_link(SchedClassifierLink::try_from(link)?)?;
            drop(prog.take_link(id)?);
        }
        swapped += 1;
    }
    Ok(swapped)
}

/// A count with thousands separators (`1,048,576`).
struct Thousands(usize);

impl std::fmt::Display for Thousands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.0.to_string();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                f.write_str(",")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Loads (verifies) the XDP program `name` of `ebpf`.
pub fn load_xdp<'a>(ebpf: &'a mut aya::Ebpf, name: &str) -> Result<&'a mut Xdp> {
    let prog: &mut Xdp = ebpf
        .program_mut(name)
        .with_context(|| format!("program {name} missing from the object"))?
        .try_into()?;
    verify(|| prog.load()).with_context(|| format!("loading program {name} (verifier)"))?;
    Ok(prog)
}

/// Runs `load` (a program's `load()`, which runs the verifier) until it does
/// not fail with `EAGAIN`, at most 5 times, as libbpf does: the verifier
/// gives up with `EAGAIN` when a signal comes while it works, which a long
/// verification on a busy machine meets now and then.
pub fn verify(
    mut load: impl FnMut() -> Result<(), aya::programs::ProgramError>,
) -> Result<(), aya::programs::ProgramError> {
    let mut attempts = 1;
    loop {
        match load() {
            Err(aya::programs::ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempts < 5 =>
            {
                attempts += 1;
            }
            r => return r,
        }
    }
}

fn repin(
    pins: &Pins,
    name: &str,
    pin: impl FnOnce(&Path) -> Result<(), aya::pin::PinError>,
) -> Result<()> {
    let path = pins.prog(name);
    remove_pin(&path)?;
    pin(&path).with_context(|| format!("pinning {}", path.display()))
}

fn remove_pin(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// The pinned link at `path`, if there is one.
fn pinned_link(path: &Path) -> Result<Option<FdLink>> {
    match PinnedLink::from_pin(path) {
        Ok(l) => Ok(Some(FdLink::from(l))),
        Err(LinkError::SyscallError(SyscallError { io_error, .. }))
            if io_error.kind() == io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("opening {}", path.display())),
    }
}

/// Attaches the programs of `role` to `ifname`: TC first, so that the XDP
/// program never passes a frame its TC companion is not there to take. An
/// existing attachment (a previous `vtep run`) gets the new program
/// atomically.
pub fn attach(pins: &Pins, ifname: &str, ifindex: u32, role: Role) -> Result<()> {
    attach_engine(pins, ifname, ifindex, role, EngineKind::Xdp)
}

/// [`attach`], with the XDP program of `engine`: switching engines swaps
/// the program of the pinned XDP link atomically.
pub fn attach_engine(
    pins: &Pins,
    ifname: &str,
    ifindex: u32,
    role: Role,
    engine: EngineKind,
) -> Result<()> {
    let (xdp, tc) = role.programs(engine);
    attach_tc(pins, tc, ifname, ifindex)
        .with_context(|| format!("{ifname}: attaching {tc} (TC ingress)"))?;
    attach_xdp(pins, xdp, ifindex).with_context(|| format!("{ifname}: attaching {xdp} (XDP)"))?;
    Ok(())
}

fn attach_tc(pins: &Pins, name: &str, ifname: &str, ifindex: u32) -> Result<()> {
    let mut prog = SchedClassifier::from_pin(pins.prog(name))?;
    let path = pins.link("tc", ifindex);
    if let Some(old) = pinned_link(&path)? {
        let link = SchedClassifierLink::try_from(old)?;
        let id = prog.attach_to_link(link)?;
        drop(prog.take_link(id)?);
        return Ok(());
    }
    let id = prog.attach_with_options(
        ifname,
        TcAttachType::Ingress,
        TcAttachOptions::TcxOrder(LinkOrder::default()),
    )?;
    let link: FdLink = prog.take_link(id)?.try_into()?;
    link.pin(&path)
        .with_context(|| format!("pinning {}", path.display()))?;
    Ok(())
}

fn attach_xdp(pins: &Pins, name: &str, ifindex: u32) -> Result<()> {
    let mut prog = Xdp::from_pin(pins.prog(name), aya_obj::programs::XdpAttachType::Interface)?;
    let path = pins.link("xdp", ifindex);
    if let Some(old) = pinned_link(&path)? {
        let link = XdpLink::try_from(old)?;
        let id = prog.attach_to_link(link)?;
        drop(prog.take_link(id)?);
        return Ok(());
    }
    let id = prog.attach_to_if_index(ifindex, XdpMode::default())?;
    let link: FdLink = prog.take_link(id)?.try_into()?;
    link.pin(&path)
        .with_context(|| format!("pinning {}", path.display()))?;
    Ok(())
}

/// Detaches everything vtep attached to `ifindex` (XDP first, then TC).
pub fn detach(pins: &Pins, ifindex: u32) -> Result<()> {
    remove_pin(&pins.link("xdp", ifindex))?;
    remove_pin(&pins.link("tc", ifindex))
}

/// Takes the gateway down: detaches every link, removes every pin.
pub fn down(pins: &Pins) -> Result<usize> {
    let mut removed = 0;
    let staging = migrate::staging(pins);
    for dir in [pins.links(), pins.progs(), pins.maps(), staging] {
        let mut entries: Vec<_> = match std::fs::read_dir(&dir) {
            Ok(d) => d.filter_map(|e| e.ok()).map(|e| e.path()).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        // XDP links before TC links, like `detach`.
        entries.sort_by_key(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("xdp-"))
        });
        for p in entries {
            remove_pin(&p)?;
            removed += 1;
        }
        let _ = std::fs::remove_dir(&dir);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use vtep_common::layout::Entries;

    use super::*;

    /// The layout table says what the eBPF object defines (the FDB's size
    /// is the config's, the object has the default).
    #[test]
    fn the_current_layout_is_the_objects() {
        let object = aya_obj::Object::parse(object()).expect("the object");
        for shape in layout::CURRENT
            .maps
            .iter()
            .filter(|m| m.name != layout::LAYOUT)
        {
            let map = object
                .maps
                .get(shape.name)
                .unwrap_or_else(|| panic!("{} not in the object", shape.name));
            let pinned = migrate::Pinned {
                map_type: map.map_type(),
                key_size: map.key_size(),
                value_size: map.value_size(),
                max_entries: map.max_entries(),
            };
            assert_eq!(pinned.mismatch(shape), None, "{}", shape.name);
            if shape.entries == Entries::FdbCapacity {
                assert_eq!(map.max_entries(), vtep_common::FDB_CAPACITY);
            }
        }
    }
}
