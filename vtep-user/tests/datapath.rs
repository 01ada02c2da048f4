//! BPF_PROG_TEST_RUN fixtures for the six datapath programs.
//!
//! Each table row is one frame through one program: the input bytes, the
//! verdict, the output bytes (compared field by field), the XDP metadata
//! handed to TC, the reason counters and VNI counters it adds, and the FDB
//! entries it leaves. Every row gets a freshly loaded, unpinned copy of the
//! object (private maps), configured as [`Datapath::load`] describes, inside
//! a network namespace of its test ([`Netns`]), so nothing touches the host.
//!
//! A test run cannot put XDP metadata in front of an skb, so the TC
//! programs' work is reached through the test-only programs of
//! `vtep-ebpf/src/fixture.rs` (the `vtep-fixture` object): they call the
//! same dispatch on a [`Meta`] the row injects (`TEST_META`), the SETUP of
//! Cilium's BPF tests. Every [`Reason`] is produced by some row
//! ([`every_reason_has_a_row`]).
//!
//! Frames are built byte by byte here, independently of `vtep_common::header`.
//! Needs root (BPF and namespaces).

use std::{
    cell::Cell,
    ffi::CString,
    fs::File,
    mem::size_of,
    num::NonZeroU32,
    ops::{Range, RangeInclusive},
    os::fd::{AsRawFd as _, RawFd},
    panic::{AssertUnwindSafe, catch_unwind},
    process::Command,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{
        Array, DevMapHash, HashMap, Map, MapData, MapError, PerCpuArray, PerCpuHashMap, RingBuf,
        XskMap,
    },
    programs::Program,
};
use vtep::{
    datapath::loader,
    lab::testrun::{self, XdpMd},
};
use vtep_common::{
    FDB_CAPACITY, FDB_F_FOLLOWED, FDB_F_LEARNED, FDB_F_STATIC, FdbEntry, FdbKey, FloodList,
    META_DELIVER, META_FLOOD, META_MAGIC, META_NEIGH, Meta, NeighEntry, PortInfo, PortKey,
    PortList, Reason, UNDERLAY_F_FIB, UNDERLAY_F_KERNEL_VXLAN, UNDERLAY_F_LABEL_FIXED,
    UNDERLAY_F_LABEL_INHERIT, UNDERLAY_F_TOS_INHERIT, UNDERLAY_F_UDP_CSUM,
    UNDERLAY_F_UDP6_ZERO_CSUM_RX, UNDERLAY_F_UDP6_ZERO_CSUM_TX, Underlay, VNI_F_CHECK_SOURCE,
    VNI_F_FOLLOWED, VNI_F_LEARNING, VniCounters, VniInfo, VtepAddr, XSK_MAX_QUEUES,
    event::{EVENT_LEN, EVENT_RING_BYTES, EventKind, FdbEvent},
    names, programs,
    reason::REASON_COUNT,
};
use xsk_rs::{
    CompQueue, FillQueue, RxQueue, Socket, TxQueue, Umem,
    config::{LibxdpFlags, SocketConfig, UmemConfig},
};

// ---- addresses ----------------------------------------------------------

type Mac = [u8; 6];

/// This VTEP, and the remote VTEP of every test (198.18.0.0/15).
const LOCAL_VTEP: [u8; 4] = [198, 18, 0, 1];
const REMOTE_VTEP: [u8; 4] = [198, 18, 0, 2];
/// A VTEP the gateway has no neighbour for and no flood list knows.
const OTHER_VTEP: [u8; 4] = [198, 18, 0, 3];
/// Tenant addresses of the inner frames.
const TENANT_A: [u8; 4] = [192, 0, 2, 1];
const TENANT_B: [u8; 4] = [192, 0, 2, 2];

/// The uplink's MAC, and the underlay router's (next hop to REMOTE_VTEP).
const UPLINK_MAC: Mac = [0x02, 0, 0, 0, 0, 0x01];
const ROUTER_MAC: Mac = [0x02, 0, 0, 0, 0, 0x02];
/// A workload behind the access port (ifindex 1): learned in the tests.
const WORKLOAD_MAC: Mac = [0x02, 0, 0, 0, 0x0a, 0x01];
/// A second workload behind the access port.
const NEIGHBOUR_MAC: Mac = [0x02, 0, 0, 0, 0x0a, 0x02];
/// Statically behind the access port (ifindex 1).
const LOCAL_MAC: Mac = [0x02, 0, 0, 0, 0x0a, 0x03];
/// Behind the second access port ([`PORT2`]), when a row says so.
const PORT2_MAC: Mac = [0x02, 0, 0, 0, 0x0a, 0x04];
/// Statically behind REMOTE_VTEP.
const REMOTE_MAC: Mac = [0x02, 0, 0, 0, 0x0b, 0x01];
/// Behind REMOTE_VTEP, not in the FDB: learned in the tests.
const FAR_MAC: Mac = [0x02, 0, 0, 0, 0x0b, 0x02];
/// Not in the FDB.
const UNKNOWN_MAC: Mac = [0x02, 0, 0, 0, 0x0c, 0x01];
const BROADCAST: Mac = [0xff; 6];
const MULTICAST_MAC: Mac = [0x01, 0x00, 0x5e, 0, 0, 0x01];
const ZERO_MAC: Mac = [0; 6];

const VNI: u32 = 100;
const OTHER_VNI: u32 = 200;
const VXLAN_PORT: u16 = 4789;
/// The outer UDP source port of the remote VTEP's packets.
const REMOTE_SRC_PORT: u16 = 50_000;
const SRC_PORTS: RangeInclusive<u16> = 49_152..=65_535;
const TTL: u8 = 64;
/// The access port: `lo`, which every namespace has, as ifindex 1.
const PORT1: u32 = 1;
/// The second access port: a veth in the test's namespace.
const PORT2: &str = "vtep-port2";

// ---- frame layout ---------------------------------------------------------

const ETH_LEN: usize = 14;
/// Destination and source MAC: where a VLAN tag goes.
const ETH_ADDRS_LEN: usize = 12;
const IPV4_LEN: usize = 20;
const UDP_LEN: usize = 8;
const VXLAN_LEN: usize = 8;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPV4_DF: u16 = 0x4000;
const IPV4_MF: u16 = 0x2000;
const VXLAN_FLAG_I: u8 = 0x08;

/// Offsets into an untagged VXLAN frame without IP options.
mod at {
    use super::{ETH_LEN, IPV4_LEN, UDP_LEN, VXLAN_LEN};

    pub const IP: usize = ETH_LEN;
    pub const IP_VIHL: usize = IP;
    pub const IP_FRAG: usize = IP + 6;
    pub const IP_TTL: usize = IP + 8;
    pub const IP_PROTO: usize = IP + 9;
    pub const IP_CSUM: usize = IP + 10;
    pub const IP_SRC: usize = IP + 12;
    pub const IP_DST: usize = IP + 16;
    pub const UDP: usize = IP + IPV4_LEN;
    pub const UDP_DPORT: usize = UDP + 2;
    pub const UDP_LENGTH: usize = UDP + 4;
    pub const UDP_CSUM: usize = UDP + 6;
    pub const VXLAN: usize = UDP + UDP_LEN;
    pub const VXLAN_VNI: usize = VXLAN + 4;
    pub const INNER: usize = VXLAN + VXLAN_LEN;
}

type Fields = &'static [(&'static str, Range<usize>)];

/// The fields of an Ethernet frame, for field-by-field comparison.
const ETH_FIELDS: Fields = &[
    ("dst MAC", 0..6),
    ("src MAC", 6..ETH_ADDRS_LEN),
    ("ethertype", ETH_ADDRS_LEN..ETH_LEN),
];

/// The fields of a VXLAN frame (outer headers), for comparison.
const VXLAN_FIELDS: Fields = &[
    ("outer dst MAC", 0..6),
    ("outer src MAC", 6..ETH_ADDRS_LEN),
    ("outer ethertype", ETH_ADDRS_LEN..at::IP),
    ("IPv4 version/IHL", at::IP..at::IP + 1),
    ("IPv4 TOS", at::IP + 1..at::IP + 2),
    ("IPv4 total length", at::IP + 2..at::IP + 4),
    ("IPv4 id", at::IP + 4..at::IP_FRAG),
    ("IPv4 flags/fragment offset", at::IP_FRAG..at::IP_FRAG + 2),
    ("IPv4 TTL", at::IP_TTL..at::IP_PROTO),
    ("IPv4 protocol", at::IP_PROTO..at::IP_CSUM),
    ("IPv4 header checksum", at::IP_CSUM..at::IP_SRC),
    ("IPv4 source", at::IP_SRC..at::IP_DST),
    ("IPv4 destination", at::IP_DST..at::UDP),
    ("UDP source port", at::UDP..at::UDP_DPORT),
    ("UDP destination port", at::UDP_DPORT..at::UDP_LENGTH),
    ("UDP length", at::UDP_LENGTH..at::UDP_LENGTH + 2),
    ("UDP checksum", at::UDP_CSUM..at::VXLAN),
    ("VXLAN flags", at::VXLAN..at::VXLAN + 1),
    ("VXLAN reserved (flags)", at::VXLAN + 1..at::VXLAN_VNI),
    ("VNI", at::VXLAN_VNI..at::VXLAN_VNI + 3),
    ("VXLAN reserved (VNI)", at::VXLAN_VNI + 3..at::INNER),
];

// ---- frames ---------------------------------------------------------------

fn be16(v: usize) -> [u8; 2] {
    u16::try_from(v).expect("length fits 16 bits").to_be_bytes()
}

fn ether(dst: Mac, src: Mac, ether_type: u16, payload: &[u8]) -> Vec<u8> {
    [&dst[..], &src, &ether_type.to_be_bytes(), payload].concat()
}

/// The Internet checksum (RFC 1071) of `bytes`, big-endian words, an odd
/// last byte padded with zero.
fn internet_checksum(bytes: &[u8]) -> u16 {
    let sum: u32 = bytes
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let folded = (folded & 0xffff) + (folded >> 16);
    !(folded as u16)
}

/// The checksum of an IPv4 header (its checksum field zero).
fn ipv4_checksum(hdr: &[u8]) -> [u8; 2] {
    internet_checksum(hdr).to_be_bytes()
}

/// The UDP checksum of an untagged IPv4 frame without options (its checksum
/// field zero): over the pseudo-header and the datagram, before the rule
/// that sends 0 as 0xffff.
fn udp_checksum(frame: &[u8]) -> u16 {
    let dgram = &frame[at::UDP..];
    let pseudo = [
        &frame[at::IP_SRC..at::UDP],
        &[0, IPPROTO_UDP],
        &be16(dgram.len()),
        dgram,
    ]
    .concat();
    internet_checksum(&pseudo)
}

/// `frame` with the UDP checksum filled in (0 sent as 0xffff, RFC 768).
fn with_udp_checksum(mut frame: Vec<u8>) -> Vec<u8> {
    let c = match udp_checksum(&frame) {
        0 => 0xffff,
        c => c,
    };
    set_be16(&mut frame, at::UDP_CSUM, c);
    frame
}

/// An IPv4 packet with DF, TTL 64, id 0 and a correct header checksum.
fn ipv4_with_options(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    options: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let ihl = IPV4_LEN + options.len();
    assert!(
        options.len().is_multiple_of(4),
        "IPv4 options come in words"
    );
    let mut hdr = [
        &[0x40 | (ihl / 4) as u8, 0][..],
        &be16(ihl + payload.len()),
        &[0, 0],
        &IPV4_DF.to_be_bytes(),
        &[TTL, proto, 0, 0],
        &src,
        &dst,
        options,
    ]
    .concat();
    let csum = ipv4_checksum(&hdr);
    let at_csum = at::IP_CSUM - at::IP;
    hdr[at_csum..at_csum + 2].copy_from_slice(&csum);
    [hdr, payload.to_vec()].concat()
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_with_options(src, dst, proto, &[], payload)
}

/// A UDP datagram with checksum 0 (as VXLAN over IPv4 sends it).
fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    [
        &src_port.to_be_bytes()[..],
        &dst_port.to_be_bytes(),
        &be16(UDP_LEN + payload.len()),
        &[0, 0],
        payload,
    ]
    .concat()
}

fn vxlan(vni: u32, inner: &[u8]) -> Vec<u8> {
    let v = vni.to_be_bytes();
    [&[VXLAN_FLAG_I, 0, 0, 0, v[1], v[2], v[3], 0][..], inner].concat()
}

/// A tenant's UDP frame (192.0.2.1:`src_port` → 192.0.2.2:53), 60 bytes.
fn tenant_udp(dst: Mac, src: Mac, src_port: u16) -> Vec<u8> {
    let dgram = udp(src_port, 53, b"vtep datapath test");
    ether(
        dst,
        src,
        ETH_P_IP,
        &ipv4(TENANT_A, TENANT_B, IPPROTO_UDP, &dgram),
    )
}

fn tenant(dst: Mac, src: Mac) -> Vec<u8> {
    tenant_udp(dst, src, 12_345)
}

/// An ARP request for 192.0.2.2 from 192.0.2.1 at `src`.
fn arp_request(src: Mac) -> Vec<u8> {
    let arp = [
        &[0, 1, 0x08, 0x00, 6, 4, 0, 1][..],
        &src,
        &TENANT_A,
        &ZERO_MAC,
        &TENANT_B,
    ]
    .concat();
    ether(BROADCAST, src, ETH_P_ARP, &arp)
}

/// The outer headers of a VXLAN frame.
struct Outer {
    dmac: Mac,
    smac: Mac,
    src: [u8; 4],
    dst: [u8; 4],
    src_port: u16,
}

impl Outer {
    /// What REMOTE_VTEP sends to this VTEP.
    const FROM_REMOTE: Outer = Outer {
        dmac: UPLINK_MAC,
        smac: ROUTER_MAC,
        src: REMOTE_VTEP,
        dst: LOCAL_VTEP,
        src_port: REMOTE_SRC_PORT,
    };

    /// What this VTEP sends to REMOTE_VTEP, with the outer MACs of its next
    /// hop and a flow's source port.
    fn to_remote_vtep(dmac: Mac, smac: Mac, src_port: u16) -> Outer {
        Outer {
            dmac,
            smac,
            src: LOCAL_VTEP,
            dst: REMOTE_VTEP,
            src_port,
        }
    }

    fn frame_with(&self, ip_options: &[u8], vni: u32, inner: &[u8]) -> Vec<u8> {
        let dgram = udp(self.src_port, VXLAN_PORT, &vxlan(vni, inner));
        let packet = ipv4_with_options(self.src, self.dst, IPPROTO_UDP, ip_options, &dgram);
        ether(self.dmac, self.smac, ETH_P_IP, &packet)
    }

    fn frame(&self, inner: &[u8]) -> Vec<u8> {
        self.frame_with(&[], VNI, inner)
    }
}

/// `inner` encapsulated by REMOTE_VTEP for this VTEP, in VNI 100.
fn from_remote(inner: &[u8]) -> Vec<u8> {
    Outer::FROM_REMOTE.frame(inner)
}

/// `frame` with one 802.1Q tag (VLAN `vid`).
fn vlan_tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let tag = [&ETH_P_8021Q.to_be_bytes()[..], &vid.to_be_bytes()].concat();
    [&frame[..ETH_ADDRS_LEN], &tag, &frame[ETH_ADDRS_LEN..]].concat()
}

/// `frame` changed by `edit`.
fn edited(mut frame: Vec<u8>, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    edit(&mut frame);
    frame
}

fn be16_at(frame: &[u8], offset: usize) -> u16 {
    u16::from_be_bytes([frame[offset], frame[offset + 1]])
}

fn set_be16(frame: &mut [u8], offset: usize, v: u16) {
    frame[offset..offset + 2].copy_from_slice(&v.to_be_bytes());
}

// ---- namespace -------------------------------------------------------------

fn ip(args: &str) {
    let status = Command::new("ip")
        .args(args.split_whitespace())
        .status()
        .unwrap_or_else(|e| panic!("running `ip {args}`: {e} (is iproute2 installed?)"));
    assert!(status.success(), "`ip {args}` failed: {status}");
}

/// Waits (5 s at most) until `dev` is operationally up. A veth that was just
/// set up gets its real qdisc from the kernel's linkwatch a moment later,
/// and until then what is sent or cloned to it is dropped.
fn wait_oper_up(dev: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "dev", dev])
            .output()
            .unwrap_or_else(|e| panic!("running `ip link show {dev}`: {e}"));
        if String::from_utf8_lossy(&out.stdout).contains("state UP") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{dev} did not come up within 5 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn ifindex(name: &str) -> u32 {
    let c = CString::new(name).expect("interface name without NUL");
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(i, 0, "no interface {name} in the test namespace");
    i
}

/// The ifindex of the second access port.
fn port2() -> u32 {
    ifindex(PORT2)
}

/// A fresh network namespace for the calling thread, with `lo` (ifindex 1)
/// up and a veth [`PORT2`]. Dropping it returns the thread to the namespace
/// it came from; the test namespace, and its devices, go with it.
struct Netns {
    home: File,
}

