//! Network interfaces: names and indices, the forwarding setting, and
//! making a veth's far end (in its own namespace) able to take XDP frames.

use std::{
    ffi::{CStr, CString},
    fs::File,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use anyhow::{Context as _, bail};

use crate::system::netlink::{Rtnl, veth_peer};

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
