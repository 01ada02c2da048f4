//! Loading the datapath, attaching it to interfaces, and taking it down.
//!
//! The object is loaded with every map pinned by name under `<pin>/maps`
//! (an existing pin is reused: that is how a restart or an upgrade keeps the
//! FDB), its programs are pinned under `<pin>/progs`, and each attachment is
//! a BPF link pinned under `<pin>/links` (`xdp-IFINDEX`, `tc-IFINDEX`). A new
//! `vtep run` replaces the program of an existing link atomically
//! (`bpf_link_update`), so forwarding never stops across a restart.

use std::{io, path::Path};

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
use vtep_common::{names, programs, reason::REASON_COUNT};

use crate::{
    datapath::pins::Pins,
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

/// Maps that hold only counters, with the entries this build needs. aya
/// adopts a pinned map whatever its size, so one pinned by an older vtep
/// with fewer entries (a reason added since) would leave the new entries
/// uncounted and unreadable.
const COUNTER_MAPS: [(&str, u32); 1] = [(names::REASONS, REASON_COUNT)];

/// Unpins every [`COUNTER_MAPS`] map too small for this build, so that the
/// load creates it anew: those counts start again from zero, and the log
/// says so. Tables with state (the FDB, VNIs, ports, flood lists) are never
/// dropped here.
fn retire_outgrown_counters(pins: &Pins) -> Result<()> {
    for (name, needed) in COUNTER_MAPS {
        let path = pins.map(name);
        if !path.exists() {
            continue;
        }
        let info = aya::maps::MapInfo::from_pin(&path)
            .with_context(|| format!("reading the pinned map {}", path.display()))?;
        if info.max_entries() < needed {
            log::warn!(
                "{name}: pinned by an older vtep with {} entries, this one needs {needed}: \
                 its counters start again from zero",
                info.max_entries()
            );
            std::fs::remove_file(&path).with_context(|| format!("unpinning {}", path.display()))?;
        }
    }
    Ok(())
}

/// Loads the datapath: maps reused from (or pinned to) `<pin>/maps`,
/// programs verified and (re)pinned to `<pin>/progs`. Maps created here get
/// the sizes of `capacity`.
pub fn load(pins: &Pins, capacity: &Capacity) -> Result<Loaded> {
    for dir in [pins.maps(), pins.progs(), pins.links()] {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let adopted = pins.map(names::FDB).exists();
    if adopted {
        retire_outgrown_counters(pins)?;
    }
    let mut loader = EbpfLoader::new();
    let level = datapath_log_level();
    loader.override_global("AYA_LOG_LEVEL", &level, false);
    loader.map_max_entries(names::FDB, capacity.fdb);
    if adopted {
        let pinned = aya::maps::MapInfo::from_pin(pins.map(names::FDB))
            .context("reading the pinned FDB")?
            .max_entries();
        if pinned != capacity.fdb {
            log::warn!(
                "FDB: pinned with room for {pinned} entries, the config asks for {}: \
                 the pinned FDB is kept as it is",
                capacity.fdb
            );
        }
    }
    for name in names::PINNED {
        loader.map_pin_path(name, pins.map(name));
    }
    let mut ebpf = loader
        .load(EBPF_OBJECT)
        .context("loading the eBPF object (maps)")?;
    for name in [
        programs::UPLINK_XDP,
        programs::ACCESS_XDP,
        programs::XSK_UPLINK,
        programs::XSK_ACCESS,
    ] {
        let prog = load_xdp(&mut ebpf, name)?;
        repin(pins, name, |p| prog.pin(p))?;
    }
    for name in [programs::UPLINK_TC, programs::ACCESS_TC] {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .with_context(|| format!("program {name} missing from the object"))?
            .try_into()?;
        verify(|| prog.load()).with_context(|| format!("loading program {name} (verifier)"))?;
        repin(pins, name, |p| prog.pin(p))?;
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
        adopted,
        log,
        engine_maps,
    })
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
    for dir in [pins.links(), pins.progs(), pins.maps()] {
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