impl Netns {
    fn enter() -> Netns {
        let home = File::open("/proc/thread-self/ns/net")
            .unwrap_or_else(|e| panic!("opening this thread's netns: {e}"));
        // SAFETY: plain syscall; affects only the calling thread.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            panic!(
                "unshare(CLONE_NEWNET): {} (the datapath tests need root)",
                std::io::Error::last_os_error()
            );
        }
        let netns = Netns { home };
        ip("link set lo up");
        ip(&format!(
            "link add {PORT2} type veth peer name {PORT2}-peer"
        ));
        assert_eq!(ifindex("lo"), PORT1, "lo is not ifindex 1");
        netns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // SAFETY: home is an open netns file descriptor.
        if unsafe { libc::setns(self.home.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            panic!(
                "returning to the test thread's netns: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

// ---- BPF_PROG_TEST_RUN -------------------------------------------------------

const XDP_ABORTED: u32 = vtep::lab::testrun::XDP_ABORTED;
const XDP_DROP: u32 = vtep::lab::testrun::XDP_DROP;
const XDP_PASS: u32 = vtep::lab::testrun::XDP_PASS;
const XDP_REDIRECT: u32 = vtep::lab::testrun::XDP_REDIRECT;
const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
/// What `bpf_redirect` and `bpf_redirect_neigh` return.
const TC_ACT_REDIRECT: u32 = 7;

/// Room for any output frame: the input, an outer header and metadata.
const DATA_OUT_LEN: usize = 4096;

/// What one run of a program gave back.
struct Run {
    verdict: u32,
    /// The XDP metadata in front of the frame (empty when none).
    meta: Vec<u8>,
    frame: Vec<u8>,
}

/// One run of `program` on `input`, arriving on `ingress` (XDP; queue 0).
fn test_run(program: &Program, input: &[u8], ingress: u32) -> Run {
    let ran = match program {
        Program::Xdp(p) => {
            testrun::xdp_once(p, input, XdpMd::arriving(input, ingress, 0), DATA_OUT_LEN).map(|r| {
                Run {
                    verdict: r.verdict,
                    meta: r.meta,
                    frame: r.frame,
                }
            })
        }
        Program::SchedClassifier(p) => {
            testrun::tc_once(p, input, DATA_OUT_LEN).map(|(verdict, frame)| Run {
                verdict,
                meta: Vec::new(),
                frame,
            })
        }
        _ => panic!("neither XDP nor TC"),
    };
    ran.unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e}"))
}

// ---- the datapath under test ------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hook {
    Xdp,
    Tc,
}

impl Hook {
    fn verdict_name(self, v: u32) -> &'static str {
        match (self, v) {
            (Hook::Xdp, XDP_ABORTED) => "XDP_ABORTED",
            (Hook::Xdp, XDP_DROP) => "XDP_DROP",
            (Hook::Xdp, XDP_PASS) => "XDP_PASS",
            (Hook::Xdp, XDP_REDIRECT) => "XDP_REDIRECT",
            (Hook::Tc, TC_ACT_OK) => "TC_ACT_OK",
            (Hook::Tc, TC_ACT_SHOT) => "TC_ACT_SHOT",
            (Hook::Tc, TC_ACT_REDIRECT) => "TC_ACT_REDIRECT",
            _ => "other",
        }
    }
}

/// Counters a row may change.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Counters {
    reasons: [u64; REASON_COUNT as usize],
    vni: VniCounters,
    learned: u64,
}

/// One freshly loaded copy of the object with one program loaded, and the
/// test configuration:
/// - UNDERLAY: 198.18.0.1 on uplink ifindex 1, port 4789, source ports
///   49152..=65535, TTL 64, no FIB lookups (next hops from NEIGH), MTU 1500;
/// - NEIGH: 198.18.0.2 via ROUTER_MAC from UPLINK_MAC on ifindex 1;
/// - PORT_TX: ifindex 1;
/// - VNI 100 with learning, zeroed counters, 0 learned MACs;
/// - PORTS: ifindex 1 untagged in VNI 100;
/// - FDB: LOCAL_MAC static on ifindex 1, REMOTE_MAC static at 198.18.0.2.
struct Datapath {
    ebpf: Ebpf,
    hook: Hook,
    program: &'static str,
    /// Where an XDP run's frame arrives (PORT1 unless a row says).
    ingress: u32,
    /// Bytes of metadata an XDP run's frame arrives with (0 unless a row
    /// says).
    meta_in: usize,
}

/// The test-only programs of `vtep-ebpf/src/fixture.rs`: the TC dispatch
/// on the metadata in `TEST_META`.
static FIXTURE_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vtep-fixture"));

/// The fixture object's programs.
mod fixture {
    /// `flood::dispatch_uplink` on `TEST_META`.
    pub const UPLINK_TC: &str = "vtep_fixture_uplink_tc";
    /// `flood::dispatch_access` on `TEST_META`.
    pub const ACCESS_TC: &str = "vtep_fixture_access_tc";
    /// Its one-entry array of the `Meta` to dispatch on.
    pub const TEST_META: &str = "TEST_META";
    pub const PROGRAMS: [&str; 2] = [UPLINK_TC, ACCESS_TC];
}

impl Datapath {
    /// `program` (vtep's, or the fixture object's), configured.
    fn load(program: &'static str) -> Datapath {
        let object = if fixture::PROGRAMS.contains(&program) {
            FIXTURE_OBJECT
        } else {
            vtep::datapath::loader::object()
        };
        let mut ebpf = EbpfLoader::new()
            .load(object)
            .unwrap_or_else(|e| panic!("loading the eBPF object of {program}: {e}"));
        let prog = ebpf
            .program_mut(program)
            .unwrap_or_else(|| panic!("program {program} missing from the object"));
        let (hook, loaded) = match prog {
            Program::Xdp(p) => (Hook::Xdp, loader::verify(|| p.load())),
            Program::SchedClassifier(p) => (Hook::Tc, loader::verify(|| p.load())),
            _ => panic!("{program} is neither XDP nor TC"),
        };
        loaded.unwrap_or_else(|e| panic!("loading {program} (verifier): {e:?}"));
        let mut dp = Datapath {
            ebpf,
            hook,
            program,
            ingress: PORT1,
            meta_in: 0,
        };
        dp.configure();
        dp
    }

    fn configure(&mut self) {
        // The fixture object has only the maps its programs use.
        if self.has(names::UNDERLAY) {
            self.set_underlay(Underlay {
                local: VtepAddr::v4(LOCAL_VTEP),
                uplink_ifindex: PORT1,
                port: VXLAN_PORT,
                srcport_min: *SRC_PORTS.start(),
                srcport_max: *SRC_PORTS.end(),
                ttl: TTL,
                flags: 0,
                uplink_mac: UPLINK_MAC,
                mtu: 1500,
                ..Underlay::default()
            });
        }
        if self.has(names::NEIGH) {
            let neigh = NeighEntry {
                dmac: ROUTER_MAC,
                smac: UPLINK_MAC,
                ifindex: PORT1,
            };
            self.hash::<VtepAddr, NeighEntry>(names::NEIGH)
                .insert(VtepAddr::v4(REMOTE_VTEP), neigh, 0)
                .expect("NEIGH insert");
        }
        if self.has(names::PORT_TX) {
            self.port_tx_add(PORT1);
        }
        if self.has(names::VNIS) {
            self.set_vni(VniInfo {
                flags: VNI_F_LEARNING,
                ..VniInfo::default()
            });
        }
        if self.has(names::VNI_STATS) {
            let cpus = aya::util::nr_cpus().expect("number of possible CPUs");
            let zero = vec![VniCounters::default(); cpus]
                .try_into()
                .expect("per-CPU counters");
            self.map::<PerCpuHashMap<_, u32, VniCounters>>(names::VNI_STATS)
                .insert(VNI, zero, 0)
                .expect("VNI_STATS insert");
        }
        if self.has(names::VNI_LEARNED) {
            self.set_learned(0);
        }
        if self.has(names::PORTS) {
            self.set_port(VNI);
        }
        if self.has(names::FDB) {
            self.fdb_set(LOCAL_MAC, static_local(PORT1));
            self.fdb_set(REMOTE_MAC, static_remote(REMOTE_VTEP));
        }
    }

    fn has(&self, map: &str) -> bool {
        self.ebpf.map(map).is_some()
    }

    /// The map `name`, typed.
    fn map<'a, T>(&'a mut self, name: &str) -> T
    where
        T: TryFrom<&'a mut Map, Error = MapError>,
    {
        let map = self
            .ebpf
            .map_mut(name)
            .unwrap_or_else(|| panic!("map {name} missing from the object"));
        T::try_from(map).unwrap_or_else(|e| panic!("map {name}: {e}"))
    }

    fn hash<K: aya::Pod, V: aya::Pod>(&mut self, name: &str) -> HashMap<&mut MapData, K, V> {
        self.map(name)
    }

    fn set_underlay(&mut self, ul: Underlay) {
        self.map::<Array<_, Underlay>>(names::UNDERLAY)
            .set(0, ul, 0)
            .expect("UNDERLAY set");
    }

    fn update_underlay(&mut self, edit: impl FnOnce(&mut Underlay)) {
        let mut ul = self
            .map::<Array<_, Underlay>>(names::UNDERLAY)
            .get(&0, 0)
            .expect("UNDERLAY get");
        edit(&mut ul);
        self.set_underlay(ul);
    }

    fn set_vni(&mut self, info: VniInfo) {
        self.hash::<u32, VniInfo>(names::VNIS)
            .insert(VNI, info, 0)
            .expect("VNIS insert");
    }

    /// Sets VNI 100's count of learned MACs.
    fn set_learned(&mut self, n: u64) {
        self.hash::<u32, u64>(names::VNI_LEARNED)
            .insert(VNI, n, 0)
            .expect("VNI_LEARNED insert");
    }

    /// Sets VNI 100's `maxaddress`, learning on.
    fn set_max_addresses(&mut self, max_addresses: u32) {
        self.set_vni(VniInfo {
            flags: VNI_F_LEARNING,
            max_addresses,
            ..VniInfo::default()
        });
    }

    /// Makes ifindex 1 an untagged access port of `vni`.
    fn set_port(&mut self, vni: u32) {
        self.hash::<PortKey, PortInfo>(names::PORTS)
            .insert(PortKey::untagged(PORT1), PortInfo { vni, flags: 0 }, 0)
            .expect("PORTS insert");
    }

    fn remove_port(&mut self) {
        self.hash::<PortKey, PortInfo>(names::PORTS)
            .remove(&PortKey::untagged(PORT1))
            .expect("PORTS remove");
    }

    fn remove_neigh(&mut self) {
        self.hash::<VtepAddr, NeighEntry>(names::NEIGH)
            .remove(&VtepAddr::v4(REMOTE_VTEP))
            .expect("NEIGH remove");
    }

    fn port_tx_add(&mut self, ifindex: u32) {
        self.map::<DevMapHash<_>>(names::PORT_TX)
            .insert(ifindex, ifindex, None, 0)
            .unwrap_or_else(|e| panic!("PORT_TX insert {ifindex}: {e}"));
    }

    /// Turns on the source check of VNI 100, with `vteps` as its flood list.
    fn check_source(&mut self, vteps: &[[u8; 4]]) {
        self.set_vni(VniInfo {
            flags: VNI_F_LEARNING | VNI_F_CHECK_SOURCE,
            ..VniInfo::default()
        });
        self.set_flood(vteps);
    }

    /// Makes `vteps` the flood list of VNI 100.
    fn set_flood(&mut self, vteps: &[[u8; 4]]) {
        let mut list = FloodList::default();
        list.len = fill(&mut list.vteps, vteps.iter().map(|v| VtepAddr::v4(*v)));
        self.set_for_vni(names::FLOOD, list);
    }

    /// Makes `ports` the access ports VNI 100 floods to.
    fn set_vni_ports(&mut self, ports: &[u32]) {
        let mut list = PortList::default();
        list.len = fill(&mut list.ifindex, ports.iter().copied());
        self.set_for_vni(names::VNI_PORTS, list);
    }

    /// VNI 100's entry in the hash map `name`.
    fn set_for_vni<V: aya::Pod>(&mut self, name: &str, value: V) {
        self.hash::<u32, V>(name)
            .insert(VNI, value, 0)
            .unwrap_or_else(|e| panic!("{name} insert: {e}"));
    }

    /// Fixture object: the metadata its program dispatches on. The map
    /// holds a `Meta`; written as its four `u32` fields in order.
    fn set_test_meta(&mut self, m: Meta) {
        let words = [m.magic, m.action, m.vni, m.ifindex];
        self.map::<Array<_, [u32; 4]>>(fixture::TEST_META)
            .set(0, words, 0)
            .expect("TEST_META set");
    }

    fn fdb_set(&mut self, mac: Mac, entry: FdbEntry) {
        self.hash::<FdbKey, FdbEntry>(names::FDB)
            .insert(FdbKey::new(VNI, mac), entry, 0)
            .expect("FDB insert");
    }

    fn fdb(&mut self, mac: Mac) -> Option<FdbEntry> {
        match self
            .hash::<FdbKey, FdbEntry>(names::FDB)
            .get(&FdbKey::new(VNI, mac), 0)
        {
            Ok(e) => Some(e),
            Err(MapError::KeyNotFound) => None,
            Err(e) => panic!("FDB lookup: {e}"),
        }
    }

    /// With `maxaddress` 4, runs frames from 7 distinct sources (`frame`
    /// of each MAC): exactly 4 are learned, in order, and counted; 3 count
    /// `learning-limit` and leave neither an entry nor a slot behind.
    fn learn_past_the_limit(&mut self, frame: fn(Mac) -> Vec<u8>) {
        const MAX: u32 = 4;
        self.set_max_addresses(MAX);
        let before = self.counters();
        let sources: Vec<Mac> = (0..7).map(|i| [0x02, 0x1e, 0xa7, 0, 0, i]).collect();
        for &src in &sources {
            self.run(&frame(src));
        }
        let after = self.counters();
        assert_eq!(after.learned, u64::from(MAX), "learned MACs past the limit");
        let limited = Reason::LearningLimit as usize;
        assert_eq!(after.reasons[limited] - before.reasons[limited], 3);
        for (i, &src) in sources.iter().enumerate() {
            let e = self.fdb(src);
            assert_eq!(e.is_some(), i < MAX as usize, "source {i}: {e:?}");
        }
    }

    fn counters(&mut self) -> Counters {
        let reasons_map = self.map::<PerCpuArray<_, u64>>(names::REASONS);
        let reasons = std::array::from_fn(|i| {
            reasons_map
                .get(&(i as u32), 0)
                .expect("REASONS get")
                .iter()
                .sum()
        });
        let mut vni = VniCounters::default();
        if self.has(names::VNI_STATS) {
            let stats = self.map::<PerCpuHashMap<_, u32, VniCounters>>(names::VNI_STATS);
            for c in stats.get(&VNI, 0).expect("VNI_STATS get").iter() {
                vni.add(c);
            }
        }
        let learned = if self.has(names::VNI_LEARNED) {
            self.hash::<u32, u64>(names::VNI_LEARNED)
                .get(&VNI, 0)
                .expect("VNI_LEARNED get")
        } else {
            0
        };
        Counters {
            reasons,
            vni,
            learned,
        }
    }

    fn run(&self, frame: &[u8]) -> Run {
        let program = self.ebpf.program(self.program).expect("loaded program");
        if self.meta_in == 0 {
            return test_run(program, frame, self.ingress);
        }
        // The frame behind metadata another program left; what comes back
        // unchanged is not the program's output.
        let brought = vec![0; self.meta_in];
        let Program::Xdp(p) = program else {
            panic!("metadata in front of a frame: XDP only");
        };
        let input = [&brought[..], frame].concat();
        let ctx = XdpMd {
            data: self.meta_in as u32,
            ..XdpMd::arriving(&input, self.ingress, 0)
        };
        let r = testrun::xdp_once(p, &input, ctx, DATA_OUT_LEN)
            .unwrap_or_else(|e| panic!("BPF_PROG_TEST_RUN: {e}"));
        Run {
            verdict: r.verdict,
            meta: if r.meta == brought {
                Vec::new()
            } else {
                r.meta
            },
            frame: r.frame,
        }
    }

    /// Frames arrive with so much metadata in front of them (another
    /// program's) that vtep's [`Meta`] does not fit: [`XDP_META_FULL`].
    fn metadata_full(&mut self) {
        self.meta_in = XDP_META_FULL;
    }

    /// Next hops from `bpf_fib_lookup` (`UNDERLAY_F_FIB`), with forwarding
    /// on the uplink (the kernel answers `FWD_DISABLED` without it), and a
    /// FIB with no route to any VTEP: the namespace has none.
    fn fib_without_routes(&mut self) {
        let knob = "/proc/sys/net/ipv4/conf/lo/forwarding";
        std::fs::write(knob, "1").unwrap_or_else(|e| panic!("writing {knob}: {e}"));
        self.update_underlay(|ul| ul.flags |= UNDERLAY_F_FIB);
    }

    /// Fills the FDB to its capacity with entries of another VNI.
    fn fill_fdb(&mut self) {
        let mut fdb = self.hash::<FdbKey, FdbEntry>(names::FDB);
        // LOCAL_MAC and REMOTE_MAC are in already.
        for i in 0..FDB_CAPACITY - 2 {
            let b = i.to_be_bytes();
            let mac = [0x02, 0xfd, b[0], b[1], b[2], b[3]];
            fdb.insert(FdbKey::new(OTHER_VNI, mac), static_local(PORT1), 0)
                .unwrap_or_else(|e| panic!("filling the FDB, entry {i}: {e}"));
        }
    }
}

/// XDP metadata that leaves no room for vtep's [`Meta`] in front of it: a
/// test run puts the frame at XDP_PACKET_HEADROOM (256 bytes), its
/// metadata in that headroom, and `bpf_xdp_adjust_meta` keeps the start of
/// the buffer for the kernel's `struct xdp_frame`. On Linux 6.18 a test
/// run takes 208 bytes of metadata (not 224), and 16 more do not fit.
const XDP_META_FULL: usize = 208;

// ---- table rows ---------------------------------------------------------------

/// What a row's output frame must be.
enum Output {
    /// These exact bytes (the input, or an inner frame), field by field.
    Frame(Vec<u8>),
    /// `inner` behind an outer header to REMOTE_VTEP in VNI 100, from these
    /// outer MACs, with an outer UDP source port in `ports`, and with a UDP
    /// checksum when `udp_checksum` (else 0).
    Encap {
        dmac: Mac,
        smac: Mac,
        ports: RangeInclusive<u16>,
        inner: Vec<u8>,
        udp_checksum: bool,
    },
}

impl Output {
    /// `inner` to REMOTE_VTEP through the underlay router (the NEIGH entry),
    /// from any source port of the range, without a UDP checksum.
    fn via_router(inner: &[u8]) -> Output {
        Output::Encap {
            dmac: ROUTER_MAC,
            smac: UPLINK_MAC,
            ports: SRC_PORTS,
            inner: inner.to_vec(),
            udp_checksum: false,
        }
    }
}

/// One frame through one program, and everything it must do.
struct Case {
    name: &'static str,
    /// Run in the order given, on the freshly configured datapath.
    setup: Vec<fn(&mut Datapath)>,
    input: Vec<u8>,
    verdict: u32,
    output: Output,
    meta: Option<Meta>,
    /// Fixture programs: the metadata written to `TEST_META` first.
    inject: Option<Meta>,
    /// Reason counters this frame adds (all others stay).
    reasons: Vec<(Reason, u64)>,
    /// VNI 100 counters this frame adds.
    stats: VniCounters,
    /// FDB entries of VNI 100 afterwards.
    fdb: Vec<FdbWant>,
}

/// A MAC's FDB entry in VNI 100 after a row.
struct FdbWant {
    mac: Mac,
    /// `None`: absent. See [`check_fdb`] for the timestamp.
    entry: Option<FdbEntry>,
    /// Newly learned by the row: VNI 100's learned count grows by one.
    new: bool,
}

