//! Map names, capacities, keys and values.
//!
//! Every type here is `#[repr(C)]`, `Copy`, has its padding written out as
//! `_pad` fields (so the bytes the kernel hashes are always defined) and says
//! its byte order on each multi-byte field. Booleans, enums and options are
//! encoded as small integers with named constants.

/// Names of the maps, as they appear in the object file and under
/// `<pin-path>/maps/`. BPF object names are at most 15 bytes.
pub mod names {
    pub const FDB: &str = "FDB";
    pub const VNIS: &str = "VNIS";
    pub const VNI_LEARNED: &str = "VNI_LEARNED";
    pub const VNI_STATS: &str = "VNI_STATS";
    pub const PORTS: &str = "PORTS";
    pub const VNI_PORTS: &str = "VNI_PORTS";
    pub const FLOOD: &str = "FLOOD";
    pub const PORT_TX: &str = "PORT_TX";
    pub const UNDERLAY: &str = "UNDERLAY";
    pub const NEIGH: &str = "NEIGH";
    pub const REASONS: &str = "REASONS";
    /// AF_XDP engine: sockets, and the slot of each interface.
    pub const XSKS: &str = "XSKS";
    pub const XSK_SLOTS: &str = "XSK_SLOTS";
    /// A counter bumped by every change from the CLI (index 0), and the
    /// change a userspace engine with a copy of the tables (AF_XDP) has
    /// applied (index 1; 0 when none runs): the CLI returns once the
    /// engine has its change.
    pub const GENERATION: &str = "GENERATION";
    /// FDB events for `vtep monitor` (a ring buffer the daemon reads), and
    /// the per-CPU count of those the ring had no room for.
    pub const FDB_EVENTS: &str = "FDB_EVENTS";
    pub const FDB_EV_LOST: &str = "FDB_EV_LOST";
    /// The multicast group of each VNI that has one (`group`), keyed by VNI.
    pub const VNI_GROUP: &str = "VNI_GROUP";

    /// Every map that holds gateway state: pinned, and adopted on restart.
    pub const PINNED: [&str; 15] = [
        GENERATION,
        FDB,
        VNIS,
        VNI_LEARNED,
        VNI_STATS,
        PORTS,
        VNI_PORTS,
        FLOOD,
        PORT_TX,
        UNDERLAY,
        NEIGH,
        REASONS,
        FDB_EVENTS,
        FDB_EV_LOST,
        VNI_GROUP,
    ];
}

/// Names of the programs, as in the object file and under `<pin-path>/progs/`.
pub mod programs {
    /// XDP on the uplink: decap, learn, redirect to access ports.
    pub const UPLINK_XDP: &str = "vtep_uplink";
    /// TC ingress on the uplink: flood decapsulated BUM frames to local ports.
    pub const UPLINK_TC: &str = "vtep_uplink_tc";
    /// XDP on access ports: learn, switch locally, encap to remote VTEPs.
    pub const ACCESS_XDP: &str = "vtep_access";
    /// TC ingress on access ports: flood (head-end replication), neighbour
    /// resolution through the kernel, skb delivery.
    pub const ACCESS_TC: &str = "vtep_access_tc";
    /// AF_XDP engine: XDP on the uplink, steering VXLAN to the engine.
    pub const XSK_UPLINK: &str = "vtep_xsk_uplink";
    /// AF_XDP engine: XDP on access ports, steering frames to the engine.
    pub const XSK_ACCESS: &str = "vtep_xsk_access";
}

/// Default capacity of the FDB (local, remote and learned MACs of every VNI;
/// `[capacity] fdb` in the config sets another). Sized
/// for a host that follows a large EVPN fabric (100,000 MACs measured by
/// `cargo xtask bench --follow`); the map is preallocated, about 100 bytes
/// of kernel memory per slot.
pub const FDB_CAPACITY: u32 = 262_144;
/// Capacity of the VNI table.
pub const VNI_CAPACITY: u32 = 4_096;
/// Capacity of the access port table (and of the redirect devmap).
pub const PORT_CAPACITY: u32 = 1_024;
/// Capacity of the neighbour fallback table.
pub const NEIGH_CAPACITY: u32 = 1_024;
/// Most access ports one VNI floods to.
pub const MAX_VNI_PORTS: usize = 64;
/// Most remote VTEPs in one VNI's flood list.
pub const MAX_FLOOD: usize = 64;
/// Most receive queues per interface the AF_XDP engine binds sockets to.
pub const XSK_MAX_QUEUES: u32 = 16;

