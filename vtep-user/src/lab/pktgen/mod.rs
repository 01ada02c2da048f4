//! `vtep pktgen`: a packet generator, its counting sink, and the per-packet
//! cost of vtep's XDP programs — the tools of the benchmark lab
//! (`cargo xtask bench`), usable on their own.
//!
//! - `vtep pktgen --dev IF ...` sends frames out of IF at a high rate with
//!   BPF_PROG_TEST_RUN in live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`,
//!   the method of xdp-trafficgen): the lab's `lab_gen` program runs on a
//!   template frame "received" on IF and returns `XDP_TX`, so the kernel sends
//!   the frame out of IF, `--batch` at a time, without an skb. Plain
//!   Ethernet/IPv4/UDP, or VXLAN-encapsulated (`--vxlan`) over an IPv4 or
//!   an IPv6 underlay (the family of `--outer-src`/`--outer-dst`; over IPv6
//!   with the UDP checksum IPv6 requires); `--flows N` varies the inner
//!   source address and port (and so the outer source port, and over IPv6
//!   the outer checksum) per packet. One loop per `--threads`, each pinned to its own CPU. Prints its
//!   result as the kernel's pktgen does (`-j`: JSON).
//! - `vtep pktgen sink --dev IF` attaches `lab_sink` to IF: every frame that
//!   arrives is counted (per CPU) and dropped; the totals are printed when
//!   the sink stops (SIGINT/SIGTERM, or after `--duration`).
//! - `vtep pktgen forward A B` redirects every frame from A to B and back
//!   with XDP, untouched: the least an XDP gateway does, the lab's ceiling.
//!   With `--xsk` it moves them through AF_XDP sockets instead (the AF_XDP
//!   engine's sockets, rings and batches, frames untouched): the ceiling
//!   of an AF_XDP gateway.
//! - `vtep pktgen cost` times vtep's decap (`vtep_uplink`) and encap
//!   (`vtep_access`) programs with BPF_PROG_TEST_RUN `repeat`, next to a
//!   trivial XDP program (the floor of a test run), in one process. It sends
//!   nothing: the programs run on private, unpinned maps.
//!
//! Every frame goes only where `--dev` points: run it inside the network
//! namespace of the interface (`ip netns exec NS vtep pktgen ...`).

use std::{
    net::{IpAddr, Ipv4Addr},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, DevMapHash, HashMap, MapData, PerCpuArray, PerCpuHashMap, ProgramArray},
    programs::{ProgramFd, Xdp, XdpMode},
};
use clap::{Args, Subcommand};
use serde::Serialize;
use vtep_common::{
    FDB_F_STATIC, FdbEntry, FdbKey, NeighEntry, PortInfo, PortKey, Underlay, VNI_F_LEARNING,
    VniCounters, VniInfo, VtepAddr,
    header::{
        ENCAP_V6_UDP_CSUM, ETH_LEN, ETH_P_IP, EncapV4, EncapV6, IPPROTO_UDP, IPV4_LEN, UDP_LEN,
        csum_partial, encap_v4_header, encap_v6_header, ipv4_checksum, udp_checksum_v6,
    },
    lab::{self, GenConfig, SinkCounters},
    names, programs,
};

use crate::{datapath::loader, lab::testrun, model::addr::Mac, system::iface};

/// The lab's eBPF object, built by build.rs from the vtep-ebpf crate's
/// `vtep-lab` binary.
mod cost;
mod generator;
mod sink;
mod xsk_forward;

use self::{
    cost::cost,
    generator::generate,
    sink::{forward, sink},
    xsk_forward::forward_xsk,
};

static LAB_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vtep-lab"));

/// Smallest frame: Ethernet + IPv4 + UDP headers.
const MIN_FRAME: usize = ETH_LEN + IPV4_LEN + UDP_LEN;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct PktgenArgs {
    #[command(subcommand)]
    pub command: Option<PktgenCommand>,
    #[command(flatten)]
    pub generate: GenArgs,
}