impl Case {
    /// A row whose frame must come out unchanged with `verdict`.
    fn new(name: &'static str, input: Vec<u8>, verdict: u32) -> Case {
        Case {
            name,
            setup: Vec::new(),
            output: Output::Frame(input.clone()),
            input,
            verdict,
            meta: None,
            inject: None,
            reasons: Vec::new(),
            stats: VniCounters::default(),
            fdb: Vec::new(),
        }
    }

    /// Dropped, untouched, counted under `reason` (and, unless the row says
    /// what it learns, nothing learned).
    fn drops(name: &'static str, input: Vec<u8>, reason: Reason) -> Case {
        Case::new(name, input, XDP_DROP).reason(reason)
    }

    /// Uplink: not VXLAN for this VTEP: passed to the host untouched.
    fn not_vxlan(name: &'static str, input: Vec<u8>) -> Case {
        Case::new(name, input, XDP_PASS).reason(Reason::NotVxlan)
    }

    /// The row with no reason counted (the AF_XDP steering counts none).
    fn uncounted(mut self) -> Case {
        self.reasons.clear();
        self
    }

    /// One more step of the row's setup.
    fn setup(mut self, setup: fn(&mut Datapath)) -> Case {
        self.setup.push(setup);
        self
    }

    fn output(mut self, output: Output) -> Case {
        self.output = output;
        self
    }

    fn meta(mut self, action: u32, ifindex: u32) -> Case {
        self.meta = Some(vni_meta(action, ifindex));
        self
    }

    /// Fixture programs: dispatch on `action` for VNI 100 with `ifindex`.
    fn injects(mut self, action: u32, ifindex: u32) -> Case {
        self.inject = Some(vni_meta(action, ifindex));
        self
    }

    fn reason(mut self, reason: Reason) -> Case {
        self.reasons.push((reason, 1));
        self
    }

    fn stats(mut self, stats: VniCounters) -> Case {
        self.stats = stats;
        self
    }

    /// `mac` must be newly learned at `place`.
    fn learns(self, mac: Mac, place: FdbEntry) -> Case {
        let entry = FdbEntry {
            flags: FDB_F_LEARNED,
            ..place
        };
        self.expect_fdb(mac, Some(entry), true)
    }

    /// `mac`'s entry must be `entry` (`None`: absent), not newly learned;
    /// replaces an earlier expectation for `mac`.
    fn fdb(self, mac: Mac, entry: Option<FdbEntry>) -> Case {
        self.expect_fdb(mac, entry, false)
    }

    fn expect_fdb(mut self, mac: Mac, entry: Option<FdbEntry>, new: bool) -> Case {
        self.fdb.retain(|w| w.mac != mac);
        self.fdb.push(FdbWant { mac, entry, new });
        self
    }

    /// Runs the row on a fresh datapath; panics with the row's name.
    fn run(&self, program: &'static str) {
        let mut dp = Datapath::load(program);
        if let Some(m) = self.inject {
            dp.set_test_meta(m);
        }
        for setup in &self.setup {
            setup(&mut dp);
        }
        let before = dp.counters();
        let run = dp.run(&self.input);
        let after = dp.counters();
        let name = self.name;
        assert_eq!(
            run.verdict,
            self.verdict,
            "{name}: verdict {} ({}), want {} ({})",
            run.verdict,
            dp.hook.verdict_name(run.verdict),
            self.verdict,
            dp.hook.verdict_name(self.verdict),
        );
        self.check_output(&run);
        self.check_counters(&before, &after);
        for w in &self.fdb {
            check_fdb(name, w.mac, dp.fdb(w.mac), w.entry);
        }
    }

    fn check_output(&self, run: &Run) {
        let name = self.name;
        let meta = (!run.meta.is_empty()).then(|| parse_meta(name, &run.meta));
        assert_eq!(meta, self.meta, "{name}: XDP metadata");
        match &self.output {
            Output::Frame(want) => check_fields(name, &run.frame, want, ETH_FIELDS),
            Output::Encap {
                dmac,
                smac,
                ports,
                inner,
                udp_checksum,
            } => {
                let got = &run.frame;
                assert!(got.len() >= at::INNER, "{name}: {} bytes out", got.len());
                let src_port = be16_at(got, at::UDP);
                assert!(
                    ports.contains(&src_port),
                    "{name}: outer UDP source port {src_port} outside {ports:?}"
                );
                let mut want = Outer::to_remote_vtep(*dmac, *smac, src_port).frame(inner);
                if *udp_checksum {
                    want = with_udp_checksum(want);
                }
                check_fields(name, got, &want, VXLAN_FIELDS);
            }
        }
    }

    fn check_counters(&self, before: &Counters, after: &Counters) {
        let name = self.name;
        let mut want = before.clone();
        for (reason, n) in &self.reasons {
            want.reasons[*reason as usize] += n;
        }
        want.vni.add(&self.stats);
        want.learned += self.fdb.iter().filter(|w| w.new).count() as u64;
        assert_eq!(
            named_reasons(&after.reasons),
            named_reasons(&want.reasons),
            "{name}: reason counters"
        );
        assert_eq!(after.vni, want.vni, "{name}: VNI {VNI} counters");
        assert_eq!(
            after.learned, want.learned,
            "{name}: learned MACs of VNI {VNI}"
        );
    }
}

/// Puts `items` in the first of `slots`; how many.
fn fill<T>(slots: &mut [T], items: impl ExactSizeIterator<Item = T>) -> u32 {
    let n = items.len();
    assert!(n <= slots.len(), "{n} items for {} slots", slots.len());
    for (slot, item) in slots.iter_mut().zip(items) {
        *slot = item;
    }
    n as u32
}

/// Metadata for VNI 100: `action`, with `ifindex`.
fn vni_meta(action: u32, ifindex: u32) -> Meta {
    Meta {
        magic: META_MAGIC,
        action,
        vni: VNI,
        ifindex,
    }
}

/// The non-zero reason counters, by name.
fn named_reasons(counts: &[u64]) -> Vec<(&'static str, u64)> {
    Reason::ALL
        .iter()
        .zip(counts)
        .filter(|(_, n)| **n != 0)
        .map(|(r, n)| (r.name(), *n))
        .collect()
}