/// Largest VNI (24 bits).
pub const VNI_MAX: u32 = 0x00ff_ffff;
/// IANA VXLAN port.
pub const VXLAN_PORT: u16 = 4789;

/// Address families, as in `linux/socket.h`.
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

/// A VTEP address of either family. IPv4 sits in `addr[0..4]` (network
/// order), the rest zero, so equal addresses are equal bytes.
///
/// Aligned to 4 (it sits at 4-aligned offsets everywhere, so no layout
/// changes): LLVM then fills and copies it with word stores instead of a
/// call to the byte-by-byte `memset`/`memcpy` of the BPF target.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VtepAddr {
    /// Network byte order.
    pub addr: [u8; 16],
    /// [`AF_INET`] or [`AF_INET6`]; 0 = none.
    pub family: u8,
    pub _pad: [u8; 3],
}

impl VtepAddr {
    /// No address (`family` 0).
    pub const NONE: VtepAddr = VtepAddr {
        addr: [0; 16],
        family: 0,
        _pad: [0; 3],
    };

    /// An IPv4 VTEP address from its four octets.
    pub const fn v4(octets: [u8; 4]) -> Self {
        // Built as five words, so that LLVM stores five words (no memset
        // call on the BPF target, where memset is a byte loop).
        let words = [
            u32::from_ne_bytes(octets),
            0,
            0,
            0,
            u32::from_ne_bytes([AF_INET, 0, 0, 0]),
        ];
        // SAFETY: VtepAddr is 20 bytes of plain data, aligned to 4, like
        // [u32; 5]; the words put the octets in addr[0..4], AF_INET in
        // `family`, zero elsewhere.
        unsafe { core::mem::transmute::<[u32; 5], VtepAddr>(words) }
    }

    /// An IPv6 VTEP address from its sixteen octets.
    pub const fn v6(octets: [u8; 16]) -> Self {
        VtepAddr {
            addr: octets,
            family: AF_INET6,
            _pad: [0; 3],
        }
    }

    /// The IPv4 octets, when this is an IPv4 address.
    pub const fn as_v4(&self) -> Option<[u8; 4]> {
        if self.family == AF_INET {
            Some([self.addr[0], self.addr[1], self.addr[2], self.addr[3]])
        } else {
            None
        }
    }

    pub const fn is_set(&self) -> bool {
        self.family != 0
    }

    /// Whether this is a multicast group address (224.0.0.0/4, ff00::/8).
    pub const fn is_multicast(&self) -> bool {
        match self.family {
            AF_INET => self.addr[0] & 0xf0 == 0xe0,
            AF_INET6 => self.addr[0] == 0xff,
            _ => false,
        }
    }

    /// The Ethernet destination of a packet to this group: 01:00:5e and
    /// the low 23 bits of an IPv4 group (RFC 1112), 33:33 and the low 32
    /// bits of an IPv6 group (RFC 2464), as the kernel's `ip_eth_mc_map`
    /// and `ipv6_eth_mc_map`. `None` when this is not a group.
    pub const fn group_mac(&self) -> Option<[u8; 6]> {
        if !self.is_multicast() {
            return None;
        }
        let a = &self.addr;
        Some(match self.family {
            AF_INET => [0x01, 0x00, 0x5e, a[1] & 0x7f, a[2], a[3]],
            _ => [0x33, 0x33, a[12], a[13], a[14], a[15]],
        })
    }
}

/// Key of the `FDB` map: a MAC in a VNI.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FdbKey {
    /// Host byte order.
    pub vni: u32,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

impl FdbKey {
    pub const fn new(vni: u32, mac: [u8; 6]) -> Self {
        FdbKey {
            vni,
            mac,
            _pad: [0; 2],
        }
    }
}

/// `FdbEntry::kind`: the MAC is behind a local access port (`ifindex`).
pub const FDB_KIND_LOCAL: u8 = 1;
/// `FdbEntry::kind`: the MAC is behind a remote VTEP (`remote`).
pub const FDB_KIND_REMOTE: u8 = 2;