#[derive(Debug, Subcommand)]
pub enum PktgenCommand {
    /// Count (and drop) every frame that arrives on an interface, with XDP;
    /// print the totals on SIGINT/SIGTERM or after --duration.
    Sink(SinkArgs),
    /// Time vtep's encap and decap XDP programs per packet with
    /// BPF_PROG_TEST_RUN repeat, next to a trivial XDP program (sends nothing).
    Cost(CostArgs),
    /// Forward every frame between two interfaces with XDP (or, with --xsk,
    /// AF_XDP), untouched (the least a gateway of that kind does: the
    /// ceiling of a lab), until SIGINT/SIGTERM.
    Forward(ForwardArgs),
}

#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// One interface (in this network namespace).
    #[arg(value_name = "IFNAME")]
    pub a: String,
    /// The other.
    #[arg(value_name = "IFNAME")]
    pub b: String,
    /// Forward through AF_XDP sockets instead (copy mode on veth; the AF_XDP
    /// engine's rings, UMEM and batches; one thread per receive queue): the
    /// ceiling of an AF_XDP gateway on these ports.
    #[arg(long)]
    pub xsk: bool,
    /// With --xsk: pin queue 0's thread to this CPU, queue q's to the q-th
    /// after it (as the engine's `[afxdp] cpu`).
    #[arg(long, value_name = "CPU", requires = "xsk")]
    pub cpu: Option<usize>,
}

/// What to send, where, how much and how fast.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Interface to send out of (in this network namespace).
    #[arg(long, value_name = "IFNAME", required = true)]
    pub dev: Option<String>,
    /// Frame size in bytes, without FCS; with --vxlan the inner frame's (the
    /// wire carries 50 bytes more over an IPv4 underlay, 70 over IPv6).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Frames to send (all threads together) [default: 1000000 unless --duration].
    #[arg(long, conflicts_with = "duration")]
    pub count: Option<u64>,
    /// Send for this many seconds instead of a count.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Flows: the inner IPv4 source walks its /24 and the inner UDP source
    /// port counts up, per packet (and so the outer UDP source port).
    #[arg(long, default_value_t = 1)]
    pub flows: u32,
    /// Sending threads, each a BPF_PROG_TEST_RUN loop pinned to its own CPU.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// CPU of the first thread; thread i runs on CPU (first + i) mod CPUs.
    #[arg(long, value_name = "CPU", default_value_t = 0)]
    pub first_cpu: usize,
    /// Rate limit in packets per second (all threads together).
    #[arg(long, value_name = "PPS")]
    pub rate: Option<f64>,
    /// Frames per kernel iteration (1..=256).
    #[arg(long, default_value_t = 64)]
    pub batch: u32,
    /// Source MAC [default: the interface's] (inner, with --vxlan).
    #[arg(long, value_name = "MAC")]
    pub src_mac: Option<String>,
    /// Destination MAC (inner, with --vxlan).
    #[arg(long, value_name = "MAC", required = true)]
    pub dst_mac: Option<String>,
    /// Source IPv4 address of flow 0 (inner, with --vxlan).
    #[arg(long, value_name = "IP", default_value = "192.0.2.1")]
    pub src_ip: Ipv4Addr,
    /// Destination IPv4 address (inner, with --vxlan).
    #[arg(long, value_name = "IP", default_value = "192.0.2.2")]
    pub dst_ip: Ipv4Addr,
    /// UDP source port of flow 0.
    #[arg(long, value_name = "PORT", default_value_t = 1024)]
    pub src_port: u16,
    /// UDP destination port.
    #[arg(long, value_name = "PORT", default_value_t = 9)]
    pub dst_port: u16,
    /// Encapsulate in VXLAN, over the underlay family of --outer-src and
    /// --outer-dst (IPv4: UDP checksum 0; IPv6: with its checksum).
    #[arg(long)]
    pub vxlan: bool,
    /// VNI of the VXLAN header.
    #[arg(long, default_value_t = 100, requires = "vxlan")]
    pub vni: u32,
    /// Outer source address (the sending VTEP), IPv4 or IPv6.
    #[arg(long, value_name = "IP", requires = "vxlan")]
    pub outer_src: Option<IpAddr>,
    /// Outer destination address (the receiving VTEP), of the same family.
    #[arg(long, value_name = "IP", requires = "vxlan")]
    pub outer_dst: Option<IpAddr>,
    /// Outer source MAC [default: the interface's].
    #[arg(long, value_name = "MAC", requires = "vxlan")]
    pub outer_src_mac: Option<String>,
    /// Outer destination MAC (the receiving VTEP's, or its router's).
    #[arg(long, value_name = "MAC", requires = "vxlan")]
    pub outer_dst_mac: Option<String>,
    /// Outer UDP destination port.
    #[arg(long, value_name = "PORT", default_value_t = 4789, requires = "vxlan")]
    pub outer_dst_port: u16,
}