fn parse_meta(name: &str, bytes: &[u8]) -> Meta {
    assert_eq!(bytes.len(), size_of::<Meta>(), "{name}: metadata length");
    let word = |i: usize| u32::from_ne_bytes(bytes[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    Meta {
        magic: word(0),
        action: word(1),
        vni: word(2),
        ifindex: word(3),
    }
}

/// Compares `got` with `want` field by field, then the rest, then the length.
fn check_fields(name: &str, got: &[u8], want: &[u8], fields: Fields) {
    for (field, range) in fields {
        assert_eq!(
            got.get(range.clone()),
            want.get(range.clone()),
            "{name}: {field} (bytes {range:?})"
        );
    }
    let rest = fields.last().map_or(0, |(_, r)| r.end);
    assert_eq!(
        got.get(rest..),
        want.get(rest..),
        "{name}: bytes {rest}.. (payload)"
    );
    assert_eq!(got.len(), want.len(), "{name}: frame length");
}

/// Compares an FDB entry; the timestamp of an expected learned (or
/// followed) entry is a bound the entry's must be past (learned or
/// refreshed by the row).
fn check_fdb(name: &str, mac: Mac, got: Option<FdbEntry>, want: Option<FdbEntry>) {
    let got = match (got, want) {
        (Some(g), Some(w)) if w.flags & (FDB_F_LEARNED | FDB_F_FOLLOWED) != 0 => {
            assert!(
                g.last_seen_ns > w.last_seen_ns,
                "{name}: FDB {mac:02x?} last seen at {} ns, not refreshed",
                g.last_seen_ns
            );
            Some(FdbEntry {
                last_seen_ns: w.last_seen_ns,
                ..g
            })
        }
        _ => got,
    };
    assert_eq!(got, want, "{name}: FDB entry of {mac:02x?}");
}

/// Runs every row (each on its own datapath), then fails naming the rows
/// that failed; each failure's message is printed as it happens.
fn run_table(program: &'static str, cases: &[Case]) {
    let failed: Vec<&str> = cases
        .iter()
        .filter(|case| catch_unwind(AssertUnwindSafe(|| case.run(program))).is_err())
        .map(|case| case.name)
        .collect();
    assert!(failed.is_empty(), "{program}: rows failed: {failed:#?}");
}

// ---- expectations ---------------------------------------------------------------

/// Where a MAC is learned: behind `vtep`.
fn remote_at(vtep: [u8; 4]) -> FdbEntry {
    FdbEntry::remote(VtepAddr::v4(vtep), 0, 0)
}

/// Where a MAC is learned: on access port `ifindex`.
fn local_on(ifindex: u32) -> FdbEntry {
    FdbEntry::local(ifindex, 0, 0)
}

fn static_remote(vtep: [u8; 4]) -> FdbEntry {
    FdbEntry::remote(VtepAddr::v4(vtep), FDB_F_STATIC, 0)
}

fn static_local(ifindex: u32) -> FdbEntry {
    FdbEntry::local(ifindex, FDB_F_STATIC, 0)
}

/// Learned behind `vtep` long ago (timestamp 1 ns): due for a refresh. As an
/// expectation: learned there, refreshed since.
fn stale_remote(vtep: [u8; 4]) -> FdbEntry {
    FdbEntry::remote(VtepAddr::v4(vtep), FDB_F_LEARNED, 1)
}

/// Learned on `ifindex` long ago; as an expectation: refreshed since.
fn stale_local(ifindex: u32) -> FdbEntry {
    FdbEntry::local(ifindex, FDB_F_LEARNED, 1)
}

fn rx(inner: &[u8]) -> VniCounters {
    VniCounters {
        rx_packets: 1,
        rx_bytes: inner.len() as u64,
        ..VniCounters::default()
    }
}

fn flooded_rx(inner: &[u8]) -> VniCounters {
    VniCounters {
        flood_packets: 1,
        ..rx(inner)
    }
}

fn tx(inner: &[u8]) -> VniCounters {
    VniCounters {
        tx_packets: 1,
        tx_bytes: (at::INNER + inner.len()) as u64,
        ..VniCounters::default()
    }
}

fn local(frame: &[u8]) -> VniCounters {
    VniCounters {
        local_packets: 1,
        local_bytes: frame.len() as u64,
        ..VniCounters::default()
    }
}

fn flooded() -> VniCounters {
    VniCounters {
        flood_packets: 1,
        ..VniCounters::default()
    }
}

// ---- vtep_uplink: decapsulation ----------------------------------------------------

/// The inner frame of most uplink rows: FAR_MAC (behind REMOTE_VTEP) to
/// LOCAL_MAC (on the access port).
fn inner_unicast() -> Vec<u8> {
    tenant(LOCAL_MAC, FAR_MAC)
}

/// A VXLAN frame that must be decapsulated, FAR_MAC learned, and the inner
/// frame redirected to LOCAL_MAC's port.
fn decapsulated(name: &'static str, input: Vec<u8>) -> Case {
    let inner = inner_unicast();
    Case::new(name, input, XDP_REDIRECT)
        .output(Output::Frame(inner.clone()))
        .stats(rx(&inner))
        .learns(FAR_MAC, remote_at(REMOTE_VTEP))
}

/// A VXLAN frame whose inner frame (from FAR_MAC) must be flooded through
/// TC: decapsulated, passed with META_FLOOD, FAR_MAC learned.
fn flooded_in(name: &'static str, inner: Vec<u8>) -> Case {
    Case::new(name, from_remote(&inner), XDP_PASS)
        .output(Output::Frame(inner.clone()))
        .meta(META_FLOOD, 0)
        .reason(Reason::Flooded)
        .stats(flooded_rx(&inner))
        .learns(FAR_MAC, remote_at(REMOTE_VTEP))
}

/// A malformed VXLAN frame: dropped, untouched, nothing learned.
fn rejected(name: &'static str, input: Vec<u8>, reason: Reason) -> Case {
    Case::drops(name, input, reason).fdb(FAR_MAC, None)
}

/// The good frame with `edit` applied.
fn uplink_edited(edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    edited(from_remote(&inner_unicast()), edit)
}

fn uplink_cases() -> Vec<Case> {
    let good = from_remote(&inner_unicast());
    let port2_ifindex = port2();
    vec![
        decapsulated("unicast to a local MAC", good.clone()),
        decapsulated(
            "IPv4 options (IHL 6)",
            Outer::FROM_REMOTE.frame_with(&[1, 1, 1, 0], VNI, &inner_unicast()),
        ),
        decapsulated("one 802.1Q tag", vlan_tagged(&good, 10)),
        decapsulated(
            "Ethernet padding after the IP packet",
            [good.clone(), vec![0; 6]].concat(),
        ),
        decapsulated("source check, known VTEP", good.clone())
            .setup(|dp| dp.check_source(&[OTHER_VTEP, REMOTE_VTEP])),
        decapsulated("learned entry refreshed in place", good.clone())
            .setup(|dp| dp.fdb_set(FAR_MAC, stale_remote(REMOTE_VTEP)))
            .fdb(FAR_MAC, Some(stale_remote(REMOTE_VTEP))),
        decapsulated("learned local MAC moves to the remote VTEP", good.clone())
            .setup(|dp| dp.fdb_set(FAR_MAC, stale_local(PORT1)))
            .fdb(FAR_MAC, Some(stale_remote(REMOTE_VTEP))),
        decapsulated("static entry kept", good.clone())
            .setup(|dp| dp.fdb_set(FAR_MAC, static_local(PORT1)))
            .fdb(FAR_MAC, Some(static_local(PORT1))),
        decapsulated("learning off", good.clone())
            .setup(|dp| dp.set_vni(VniInfo::default()))
            .fdb(FAR_MAC, None),
        decapsulated("FDB full: the source is not learned", good.clone())
            .setup(Datapath::fill_fdb)
            .reason(Reason::FdbFull)
            .fdb(FAR_MAC, None),
        decapsulated("maxaddress reached", good.clone())
            .setup(|dp| {
                dp.set_max_addresses(1);
                dp.set_learned(1);
            })
            .reason(Reason::LearningLimit)
            .fdb(FAR_MAC, None),
        flooded_in(
            "maxaddress: exactly 4 of 7 sources learned",
            tenant(BROADCAST, FAR_MAC),
        )
        .setup(|dp| dp.learn_past_the_limit(|src| from_remote(&tenant(BROADCAST, src))))
        .reason(Reason::LearningLimit)
        .fdb(FAR_MAC, None),
        decapsulated(
            "reserved VXLAN bits set (ignored on receipt)",
            uplink_edited(|f| {
                f[at::VXLAN..at::VXLAN_VNI].fill(0xff);
                f[at::INNER - 1] = 0xff;
            }),
        ),
        flooded_in("inner broadcast", tenant(BROADCAST, FAR_MAC)),
        flooded_in("inner multicast", tenant(MULTICAST_MAC, FAR_MAC)),
        flooded_in("unknown inner unicast", tenant(UNKNOWN_MAC, FAR_MAC)),
        Case::new(
            "local port without XDP: skb delivery",
            from_remote(&tenant(PORT2_MAC, FAR_MAC)),
            XDP_PASS,
        )
        .setup(|dp| dp.fdb_set(PORT2_MAC, static_local(port2())))
        .output(Output::Frame(tenant(PORT2_MAC, FAR_MAC)))
        .meta(META_DELIVER, port2_ifindex)
        .reason(Reason::SkbDelivery)
        .stats(rx(&tenant(PORT2_MAC, FAR_MAC)))
        .learns(FAR_MAC, remote_at(REMOTE_VTEP)),
        rejected(
            "no I flag",
            uplink_edited(|f| f[at::VXLAN] = 0),
            Reason::BadFlags,
        ),
        rejected(
            "unknown VNI",
            Outer::FROM_REMOTE.frame_with(&[], OTHER_VNI, &inner_unicast()),
            Reason::UnknownVni,
        ),
        rejected(
            "IHL 4",
            uplink_edited(|f| f[at::IP_VIHL] = 0x44),
            Reason::BadIpHeader,
        ),
        rejected(
            "IP version 6 in an IPv4 ethertype",
            uplink_edited(|f| f[at::IP_VIHL] = 0x65),
            Reason::BadIpHeader,
        ),
        rejected(
            "first fragment (MF)",
            uplink_edited(|f| set_be16(f, at::IP_FRAG, IPV4_MF)),
            Reason::Fragment,
        ),
        rejected(
            "cut short (IP total length beyond the frame)",
            uplink_edited(|f| f.truncate(f.len() - 4)),
            Reason::Truncated,
        ),
        rejected(
            "UDP length beyond the IP packet",
            uplink_edited(|f| {
                let longer = be16_at(f, at::UDP_LENGTH) + 4;
                set_be16(f, at::UDP_LENGTH, longer);
            }),
            Reason::Truncated,
        ),
        rejected(
            "UDP length too small for VXLAN and Ethernet",
            uplink_edited(|f| set_be16(f, at::UDP_LENGTH, 20)),
            Reason::Truncated,
        ),
        rejected(
            "multicast inner source MAC",
            from_remote(&tenant(LOCAL_MAC, MULTICAST_MAC)),
            Reason::BadSourceMac,
        ),
        rejected(
            "all-zero inner source MAC",
            from_remote(&tenant(LOCAL_MAC, ZERO_MAC)),
            Reason::BadSourceMac,
        ),
        Case::drops(
            "inner destination behind a remote VTEP (split horizon)",
            from_remote(&tenant(REMOTE_MAC, FAR_MAC)),
            Reason::SplitHorizon,
        )
        .learns(FAR_MAC, remote_at(REMOTE_VTEP)),
        rejected(
            "source check, unknown VTEP",
            good.clone(),
            Reason::UnknownSourceVtep,
        )
        .setup(|dp| dp.check_source(&[OTHER_VTEP])),
        rejected(
            "source check, no flood list",
            good.clone(),
            Reason::UnknownSourceVtep,
        )
        .setup(|dp| dp.check_source(&[])),
    ]
    .into_iter()
    .chain(not_vxlan_cases())
    .collect()
}

/// Uplink frames that are not VXLAN for this VTEP: the host's.
fn not_vxlan_cases() -> Vec<Case> {
    vec![
        Case::not_vxlan("ARP", arp_request(ROUTER_MAC)),
        Case::not_vxlan(
            "UDP to another port",
            uplink_edited(|f| set_be16(f, at::UDP_DPORT, 53)),
        ),
        Case::not_vxlan(
            "IPv4 to another address",
            uplink_edited(|f| f[at::IP_DST..at::IP_DST + 4].copy_from_slice(&OTHER_VTEP)),
        ),
        Case::not_vxlan("TCP", uplink_edited(|f| f[at::IP_PROTO] = IPPROTO_TCP)),
        Case::not_vxlan(
            "later fragment",
            uplink_edited(|f| set_be16(f, at::IP_FRAG, 1)),
        ),
        Case::not_vxlan("underlay not configured", from_remote(&inner_unicast()))
            .setup(|dp| dp.set_underlay(Underlay::default())),
    ]
}

#[test]
fn uplink_decap() {
    let _netns = Netns::enter();
    run_table(programs::UPLINK_XDP, &uplink_cases());
}

// ---- vtep_access: switching and encapsulation ------------------------------------

/// WORKLOAD_MAC's frame to REMOTE_MAC.
fn workload_to_remote() -> Vec<u8> {
    tenant(REMOTE_MAC, WORKLOAD_MAC)
}

/// WORKLOAD_MAC's frame to REMOTE_MAC, encapsulated and redirected to the
/// uplink; WORKLOAD_MAC learned on the access port.
fn encapsulated(name: &'static str, ports: RangeInclusive<u16>) -> Case {
    let inner = workload_to_remote();
    Case::new(name, inner.clone(), XDP_REDIRECT)
        .output(Output::Encap {
            dmac: ROUTER_MAC,
            smac: UPLINK_MAC,
            ports,
            inner: inner.clone(),
            udp_checksum: false,
        })
        .stats(tx(&inner))
        .learns(WORKLOAD_MAC, local_on(PORT1))
}

/// `inner` from WORKLOAD_MAC, encapsulated with the outer UDP checksum
/// (`udp_checksum = true`) from source port 50000.
fn checksummed(name: &'static str, inner: Vec<u8>) -> Case {
    Case::new(name, inner.clone(), XDP_REDIRECT)
        .setup(|dp| {
            dp.update_underlay(|ul| {
                ul.flags |= UNDERLAY_F_UDP_CSUM;
                (ul.srcport_min, ul.srcport_max) = (CSUM_SRC_PORT, CSUM_SRC_PORT);
                ul.mtu = 9000;
            })
        })
        .output(Output::Encap {
            dmac: ROUTER_MAC,
            smac: UPLINK_MAC,
            ports: CSUM_SRC_PORT..=CSUM_SRC_PORT,
            inner: inner.clone(),
            udp_checksum: true,
        })
        .stats(tx(&inner))
        .learns(WORKLOAD_MAC, local_on(PORT1))
}

const CSUM_SRC_PORT: u16 = 50_000;

/// `frame` with `n` bytes of Ethernet padding after it (not part of the IP
/// packet; the checksum covers them all the same).
fn padded(frame: Vec<u8>, n: usize) -> Vec<u8> {
    let pad = (0..n).map(|i| (i * 31 + 7) as u8);
    frame.into_iter().chain(pad).collect()
}

/// An inner frame whose encapsulation's UDP checksum comes to 0, which
/// must go out as 0xffff: its last two bytes are chosen to make it so.
fn checksum_zero_inner() -> Vec<u8> {
    let mut inner = [workload_to_remote(), vec![0, 0]].concat();
    let outer =
        |inner: &[u8]| Outer::to_remote_vtep(ROUTER_MAC, UPLINK_MAC, CSUM_SRC_PORT).frame(inner);
    // Adding the one's complement of the sum (in place of the two zero
    // bytes) makes it all ones: checksum 0.
    let c = udp_checksum(&outer(&inner));
    let n = inner.len();
    inner[n - 2..].copy_from_slice(&c.to_be_bytes());
    assert_eq!(udp_checksum(&outer(&inner)), 0, "zero-checksum fixture");
    inner
}

/// A frame from WORKLOAD_MAC handed to TC for flooding; WORKLOAD_MAC learned.
fn flooded_out(name: &'static str, input: Vec<u8>) -> Case {
    Case::new(name, input, XDP_PASS)
        .meta(META_FLOOD, PORT1)
        .reason(Reason::Flooded)
        .stats(flooded())
        .learns(WORKLOAD_MAC, local_on(PORT1))
}

/// The outer IP length of `workload_to_remote()` encapsulated.
fn workload_to_remote_ip_len() -> u16 {
    (workload_to_remote().len() + at::INNER - ETH_LEN) as u16
}

/// A frame from WORKLOAD_MAC, which is learned on the access port, then
/// dropped (untouched) under `reason`.
fn dropped_after_learning(name: &'static str, input: Vec<u8>, reason: Reason) -> Case {
    Case::drops(name, input, reason).learns(WORKLOAD_MAC, local_on(PORT1))
}

fn access_cases() -> Vec<Case> {
    let port2_ifindex = port2();
    let to_port2 = tenant(PORT2_MAC, WORKLOAD_MAC);
    vec![
        encapsulated("unicast to a remote MAC", SRC_PORTS),
        encapsulated("one source port configured", 50_000..=50_000).setup(|dp| {
            dp.update_underlay(|ul| (ul.srcport_min, ul.srcport_max) = (50_000, 50_000))
        }),
        encapsulated("outer packet exactly the MTU", SRC_PORTS)
            .setup(|dp| dp.update_underlay(|ul| ul.mtu = workload_to_remote_ip_len())),
        Case::new(
            "no neighbour for the remote VTEP",
            workload_to_remote(),
            XDP_PASS,
        )
        .setup(Datapath::remove_neigh)
        .output(Output::Encap {
            dmac: ZERO_MAC,
            smac: ZERO_MAC,
            ports: SRC_PORTS,
            inner: workload_to_remote(),
            udp_checksum: false,
        })
        .meta(META_NEIGH, 0)
        .reason(Reason::NoNeighbour)
        .stats(tx(&workload_to_remote()))
        .learns(WORKLOAD_MAC, local_on(PORT1)),
        dropped_after_learning(
            "outer packet one byte over the MTU",
            workload_to_remote(),
            Reason::MtuExceeded,
        )
        .setup(|dp| dp.update_underlay(|ul| ul.mtu = workload_to_remote_ip_len() - 1)),
        dropped_after_learning(
            "outer packet over the MTU, no neighbour",
            workload_to_remote(),
            Reason::MtuExceeded,
        )
        .setup(|dp| {
            dp.remove_neigh();
            dp.update_underlay(|ul| ul.mtu = workload_to_remote_ip_len() - 1);
        }),
        dropped_after_learning(
            "underlay not configured",
            workload_to_remote(),
            Reason::NoUnderlay,
        )
        .setup(|dp| dp.set_underlay(Underlay::default())),
        Case::new("local switching", to_port2.clone(), XDP_REDIRECT)
            .setup(|dp| {
                dp.fdb_set(PORT2_MAC, static_local(port2()));
                dp.port_tx_add(port2());
            })
            .stats(local(&to_port2))
            .learns(WORKLOAD_MAC, local_on(PORT1)),
        Case::new(
            "local port without XDP: skb delivery",
            to_port2.clone(),
            XDP_PASS,
        )
        .setup(|dp| dp.fdb_set(PORT2_MAC, static_local(port2())))
        .meta(META_DELIVER, port2_ifindex)
        .reason(Reason::SkbDelivery)
        .stats(local(&to_port2))
        .learns(WORKLOAD_MAC, local_on(PORT1)),
        dropped_after_learning(
            "local port without XDP, no room for metadata",
            to_port2.clone(),
            Reason::RedirectFailed,
        )
        .setup(|dp| dp.fdb_set(PORT2_MAC, static_local(port2())))
        .setup(Datapath::metadata_full),
        dropped_after_learning(
            "FIB lookup: no route to the remote VTEP",
            workload_to_remote(),
            Reason::NoRoute,
        )
        .setup(Datapath::fib_without_routes),
        dropped_after_learning(
            "remote VTEP over IPv6, the underlay IPv4 only",
            workload_to_remote(),
            Reason::NoUnderlay,
        )
        .setup(|dp| {
            // 2001:db8::2
            let mut v6 = [0; 16];
            v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            v6[15] = 2;
            dp.fdb_set(
                REMOTE_MAC,
                FdbEntry::remote(VtepAddr::v6(v6), FDB_F_STATIC, 0),
            );
        }),
        dropped_after_learning(
            "destination on the ingress port (hairpin)",
            tenant(LOCAL_MAC, WORKLOAD_MAC),
            Reason::Hairpin,
        ),
        flooded_out("broadcast", tenant(BROADCAST, WORKLOAD_MAC)),
        flooded_out("ARP request", arp_request(WORKLOAD_MAC)),
        flooded_out("unknown unicast", tenant(UNKNOWN_MAC, WORKLOAD_MAC)),
        Case::drops(
            "multicast source MAC",
            tenant(REMOTE_MAC, MULTICAST_MAC),
            Reason::BadSourceMac,
        ),
        Case::drops(
            "all-zero source MAC",
            tenant(REMOTE_MAC, ZERO_MAC),
            Reason::BadSourceMac,
        ),
        Case::drops("port not configured", workload_to_remote(), Reason::NoPort)
            .setup(Datapath::remove_port)
            .fdb(WORKLOAD_MAC, None),
        Case::drops(
            "port in an unknown VNI",
            workload_to_remote(),
            Reason::UnknownVni,
        )
        .setup(|dp| dp.set_port(OTHER_VNI))
        .fdb(WORKLOAD_MAC, None),
        Case::drops(
            "802.1Q-tagged frame",
            vlan_tagged(&workload_to_remote(), 10),
            Reason::UnknownVlan,
        )
        .fdb(WORKLOAD_MAC, None),
        flooded_out("maxaddress reached", tenant(BROADCAST, WORKLOAD_MAC))
            .setup(|dp| {
                dp.set_max_addresses(1);
                let first = dp.run(&tenant(BROADCAST, NEIGHBOUR_MAC));
                assert_eq!(first.verdict, XDP_PASS, "maxaddress: first frame");
            })
            .reason(Reason::LearningLimit)
            .fdb(WORKLOAD_MAC, None)
            .fdb(
                NEIGHBOUR_MAC,
                Some(FdbEntry::local(PORT1, FDB_F_LEARNED, 0)),
            ),
        flooded_out(
            "maxaddress: exactly 4 of 7 sources learned",
            tenant(BROADCAST, WORKLOAD_MAC),
        )
        .setup(|dp| dp.learn_past_the_limit(|src| tenant(BROADCAST, src)))
        .reason(Reason::LearningLimit)
        .fdb(WORKLOAD_MAC, None),
        flooded_out("learning off", tenant(BROADCAST, WORKLOAD_MAC))
            .setup(|dp| dp.set_vni(VniInfo::default()))
            .fdb(WORKLOAD_MAC, None),
        encapsulated("static entry kept", SRC_PORTS)
            .setup(|dp| dp.fdb_set(WORKLOAD_MAC, static_remote(OTHER_VTEP)))
            .fdb(WORKLOAD_MAC, Some(static_remote(OTHER_VTEP))),
        encapsulated("learned remote MAC moves to the access port", SRC_PORTS)
            .setup(|dp| dp.fdb_set(WORKLOAD_MAC, stale_remote(OTHER_VTEP)))
            .fdb(WORKLOAD_MAC, Some(stale_local(PORT1))),
        checksummed("UDP checksum", workload_to_remote()),
        checksummed("UDP checksum, odd length", padded(workload_to_remote(), 1)),
        // 512-byte chunks, then every smaller step, then a last byte.
        checksummed(
            "UDP checksum, 1,535-byte frame",
            padded(workload_to_remote(), 1535 - 60),
        ),
        checksummed("UDP checksum 0 sent as 0xffff", checksum_zero_inner()),
    ]
}

#[test]
fn access_encap() {
    let _netns = Netns::enter();
    run_table(programs::ACCESS_XDP, &access_cases());
}

/// The outer UDP source port is a function of the inner flow: the same for
/// every frame of a flow, different between flows, always in range.
#[test]
fn encap_source_port_follows_the_flow() {
    let _netns = Netns::enter();
    let dp = Datapath::load(programs::ACCESS_XDP);
    let port = |src_port: u16| {
        let run = dp.run(&tenant_udp(REMOTE_MAC, WORKLOAD_MAC, src_port));
        assert_eq!(run.verdict, XDP_REDIRECT, "flow {src_port}: verdict");
        let p = be16_at(&run.frame, at::UDP);
        assert!(SRC_PORTS.contains(&p), "flow {src_port}: source port {p}");
        p
    };
    assert_eq!(port(1000), port(1000), "one flow, two source ports");
    let ports: std::collections::BTreeSet<u16> = (1000..1016).map(port).collect();
    assert!(
        ports.len() >= 14,
        "16 flows on only {} source ports",
        ports.len()
    );
}

// ---- AF_XDP steering ----------------------------------------------------------------

/// An AF_XDP socket bound to queue 0 of the second access port (copy
/// mode), for the steering programs to find in `XSKS`. Dropped with the
/// test.
struct BoundXsk {
    _umem: Umem,
    _tx: TxQueue,
    _rx: RxQueue,
    _rings: Option<(FillQueue, CompQueue)>,
}

thread_local! {
    /// The socket of the test running on this thread, for row setups.
    static XSK_FD: Cell<Option<RawFd>> = const { Cell::new(None) };
}

impl BoundXsk {
    fn bind() -> BoundXsk {
        ip(&format!("link set {PORT2} up"));
        ip(&format!("link set {PORT2}-peer up"));
        let umem_config = UmemConfig::builder()
            .build()
            .unwrap_or_else(|e| panic!("UMEM config: {e}"));
        let frames = NonZeroU32::new(64).expect("non-zero");
        let (umem, _descs) = Umem::new(umem_config, frames, false)
            .unwrap_or_else(|e| panic!("creating a UMEM: {e}"));
        let config = SocketConfig::builder()
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .build();
        let iface = PORT2.parse().expect("interface name");
        // SAFETY: one socket on this (interface, queue); INHIBIT_PROG_LOAD:
        // libxdp attaches nothing, so dropping it detaches nothing.
        let (tx, rx, rings) = unsafe { Socket::new(config, &umem, &iface, 0) }
            .unwrap_or_else(|e| panic!("AF_XDP socket on {PORT2} queue 0: {e}"));
        XSK_FD.set(Some(rx.fd().as_raw_fd()));
        BoundXsk {
            _umem: umem,
            _tx: tx,
            _rx: rx,
            _rings: rings,
        }
    }
}

impl Drop for BoundXsk {
    fn drop(&mut self) {
        XSK_FD.set(None);
    }
}

/// The slot of the second access port in `XSKS` (any below PORT_CAPACITY).
const PORT2_SLOT: u32 = 3;

impl Datapath {
    /// Frames arrive on the second access port, which has a slot in
    /// `XSK_SLOTS` but no socket in `XSKS` (the engine is not running).
    fn slot_without_socket(&mut self) {
        self.ingress = port2();
        self.hash::<u32, u32>(names::XSK_SLOTS)
            .insert(port2(), PORT2_SLOT, 0)
            .expect("XSK_SLOTS insert");
    }

    /// Frames arrive on the second access port, whose queue 0 has this
    /// test's socket in `XSKS` (the AF_XDP engine's layout: slot ×
    /// XSK_MAX_QUEUES + queue).
    fn steer_port2(&mut self) {
        let fd = XSK_FD.get().expect("a BoundXsk in this test");
        self.slot_without_socket();
        self.map::<XskMap<_>>(names::XSKS)
            .set(PORT2_SLOT * XSK_MAX_QUEUES, fd, 0)
            .expect("XSKS set");
    }
}

/// A frame for the engine: redirected to the socket, untouched.
fn steered(name: &'static str, input: Vec<u8>) -> Case {
    Case::new(name, input, XDP_REDIRECT).setup(Datapath::steer_port2)
}

/// What the AF_XDP engine's uplink program sends to its socket: IPv4/UDP to
/// this VTEP's address and port, whatever else is wrong with it (the
/// engine counts that); the rest of the host's traffic passes.
fn xsk_uplink_cases() -> Vec<Case> {
    let good = from_remote(&inner_unicast());
    vec![
        steered("VXLAN for this VTEP", good.clone()),
        steered("one 802.1Q tag", vlan_tagged(&good, 10)),
        steered(
            "IPv4 options (IHL 6)",
            Outer::FROM_REMOTE.frame_with(&[1, 1, 1, 0], VNI, &inner_unicast()),
        ),
        steered(
            "IHL 4: the engine's to count",
            uplink_edited(|f| f[at::IP_VIHL] = 0x44),
        ),
        steered(
            "first fragment (MF): the engine's to count",
            uplink_edited(|f| set_be16(f, at::IP_FRAG, IPV4_MF)),
        ),
        steered(
            "no I flag: the engine's to count",
            uplink_edited(|f| f[at::VXLAN] = 0),
        ),
        Case::new("interface without a slot", good.clone(), XDP_PASS),
        Case::new("slot without a socket", good, XDP_PASS).setup(Datapath::slot_without_socket),
    ]
    .into_iter()
    // Not vtep's: passed, even with a socket there.
    .chain(
        not_vxlan_cases()
            .into_iter()
            .map(|c| c.uncounted().setup(Datapath::steer_port2)),
    )
    .collect()
}

/// The engine's access-port program: every frame to the socket.
fn xsk_access_cases() -> Vec<Case> {
    vec![
        steered("unicast", workload_to_remote()),
        steered("broadcast", tenant(BROADCAST, WORKLOAD_MAC)),
        steered("ARP request", arp_request(WORKLOAD_MAC)),
        steered(
            "802.1Q-tagged frame",
            vlan_tagged(&workload_to_remote(), 10),
        ),
        Case::new("interface without a slot", workload_to_remote(), XDP_PASS),
        Case::new("slot without a socket", workload_to_remote(), XDP_PASS)
            .setup(Datapath::slot_without_socket),
    ]
}

/// Both steering programs, against one socket.
#[test]
fn xsk_steering() {
    let _netns = Netns::enter();
    let _xsk = BoundXsk::bind();
    run_table(programs::XSK_UPLINK, &xsk_uplink_cases());
    run_table(programs::XSK_ACCESS, &xsk_access_cases());
}

// ---- TC programs ----------------------------------------------------------------

/// BPF_PROG_TEST_RUN cannot give an skb XDP metadata: what is reachable in
/// the real programs is that frames without it are not vtep's, and go on
/// untouched. What they do with metadata: [`uplink_tc_cases`] and
/// [`access_tc_cases`], through the fixture programs.
fn tc_cases() -> Vec<Case> {
    vec![
        Case::new("IPv4 frame", tenant(REMOTE_MAC, WORKLOAD_MAC), TC_ACT_OK),
        Case::new("broadcast", tenant(BROADCAST, WORKLOAD_MAC), TC_ACT_OK),
        Case::new("ARP request", arp_request(WORKLOAD_MAC), TC_ACT_OK),
        Case::new("VXLAN frame", from_remote(&inner_unicast()), TC_ACT_OK),
    ]
}

#[test]
fn uplink_tc_without_metadata() {
    let _netns = Netns::enter();
    run_table(programs::UPLINK_TC, &tc_cases());
}

#[test]
fn access_tc_without_metadata() {
    let _netns = Netns::enter();
    run_table(programs::ACCESS_TC, &tc_cases());
}

// ---- TC dispatch, on injected metadata --------------------------------------------

impl Datapath {
    /// Brings the second access port (and its peer) up or down: cloning a
    /// flood copy to a port that is down fails. (The namespace is the
    /// table's: every row that needs one or the other says so.)
    fn port2_link(&mut self, up: bool) {
        let state = if up { "up" } else { "down" };
        ip(&format!("link set {PORT2} {state}"));
        ip(&format!("link set {PORT2}-peer {state}"));
        if up {
            wait_oper_up(PORT2);
            wait_oper_up(&format!("{PORT2}-peer"));
        }
    }

    /// VNI 100 floods to PORT1 and the second access port, both up.
    fn both_ports(&mut self) {
        self.port2_link(true);
        self.set_vni_ports(&[PORT1, port2()]);
    }
}

/// An ifindex no device of the test's namespace has.
const NO_SUCH_PORT: u32 = 999;
/// A `Meta::action` no TC program knows.
const UNKNOWN_ACTION: u32 = 99;

/// What the TC flood leaves behind: the frame, dropped, its copies sent.
fn flood_tc(name: &'static str, input: Vec<u8>, from: u32) -> Case {
    Case::new(name, input, TC_ACT_SHOT).injects(META_FLOOD, from)
}

fn local_copies(frame: &[u8], n: u64) -> VniCounters {
    VniCounters {
        local_packets: n,
        local_bytes: n * frame.len() as u64,
        ..VniCounters::default()
    }
}

/// `n` local copies of `frame` and one encapsulated copy of it.
fn local_and_tx(frame: &[u8], n: u64) -> VniCounters {
    let mut c = local_copies(frame, n);
    c.add(&tx(frame));
    c
}

/// The decapsulated frames `vtep_uplink` passes to `vtep_uplink_tc`. A
/// redirect is a verdict here (`TC_ACT_REDIRECT`): a test run does not
/// carry it out.
fn uplink_tc_cases() -> Vec<Case> {
    let bum = tenant(BROADCAST, FAR_MAC);
    let port2_ifindex = port2();
    vec![
        flood_tc(
            "flood: a copy to every access port of the VNI",
            bum.clone(),
            0,
        )
        .setup(Datapath::both_ports),
        flood_tc("flood: no access ports in the VNI", bum.clone(), 0),
        flood_tc("flood: a member port that is down", bum.clone(), 0)
            .setup(|dp| {
                dp.port2_link(false);
                dp.set_vni_ports(&[PORT1, port2()]);
            })
            .reason(Reason::FloodFailed),
        flood_tc("flood: a member port that is gone", bum.clone(), 0)
            .setup(|dp| dp.set_vni_ports(&[NO_SUCH_PORT, PORT1]))
            .reason(Reason::FloodFailed),
        Case::new(
            "deliver on the skb path",
            tenant(PORT2_MAC, FAR_MAC),
            TC_ACT_REDIRECT,
        )
        .injects(META_DELIVER, port2_ifindex),
        Case::new("unknown action", bum.clone(), TC_ACT_SHOT)
            .injects(UNKNOWN_ACTION, 0)
            .reason(Reason::UnknownMeta),
        Case::new(
            "neighbour hand-off: the access side's, not the uplink's",
            from_remote(&inner_unicast()),
            TC_ACT_SHOT,
        )
        .injects(META_NEIGH, 0)
        .reason(Reason::UnknownMeta),
    ]
}

#[test]
fn uplink_tc_dispatch() {
    let _netns = Netns::enter();
    run_table(fixture::UPLINK_TC, &uplink_tc_cases());
}

/// A flood from WORKLOAD_MAC on PORT1: a local copy to the second port, and
/// `inner` encapsulated for REMOTE_VTEP, the flood list, from the outer
/// MACs of its next hop (the frame keeps the outer header of the last copy
/// sent).
fn flooded_to_remote(name: &'static str, inner: Vec<u8>) -> Case {
    flood_tc(name, inner.clone(), PORT1)
        .setup(|dp| {
            dp.both_ports();
            dp.set_flood(&[REMOTE_VTEP]);
        })
        .output(Output::via_router(&inner))
        .stats(local_and_tx(&inner, 1))
}

/// The frames `vtep_access` passes to `vtep_access_tc`.
fn access_tc_cases() -> Vec<Case> {
    let bum = tenant(BROADCAST, WORKLOAD_MAC);
    let port2_ifindex = port2();
    // As `vtep_access` hands it over: encapsulated, outer MACs left zero.
    let encapsulated =
        Outer::to_remote_vtep(ZERO_MAC, ZERO_MAC, 50_000).frame(&workload_to_remote());
    vec![
        flooded_to_remote("flood: other ports and the flood list", bum.clone()),
        flooded_to_remote("flood: ARP request", arp_request(WORKLOAD_MAC)),
        flooded_to_remote("flood: unknown unicast", tenant(UNKNOWN_MAC, WORKLOAD_MAC)),
        // Handed to the uplink's TC program (cloned into its ingress,
        // marked) for the kernel to resolve, not lost; counted as sent. The
        // frame keeps the last header written: the resolved member's.
        flooded_to_remote("flood: a flood-list VTEP without a neighbour", bum.clone())
            .setup(|dp| dp.set_flood(&[OTHER_VTEP, REMOTE_VTEP]))
            .reason(Reason::FloodNoNeighbour)
            .stats({
                let mut c = local_and_tx(&bum, 1);
                c.add(&tx(&bum));
                c
            }),
        flooded_to_remote("flood: outer UDP checksum", bum.clone())
            .setup(|dp| {
                dp.update_underlay(|ul| {
                    ul.flags |= UNDERLAY_F_UDP_CSUM;
                    (ul.srcport_min, ul.srcport_max) = (CSUM_SRC_PORT, CSUM_SRC_PORT);
                })
            })
            .output(Output::Encap {
                dmac: ROUTER_MAC,
                smac: UPLINK_MAC,
                ports: CSUM_SRC_PORT..=CSUM_SRC_PORT,
                inner: bum.clone(),
                udp_checksum: true,
            }),
        flood_tc(
            "flood: no flood list, local copies only",
            bum.clone(),
            PORT1,
        )
        .setup(Datapath::both_ports)
        .stats(local_copies(&bum, 1)),
        flood_tc("flood: underlay not configured", bum.clone(), PORT1)
            .setup(|dp| {
                dp.both_ports();
                dp.set_flood(&[REMOTE_VTEP]);
                dp.set_underlay(Underlay::default());
            })
            .reason(Reason::NoUnderlay)
            .stats(local_copies(&bum, 1)),
        Case::new(
            "neighbour hand-off: bpf_redirect_neigh to the uplink",
            encapsulated.clone(),
            TC_ACT_REDIRECT,
        )
        .injects(META_NEIGH, 0),
        Case::new(
            "neighbour hand-off, underlay not configured",
            encapsulated,
            TC_ACT_SHOT,
        )
        .injects(META_NEIGH, 0)
        .setup(|dp| dp.set_underlay(Underlay::default()))
        .reason(Reason::NoUnderlay),
        Case::new(
            "deliver on the skb path",
            tenant(PORT2_MAC, WORKLOAD_MAC),
            TC_ACT_REDIRECT,
        )
        .injects(META_DELIVER, port2_ifindex),
        Case::new("unknown action", bum, TC_ACT_SHOT)
            .injects(UNKNOWN_ACTION, PORT1)
            .reason(Reason::UnknownMeta),
    ]
}

#[test]
fn access_tc_dispatch() {
    let _netns = Netns::enter();
    run_table(fixture::ACCESS_TC, &access_tc_cases());
}

// ---- followed VNIs (kernel fallback) ------------------------------------------------

/// CLOCK_MONOTONIC now, the clock of `bpf_ktime_get_coarse_ns`.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Mirrored by the follower (`FDB_F_FOLLOWED`), last handed to the kernel
/// `last_seen_ns` (1: long ago, due for a refresh).
fn followed_local(ifindex: u32, last_seen_ns: u64) -> FdbEntry {
    FdbEntry::local(ifindex, FDB_F_FOLLOWED, last_seen_ns)
}

fn followed_remote(vtep: [u8; 4], last_seen_ns: u64) -> FdbEntry {
    FdbEntry::remote(VtepAddr::v4(vtep), FDB_F_FOLLOWED, last_seen_ns)
}

/// A tenth of a second ago: the kernel saw it recently, no refresh due.
fn just_now() -> u64 {
    monotonic_ns() - 100_000_000
}

impl Datapath {
    /// Makes VNI 100 a followed VNI (kernel fallback), its vxlan device
    /// learning or not, with LOCAL_MAC and REMOTE_MAC mirrored (recently
    /// seen) instead of static.
    fn follow(&mut self, learning: bool) {
        self.set_vni(VniInfo {
            flags: VNI_F_FOLLOWED | if learning { VNI_F_LEARNING } else { 0 },
            ..VniInfo::default()
        });
        self.fdb_set(LOCAL_MAC, followed_local(PORT1, just_now()));
        self.fdb_set(REMOTE_MAC, followed_remote(REMOTE_VTEP, just_now()));
    }
}

/// A frame of a followed VNI passed untouched to the kernel, counted under
/// `reason`, nothing learned.
fn to_kernel(name: &'static str, input: Vec<u8>, reason: Reason) -> Case {
    Case::new(name, input, XDP_PASS)
        .reason(reason)
        .fdb(FAR_MAC, None)
        .fdb(WORKLOAD_MAC, None)
}

fn uplink_followed_cases() -> Vec<Case> {
    let good = from_remote(&inner_unicast());
    let inner = inner_unicast();
    vec![
        Case::new(
            "followed: to a mirrored local MAC",
            good.clone(),
            XDP_REDIRECT,
        )
        .setup(|dp| dp.follow(false))
        .output(Output::Frame(inner.clone()))
        .stats(rx(&inner))
        .fdb(FAR_MAC, None),
        to_kernel(
            "followed: inner broadcast",
            from_remote(&tenant(BROADCAST, FAR_MAC)),
            Reason::KernelFallback,
        )
        .setup(|dp| dp.follow(false)),
        to_kernel(
            "followed: unknown inner unicast",
            from_remote(&tenant(UNKNOWN_MAC, FAR_MAC)),
            Reason::KernelFallback,
        )
        .setup(|dp| dp.follow(false)),
        to_kernel(
            "followed: inner destination behind a remote VTEP",
            from_remote(&tenant(REMOTE_MAC, FAR_MAC)),
            Reason::KernelFallback,
        )
        .setup(|dp| dp.follow(false)),
        to_kernel(
            "followed, learning device: unknown source",
            good.clone(),
            Reason::BridgeRefresh,
        )
        .setup(|dp| dp.follow(true)),
        Case::new(
            "followed, learning device: source due for a refresh",
            good.clone(),
            XDP_PASS,
        )
        .setup(|dp| {
            dp.follow(true);
            dp.fdb_set(FAR_MAC, followed_remote(REMOTE_VTEP, 1));
        })
        .reason(Reason::BridgeRefresh)
        .fdb(FAR_MAC, Some(followed_remote(REMOTE_VTEP, 1))),
        Case::new(
            "followed, learning device: source seen recently",
            good.clone(),
            XDP_REDIRECT,
        )
        .setup(|dp| {
            dp.follow(true);
            dp.fdb_set(FAR_MAC, followed_remote(REMOTE_VTEP, just_now()));
        })
        .output(Output::Frame(inner.clone()))
        .stats(rx(&inner)),
        Case::new(
            "unknown VNI, the kernel has vxlan devices: theirs",
            Outer::FROM_REMOTE.frame_with(&[], OTHER_VNI, &inner_unicast()),
            XDP_PASS,
        )
        .setup(|dp| dp.update_underlay(|ul| ul.flags |= UNDERLAY_F_KERNEL_VXLAN))
        .reason(Reason::KernelFallback),
    ]
}

#[test]
fn uplink_decap_followed() {
    let _netns = Netns::enter();
    run_table(programs::UPLINK_XDP, &uplink_followed_cases());
}

fn access_followed_cases() -> Vec<Case> {
    let to_port2 = tenant(PORT2_MAC, WORKLOAD_MAC);
    let fresh = |dp: &mut Datapath| {
        dp.follow(false);
        dp.fdb_set(WORKLOAD_MAC, followed_local(PORT1, just_now()));
    };
    let inner = workload_to_remote();
    vec![
        to_kernel(
            "followed: broadcast",
            tenant(BROADCAST, WORKLOAD_MAC),
            Reason::KernelFallback,
        )
        .setup(|dp| dp.follow(false)),
        to_kernel(
            "followed: unknown source, for the bridge to learn",
            workload_to_remote(),
            Reason::BridgeRefresh,
        )
        .setup(|dp| dp.follow(false)),
        Case::new(
            "followed: source due for a refresh",
            workload_to_remote(),
            XDP_PASS,
        )
        .setup(|dp| {
            dp.follow(false);
            dp.fdb_set(WORKLOAD_MAC, followed_local(PORT1, 1));
        })
        .reason(Reason::BridgeRefresh)
        .fdb(WORKLOAD_MAC, Some(followed_local(PORT1, 1))),
        Case::new(
            "followed: source moved here from a remote VTEP",
            workload_to_remote(),
            XDP_PASS,
        )
        .setup(|dp| {
            dp.follow(false);
            dp.fdb_set(WORKLOAD_MAC, followed_remote(REMOTE_VTEP, 1));
        })
        .reason(Reason::BridgeRefresh),
        Case::new(
            "followed: to a mirrored remote MAC",
            inner.clone(),
            XDP_REDIRECT,
        )
        .setup(fresh)
        .output(Output::via_router(&inner))
        .stats(tx(&inner)),
        Case::new(
            "followed: to a mirrored local MAC on another port",
            to_port2.clone(),
            XDP_REDIRECT,
        )
        .setup(|dp| {
            dp.follow(false);
            dp.fdb_set(WORKLOAD_MAC, followed_local(PORT1, just_now()));
            dp.fdb_set(PORT2_MAC, followed_local(port2(), just_now()));
            dp.port_tx_add(port2());
        })
        .stats(local(&to_port2)),
        Case::new(
            "followed: unknown unicast",
            tenant(UNKNOWN_MAC, WORKLOAD_MAC),
            XDP_PASS,
        )
        .setup(fresh)
        .reason(Reason::KernelFallback),
        Case::new(
            "followed: destination on the ingress port (the bridge decides)",
            tenant(LOCAL_MAC, WORKLOAD_MAC),
            XDP_PASS,
        )
        .setup(fresh)
        .reason(Reason::KernelFallback),
    ]
}

#[test]
fn access_encap_followed() {
    let _netns = Netns::enter();
    run_table(programs::ACCESS_XDP, &access_followed_cases());
}

// ---- every reason ------------------------------------------------------------------

/// Every table of rows, with the program its test runs it on.
fn tables() -> Vec<(&'static str, Vec<Case>)> {
    vec![
        (programs::UPLINK_XDP, uplink_cases()),
        (programs::UPLINK_XDP, uplink_followed_cases()),
        (programs::ACCESS_XDP, access_cases()),
        (programs::ACCESS_XDP, access_followed_cases()),
        (programs::ACCESS_XDP, pmtu_cases()),
        (programs::UPLINK_TC, tc_cases()),
        (programs::ACCESS_TC, tc_cases()),
        (fixture::UPLINK_TC, uplink_tc_cases()),
        (fixture::ACCESS_TC, access_tc_cases()),
        (programs::XSK_UPLINK, xsk_uplink_cases()),
        (programs::XSK_ACCESS, xsk_access_cases()),
        (programs::UPLINK_XDP, issue9_decap_cases()),
        (programs::XSK_UPLINK, xsk_uplink_issue9_cases()),
        (programs::ACCESS_XDP, issue9_encap_cases()),
        (fixture::ACCESS_TC, issue9_flood_cases()),
    ]
}

/// Reasons no BPF_PROG_TEST_RUN row can produce, each with the why.
const NO_ROW: &[(Reason, &str)] = &[
    (
        Reason::StripFailed,
        "decap's bpf_xdp_adjust_head and _tail fail only on a frame shorter than \
         an Ethernet header after them, and the uplink parse has already checked \
         that the inner Ethernet header is there",
    ),
    (
        Reason::StaleSteering,
        "counted by the AF_XDP engine in userspace, not by a BPF program",
    ),
];

/// Every reason is counted by at least one row of the tables (each table
/// has its own test, which checks that its rows count what they say), or
/// is on [`NO_ROW`] with the reason why not: a new drop without a row
/// fails here.
#[test]
fn every_reason_has_a_row() {
    let _netns = Netns::enter();
    let mut rows: Vec<Vec<&str>> = vec![Vec::new(); Reason::ALL.len()];
    let tables = tables();
    for (_, cases) in &tables {
        for case in cases {
            for (reason, _) in &case.reasons {
                rows[*reason as usize].push(case.name);
            }
        }
    }
    let exempt = |r: Reason| NO_ROW.iter().any(|(e, _)| *e == r);
    let missing: Vec<&str> = Reason::ALL
        .iter()
        .filter(|r| rows[**r as usize].is_empty() && !exempt(**r))
        .map(|r| r.name())
        .collect();
    assert!(missing.is_empty(), "reasons no row produces: {missing:?}");
    for (r, why) in NO_ROW {
        assert!(
            rows[*r as usize].is_empty(),
            "{} is on NO_ROW ({why}) but rows produce it: {:?}",
            r.name(),
            rows[*r as usize]
        );
    }
    for r in Reason::ALL {
        println!("{:20} {} row(s)", r.name(), rows[r as usize].len());
    }
}

// ---- FDB events: what `vtep monitor` shows -------------------------------------

impl Datapath {
    /// Takes every record out of `FDB_EVENTS`, oldest first.
    fn take_events(&mut self) -> Vec<Vec<u8>> {
        let mut ring = self.map::<RingBuf<_>>(names::FDB_EVENTS);
        let mut out = Vec::new();
        while let Some(r) = ring.next() {
            out.push(r.to_vec());
        }
        out
    }

    /// The FDB events the ring had no room for, summed over CPUs.
    fn events_lost(&mut self) -> u64 {
        self.map::<PerCpuArray<_, u64>>(names::FDB_EV_LOST)
            .get(&0, 0)
            .expect("FDB_EV_LOST get")
            .iter()
            .sum()
    }
}

/// The event `kind` of `mac` in VNI 100 whose new entry is `new` (as the
/// FDB holds it after the run), stamped with that entry's time: the
/// exact bytes the ring must hold.
fn event_bytes(kind: EventKind, mac: Mac, old: FdbEntry, new: FdbEntry) -> [u8; EVENT_LEN] {
    FdbEvent::new(kind, FdbKey::new(VNI, mac), old, new, new.last_seen_ns).to_bytes()
}

/// A new MAC is one record, byte for byte; the same MAC again (seen
/// lately, then due for a refresh) is none.
#[test]
fn a_learned_mac_is_one_event_and_a_refresh_none() {
    let _netns = Netns::enter();
    let mut dp = Datapath::load(programs::UPLINK_XDP);
    let frame = from_remote(&inner_unicast());
    assert_eq!(dp.run(&frame).verdict, XDP_REDIRECT);
    let learned = dp.fdb(FAR_MAC).expect("FAR_MAC learned");
    assert_eq!(
        learned,
        FdbEntry::remote(
            VtepAddr::v4(REMOTE_VTEP),
            FDB_F_LEARNED,
            learned.last_seen_ns
        )
    );
    assert!(learned.last_seen_ns > 0, "{learned:?}");
    let events = dp.take_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0],
        event_bytes(EventKind::Learned, FAR_MAC, FdbEntry::default(), learned),
        "the record of a new MAC"
    );

    assert_eq!(dp.run(&frame).verdict, XDP_REDIRECT);
    assert_eq!(dp.take_events().len(), 0, "seen again at once: no event");
    dp.fdb_set(FAR_MAC, stale_remote(REMOTE_VTEP));
    assert_eq!(dp.run(&frame).verdict, XDP_REDIRECT);
    let refreshed = dp.fdb(FAR_MAC).expect("FAR_MAC");
    assert!(refreshed.last_seen_ns > 1, "refreshed: {refreshed:?}");
    assert_eq!(dp.take_events().len(), 0, "a refresh: no event");
    assert_eq!(dp.events_lost(), 0);
}