/// `FdbEntry::flags`: static (added by config or CLI); never aged, never
/// replaced by learning.
pub const FDB_F_STATIC: u8 = 1 << 0;
/// `FdbEntry::flags`: learned by the datapath; aged out by the daemon.
pub const FDB_F_LEARNED: u8 = 1 << 1;
/// `FdbEntry::flags`: mirrored from the kernel FDB; owned by the follower.
pub const FDB_F_FOLLOWED: u8 = 1 << 2;
/// `FdbEntry::flags`: came from the config file.
pub const FDB_F_CONFIG: u8 = 1 << 3;

/// Value of the `FDB` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FdbEntry {
    /// `CLOCK_MONOTONIC` nanoseconds (`bpf_ktime_get_coarse_ns`) when a
    /// learned entry was last refreshed; 0 for static entries.
    pub last_seen_ns: u64,
    /// Remote VTEP, when `kind == FDB_KIND_REMOTE`.
    pub remote: VtepAddr,
    /// Access port, when `kind == FDB_KIND_LOCAL`.
    pub ifindex: u32,
    pub kind: u8,
    pub flags: u8,
    pub _pad: [u8; 6],
}

impl FdbEntry {
    pub const fn local(ifindex: u32, flags: u8, now_ns: u64) -> Self {
        FdbEntry {
            last_seen_ns: now_ns,
            remote: VtepAddr::NONE,
            ifindex,
            kind: FDB_KIND_LOCAL,
            flags,
            _pad: [0; 6],
        }
    }

    pub const fn remote(remote: VtepAddr, flags: u8, now_ns: u64) -> Self {
        FdbEntry {
            last_seen_ns: now_ns,
            remote,
            ifindex: 0,
            kind: FDB_KIND_REMOTE,
            flags,
            _pad: [0; 6],
        }
    }

    pub const fn is_static(&self) -> bool {
        self.flags & (FDB_F_STATIC | FDB_F_FOLLOWED) != 0
    }

    /// Same place (port or remote VTEP), ignoring flags and age.
    pub fn same_place(&self, other: &FdbEntry) -> bool {
        self.kind == other.kind
            && match self.kind {
                FDB_KIND_LOCAL => self.ifindex == other.ifindex,
                _ => self.remote == other.remote,
            }
    }
}

/// `VniInfo::flags`: learn source MACs in this VNI. In a followed VNI
/// (`VNI_F_FOLLOWED`), the kernel's vxlan device learns remote MACs
/// (its `learning`): the uplink lets it see their frames now and then.
pub const VNI_F_LEARNING: u32 = 1 << 0;
/// `VniInfo::flags`: accept VXLAN only from VTEPs in the VNI's flood list.
pub const VNI_F_CHECK_SOURCE: u32 = 1 << 1;
/// `VniInfo::flags`: the VNI mirrors a kernel vxlan device and its bridge
/// (`[follow]`): the kernel learns and floods, vtep forwards what the
/// mirrored FDB knows and passes everything else, untouched, to the kernel
/// (`kernel-fallback`). Its FDB entries and flood list belong to the
/// follower, not to the CLI.
pub const VNI_F_FOLLOWED: u32 = 1 << 2;

/// Value of the `VNIS` map, keyed by VNI (`u32`, host order).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VniInfo {
    pub flags: u32,
    /// Most learned MACs in this VNI; 0 = no limit (`maxaddress`).
    pub max_addresses: u32,
    /// Seconds a learned MAC lives without traffic (`ageing`).
    pub ageing_secs: u32,
    pub _pad: u32,
}

/// Key of the `PORTS` map: an access port, and the VLAN of its frames
/// (0 = untagged; tagged access ports map VLAN → VNI with the same table).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PortKey {
    pub ifindex: u32,
    /// Host byte order; 0 = untagged.
    pub vlan: u16,
    pub _pad: u16,
}

impl PortKey {
    pub const fn untagged(ifindex: u32) -> Self {
        PortKey {
            ifindex,
            vlan: 0,
            _pad: 0,
        }
    }
}

/// `PortInfo::flags`: the port's far end takes XDP frames (veth peer with
/// GRO or an XDP program, or a physical port), so XDP may redirect into it.
/// Without it, frames for the port are delivered through TC (skb path).
pub const PORT_F_XDP_RX: u32 = 1 << 0;