#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Interface to count on (in this network namespace).
    #[arg(long, value_name = "IFNAME")]
    pub dev: String,
    /// Stop after this many seconds [default: at SIGINT/SIGTERM].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
}

#[derive(Debug, Args)]
pub struct CostArgs {
    /// Runs per measurement.
    #[arg(long, default_value_t = 5_000_000)]
    pub repeat: u32,
    /// Measurements per program; the fastest counts (the machine is shared).
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Inner frame sizes to time the programs at.
    #[arg(long, value_delimiter = ',', default_value = "64,512,1500")]
    pub sizes: Vec<usize>,
    /// FDB entries in the table while the programs run (the three they look
    /// up among them; the map is made big enough to hold them).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub fdb_entries: u32,
    /// Underlay families to time encap and decap over.
    #[arg(long, value_delimiter = ',', default_value = "ipv4,ipv6")]
    pub underlays: Vec<cost::Family>,
}

pub fn main(args: PktgenArgs, json: bool) -> Result<()> {
    match args.command {
        Some(PktgenCommand::Sink(a)) => sink(&a, json),
        Some(PktgenCommand::Cost(a)) => cost(&a, json),
        Some(PktgenCommand::Forward(a)) => forward(&a),
        None => generate(&args.generate, json),
    }
}

// ---- frames -------------------------------------------------------------------

/// A frame to send, and how the generator varies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub frame: Vec<u8>,
    pub config: GenConfig,
}

/// The inner (or only) frame's addresses.
#[derive(Clone, Copy, Debug)]
pub struct Plain {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// An Ethernet/IPv4/UDP frame of `size` bytes (zero payload, UDP checksum 0,
/// TTL 64, DF).
pub fn plain_frame(p: &Plain, size: usize) -> Vec<u8> {
    assert!(size >= MIN_FRAME, "a frame has at least {MIN_FRAME} bytes");
    let mut f = vec![0u8; size];
    f[0..6].copy_from_slice(&p.dst_mac);
    f[6..12].copy_from_slice(&p.src_mac);
    f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
    let mut ip = [0u8; IPV4_LEN];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((size - ETH_LEN) as u16).to_be_bytes());
    ip[6] = 0x40;
    ip[8] = 64;
    ip[9] = IPPROTO_UDP;
    ip[12..16].copy_from_slice(&p.src_ip.octets());
    ip[16..20].copy_from_slice(&p.dst_ip.octets());
    let csum = ipv4_checksum(&ip);
    ip[10..12].copy_from_slice(&csum.to_be_bytes());
    f[ETH_LEN..ETH_LEN + IPV4_LEN].copy_from_slice(&ip);
    let u = ETH_LEN + IPV4_LEN;
    f[u..u + 2].copy_from_slice(&p.src_port.to_be_bytes());
    f[u + 2..u + 4].copy_from_slice(&p.dst_port.to_be_bytes());
    f[u + 4..u + 6].copy_from_slice(&((size - u) as u16).to_be_bytes());
    f
}