/// A learned MAC that moves is one record with both places; a static
/// entry, which learning leaves alone, is none.
#[test]
fn a_move_is_one_event_with_both_places() {
    let _netns = Netns::enter();
    let mut dp = Datapath::load(programs::ACCESS_XDP);
    dp.fdb_set(WORKLOAD_MAC, stale_remote(OTHER_VTEP));
    assert_eq!(dp.run(&workload_to_remote()).verdict, XDP_REDIRECT);
    let moved = dp.fdb(WORKLOAD_MAC).expect("WORKLOAD_MAC");
    assert_eq!(
        moved,
        FdbEntry::local(PORT1, FDB_F_LEARNED, moved.last_seen_ns)
    );
    let events = dp.take_events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0],
        event_bytes(
            EventKind::Moved,
            WORKLOAD_MAC,
            stale_remote(OTHER_VTEP),
            moved
        ),
        "the record of a move"
    );

    dp.fdb_set(WORKLOAD_MAC, static_remote(OTHER_VTEP));
    assert_eq!(dp.run(&workload_to_remote()).verdict, XDP_REDIRECT);
    assert_eq!(dp.take_events().len(), 0, "a static entry: no event");
}

/// A ring nobody reads fills up: the events that do not fit are counted,
/// and the frames are forwarded and their sources learned all the same.
/// Once read, the ring takes events again.
#[test]
fn a_full_ring_is_counted_not_waited_on() {
    let _netns = Netns::enter();
    let mut dp = Datapath::load(programs::ACCESS_XDP);
    // A record and its 8-byte header, in a ring of EVENT_RING_BYTES.
    let room = EVENT_RING_BYTES as usize / (EVENT_LEN + 8);
    let sources = room + 50;
    let source = |i: usize| [0x02, 0xee, 0, (i >> 16) as u8, (i >> 8) as u8, i as u8];
    for i in 0..sources {
        let run = dp.run(&tenant(REMOTE_MAC, source(i)));
        assert_eq!(run.verdict, XDP_REDIRECT, "source {i}");
    }
    assert_eq!(
        dp.counters().learned,
        sources as u64,
        "every source learned"
    );
    assert_eq!(dp.events_lost(), 50, "events past the ring's room");
    let events = dp.take_events();
    assert_eq!(events.len(), room, "records in the ring");
    let last = FdbEvent::from_bytes(events.last().unwrap()).expect("a record");
    assert_eq!(last.key.mac, source(room - 1));

    dp.run(&tenant(REMOTE_MAC, source(sources)));
    let events = dp.take_events();
    assert_eq!(events.len(), 1, "read, the ring takes events again");
    assert_eq!(dp.events_lost(), 50);
}