/// Value of the `PORTS` map.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortInfo {
    pub vni: u32,
    pub flags: u32,
}

/// Value of the `VNI_PORTS` map, keyed by VNI: the access ports of a VNI,
/// for flooding. `ifindex[..len]` are valid.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortList {
    pub len: u32,
    pub ifindex: [u32; MAX_VNI_PORTS],
}

impl Default for PortList {
    fn default() -> Self {
        PortList {
            len: 0,
            ifindex: [0; MAX_VNI_PORTS],
        }
    }
}

impl PortList {
    pub fn members(&self) -> &[u32] {
        &self.ifindex[..(self.len as usize).min(MAX_VNI_PORTS)]
    }

    pub fn contains(&self, ifindex: u32) -> bool {
        self.members().contains(&ifindex)
    }

    /// Appends `ifindex`; refused when the list has [`MAX_VNI_PORTS`]
    /// ports.
    pub fn push(&mut self, ifindex: u32) -> Result<(), ListFull> {
        let n = self.members().len();
        *self.ifindex.get_mut(n).ok_or(ListFull)? = ifindex;
        self.len = n as u32 + 1;
        Ok(())
    }

    /// Removes `ifindex`, keeping the order of the others; false when it
    /// is not in the list.
    pub fn remove(&mut self, ifindex: u32) -> bool {
        let n = self.members().len();
        let kept = remove_from(&mut self.ifindex, n, &ifindex);
        self.len = kept as u32;
        kept < n
    }
}

/// Value of the `FLOOD` map, keyed by VNI: the flood list (remote VTEPs
/// that receive a copy of every BUM frame; the `00:00:00:00:00:00` entries
/// of `bridge fdb`). `vteps[..len]` are valid.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FloodList {
    pub len: u32,
    pub _pad: u32,
    pub vteps: [VtepAddr; MAX_FLOOD],
}

impl Default for FloodList {
    fn default() -> Self {
        FloodList {
            len: 0,
            _pad: 0,
            vteps: [VtepAddr::default(); MAX_FLOOD],
        }
    }
}

impl FloodList {
    pub fn members(&self) -> &[VtepAddr] {
        &self.vteps[..(self.len as usize).min(MAX_FLOOD)]
    }

    pub fn contains(&self, vtep: &VtepAddr) -> bool {
        self.members().contains(vtep)
    }

    /// Appends `vtep`; refused when the list has [`MAX_FLOOD`] members.
    pub fn push(&mut self, vtep: VtepAddr) -> Result<(), ListFull> {
        let n = self.members().len();
        *self.vteps.get_mut(n).ok_or(ListFull)? = vtep;
        self.len = n as u32 + 1;
        Ok(())
    }

    /// Removes `vtep`, keeping the order of the others; false when it is
    /// not a member.
    pub fn remove(&mut self, vtep: &VtepAddr) -> bool {
        let n = self.members().len();
        let kept = remove_from(&mut self.vteps, n, vtep);
        self.len = kept as u32;
        kept < n
    }
}

/// A bounded list ([`FloodList`], [`PortList`]) is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListFull;

/// Removes every `x` from `items[..n]`, keeping the order of the others,
/// and clears the slots after them (as a list built afresh has them);
/// the new length.
fn remove_from<T: Copy + Default + PartialEq>(items: &mut [T], n: usize, x: &T) -> usize {
    let mut kept = 0;
    for i in 0..n {
        if items[i] != *x {
            items[kept] = items[i];
            kept += 1;
        }
    }
    for slot in &mut items[kept..] {
        *slot = T::default();
    }
    kept
}