/// The outer header of a VXLAN template, of either underlay family.
#[derive(Clone, Copy, Debug)]
pub enum Encap {
    V4(EncapV4),
    V6(EncapV6),
}

impl Encap {
    fn src_port(&self) -> u16 {
        match self {
            Encap::V4(e) => e.src_port,
            Encap::V6(e) => e.src_port,
        }
    }
}

/// The generator's view of a plain frame: flow 0 is the frame itself.
/// Over IPv6 the outer UDP checksum is filled in (the generator keeps it
/// right per flow).
pub fn template(inner: &Plain, size: usize, outer: Option<&Encap>, flows: u32) -> Template {
    let plain = plain_frame(inner, size);
    let ip: [u8; IPV4_LEN] = plain[ETH_LEN..ETH_LEN + IPV4_LEN]
        .try_into()
        .expect("20 bytes");
    let mut ip_zero_csum = ip;
    ip_zero_csum[10..12].fill(0);
    let mut config = GenConfig {
        flows,
        vxlan: lab::GEN_PLAIN,
        src_ip: inner.src_ip.octets(),
        ip_sum: lab::ip_sum_without_source(&ip_zero_csum),
        src_port: inner.src_port,
        outer_port_min: outer.map_or(0, Encap::src_port),
        outer_port_span: if outer.is_some() { 16_384 } else { 0 },
        _pad: 0,
        udp_sum: 0,
    };
    let frame = match outer {
        None => plain,
        Some(Encap::V4(o)) => {
            config.vxlan = lab::GEN_VXLAN_V4;
            let hdr = encap_v4_header(&EncapV4 {
                inner_len: size as u16,
                ..*o
            });
            [&hdr[..], &plain].concat()
        }
        Some(Encap::V6(o)) => {
            config.vxlan = lab::GEN_VXLAN_V6;
            let mut hdr = encap_v6_header(&EncapV6 {
                inner_len: size as u16,
                ..*o
            });
            let csum = udp_checksum_v6(&hdr, csum_partial(&plain, 0));
            hdr[ENCAP_V6_UDP_CSUM..ENCAP_V6_UDP_CSUM + 2].copy_from_slice(&csum);
            let frame = [&hdr[..], &plain].concat();
            config.udp_sum =
                lab::udp6_sum_without_flow(&frame).expect("an IPv6 VXLAN frame of MIN_FRAME");
            frame
        }
    };
    Template { frame, config }
}

fn mac(what: &str, s: &str) -> Result<[u8; 6]> {
    s.parse::<Mac>()
        .map(|m| m.0)
        .map_err(|e| anyhow::anyhow!("{what}: {e}"))
}

/// The MAC address of `dev` (in this namespace).
fn dev_mac(dev: &str) -> Result<[u8; 6]> {
    let path = format!("/sys/class/net/{dev}/address");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    mac(dev, text.trim())
}