// ---- verifier budget ------------------------------------------------------------

/// Instructions the verifier may process for one program (the kernel's
/// BPF_COMPLEXITY_LIMIT_INSNS).
const VERIFIER_LIMIT: u32 = 1_000_000;

/// Every program verifies within half the kernel's budget: a change that
/// multiplies the paths the verifier walks (a loop whose exits leave
/// different states behind, say) fails here, with the numbers, before it
/// fails to load on a kernel whose verifier prunes less.
#[test]
fn programs_verify_within_half_the_budget() {
    let _netns = Netns::enter();
    let mut over = Vec::new();
    for program in [
        programs::UPLINK_XDP,
        programs::ACCESS_XDP,
        programs::UPLINK_TC,
        programs::ACCESS_TC,
        programs::XSK_UPLINK,
        programs::XSK_ACCESS,
        fixture::UPLINK_TC,
        fixture::ACCESS_TC,
    ] {
        let dp = Datapath::load(program);
        let info = dp
            .ebpf
            .program(program)
            .expect("loaded program")
            .info()
            .unwrap_or_else(|e| panic!("info of {program}: {e}"));
        let insns = info
            .verified_instruction_count()
            .unwrap_or_else(|| panic!("{program}: the kernel reports no verified instructions"));
        println!("{program:22} {insns:>9} instructions verified");
        if insns > VERIFIER_LIMIT / 2 {
            over.push((program, insns));
        }
    }
    assert!(
        over.is_empty(),
        "over half the verifier's budget of {VERIFIER_LIMIT}: {over:?}"
    );
}

// ---- Issue 9: IPv6 and group decap, RFC 6040 decap ----

/// This VTEP's and REMOTE_VTEP's IPv6 addresses (2001:db8::1, ::2).
const LOCAL_VTEP6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const REMOTE_VTEP6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/// VNI 100's groups in the group rows, and one of no VNI.
const GROUP4: [u8; 4] = [239, 1, 1, 1];
const OTHER_GROUP4: [u8; 4] = [239, 1, 1, 2];
const GROUP6: [u8; 16] = [0xff, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00];
const ETH_P_IPV6: u16 = 0x86dd;
const IPV6_LEN: usize = 40;
/// IPv6 next-header codes of the extension headers the rows use.
const NH_HOPOPTS: u8 = 0;
const NH_ROUTING: u8 = 43;
const NH_FRAGMENT: u8 = 44;
const NH_AH: u8 = 51;
const NH_DSTOPTS: u8 = 60;

/// Offsets into an untagged VXLAN-over-IPv6 frame without extension headers.
mod at6 {
    use super::{ETH_LEN, IPV6_LEN};

    pub const IP: usize = ETH_LEN;
    pub const PAYLOAD_LEN: usize = IP + 4;
    pub const NEXT_HEADER: usize = IP + 6;
    pub const DST: usize = IP + 24;
    pub const UDP: usize = IP + IPV6_LEN;
    pub const UDP_CSUM: usize = UDP + 6;
}

/// VXLAN over IPv6 from REMOTE_VTEP6 to `dst` in VNI `vni`: traffic class
/// `tclass`, the extension headers `ext` in order (their next-header
/// bytes filled in, the last one's UDP), and a UDP checksum summed
/// independently of vtep's code (RFC 8200 §8.1 pseudo-header).
fn vxlan6(dst: [u8; 16], tclass: u8, ext: &[(u8, Vec<u8>)], vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut dgram = udp(REMOTE_SRC_PORT, VXLAN_PORT, &vxlan(vni, inner));
    set_udp6_checksum(&mut dgram, REMOTE_VTEP6, dst);
    let mut chain = Vec::new();
    for (i, (_, bytes)) in ext.iter().enumerate() {
        let mut b = bytes.clone();
        b[0] = ext.get(i + 1).map_or(IPPROTO_UDP, |(nh, _)| *nh);
        chain.extend(b);
    }
    let first = ext.first().map_or(IPPROTO_UDP, |(nh, _)| *nh);
    let hdr = [
        &[0x60 | (tclass >> 4), (tclass << 4) | 0x01, 0x23, 0x45][..],
        &be16(chain.len() + dgram.len()),
        &[first, TTL],
        &REMOTE_VTEP6,
        &dst,
    ]
    .concat();
    let packet = [hdr, chain, dgram].concat();
    ether(UPLINK_MAC, ROUTER_MAC, ETH_P_IPV6, &packet)
}

/// Fills in the UDP checksum of `dgram` (a UDP header and its payload,
/// checksum field zero) from `src` to `dst` over IPv6, summed independently
/// of vtep's code (RFC 8200 §8.1 pseudo-header; 0 sent as 0xffff).
fn set_udp6_checksum(dgram: &mut [u8], src: [u8; 16], dst: [u8; 16]) {
    let pseudo = [
        &src[..],
        &dst,
        &(dgram.len() as u32).to_be_bytes(),
        &[0, 0, 0, IPPROTO_UDP],
        dgram,
    ]
    .concat();
    let c = match internet_checksum(&pseudo) {
        0 => 0xffff,
        c => c,
    };
    set_be16(dgram, 6, c);
}

/// `inner` from REMOTE_VTEP6 to this VTEP's IPv6 address, VNI 100.
fn from_remote6(inner: &[u8]) -> Vec<u8> {
    vxlan6(LOCAL_VTEP6, 0, &[], VNI, inner)
}

/// An 8-byte Hop-by-Hop or Destination Options header (one PadN option).
fn options_header() -> Vec<u8> {
    vec![0, 0, 1, 4, 0, 0, 0, 0]
}

/// `inner` from REMOTE_VTEP (IPv4) to `group`, VNI `vni`.
fn to_group4(group: [u8; 4], vni: u32, inner: &[u8]) -> Vec<u8> {
    Outer {
        dmac: VtepAddr::v4(group).group_mac().expect("a group"),
        dst: group,
        ..Outer::FROM_REMOTE
    }
    .frame_with(&[], vni, inner)
}

impl Datapath {
    /// A dual-stack underlay: LOCAL_VTEP and LOCAL_VTEP6.
    fn dual_stack(&mut self) {
        self.update_underlay(|ul| ul.local6 = VtepAddr::v6(LOCAL_VTEP6));
    }

    /// An IPv6-only underlay: LOCAL_VTEP6.
    fn v6_only(&mut self) {
        self.update_underlay(|ul| {
            ul.local = VtepAddr::NONE;
            ul.local6 = VtepAddr::v6(LOCAL_VTEP6);
        });
    }

    /// VNI 100's group is `group` (`VNI_GROUP`).
    fn set_group(&mut self, group: VtepAddr) {
        self.hash::<u32, VtepAddr>(names::VNI_GROUP)
            .insert(VNI, group, 0)
            .expect("VNI_GROUP insert");
    }
}

fn remote6_at() -> FdbEntry {
    FdbEntry::remote(VtepAddr::v6(REMOTE_VTEP6), 0, 0)
}

/// A VXLAN-over-IPv6 frame that must be decapsulated, FAR_MAC learned
/// behind REMOTE_VTEP6, the inner frame redirected to LOCAL_MAC's port.
fn decapsulated6(name: &'static str, input: Vec<u8>) -> Case {
    decapsulated(name, input)
        .setup(Datapath::dual_stack)
        .learns(FAR_MAC, remote6_at())
}

/// A VXLAN-over-IPv6 frame dropped under `reason`, nothing learned.
fn rejected6(name: &'static str, input: Vec<u8>, reason: Reason) -> Case {
    rejected(name, input, reason).setup(Datapath::dual_stack)
}

/// A frame of the host's on a dual-stack underlay.
fn not_vxlan6(name: &'static str, input: Vec<u8>) -> Case {
    Case::not_vxlan(name, input).setup(Datapath::dual_stack)
}

fn ipv6_decap_cases() -> Vec<Case> {
    let inner = inner_unicast();
    let good = from_remote6(&inner);
    let with = |ext: &[(u8, Vec<u8>)]| vxlan6(LOCAL_VTEP6, 0, ext, VNI, &inner_unicast());
    let dstopts = |n: usize| -> Vec<(u8, Vec<u8>)> {
        (0..n).map(|_| (NH_DSTOPTS, options_header())).collect()
    };
    vec![
        decapsulated6("IPv6: unicast to a local MAC", good.clone()),
        decapsulated6("IPv6: one 802.1Q tag", vlan_tagged(&good, 10)),
        decapsulated6("IPv6: IPv6-only underlay", good.clone()).setup(Datapath::v6_only),
        decapsulated6(
            "IPv6: Ethernet padding after the packet",
            [good.clone(), vec![0; 6]].concat(),
        ),
        decapsulated6(
            "IPv6: hop-by-hop, routing (no segments left), destination options",
            with(&[
                (NH_HOPOPTS, options_header()),
                (NH_ROUTING, vec![0, 0, 4, 0, 0, 0, 0, 0]),
                (NH_DSTOPTS, options_header()),
            ]),
        ),
        decapsulated6("IPv6: four extension headers", with(&dstopts(4))),
        decapsulated6(
            "IPv6: zero UDP checksum with udp6zerocsumrx",
            edited(good.clone(), |f| set_be16(f, at6::UDP_CSUM, 0)),
        )
        .setup(|dp| dp.update_underlay(|ul| ul.flags |= UNDERLAY_F_UDP6_ZERO_CSUM_RX)),
        decapsulated6("IPv6: source check, known VTEP", good.clone())
            .setup(|dp| dp.set_flood_addrs(&[VtepAddr::v6(REMOTE_VTEP6)], VNI_F_CHECK_SOURCE)),
        decapsulated6(
            "IPv6: learned IPv4 entry moves to the IPv6 VTEP",
            good.clone(),
        )
        .setup(|dp| dp.fdb_set(FAR_MAC, stale_remote(REMOTE_VTEP)))
        .fdb(
            FAR_MAC,
            Some(FdbEntry::remote(
                VtepAddr::v6(REMOTE_VTEP6),
                FDB_F_LEARNED,
                1,
            )),
        ),
        Case::new(
            "IPv6: inner broadcast flooded",
            from_remote6(&tenant(BROADCAST, FAR_MAC)),
            XDP_PASS,
        )
        .setup(Datapath::dual_stack)
        .output(Output::Frame(tenant(BROADCAST, FAR_MAC)))
        .meta(META_FLOOD, 0)
        .reason(Reason::Flooded)
        .stats(flooded_rx(&tenant(BROADCAST, FAR_MAC)))
        .learns(FAR_MAC, remote6_at()),
        rejected6(
            "IPv6: zero UDP checksum",
            edited(good.clone(), |f| set_be16(f, at6::UDP_CSUM, 0)),
            Reason::Udp6ZeroCsum,
        ),
        rejected6(
            "IPv6: payload length beyond the frame",
            edited(good.clone(), |f| {
                let longer = be16_at(f, at6::PAYLOAD_LEN) + 4;
                set_be16(f, at6::PAYLOAD_LEN, longer);
            }),
            Reason::Truncated,
        ),
        rejected6(
            "IPv6: cut short",
            edited(good.clone(), |f| f.truncate(f.len() - 1)),
            Reason::Truncated,
        ),
        rejected6(
            "IPv6: UDP length beyond the payload",
            edited(good.clone(), |f| {
                let longer = be16_at(f, at6::UDP + 4) + 2;
                set_be16(f, at6::UDP + 4, longer);
            }),
            Reason::Truncated,
        ),
        rejected6(
            "IPv6: version 4 in an IPv6 ethertype",
            edited(good.clone(), |f| f[at6::IP] = 0x40),
            Reason::BadIpHeader,
        ),
        rejected6(
            "IPv6: no I flag",
            edited(good.clone(), |f| f[at6::UDP + UDP_LEN] = 0),
            Reason::BadFlags,
        ),
        rejected6(
            "IPv6: first fragment",
            with(&[(NH_FRAGMENT, vec![0, 0, 0, 1, 0, 0, 0, 9])]),
            Reason::Ipv6ExtHeader,
        ),
        rejected6(
            "IPv6: authentication header",
            with(&[(NH_AH, vec![0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2])]),
            Reason::Ipv6ExtHeader,
        ),
        rejected6(
            "IPv6: hop-by-hop after another header",
            with(&[
                (NH_DSTOPTS, options_header()),
                (NH_HOPOPTS, options_header()),
            ]),
            Reason::Ipv6ExtHeader,
        ),
        rejected6(
            "IPv6: source check, unknown VTEP",
            good.clone(),
            Reason::UnknownSourceVtep,
        )
        .setup(|dp| dp.check_source(&[REMOTE_VTEP])),
        not_vxlan6(
            "IPv6: cut inside the IPv6 header",
            good[..at6::IP + 30].to_vec(),
        ),
        not_vxlan6(
            "IPv6: next header TCP",
            edited(good.clone(), |f| f[at6::NEXT_HEADER] = IPPROTO_TCP),
        ),
        not_vxlan6(
            "IPv6: another destination",
            edited(good.clone(), |f| f[at6::DST + 15] = 9),
        ),
        not_vxlan6(
            "IPv6: UDP to another port",
            edited(good.clone(), |f| set_be16(f, at6::UDP + 2, 53)),
        ),
        not_vxlan6(
            "IPv6: later fragment",
            with(&[(NH_FRAGMENT, vec![0, 0, 0, 0x08, 0, 0, 0, 9])]),
        ),
        not_vxlan6(
            "IPv6: routing header with segments left",
            with(&[(NH_ROUTING, vec![0, 0, 4, 1, 0, 0, 0, 0])]),
        ),
        not_vxlan6(
            "IPv6: five extension headers (past the walk)",
            with(&dstopts(5)),
        ),
        Case::not_vxlan("IPv6: IPv4-only underlay", good.clone()),
    ]
}

impl Datapath {
    /// VNI 100's flood list is `vteps`, its flags `VNI_F_LEARNING | flags`.
    fn set_flood_addrs(&mut self, vteps: &[VtepAddr], flags: u32) {
        let mut list = FloodList::default();
        list.len = fill(&mut list.vteps, vteps.iter().copied());
        self.hash::<u32, FloodList>(names::FLOOD)
            .insert(VNI, list, 0)
            .expect("FLOOD insert");
        self.set_vni(VniInfo {
            flags: VNI_F_LEARNING | flags,
            ..VniInfo::default()
        });
    }
}