/// `Underlay::flags`: compute the outer UDP checksum over IPv4 (else 0,
/// RFC 7348). Over IPv6 the checksum is always sent, unless
/// [`UNDERLAY_F_UDP6_ZERO_CSUM_TX`].
pub const UNDERLAY_F_UDP_CSUM: u8 = 1 << 0;
/// `Underlay::flags`: resolve next hops with `bpf_fib_lookup` (forwarding
/// is enabled on the uplink, which the kernel requires for it).
pub const UNDERLAY_F_FIB: u8 = 1 << 1;
/// `Underlay::flags`: the kernel has vxlan devices of its own on this
/// address and port (`[follow]`): VXLAN for a VNI vtep does not carry is
/// theirs, and passes to the kernel (`kernel-fallback`) instead of being
/// dropped (`unknown-vni`).
pub const UNDERLAY_F_KERNEL_VXLAN: u8 = 1 << 2;
/// `Underlay::flags`: send a zero UDP checksum over IPv6 (the kernel's
/// `udp6zerocsumtx`; RFC 6935).
pub const UNDERLAY_F_UDP6_ZERO_CSUM_TX: u8 = 1 << 3;
/// `Underlay::flags`: accept VXLAN over IPv6 with a zero UDP checksum (the
/// kernel's `udp6zerocsumrx`); without it such packets are dropped
/// (`udp6-zero-csum`), as the kernel's UDP layer drops them.
pub const UNDERLAY_F_UDP6_ZERO_CSUM_RX: u8 = 1 << 4;
/// `Underlay::flags`: the outer TOS / traffic class copies the inner
/// packet's DS field (`tos = "inherit"`); else it is `Underlay::tos`.
/// The ECN bits follow RFC 6040 either way ([`crate::ecn`]).
pub const UNDERLAY_F_TOS_INHERIT: u8 = 1 << 5;
/// `Underlay::flags`: the outer IPv6 flow label is `Underlay::flowlabel`
/// (`flowlabel = N`).
pub const UNDERLAY_F_LABEL_FIXED: u8 = 1 << 6;
/// `Underlay::flags`: the outer IPv6 flow label copies the inner IPv6
/// packet's (0 for other inner frames; `flowlabel = "inherit"`). With
/// neither label flag, the label is the inner flow's hash (RFC 6438).
pub const UNDERLAY_F_LABEL_INHERIT: u8 = 1 << 7;

/// Outer TTL / hop limit when `Underlay::ttl` is 0 ("auto"), to a unicast
/// VTEP: the kernel's default hop limit.
pub const TTL_AUTO_UNICAST: u8 = 64;
/// Outer TTL / hop limit when `Underlay::ttl` is 0, to a multicast group:
/// the kernel vxlan driver's rule (`if (!ttl && multicast) ttl = 1`).
pub const TTL_AUTO_GROUP: u8 = 1;

/// Value of the one-entry `UNDERLAY` array: this VTEP on the underlay.
/// A dual-stack VTEP has both addresses; a remote VTEP is reached from
/// the local address of its own family.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Underlay {
    /// This VTEP's IPv4 address; `family == 0` means none.
    pub local: VtepAddr,
    /// This VTEP's IPv6 address; `family == 0` means none.
    pub local6: VtepAddr,
    /// The uplink's ifindex.
    pub uplink_ifindex: u32,
    /// Outer IPv6 flow label with [`UNDERLAY_F_LABEL_FIXED`]; host order,
    /// 20 bits.
    pub flowlabel: u32,
    /// VXLAN UDP port, host order.
    pub port: u16,
    /// Outer UDP source port range, host order, inclusive.
    pub srcport_min: u16,
    pub srcport_max: u16,
    /// Outer TTL / hop limit; 0 = auto ([`TTL_AUTO_UNICAST`],
    /// [`TTL_AUTO_GROUP`]).
    pub ttl: u8,
    /// Outer DS field (TOS / traffic class) unless
    /// [`UNDERLAY_F_TOS_INHERIT`]; its ECN bits are ignored (RFC 6040).
    pub tos: u8,
    pub flags: u8,
    pub _pad: u8,
    /// The uplink's MAC (source MAC of the neighbour fallback and of
    /// group copies).
    pub uplink_mac: [u8; 6],
    /// The uplink's MTU: the largest outer IP packet the neighbour fallback
    /// sends (the FIB checks it itself).
    pub mtu: u16,
    pub _pad2: [u8; 2],
}

impl Underlay {
    /// This VTEP's address of the family of `remote`, if it has one: the
    /// outer source toward `remote`.
    #[inline(always)]
    pub const fn local_for(&self, remote: &VtepAddr) -> Option<&VtepAddr> {
        if remote.family == AF_INET && self.local.family == AF_INET {
            Some(&self.local)
        } else if remote.family == AF_INET6 && self.local6.family == AF_INET6 {
            Some(&self.local6)
        } else {
            None
        }
    }

    /// Whether `addr` is one of this VTEP's own addresses.
    #[inline(always)]
    pub fn is_local(&self, addr: &VtepAddr) -> bool {
        addr.is_set() && (*addr == self.local || *addr == self.local6)
    }

