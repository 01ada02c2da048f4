//! Small system facts and actions: interface names and indices, the
//! monotonic clock the datapath stamps entries with, bpffs, and making a
//! veth's far end able to take XDP frames.

use std::{
    ffi::{CStr, CString},
    fs::File,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
};

use anyhow::{Context as _, bail};

use crate::netlink::{Rtnl, veth_peer};

/// The ifindex of `name` in this namespace.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// The name of interface `ifindex` in this namespace.
pub fn ifname(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into buf.
    Some(
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// Whether IPv4 forwarding is on for `ifname` (in this namespace): the
/// kernel answers `bpf_fib_lookup` only then.
pub fn ipv4_forwarding(ifname: &str) -> bool {
    std::fs::read_to_string(format!("/proc/sys/net/ipv4/conf/{ifname}/forwarding"))
        .is_ok_and(|s| s.trim() == "1")
}

/// Nanoseconds of CLOCK_MONOTONIC: the clock of `bpf_ktime_get_coarse_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Number of possible CPUs: the length of per-CPU map values.
pub fn nr_cpus() -> Result<usize, crate::gateway::GatewayError> {
    aya::util::nr_cpus()
        .map_err(|(_, e)| crate::gateway::GatewayError::Invalid(format!("possible CPUs: {e}")))
}

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// True when `path` is on a bpffs.
pub fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is valid; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0) && st.f_type as i64 == BPF_FS_MAGIC
}

/// Makes sure `pin_path` is on a bpffs: creates it, and mounts a bpffs on
/// it (or on /sys/fs/bpf for the default path) when it is not.
pub fn ensure_bpffs(pin_path: &Path) -> anyhow::Result<()> {
    let sys_bpf = Path::new("/sys/fs/bpf");
    if pin_path.starts_with(sys_bpf) && !is_bpffs(sys_bpf) {
        mount_bpffs(sys_bpf)?;
    }
    std::fs::create_dir_all(pin_path)
        .with_context(|| format!("creating pin path {}", pin_path.display()))?;
    if !is_bpffs(pin_path) {
        mount_bpffs(pin_path)?;
    }
    Ok(())
}

fn mount_bpffs(at: &Path) -> anyhow::Result<()> {
    let target = CString::new(at.as_os_str().as_encoded_bytes())?;
    let bpf = c"bpf";
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            bpf.as_ptr(),
            target.as_ptr(),
            bpf.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "mounting bpffs on {}: {} (vtep needs root, or CAP_SYS_ADMIN, for this)",
            at.display(),
            io::Error::last_os_error()
        );
    }
    log::info!("mounted bpffs on {}", at.display());
    Ok(())
}

/// What [`prepare_veth_peer`] found at the far end of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FarEnd {
    /// Not a veth (a physical port, say): nothing to prepare.
    NotVeth,
    /// A veth whose peer now has GRO on and TX checksum offload off.
    VethPrepared,
    /// A veth whose peer is down: prepared when it comes up (GRO switched
    /// on while a veth is down does not take effect when it comes up).
    VethDown,
}