fn group_decap_cases() -> Vec<Case> {
    let inner = inner_unicast();
    let arp = arp_request(FAR_MAC);
    let group6 = vxlan6(GROUP6, 0, &[], VNI, &inner);
    vec![
        decapsulated(
            "group: IPv4 group of the VNI, learned behind the outer source",
            to_group4(GROUP4, VNI, &inner),
        )
        .setup(|dp| dp.set_group(VtepAddr::v4(GROUP4))),
        Case::new(
            "group: ARP to the IPv4 group flooded to local ports only",
            to_group4(GROUP4, VNI, &arp),
            XDP_PASS,
        )
        .setup(|dp| dp.set_group(VtepAddr::v4(GROUP4)))
        .output(Output::Frame(arp.clone()))
        .meta(META_FLOOD, 0)
        .reason(Reason::Flooded)
        .stats(flooded_rx(&arp))
        .learns(FAR_MAC, remote_at(REMOTE_VTEP)),
        decapsulated6("group: IPv6 group of the VNI", group6.clone())
            .setup(|dp| dp.set_group(VtepAddr::v6(GROUP6))),
        Case::drops(
            "group: a group frame for a MAC behind a VTEP (split horizon)",
            to_group4(GROUP4, VNI, &tenant(REMOTE_MAC, FAR_MAC)),
            Reason::SplitHorizon,
        )
        .setup(|dp| dp.set_group(VtepAddr::v4(GROUP4)))
        .learns(FAR_MAC, remote_at(REMOTE_VTEP)),
        rejected(
            "group: another VNI's group",
            to_group4(OTHER_GROUP4, VNI, &inner),
            Reason::UnknownGroup,
        )
        .setup(|dp| dp.set_group(VtepAddr::v4(GROUP4))),
        rejected(
            "group: a VNI without a group",
            to_group4(GROUP4, VNI, &inner),
            Reason::UnknownGroup,
        ),
        rejected(
            "group: the group of VNI 100, sent in VNI 200",
            to_group4(GROUP4, OTHER_VNI, &inner),
            Reason::UnknownGroup,
        )
        .setup(|dp| dp.set_group(VtepAddr::v4(GROUP4))),
        rejected6(
            "group: IPv6, a VNI without a group",
            group6.clone(),
            Reason::UnknownGroup,
        ),
        Case::new(
            "group: not ours, with the kernel's vxlan devices",
            to_group4(OTHER_GROUP4, VNI, &inner),
            XDP_PASS,
        )
        .setup(|dp| dp.update_underlay(|ul| ul.flags |= UNDERLAY_F_KERNEL_VXLAN))
        .reason(Reason::KernelFallback)
        .fdb(FAR_MAC, None),
        rejected(
            "group: a group as the outer source",
            edited(to_group4(GROUP4, VNI, &inner), |f| {
                f[at::IP_SRC..at::IP_DST].copy_from_slice(&OTHER_GROUP4);
                f[at::IP_CSUM..at::IP_SRC].fill(0);
                let c = ipv4_checksum(&f[at::IP..at::UDP]);
                f[at::IP_CSUM..at::IP_SRC].copy_from_slice(&c);
            }),
            Reason::BadIpHeader,
        )
        .setup(|dp| dp.set_group(VtepAddr::v4(GROUP4))),
        Case::not_vxlan("group: IPv6 group on an IPv4-only underlay", group6),
    ]
}

/// The kernel selftest's `test_ecn_decap` table, "inner outer → result"
/// (tools/testing/selftests/net/forwarding/vxlan_bridge_1d.sh), without
/// its error case (inner Not-ECT, outer CE: [`ecn_error_cases`]).
const ECN_DECAP: [(u8, u8, u8); 15] = [
    (0, 0, 0),
    (0, 1, 0),
    (0, 2, 0),
    (1, 0, 1),
    (1, 1, 1),
    (1, 2, 1),
    (1, 3, 3),
    (2, 0, 2),
    (2, 1, 1),
    (2, 2, 2),
    (2, 3, 3),
    (3, 0, 3),
    (3, 1, 3),
    (3, 2, 3),
    (3, 3, 3),
];

/// The inner frame of the ECN rows (FAR_MAC to LOCAL_MAC, IPv4) with
/// ECN codepoint `ecn` and DSCP AF41, its header checksum summed afresh.
fn inner_with_ecn(ecn: u8) -> Vec<u8> {
    edited(inner_unicast(), |f| {
        f[ETH_LEN + 1] = 0x88 | ecn;
        f[ETH_LEN + 10..ETH_LEN + 12].fill(0);
        let c = ipv4_checksum(&f[ETH_LEN..ETH_LEN + IPV4_LEN]);
        f[ETH_LEN + 10..ETH_LEN + 12].copy_from_slice(&c);
    })
}

/// The same inner frame as IPv6 (traffic class AF41 with `ecn`), a UDP
/// datagram to 2001:db8:100::2.
fn inner6_with_ecn(ecn: u8) -> Vec<u8> {
    let tc = 0x88 | ecn;
    let a = [
        0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ];
    let b = [
        0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    ];
    let dgram = udp(12_345, 53, b"vtep datapath test");
    let hdr = [
        &[0x60 | (tc >> 4), tc << 4, 0, 0][..],
        &be16(dgram.len()),
        &[IPPROTO_UDP, 64],
        &a,
        &b,
    ]
    .concat();
    ether(LOCAL_MAC, FAR_MAC, ETH_P_IPV6, &[hdr, dgram].concat())
}

/// `inner` sent with outer ECN `ecn`, over IPv4 or IPv6.
fn with_outer_ecn(v6: bool, ecn: u8, inner: &[u8]) -> Vec<u8> {
    if v6 {
        vxlan6(LOCAL_VTEP6, 0xb8 | ecn, &[], VNI, inner)
    } else {
        edited(from_remote(inner), |f| {
            f[at::IP + 1] = 0xb8 | ecn;
            f[at::IP_CSUM..at::IP_SRC].fill(0);
            let c = ipv4_checksum(&f[at::IP..at::UDP]);
            f[at::IP_CSUM..at::IP_SRC].copy_from_slice(&c);
        })
    }
}

fn leak(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

/// Every row of the kernel's table, over both outer families and for an
/// inner IPv4 packet (the result's header checksum summed independently)
/// and an inner IPv6 one.
fn ecn_decap_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for v6 in [false, true] {
        let family = if v6 { "IPv6" } else { "IPv4" };
        for (inner, outer, result) in ECN_DECAP {
            for inner6 in [false, true] {
                let (input_inner, output_inner) = if inner6 {
                    (inner6_with_ecn(inner), inner6_with_ecn(result))
                } else {
                    (inner_with_ecn(inner), inner_with_ecn(result))
                };
                let name = leak(format!(
                    "ECN over {family}: inner {} {inner:02b} outer {outer:02b} -> {result:02b}",
                    if inner6 { "IPv6" } else { "IPv4" },
                ));
                let input = with_outer_ecn(v6, outer, &input_inner);
                let case = Case::new(name, input, XDP_REDIRECT)
                    .output(Output::Frame(output_inner.clone()))
                    .stats(rx(&output_inner))
                    .learns(
                        FAR_MAC,
                        if v6 {
                            remote6_at()
                        } else {
                            remote_at(REMOTE_VTEP)
                        },
                    );
                cases.push(if v6 {
                    case.setup(Datapath::dual_stack)
                } else {
                    case
                });
            }
        }
    }
    cases.into_iter().chain(ecn_error_cases()).collect()
}

/// An outer CE over a Not-ECT inner packet: dropped (`ecn-error`), after
/// learning, as the kernel's `vxlan_rcv` learns before it drops; a non-IP
/// inner frame gets no ECN processing.
fn ecn_error_cases() -> Vec<Case> {
    let arp = arp_request(FAR_MAC);
    let short_ip = edited(inner_with_ecn(0), |f| f.truncate(ETH_LEN + 12));
    vec![
        Case::drops(
            "ECN over IPv4: inner Not-ECT under CE",
            with_outer_ecn(false, 3, &inner_with_ecn(0)),
            Reason::EcnError,
        )
        .learns(FAR_MAC, remote_at(REMOTE_VTEP)),
        Case::drops(
            "ECN over IPv6: inner Not-ECT under CE",
            with_outer_ecn(true, 3, &inner_with_ecn(0)),
            Reason::EcnError,
        )
        .setup(Datapath::dual_stack)
        .learns(FAR_MAC, remote6_at()),
        Case::drops(
            "ECN over IPv6: inner IPv6 Not-ECT under CE",
            with_outer_ecn(true, 3, &inner6_with_ecn(0)),
            Reason::EcnError,
        )
        .setup(Datapath::dual_stack)
        .learns(FAR_MAC, remote6_at()),
        Case::new(
            "ECN: ARP under CE, untouched",
            with_outer_ecn(false, 3, &arp),
            XDP_PASS,
        )
        .output(Output::Frame(arp.clone()))
        .meta(META_FLOOD, 0)
        .reason(Reason::Flooded)
        .stats(flooded_rx(&arp))
        .learns(FAR_MAC, remote_at(REMOTE_VTEP)),
        Case::drops(
            "ECN: inner IPv4 header cut short",
            with_outer_ecn(false, 0, &short_ip),
            Reason::Truncated,
        )
        .learns(FAR_MAC, remote_at(REMOTE_VTEP)),
    ]
}

/// Both families and groups reach the AF_XDP engine's socket.
fn xsk_uplink_issue9_cases() -> Vec<Case> {
    let inner = inner_unicast();
    vec![
        steered("IPv6 VXLAN for this VTEP", from_remote6(&inner)).setup(Datapath::dual_stack),
        steered(
            "IPv6 first fragment: the engine's to count",
            vxlan6(
                LOCAL_VTEP6,
                0,
                &[(NH_FRAGMENT, vec![0, 0, 0, 1, 0, 0, 0, 9])],
                VNI,
                &inner,
            ),
        )
        .setup(Datapath::dual_stack),
        steered("VXLAN to the VNI's group", to_group4(GROUP4, VNI, &inner))
            .setup(|dp| dp.set_group(VtepAddr::v4(GROUP4))),
        Case::new(
            "VXLAN to another group: the host's",
            to_group4(OTHER_GROUP4, VNI, &inner),
            XDP_PASS,
        )
        .setup(Datapath::steer_port2)
        .setup(|dp| dp.set_group(VtepAddr::v4(GROUP4))),
        Case::new(
            "IPv6 on an IPv4-only underlay",
            from_remote6(&inner),
            XDP_PASS,
        )
        .setup(Datapath::steer_port2),
    ]
}

fn issue9_decap_cases() -> Vec<Case> {
    ipv6_decap_cases()
        .into_iter()
        .chain(group_decap_cases())
        .chain(ecn_decap_cases())
        .collect()
}

#[test]
fn uplink_decap_ipv6_groups_ecn() {
    let _netns = Netns::enter();
    run_table(programs::UPLINK_XDP, &issue9_decap_cases());
}

#[test]
fn xsk_steering_ipv6_groups() {
    let _netns = Netns::enter();
    let _xsk = BoundXsk::bind();
    run_table(programs::XSK_UPLINK, &xsk_uplink_issue9_cases());
}

// ---- Issue 9: path MTU errors ----

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
const TENANT6_A: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
];
const TENANT6_B: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
];
/// The inner MTU of the fixtures' 1500-byte IPv4 underlay: 1500 - 50.
const INNER_MTU: usize = 1450;

/// A TCP-looking IPv4 packet of `total` bytes from TENANT_A to TENANT_B
/// (fragment field `frag`), its payload a counting pattern.
fn big_ipv4(total: usize, frag: u16) -> Vec<u8> {
    let payload: Vec<u8> = (0..total - IPV4_LEN).map(|i| (i * 7 + 1) as u8).collect();
    let mut p = ipv4(TENANT_A, TENANT_B, IPPROTO_TCP, &payload);
    set_be16(&mut p, 6, frag);
    p[10..12].copy_from_slice(&[0, 0]);
    let c = ipv4_checksum(&p[..IPV4_LEN]);
    p[10..12].copy_from_slice(&c);
    p
}

/// WORKLOAD_MAC's IPv4 frame to REMOTE_MAC, `total` IP bytes.
fn big_v4_frame(total: usize, frag: u16) -> Vec<u8> {
    ether(REMOTE_MAC, WORKLOAD_MAC, ETH_P_IP, &big_ipv4(total, frag))
}

/// An IPv6 packet of `total` bytes from TENANT6_A to TENANT6_B, hop limit
/// 63, traffic class and flow label set (the error's are 0).
fn big_ipv6(total: usize) -> Vec<u8> {
    let mut p = vec![0x6b, 0x81, 0x23, 0x45];
    p.extend_from_slice(&be16(total - 40));
    p.extend_from_slice(&[IPPROTO_UDP, 63]);
    p.extend_from_slice(&TENANT6_A);
    p.extend_from_slice(&TENANT6_B);
    p.extend((0..total - 40).map(|i| (i * 5 + 3) as u8));
    p
}

/// [`big_ipv6`] with the extension header `ext` (next header UDP) after
/// the IPv6 header, announced as `kind`.
fn big_ipv6_ext(total: usize, kind: u8, ext: [u8; 8]) -> Vec<u8> {
    let mut p = big_ipv6(total);
    p[6] = kind;
    p[40..48].copy_from_slice(&ext);
    p
}

/// IPv6 extension headers, next header UDP: hop-by-hop (PadN options), a
/// fragment header at offset 0 with M set, one at offset 8.
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_FRAGMENT: u8 = 44;
const HOP_BY_HOP_PADN: [u8; 8] = [IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0];
const FIRST_FRAGMENT: [u8; 8] = [IPPROTO_UDP, 0, 0, 1, 0, 0, 0, 7];
const LATER_FRAGMENT: [u8; 8] = [IPPROTO_UDP, 0, 0, 8, 0, 0, 0, 7];

/// The ICMP "fragmentation needed" the kernel's vxlan driver sends back
/// for `ip` (from TENANT_A): from TENANT_B, TTL 255, ID 0, DF, MTU 1450,
/// quoting 548 bytes; built here byte by byte.
fn frag_needed(ip: &[u8]) -> Vec<u8> {
    let quote = &ip[..ip.len().min(548)];
    let mut icmp = [&[3, 4, 0, 0, 0, 0][..], &be16(INNER_MTU), quote].concat();
    let c = internet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let mut hdr = [
        &[0x45, 0][..],
        &be16(IPV4_LEN + icmp.len()),
        &[0, 0],
        &IPV4_DF.to_be_bytes(),
        &[255, IPPROTO_ICMP, 0, 0],
        &TENANT_B,
        &TENANT_A,
    ]
    .concat();
    let c = ipv4_checksum(&hdr);
    hdr[10..12].copy_from_slice(&c);
    ether(WORKLOAD_MAC, REMOTE_MAC, ETH_P_IP, &[hdr, icmp].concat())
}

/// The ICMPv6 "packet too big" for `ip`: from TENANT6_B, the original's
/// hop limit, MTU 1450, quoting 1232 bytes, the checksum over the
/// pseudo-header.
fn packet_too_big(ip: &[u8]) -> Vec<u8> {
    let quote = &ip[..ip.len().min(1232)];
    let mut icmp = [&[2, 0, 0, 0][..], &(INNER_MTU as u32).to_be_bytes(), quote].concat();
    let pseudo = [
        &TENANT6_B[..],
        &TENANT6_A,
        &(icmp.len() as u32).to_be_bytes(),
        &[0, 0, 0, IPPROTO_ICMPV6],
        &icmp,
    ]
    .concat();
    let c = internet_checksum(&pseudo);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let hdr = [
        &[0x60, 0, 0, 0][..],
        &be16(icmp.len()),
        &[IPPROTO_ICMPV6, ip[7]],
        &TENANT6_B,
        &TENANT6_A,
    ]
    .concat();
    ether(WORKLOAD_MAC, REMOTE_MAC, ETH_P_IPV6, &[hdr, icmp].concat())
}

/// A frame answered with its path-MTU error `error`, redirected back out of
/// its port; counted under both reasons, WORKLOAD_MAC learned.
fn answered(name: &'static str, input: Vec<u8>, error: Vec<u8>) -> Case {
    Case::new(name, input, XDP_REDIRECT)
        .output(Output::Frame(error))
        .reason(Reason::MtuExceeded)
        .reason(Reason::PmtuSent)
        .learns(WORKLOAD_MAC, local_on(PORT1))
}

/// Takes the access port out of `PORT_TX`, as for a port whose far end
/// takes no XDP frames.
fn port_not_in_port_tx(dp: &mut Datapath) {
    dp.map::<DevMapHash<_>>(names::PORT_TX)
        .remove(PORT1)
        .expect("PORT_TX remove");
}