    /// The outer TTL / hop limit toward `remote` (a VTEP or a group).
    #[inline(always)]
    pub const fn ttl_to(&self, remote: &VtepAddr) -> u8 {
        if self.ttl != 0 {
            self.ttl
        } else if remote.is_multicast() {
            TTL_AUTO_GROUP
        } else {
            TTL_AUTO_UNICAST
        }
    }
}

/// Value of the `NEIGH` map, keyed by remote VTEP: the outer Ethernet
/// header and device that reach it, resolved by the daemon from the kernel's
/// routes and neighbours. The datapath uses it when `bpf_fib_lookup` cannot
/// answer (forwarding disabled on the uplink, or no neighbour in the FIB).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NeighEntry {
    pub dmac: [u8; 6],
    pub smac: [u8; 6],
    pub ifindex: u32,
}

/// Value of the per-CPU `VNI_STATS` map, keyed by VNI. The CLI sums CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VniCounters {
    /// Decapsulated from the underlay and delivered (unicast or flooded).
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Encapsulated to the underlay (each flood copy counts).
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Switched between two local access ports.
    pub local_packets: u64,
    pub local_bytes: u64,
    /// BUM frames flooded (once per frame, not per copy).
    pub flood_packets: u64,
    pub _reserved: u64,
}

impl VniCounters {
    pub fn add(&mut self, o: &VniCounters) {
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.local_packets += o.local_packets;
        self.local_bytes += o.local_bytes;
        self.flood_packets += o.flood_packets;
    }
}

/// What the XDP program asks its TC companion to do with a frame it passed.
pub const META_MAGIC: u32 = 0x5654_4550; // "VTEP"
/// Flood the (inner) frame of `vni`, except out of `ifindex`.
pub const META_FLOOD: u32 = 1;
/// The frame is fully encapsulated; send it to the uplink through the
/// kernel's neighbour resolution (`bpf_redirect_neigh`).
pub const META_NEIGH: u32 = 2;
/// Deliver the (inner) frame to access port `ifindex` on the skb path.
pub const META_DELIVER: u32 = 3;

/// XDP metadata (`bpf_xdp_adjust_meta`) read by the TC programs. The size is
/// a multiple of 4, as the kernel requires.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub magic: u32,
    pub action: u32,
    pub vni: u32,
    pub ifindex: u32,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are #[repr(C)], Copy, with every padding byte an
    // explicit field, so any bit pattern is valid and none is uninitialised.
    unsafe impl aya::Pod for VtepAddr {}
    // SAFETY: as above.
    unsafe impl aya::Pod for FdbKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for FdbEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for VniInfo {}
    // SAFETY: as above.
    unsafe impl aya::Pod for PortKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for PortInfo {}
    // SAFETY: as above.
    unsafe impl aya::Pod for PortList {}
    // SAFETY: as above.
    unsafe impl aya::Pod for FloodList {}
    // SAFETY: as above.
    unsafe impl aya::Pod for Underlay {}
    // SAFETY: as above.
    unsafe impl aya::Pod for NeighEntry {}
    // SAFETY: as above.
    unsafe impl aya::Pod for VniCounters {}
}

#[cfg(test)]
mod tests {
    use core::mem::size_of;

    use super::*;

    /// The layouts are ABI between the eBPF object and userspace: a change
    /// must be deliberate (and makes pinned maps of an older version
    /// incompatible).
    #[test]
    fn layouts_have_no_implicit_padding() {
        assert_eq!(size_of::<VtepAddr>(), 20);
        assert_eq!(size_of::<FdbKey>(), 12);
        assert_eq!(size_of::<FdbEntry>(), 8 + 20 + 4 + 1 + 1 + 6);
        assert_eq!(size_of::<VniInfo>(), 16);
        assert_eq!(size_of::<PortKey>(), 8);
        assert_eq!(size_of::<PortInfo>(), 8);
        assert_eq!(size_of::<PortList>(), 4 + 4 * MAX_VNI_PORTS);
        assert_eq!(size_of::<FloodList>(), 8 + 20 * MAX_FLOOD);
        assert_eq!(
            size_of::<Underlay>(),
            20 + 20 + 4 + 4 + 2 + 2 + 2 + 1 + 1 + 1 + 1 + 6 + 2 + 2
        );
        assert_eq!(size_of::<NeighEntry>(), 16);
        assert_eq!(size_of::<VniCounters>(), 64);
        assert_eq!(size_of::<Meta>() % 4, 0);
    }