fn dev_counter(dev: &str, name: &str) -> u64 {
    std::fs::read_to_string(format!("/sys/class/net/{dev}/statistics/{name}"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn ifindex(dev: &str) -> Result<u32> {
    iface::ifindex(dev).with_context(|| {
        format!("no interface named {dev:?} in this network namespace (run inside its namespace: ip netns exec NS vtep pktgen ...)")
    })
}

/// The template `args` describe.
fn template_of(args: &GenArgs, dev: &str) -> Result<Template> {
    let dev_mac = dev_mac(dev)?;
    let Some(dst_mac) = &args.dst_mac else {
        bail!("--dst-mac is required (the receiver's MAC)");
    };
    let inner = Plain {
        dst_mac: mac("--dst-mac", dst_mac)?,
        src_mac: args
            .src_mac
            .as_deref()
            .map_or(Ok(dev_mac), |m| mac("--src-mac", m))?,
        src_ip: args.src_ip,
        dst_ip: args.dst_ip,
        src_port: args.src_port,
        dst_port: args.dst_port,
    };
    ensure!(
        args.size >= MIN_FRAME,
        "--size {}: a frame needs at least {MIN_FRAME} bytes (Ethernet, IPv4, UDP headers)",
        args.size
    );
    ensure!(args.flows >= 1, "--flows must be at least 1");
    ensure!(
        u32::from(args.src_port) + args.flows <= 65_536,
        "--flows {}: source ports from {} would pass 65535",
        args.flows,
        args.src_port
    );
    let outer = if args.vxlan {
        let (Some(src), Some(dst)) = (args.outer_src, args.outer_dst) else {
            bail!("--vxlan needs --outer-src and --outer-dst (the VTEP addresses)");
        };
        let Some(outer_dst_mac) = &args.outer_dst_mac else {
            bail!("--vxlan needs --outer-dst-mac (the receiving VTEP's MAC)");
        };
        ensure!(
            (1..=vtep_common::VNI_MAX).contains(&args.vni),
            "--vni {}: a VNI is 1..=16777215",
            args.vni
        );
        let dst_mac = mac("--outer-dst-mac", outer_dst_mac)?;
        let src_mac = args
            .outer_src_mac
            .as_deref()
            .map_or(Ok(dev_mac), |m| mac("--outer-src-mac", m))?;
        Some(match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => Encap::V4(EncapV4 {
                dst_mac,
                src_mac,
                src_ip: src.octets(),
                dst_ip: dst.octets(),
                ttl: 64,
                tos: 0,
                src_port: 49_152,
                dst_port: args.outer_dst_port,
                vni: args.vni,
                inner_len: 0,
            }),
            (IpAddr::V6(src), IpAddr::V6(dst)) => Encap::V6(EncapV6 {
                dst_mac,
                src_mac,
                src_ip: src.octets(),
                dst_ip: dst.octets(),
                hop_limit: 64,
                tclass: 0,
                // No flow label: the generator's flows differ in the outer
                // UDP source port, as a VTEP's do.
                flowlabel: 0,
                src_port: 49_152,
                dst_port: args.outer_dst_port,
                vni: args.vni,
                inner_len: 0,
            }),
            _ => bail!(
                "--outer-src {src} and --outer-dst {dst}: one underlay family for both \
                 (IPv4 or IPv6)"
            ),
        })
    } else {
        None
    };
    let t = template(&inner, args.size, outer.as_ref(), args.flows);
    ensure!(
        t.frame.len() <= testrun::MAX_LIVE_FRAME,
        "--size {}: live frames are at most {} bytes on the wire",
        args.size,
        testrun::MAX_LIVE_FRAME
    );
    Ok(t)
}

// ---- the lab object -------------------------------------------------------------

fn load_lab() -> Result<Ebpf> {
    EbpfLoader::new()
        .load(LAB_OBJECT)
        .context("loading the lab's eBPF object")
}

/// Loads the XDP program `name` of `ebpf`; its fd (a duplicate, which keeps
/// the program loaded).
fn load_xdp(ebpf: &mut Ebpf, name: &str) -> Result<ProgramFd> {
    let prog = loader::load_xdp(ebpf, name)?;
    Ok(prog.fd()?.try_clone()?)
}

/// The loaded XDP program `name` of `ebpf`, to test-run.
fn xdp<'a>(ebpf: &'a Ebpf, name: &str) -> Result<&'a Xdp> {
    ebpf.program(name)
        .with_context(|| format!("program {name} missing from the object"))?
        .try_into()
        .with_context(|| format!("program {name}"))
}

fn typed_map<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<T>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let map = ebpf
        .map_mut(name)
        .with_context(|| format!("map {name} missing from the object"))?;
    T::try_from(map).with_context(|| format!("map {name}"))
}