fn pmtu_cases() -> Vec<Case> {
    let over = INNER_MTU + 30;
    vec![
        answered(
            "IPv4 with DF over the MTU: fragmentation needed",
            big_v4_frame(over, IPV4_DF),
            frag_needed(&big_ipv4(over, IPV4_DF)),
        ),
        answered(
            "IPv4 with DF one byte over the MTU",
            big_v4_frame(INNER_MTU + 1, IPV4_DF),
            frag_needed(&big_ipv4(INNER_MTU + 1, IPV4_DF)),
        ),
        Case::new(
            "error to a port without XDP at its far end: skb delivery",
            big_v4_frame(over, IPV4_DF),
            XDP_PASS,
        )
        .setup(port_not_in_port_tx)
        .output(Output::Frame(frag_needed(&big_ipv4(over, IPV4_DF))))
        .meta(META_DELIVER, PORT1)
        .reason(Reason::MtuExceeded)
        .reason(Reason::PmtuSent)
        .reason(Reason::SkbDelivery)
        .learns(WORKLOAD_MAC, local_on(PORT1)),
        dropped_after_learning(
            "IPv4 without DF over the MTU: dropped",
            big_v4_frame(over, 0),
            Reason::MtuExceeded,
        ),
        dropped_after_learning(
            "IPv4 fragment over the MTU: dropped",
            big_v4_frame(over, IPV4_DF | IPV4_MF),
            Reason::MtuExceeded,
        ),
        answered(
            "IPv6 over the MTU: packet too big",
            ether(REMOTE_MAC, WORKLOAD_MAC, ETH_P_IPV6, &big_ipv6(over)),
            packet_too_big(&big_ipv6(over)),
        ),
        answered(
            "IPv6 with a hop-by-hop header over the MTU: packet too big",
            ether(
                REMOTE_MAC,
                WORKLOAD_MAC,
                ETH_P_IPV6,
                &big_ipv6_ext(over, IPV6_HOP_BY_HOP, HOP_BY_HOP_PADN),
            ),
            packet_too_big(&big_ipv6_ext(over, IPV6_HOP_BY_HOP, HOP_BY_HOP_PADN)),
        ),
        answered(
            "IPv6 first fragment over the MTU: packet too big",
            ether(
                REMOTE_MAC,
                WORKLOAD_MAC,
                ETH_P_IPV6,
                &big_ipv6_ext(over, IPV6_FRAGMENT, FIRST_FRAGMENT),
            ),
            packet_too_big(&big_ipv6_ext(over, IPV6_FRAGMENT, FIRST_FRAGMENT)),
        ),
        dropped_after_learning(
            "IPv6 later fragment over the MTU: dropped",
            ether(
                REMOTE_MAC,
                WORKLOAD_MAC,
                ETH_P_IPV6,
                &big_ipv6_ext(over, IPV6_FRAGMENT, LATER_FRAGMENT),
            ),
            Reason::MtuExceeded,
        ),
        dropped_after_learning(
            "IPv4 ICMP error over the MTU: dropped",
            ether(
                REMOTE_MAC,
                WORKLOAD_MAC,
                ETH_P_IP,
                &edited(big_ipv4(over, IPV4_DF), |p| {
                    p[9] = IPPROTO_ICMP;
                    p[20] = 3; // destination unreachable
                    p[10..12].copy_from_slice(&[0, 0]);
                    let c = ipv4_checksum(&p[..IPV4_LEN]);
                    p[10..12].copy_from_slice(&c);
                }),
            ),
            Reason::MtuExceeded,
        ),
        dropped_after_learning(
            "IPv6 over an inner MTU under 1280: dropped",
            ether(REMOTE_MAC, WORKLOAD_MAC, ETH_P_IPV6, &big_ipv6(1300)),
            Reason::MtuExceeded,
        )
        .setup(|dp| dp.update_underlay(|ul| ul.mtu = 1300)),
        encapsulated_big(
            "IPv4 with DF of exactly the MTU passes",
            big_v4_frame(INNER_MTU, IPV4_DF),
        ),
        encapsulated_big(
            "IPv6 of exactly the MTU passes",
            ether(REMOTE_MAC, WORKLOAD_MAC, ETH_P_IPV6, &big_ipv6(INNER_MTU)),
        ),
    ]
}

/// `inner` (WORKLOAD_MAC's, to REMOTE_MAC) encapsulated and redirected.
fn encapsulated_big(name: &'static str, inner: Vec<u8>) -> Case {
    Case::new(name, inner.clone(), XDP_REDIRECT)
        .output(Output::via_router(&inner))
        .stats(tx(&inner))
        .learns(WORKLOAD_MAC, local_on(PORT1))
}

#[test]
fn access_path_mtu() {
    let _netns = Netns::enter();
    run_table(programs::ACCESS_XDP, &pmtu_cases());
}

// ---- Issue 9: encapsulation and flooding over either family, groups, RFC 6040 ----

/// The flow label the IPv6 rows fix (`UNDERLAY_F_LABEL_FIXED`).
const LABEL: u32 = 0x1_2345;
/// What IPv6 encapsulation adds: outer Ethernet, IPv6, UDP, VXLAN.
const ENCAP6_LEN: usize = ETH_LEN + IPV6_LEN + UDP_LEN + VXLAN_LEN;

/// What this VTEP sends over IPv6 to `dst`, written out independently of
/// vtep's builders: outer MACs `dmac`/`smac`, traffic class `tclass`, flow
/// label `label`, hop limit `hops`, UDP source port CSUM_SRC_PORT, VNI 100,
/// and a UDP checksum (RFC 8200 §8.1 pseudo-header; 0 sent as 0xffff) when
/// `checksum`, else 0.
#[allow(
    clippy::too_many_arguments,
    reason = "the outer fields the rows vary, each named at the call"
)]
fn encap6(
    dmac: Mac,
    smac: Mac,
    dst: [u8; 16],
    tclass: u8,
    label: u32,
    hops: u8,
    checksum: bool,
    inner: &[u8],
) -> Vec<u8> {
    let mut dgram = udp(CSUM_SRC_PORT, VXLAN_PORT, &vxlan(VNI, inner));
    if checksum {
        set_udp6_checksum(&mut dgram, LOCAL_VTEP6, dst);
    }
    let hdr = [
        &[
            0x60 | (tclass >> 4),
            (tclass << 4) | (label >> 16) as u8,
            (label >> 8) as u8,
            label as u8,
        ][..],
        &be16(dgram.len()),
        &[IPPROTO_UDP, hops],
        &LOCAL_VTEP6,
        &dst,
    ]
    .concat();
    ether(dmac, smac, ETH_P_IPV6, &[hdr, dgram].concat())
}

/// An IPv4 frame (at offset 0 of `frame`: an inner frame, or an outer
/// header) with TOS `tos` and TTL `ttl`, its header checksum summed again.
fn with_tos_ttl(mut frame: Vec<u8>, tos: u8, ttl: u8) -> Vec<u8> {
    frame[at::IP + 1] = tos;
    frame[at::IP_TTL] = ttl;
    frame[at::IP_CSUM..at::IP_CSUM + 2].fill(0);
    let csum = ipv4_checksum(&frame[at::IP..at::IP + IPV4_LEN]);
    frame[at::IP_CSUM..at::IP_CSUM + 2].copy_from_slice(&csum);
    frame
}

/// One Tx packet of `inner` behind an outer header of `overhead` bytes.
fn tx_over(inner: &[u8], overhead: usize) -> VniCounters {
    VniCounters {
        tx_packets: 1,
        tx_bytes: (overhead + inner.len()) as u64,
        ..VniCounters::default()
    }
}

impl Datapath {
    /// Dual stack, REMOTE_MAC behind REMOTE_VTEP6 (its next hop the
    /// router), one source port and a fixed flow label: what the IPv6 rows
    /// build on.
    fn remote6(&mut self) {
        self.dual_stack();
        self.update_underlay(|ul| {
            (ul.srcport_min, ul.srcport_max) = (CSUM_SRC_PORT, CSUM_SRC_PORT);
            ul.flags |= UNDERLAY_F_LABEL_FIXED;
            ul.flowlabel = LABEL;
            // TTL "auto": 64 to a VTEP, 1 to a group.
            ul.ttl = 0;
        });
        if self.has(names::FDB) {
            self.fdb_set(
                REMOTE_MAC,
                FdbEntry::remote(VtepAddr::v6(REMOTE_VTEP6), FDB_F_STATIC, 0),
            );
        }
        self.neigh6();
    }

    /// REMOTE_VTEP6's next hop: the router, out of PORT1.
    fn neigh6(&mut self) {
        let neigh = NeighEntry {
            dmac: ROUTER_MAC,
            smac: UPLINK_MAC,
            ifindex: PORT1,
        };
        self.hash::<VtepAddr, NeighEntry>(names::NEIGH)
            .insert(VtepAddr::v6(REMOTE_VTEP6), neigh, 0)
            .expect("NEIGH insert");
    }
}

/// WORKLOAD_MAC's frame to REMOTE_MAC, encapsulated over IPv6 as `want`.
fn encapsulated6(name: &'static str, want: Vec<u8>) -> Case {
    let inner = workload_to_remote();
    Case::new(name, inner.clone(), XDP_REDIRECT)
        .setup(Datapath::remote6)
        .output(Output::Frame(want))
        .stats(tx_over(&inner, ENCAP6_LEN))
        .learns(WORKLOAD_MAC, local_on(PORT1))
}

fn issue9_encap_cases() -> Vec<Case> {
    let inner = workload_to_remote();
    let v6 = |tclass, label, checksum, inner: &[u8]| {
        encap6(
            ROUTER_MAC,
            UPLINK_MAC,
            REMOTE_VTEP6,
            tclass,
            label,
            TTL,
            checksum,
            inner,
        )
    };
    // An inner IPv4 packet of DSCP 46 (0xb8) marked CE.
    let ce_inner = with_tos_ttl(workload_to_remote(), 0xb8 | 3, TTL);
    let ce_case = |name, tos: fn(&mut Datapath), want_tclass: u8| {
        let inner = ce_inner.clone();
        Case::new(name, inner.clone(), XDP_REDIRECT)
            .setup(Datapath::remote6)
            .setup(tos)
            .output(Output::Frame(v6(want_tclass, LABEL, true, &inner)))
            .stats(tx_over(&inner, ENCAP6_LEN))
            .learns(WORKLOAD_MAC, local_on(PORT1))
    };
    let ecn_case = |name, inner_ecn: u8, outer_ecn: u8| {
        let inner = with_tos_ttl(workload_to_remote(), inner_ecn, TTL);
        Case::new(name, inner.clone(), XDP_REDIRECT)
            .setup(Datapath::remote6)
            .output(Output::Frame(v6(outer_ecn, LABEL, true, &inner)))
            .stats(tx_over(&inner, ENCAP6_LEN))
            .learns(WORKLOAD_MAC, local_on(PORT1))
    };
    vec![
        encapsulated6(
            "IPv6 encap: 70 bytes, hop limit 64 (auto), fixed label, UDP checksum",
            v6(0, LABEL, true, &inner),
        ),
        encapsulated6(
            "IPv6 encap: udp6_zero_csum_tx sends checksum 0",
            v6(0, LABEL, false, &inner),
        )
        .setup(|dp| dp.update_underlay(|ul| ul.flags |= UNDERLAY_F_UDP6_ZERO_CSUM_TX)),
        encapsulated6(
            "IPv6 encap: flow label inherited (an IPv4 inner packet has none: 0)",
            v6(0, 0, true, &inner),
        )
        .setup(|dp| {
            dp.update_underlay(|ul| {
                ul.flags &= !UNDERLAY_F_LABEL_FIXED;
                ul.flags |= UNDERLAY_F_LABEL_INHERIT;
            })
        }),
        encapsulated6(
            "IPv6 encap: hop limit as configured",
            encap6(
                ROUTER_MAC,
                UPLINK_MAC,
                REMOTE_VTEP6,
                0,
                LABEL,
                9,
                true,
                &inner,
            ),
        )
        .setup(|dp| dp.update_underlay(|ul| ul.ttl = 9)),
        encapsulated6(
            "IPv6 encap: outer packet exactly the MTU (inner MTU = MTU - 70)",
            v6(0, LABEL, true, &inner),
        )
        .setup(|dp| {
            dp.update_underlay(|ul| {
                ul.mtu = (ENCAP6_LEN - ETH_LEN + workload_to_remote().len()) as u16
            })
        }),
        // RFC 6040 / the kernel: inner CE goes out as ECT(0); the DSCP is
        // the inner packet's with tos "inherit", else the configured one.
        ce_case(
            "IPv6 encap: tos inherit, inner CE: DSCP copied, ECN ECT(0)",
            |dp| dp.update_underlay(|ul| ul.flags |= UNDERLAY_F_TOS_INHERIT),
            0xb8 | 2,
        ),
        ce_case(
            "IPv6 encap: tos 0x20, inner CE: DSCP 0x20, ECN ECT(0)",
            |dp| dp.update_underlay(|ul| ul.tos = 0x20),
            0x20 | 2,
        ),
        // Every inner ECN codepoint, under tos 0: Not-ECT, ECT(1) and
        // ECT(0) are copied, CE goes out as ECT(0) (RFC 6040 §4.1, normal
        // mode, as the kernel's INET_ECN_encapsulate).
        ecn_case("IPv6 encap: inner Not-ECT: outer Not-ECT", 0, 0),
        ecn_case("IPv6 encap: inner ECT(1): outer ECT(1)", 1, 1),
        ecn_case("IPv6 encap: inner ECT(0): outer ECT(0)", 2, 2),
        ecn_case("IPv6 encap: inner CE: outer ECT(0)", 3, 2),
        Case::new(
            "IPv4 encap: TTL auto (64), tos inherit, inner CE: outer TOS 0xba",
            ce_inner.clone(),
            XDP_REDIRECT,
        )
        .setup(|dp| {
            dp.update_underlay(|ul| {
                (ul.srcport_min, ul.srcport_max) = (CSUM_SRC_PORT, CSUM_SRC_PORT);
                ul.ttl = 0;
                ul.flags |= UNDERLAY_F_TOS_INHERIT;
            })
        })
        .output(Output::Frame(with_tos_ttl(
            Outer::to_remote_vtep(ROUTER_MAC, UPLINK_MAC, CSUM_SRC_PORT).frame(&ce_inner),
            0xb8 | 2,
            TTL,
        )))
        .stats(tx(&ce_inner))
        .learns(WORKLOAD_MAC, local_on(PORT1)),
        Case::new(
            "IPv6 encap: no neighbour: handed to TC, outer MACs zero",
            inner.clone(),
            XDP_PASS,
        )
        .setup(Datapath::remote6)
        .setup(|dp| {
            dp.hash::<VtepAddr, NeighEntry>(names::NEIGH)
                .remove(&VtepAddr::v6(REMOTE_VTEP6))
                .expect("NEIGH remove")
        })
        .output(Output::Frame(encap6(
            ZERO_MAC,
            ZERO_MAC,
            REMOTE_VTEP6,
            0,
            LABEL,
            TTL,
            true,
            &inner,
        )))
        .meta(META_NEIGH, 0)
        .reason(Reason::NoNeighbour)
        .stats(tx_over(&inner, ENCAP6_LEN))
        .learns(WORKLOAD_MAC, local_on(PORT1)),
    ]
}

/// A BUM frame from PORT1 flooded to the other port and to the remotes
/// `setup` names: the frame keeps `last` (the last header written) in front.
fn flooded6(name: &'static str, setup: fn(&mut Datapath), last: Vec<u8>, tx: VniCounters) -> Case {
    let bum = tenant(BROADCAST, WORKLOAD_MAC);
    let mut stats = local_copies(&bum, 1);
    stats.add(&tx);
    flood_tc(name, bum, PORT1)
        .setup(|dp| {
            dp.both_ports();
            dp.remote6();
        })
        .setup(setup)
        .output(Output::Frame(last))
        .stats(stats)
}

fn issue9_flood_cases() -> Vec<Case> {
    let bum = tenant(BROADCAST, WORKLOAD_MAC);
    let v4_copy = tx(&bum);
    let v6_copy = tx_over(&bum, ENCAP6_LEN);
    let sum = |a: &VniCounters, b: &VniCounters| {
        let mut c = *a;
        c.add(b);
        c
    };
    let to6 = encap6(
        ROUTER_MAC,
        UPLINK_MAC,
        REMOTE_VTEP6,
        0,
        LABEL,
        TTL,
        true,
        &bum,
    );
    let group4 = VtepAddr::v4(GROUP4);
    let group6 = VtepAddr::v6(GROUP6);
    // The IPv4 group's copy: group MAC, uplink MAC, TTL 1 (auto).
    let to_group4 = with_tos_ttl(
        Outer {
            dmac: group4.group_mac().expect("a group"),
            smac: UPLINK_MAC,
            src: LOCAL_VTEP,
            dst: GROUP4,
            src_port: CSUM_SRC_PORT,
        }
        .frame(&bum),
        0,
        1,
    );
    let to_group6 = encap6(
        group6.group_mac().expect("a group"),
        UPLINK_MAC,
        GROUP6,
        0,
        LABEL,
        1,
        true,
        &bum,
    );
    vec![
        flooded6(
            "flood: an IPv6 flood-list member (70-byte header, UDP checksum)",
            |dp| dp.set_flood_addrs(&[VtepAddr::v6(REMOTE_VTEP6)], 0),
            to6.clone(),
            v6_copy,
        ),
        flooded6(
            "flood: IPv4 and IPv6 members from one loop (the IPv6 header last)",
            |dp| dp.set_flood_addrs(&[VtepAddr::v6(REMOTE_VTEP6), VtepAddr::v4(REMOTE_VTEP)], 0),
            to6.clone(),
            sum(&v4_copy, &v6_copy),
        ),
        flooded6(
            "flood: no flood list, the VNI's IPv4 group: group MAC, TTL 1",
            |dp| dp.set_group(VtepAddr::v4(GROUP4)),
            to_group4.clone(),
            v4_copy,
        ),
        flooded6(
            "flood: the VNI's IPv6 group: 33:33 MAC, hop limit 1",
            |dp| dp.set_group(VtepAddr::v6(GROUP6)),
            to_group6,
            v6_copy,
        ),
        flooded6(
            "flood: an IPv4 member and the IPv4 group (the group's header last)",
            |dp| {
                dp.set_flood_addrs(&[VtepAddr::v4(REMOTE_VTEP)], 0);
                dp.set_group(VtepAddr::v4(GROUP4));
            },
            to_group4,
            sum(&v4_copy, &v4_copy),
        ),
        flooded6(
            "flood: an IPv6 member of an IPv4-only underlay: no-underlay, the IPv4 copy sent",
            |dp| {
                dp.update_underlay(|ul| ul.local6 = VtepAddr::NONE);
                dp.set_flood_addrs(&[VtepAddr::v4(REMOTE_VTEP), VtepAddr::v6(REMOTE_VTEP6)], 0);
            },
            // The frame grew 20 bytes for the IPv6 pass, which wrote nothing.
            [
                vec![0; ENCAP6_LEN - at::INNER],
                Outer::to_remote_vtep(ROUTER_MAC, UPLINK_MAC, CSUM_SRC_PORT).frame(&bum),
            ]
            .concat(),
            v4_copy,
        )
        .reason(Reason::NoUnderlay),
        flooded6(
            "flood: an IPv6 member without a neighbour: handed to the kernel",
            |dp| {
                dp.hash::<VtepAddr, NeighEntry>(names::NEIGH)
                    .remove(&VtepAddr::v6(REMOTE_VTEP6))
                    .expect("NEIGH remove");
                dp.set_flood_addrs(&[VtepAddr::v6(REMOTE_VTEP6)], 0);
            },
            encap6(ZERO_MAC, ZERO_MAC, REMOTE_VTEP6, 0, LABEL, TTL, true, &bum),
            v6_copy,
        )
        .reason(Reason::FloodNoNeighbour),
    ]
}

#[test]
fn access_encap_ipv6_ecn() {
    let _netns = Netns::enter();
    run_table(programs::ACCESS_XDP, &issue9_encap_cases());
}

#[test]
fn access_tc_flood_ipv6_groups() {
    let _netns = Netns::enter();
    run_table(fixture::ACCESS_TC, &issue9_flood_cases());
}