    #[test]
    fn flood_lists_are_bounded() {
        let vtep = |d| VtepAddr::v4([198, 18, 0, d]);
        let mut list = FloodList::default();
        for d in 0..MAX_FLOOD as u8 {
            assert_eq!(list.push(vtep(d)), Ok(()));
        }
        assert_eq!(list.push(vtep(200)), Err(ListFull));
        assert_eq!(list.members().len(), MAX_FLOOD);
        assert!(!list.contains(&vtep(200)));

        assert!(list.remove(&vtep(1)));
        assert!(!list.remove(&vtep(1)));
        assert_eq!(list.members()[..2], [vtep(0), vtep(2)]);
        assert_eq!(list.members().len(), MAX_FLOOD - 1);
        // The freed slot is cleared: the list is as if built afresh.
        let mut fresh = FloodList::default();
        for d in (0..MAX_FLOOD as u8).filter(|&d| d != 1) {
            fresh.push(vtep(d)).unwrap();
        }
        assert_eq!(list, fresh);
        assert_eq!(list.push(vtep(200)), Ok(()));
    }

    #[test]
    fn port_lists_are_bounded() {
        let mut list = PortList::default();
        for i in 1..=MAX_VNI_PORTS as u32 {
            assert_eq!(list.push(i), Ok(()));
        }
        assert_eq!(list.push(99), Err(ListFull));
        assert!(list.remove(1));
        assert!(!list.remove(1) && !list.contains(1));
        assert_eq!(list.members()[0], 2);
        assert_eq!(list.ifindex[MAX_VNI_PORTS - 1], 0);
        assert_eq!(list.push(99), Ok(()));
        assert_eq!(list.members()[MAX_VNI_PORTS - 1], 99);
        // A length past the array (a corrupt map value) reads as full.
        let mut corrupt = PortList {
            len: u32::MAX,
            ..PortList::default()
        };
        assert_eq!(corrupt.members().len(), MAX_VNI_PORTS);
        assert_eq!(corrupt.push(1), Err(ListFull));
        assert!(!corrupt.remove(7));
    }

    #[test]
    fn map_names_fit_bpf_obj_name() {
        for n in names::PINNED {
            assert!(n.len() < 16, "{n} is too long for BPF_OBJ_NAME_LEN");
        }
        for p in [
            programs::UPLINK_XDP,
            programs::UPLINK_TC,
            programs::ACCESS_XDP,
            programs::ACCESS_TC,
            programs::XSK_UPLINK,
            programs::XSK_ACCESS,
        ] {
            assert!(p.len() < 16, "{p} is too long for BPF_OBJ_NAME_LEN");
        }
    }

    #[test]
    fn vtep_addr_v4_roundtrip() {
        let a = VtepAddr::v4([198, 18, 0, 1]);
        assert_eq!(a.as_v4(), Some([198, 18, 0, 1]));
        assert!(a.is_set());
        assert_eq!(VtepAddr::v6([0; 16]).as_v4(), None);
        assert_eq!(VtepAddr::NONE, VtepAddr::default());
        assert!(!VtepAddr::default().is_set());
    }

    #[test]
    fn static_entries_are_recognised() {
        let s = FdbEntry::remote(VtepAddr::v4([198, 18, 0, 2]), FDB_F_STATIC, 0);
        let l = FdbEntry::remote(VtepAddr::v4([198, 18, 0, 2]), FDB_F_LEARNED, 5);
        assert!(s.is_static());
        assert!(!l.is_static());
        assert!(s.same_place(&l));
        assert!(!s.same_place(&FdbEntry::local(3, FDB_F_LEARNED, 0)));
    }

    #[test]
    fn word_built_v4_address_equals_its_fields() {
        let mut addr = [0; 16];
        addr[..4].copy_from_slice(&[198, 18, 0, 2]);
        let fields = VtepAddr {
            addr,
            family: AF_INET,
            _pad: [0; 3],
        };
        assert_eq!(VtepAddr::v4([198, 18, 0, 2]), fields);
    }
}