/// Prepares the far end of a veth for an XDP datapath at this end, in the
/// peer's namespace (which may be another one: a container's):
/// - GRO on: a veth drops the frames XDP redirects into it unless its peer
///   has GRO or an XDP program;
/// - TX checksum offload off: a frame the peer sends with a partial checksum
///   (`CHECKSUM_PARTIAL`) reaches XDP as bytes only, and would leave
///   encapsulated, or be delivered, with its checksum never filled in. With
///   the offload off the peer's stack computes it, as a NIC would.
///
/// GRO is switched off and on again when it is on already: only a change
/// while the peer is up sets up the receive path XDP frames need.
pub fn prepare_veth_peer(ifindex: u32) -> anyhow::Result<FarEnd> {
    let mut rtnl = Rtnl::new().context("opening rtnetlink")?;
    let Some(peer) = veth_peer(&mut rtnl, ifindex).context("reading the link")? else {
        return Ok(FarEnd::NotVeth);
    };
    // A veth has carrier when its peer is up.
    if !rtnl.link_carrier(ifindex).context("reading the link")? {
        return Ok(FarEnd::VethDown);
    }
    let ns: Option<File> = match peer.netnsid {
        None => None,
        Some(id) => Some(find_netns(&mut rtnl, id)?.with_context(|| {
            format!(
                "the namespace of the veth peer (netnsid {id}) is not in /run/netns or any process"
            )
        })?),
    };
    let peer_ifindex = peer.ifindex;
    // setns changes the calling thread's namespace: do it in a thread of
    // its own that ends right after.
    std::thread::spawn(move || -> anyhow::Result<()> {
        if let Some(ns) = &ns {
            // SAFETY: a valid namespace fd.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                bail!(
                    "entering the peer's namespace: {}",
                    io::Error::last_os_error()
                );
            }
        }
        if feature(peer_ifindex, Feature::Gro)? {
            set_feature(peer_ifindex, Feature::Gro, false)?;
        }
        set_feature(peer_ifindex, Feature::Gro, true)?;
        set_feature(peer_ifindex, Feature::TxChecksum, false)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the netns thread panicked"))??;
    Ok(FarEnd::VethPrepared)
}

/// The namespace whose netns id (as this namespace sees it) is `id`.
fn find_netns(rtnl: &mut Rtnl, id: i32) -> anyhow::Result<Option<File>> {
    let mut candidates: Vec<std::path::PathBuf> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/run/netns") {
        candidates.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    if let Ok(dir) = std::fs::read_dir("/proc") {
        candidates.extend(
            dir.filter_map(|e| e.ok())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                })
                .map(|e| e.path().join("ns/net")),
        );
    }
    for path in candidates {
        let Ok(f) = File::open(&path) else { continue };
        if rtnl.nsid_of(&f).ok().flatten() == Some(id) {
            return Ok(Some(f));
        }
    }
    Ok(None)
}

const SIOCETHTOOL: libc::c_ulong = 0x8946;

/// Device features vtep sets through the (legacy) ethtool ioctl.
#[derive(Debug, Clone, Copy)]
enum Feature {
    Gro,
    TxChecksum,
}

impl Feature {
    /// (get, set) ethtool commands.
    const fn cmds(self) -> (u32, u32) {
        match self {
            Feature::Gro => (0x2b, 0x2c),        // ETHTOOL_GGRO, ETHTOOL_SGRO
            Feature::TxChecksum => (0x16, 0x17), // ETHTOOL_GTXCSUM, ETHTOOL_STXCSUM
        }
    }

    const fn name(self) -> &'static str {
        match self {
            Feature::Gro => "GRO",
            Feature::TxChecksum => "TX checksum offload",
        }
    }
}

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfreqData {
    name: [libc::c_char; libc::IF_NAMESIZE],
    data: *mut EthtoolValue,
    _pad: [u8; 16],
}

/// Runs an ethtool get or set command with an `ethtool_value` on interface
/// `ifindex` (in the calling thread's namespace); returns the value.
fn ethtool_value(ifindex: u32, cmd: u32, data: u32) -> anyhow::Result<u32> {
    let name = ifname(ifindex)
        .with_context(|| format!("no interface {ifindex} in the peer's namespace"))?;
    // SAFETY: plain socket call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        bail!("socket: {}", io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut v = EthtoolValue { cmd, data };
    let mut ifr = IfreqData {
        name: [0; libc::IF_NAMESIZE],
        data: &mut v,
        _pad: [0; 16],
    };
    for (d, s) in ifr.name.iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: ifr is a valid ifreq with a pointer to a live ethtool_value.
    if unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut ifr) } != 0 {
        return Err(io::Error::last_os_error())
            .with_context(|| format!("{name}: ethtool {cmd:#x}"));
    }
    Ok(v.data)
}

/// Whether `feature` is on for interface `ifindex`.
fn feature(ifindex: u32, feature: Feature) -> anyhow::Result<bool> {
    Ok(ethtool_value(ifindex, feature.cmds().0, 0)
        .with_context(|| format!("reading {}", feature.name()))?
        != 0)
}

/// Switches `feature` of interface `ifindex` (in the calling thread's
/// namespace) on or off.
fn set_feature(ifindex: u32, feature: Feature, on: bool) -> anyhow::Result<()> {
    let what = feature.name();
    if self::feature(ifindex, feature)? != on {
        ethtool_value(ifindex, feature.cmds().1, u32::from(on))
            .with_context(|| format!("setting {what}"))?;
        let name = ifname(ifindex).unwrap_or_default();
        log::debug!("veth peer {name}: {what} {}", if on { "on" } else { "off" });
    }
    Ok(())
}
/// An exclusive lock on a pin path: one `vtep run` per gateway. Held until
/// dropped (the kernel releases it when the process exits, however it
/// exits).
pub struct RunLock {
    _file: File,
}

/// Takes the run lock of `pin_path`, or says which process holds it.
pub fn lock_pin_path(pin_path: &Path) -> anyhow::Result<RunLock> {
    use std::io::{Read as _, Seek as _, Write as _};
    let dir = Path::new("/run/vtep");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name: String = pin_path
        .to_string_lossy()
        .chars()
        .map(|c| if c == '/' { '%' } else { c })
        .collect();
    let path = dir.join(format!("{name}.lock"));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: a valid fd we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        bail!(
            "another `vtep run` (pid {}) manages the gateway at {}; stop it first",
            holder.trim(),
            pin_path.display()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(RunLock { _file: file })
}

/// Tells a service manager that the gateway is up (`READY=1` on
/// `$NOTIFY_SOCKET`, as sd_notify does); nothing without one.
pub fn notify_ready() {
    use std::os::{
        linux::net::SocketAddrExt as _,
        unix::net::{SocketAddr, UnixDatagram},
    };
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(abs) => SocketAddr::from_abstract_name(abs),
        None => SocketAddr::from_pathname(Path::new(&path)),
    };
    let sent = addr.and_then(|a| UnixDatagram::unbound()?.send_to_addr(b"READY=1", &a));
    if let Err(e) = sent {
        log::warn!("notifying the service manager: {e}");
    }
}

/// Every (key, value) of the BPF hash map at `fd`, read with
/// `BPF_MAP_LOOKUP_BATCH` (Linux 5.6): one syscall per `CHUNK` entries.
/// `K` and `V` must be the map's key and value types.
pub fn lookup_batch<K: aya::Pod, V: aya::Pod>(fd: std::os::fd::RawFd) -> io::Result<Vec<(K, V)>> {
    /// Entries per call; also bounds a hash bucket's size (the kernel
    /// answers ENOSPC when one bucket does not fit).
    const CHUNK: usize = 4096;
    const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
    /// The `batch` member of `union bpf_attr`.
    #[repr(C)]
    #[derive(Default)]
    struct BatchAttr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    let mut out = Vec::new();
    // SAFETY: K and V are Pod: all-zero is a valid value of each.
    let mut keys: Vec<K> = vec![unsafe { std::mem::zeroed() }; CHUNK];
    // SAFETY: as above.
    let mut values: Vec<V> = vec![unsafe { std::mem::zeroed() }; CHUNK];
    // The position token of a hash map is a bucket index (u32); room for more.
    let mut token = [0u64; 2];
    let mut next = [0u64; 2];
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { token.as_ptr() as u64 },
            out_batch: next.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: attr points to valid buffers of CHUNK keys and values and
        // to position tokens, all alive for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>(),
            )
        };
        let done = if rc == 0 {
            false
        } else {
            match io::Error::last_os_error() {
                e if e.raw_os_error() == Some(libc::ENOENT) => true,
                e => return Err(e),
            }
        };
        let n = (attr.count as usize).min(CHUNK);
        out.extend(keys[..n].iter().copied().zip(values[..n].iter().copied()));
        if done {
            return Ok(out);
        }
        token = next;
        first = false;
    }
}
