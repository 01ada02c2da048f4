//! `vtep pktgen`: a packet generator, its counting sink, and the per-packet
//! cost of vtep's XDP programs — the tools of the benchmark lab
//! (`cargo xtask bench`), usable on their own.
//!
//! - `vtep pktgen --dev IF ...` sends frames out of IF at a high rate with
//!   BPF_PROG_TEST_RUN in live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`,
//!   the method of xdp-trafficgen): the lab's `lab_gen` program runs on a
//!   template frame "received" on IF and returns `XDP_TX`, so the kernel sends
//!   the frame out of IF, `--batch` at a time, without an skb. Plain
//!   Ethernet/IPv4/UDP, or VXLAN-encapsulated (`--vxlan`); `--flows N` varies
//!   the inner source address and port (and so the outer source port) per
//!   packet. One loop per `--threads`, each pinned to its own CPU. Prints its
//!   result as the kernel's pktgen does (`-j`: JSON).
//! - `vtep pktgen sink --dev IF` attaches `lab_sink` to IF: every frame that
//!   arrives is counted (per CPU) and dropped; the totals are printed when
//!   the sink stops (SIGINT/SIGTERM, or after `--duration`).
//! - `vtep pktgen forward A B` redirects every frame from A to B and back
//!   with XDP, untouched: the least an XDP gateway does, the lab's ceiling.
//! - `vtep pktgen cost` times vtep's decap (`vtep_uplink`) and encap
//!   (`vtep_access`) programs with BPF_PROG_TEST_RUN `repeat`, next to a
//!   trivial XDP program (the floor of a test run), in one process. It sends
//!   nothing: the programs run on private, unpinned maps.
//!
//! Every frame goes only where `--dev` points: run it inside the network
//! namespace of the interface (`ip netns exec NS vtep pktgen ...`).

use std::{
    net::Ipv4Addr,
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
        ETH_LEN, ETH_P_IP, EncapV4, IPPROTO_UDP, IPV4_LEN, UDP_LEN, encap_v4_header, ipv4_checksum,
    },
    lab::{self, GenConfig, SinkCounters},
    names, programs,
};

use crate::{datapath::loader, lab::testrun, model::addr::Mac, system::iface};

/// The lab's eBPF object, built by build.rs from the vtep-ebpf crate's
/// `vtep-lab` binary.
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
    /// Forward every frame between two interfaces with XDP, untouched (the
    /// least an XDP gateway does: the ceiling of a lab), until SIGINT/SIGTERM.
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
}

/// What to send, where, how much and how fast.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Interface to send out of (in this network namespace).
    #[arg(long, value_name = "IFNAME", required = true)]
    pub dev: Option<String>,
    /// Frame size in bytes, without FCS; with --vxlan the inner frame's (the
    /// wire carries 50 bytes more).
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
    /// Encapsulate in VXLAN (IPv4 underlay).
    #[arg(long)]
    pub vxlan: bool,
    /// VNI of the VXLAN header.
    #[arg(long, default_value_t = 100, requires = "vxlan")]
    pub vni: u32,
    /// Outer source IPv4 (the sending VTEP).
    #[arg(long, value_name = "IP", requires = "vxlan")]
    pub outer_src: Option<Ipv4Addr>,
    /// Outer destination IPv4 (the receiving VTEP).
    #[arg(long, value_name = "IP", requires = "vxlan")]
    pub outer_dst: Option<Ipv4Addr>,
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

/// The generator's view of a plain frame: flow 0 is the frame itself.
pub fn template(inner: &Plain, size: usize, outer: Option<&EncapV4>, flows: u32) -> Template {
    let plain = plain_frame(inner, size);
    let ip: [u8; IPV4_LEN] = plain[ETH_LEN..ETH_LEN + IPV4_LEN]
        .try_into()
        .expect("20 bytes");
    let mut ip_zero_csum = ip;
    ip_zero_csum[10..12].fill(0);
    let config = GenConfig {
        flows,
        vxlan: u32::from(outer.is_some()),
        src_ip: inner.src_ip.octets(),
        ip_sum: lab::ip_sum_without_source(&ip_zero_csum),
        src_port: inner.src_port,
        outer_port_min: outer.map_or(0, |o| o.src_port),
        outer_port_span: if outer.is_some() { 16_384 } else { 0 },
        _pad: 0,
    };
    let frame = match outer {
        None => plain,
        Some(o) => {
            let hdr = encap_v4_header(&EncapV4 {
                inner_len: size as u16,
                ..*o
            });
            [&hdr[..], &plain].concat()
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
        Some(EncapV4 {
            dst_mac: mac("--outer-dst-mac", outer_dst_mac)?,
            src_mac: args
                .outer_src_mac
                .as_deref()
                .map_or(Ok(dev_mac), |m| mac("--outer-src-mac", m))?,
            src_ip: src.octets(),
            dst_ip: dst.octets(),
            ttl: 64,
            src_port: 49_152,
            dst_port: args.outer_dst_port,
            vni: args.vni,
            inner_len: 0,
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

// ---- generator ----------------------------------------------------------------

/// What one sending thread did.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ThreadResult {
    pub cpu: usize,
    pub packets: u64,
    pub usec: u64,
}

/// The result of a `vtep pktgen` run, as `-j` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct GenResult {
    pub dev: String,
    /// Frame size as given (the inner frame's, with VXLAN).
    pub size: usize,
    /// Bytes per frame on the wire (without FCS).
    pub wire_size: usize,
    pub vxlan: bool,
    pub flows: u32,
    pub threads: usize,
    pub batch: u32,
    /// Frames handed to the interface.
    pub packets: u64,
    pub usec: u64,
    pub pps: f64,
    /// Megabits per second on the wire (wire_size × pps × 8).
    pub mbps: f64,
    /// Frames the interface dropped while sending (its tx_dropped).
    pub errors: u64,
    pub per_thread: Vec<ThreadResult>,
}

/// When a sending thread stops.
#[derive(Clone, Copy)]
struct Plan {
    /// Frames for this thread, or until `deadline`.
    count: Option<u64>,
    deadline: Option<Instant>,
    /// Packets per second for this thread.
    rate: Option<f64>,
}

/// Frames per BPF_PROG_TEST_RUN call without a rate limit (tens of ms).
const CHUNK: u64 = 1 << 16;

fn pin_to_cpu(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes inside it for any
    // cpu < CPU_SETSIZE, which the caller's modulo guarantees.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of_cpu_set(), &set) != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("pinning a sending thread to CPU {cpu}"));
        }
    }
    Ok(())
}

const fn size_of_cpu_set() -> usize {
    std::mem::size_of::<libc::cpu_set_t>()
}

fn send_loop(
    prog: &Xdp,
    frame: &[u8],
    ifindex: u32,
    batch: u32,
    plan: Plan,
) -> Result<(u64, Duration)> {
    let start = Instant::now();
    let mut sent = 0u64;
    // With a rate limit, calls of about a millisecond's worth of frames.
    let chunk = match plan.rate {
        Some(r) => ((r / 1000.0) as u64).clamp(1, CHUNK),
        None => CHUNK,
    };
    loop {
        let left = plan.count.map_or(chunk, |c| c.saturating_sub(sent));
        if left == 0 || plan.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let n = left.min(chunk);
        testrun::xdp_live(prog, frame, ifindex, n as u32, batch)
            .context("BPF_PROG_TEST_RUN (live frames)")?;
        sent += n;
        if let Some(rate) = plan.rate {
            let due = start + Duration::from_secs_f64(sent as f64 / rate);
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
        }
    }
    Ok((sent, start.elapsed()))
}

fn generate(args: &GenArgs, json: bool) -> Result<()> {
    let Some(dev) = args.dev.as_deref() else {
        bail!("--dev is required (the interface to send out of)");
    };
    let ifindex = ifindex(dev)?;
    let t = template_of(args, dev)?;
    ensure!(
        (1..=testrun::MAX_BATCH).contains(&args.batch),
        "--batch {}: 1..={}",
        args.batch,
        testrun::MAX_BATCH
    );
    ensure!(args.threads >= 1, "--threads must be at least 1");
    if let Some(d) = args.duration {
        ensure!(d > 0.0, "--duration must be positive");
    }
    if let Some(r) = args.rate {
        ensure!(r > 0.0, "--rate must be positive");
    }
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());

    let mut ebpf = load_lab()?;
    typed_map::<Array<_, GenConfig>>(&mut ebpf, lab::names::GEN_CONFIG)?
        .set(0, t.config, 0)
        .context("setting the generator's config")?;
    let prog: &Xdp = loader::load_xdp(&mut ebpf, lab::programs::GEN)?;

    let total = match (args.count, args.duration) {
        (Some(c), _) => Some(c),
        (None, None) => Some(1_000_000),
        (None, Some(_)) => None,
    };
    let tx_dropped = dev_counter(dev, "tx_dropped");
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + Duration::from_secs_f64(d));
    let threads = args.threads;
    let results: Vec<Result<ThreadResult>> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let cpu = (args.first_cpu + i) % cpus;
                let plan = Plan {
                    count: total
                        .map(|c| c / threads as u64 + u64::from((i as u64) < c % threads as u64)),
                    deadline,
                    rate: args.rate.map(|r| r / threads as f64),
                };
                let frame = &t.frame;
                s.spawn(move || -> Result<ThreadResult> {
                    pin_to_cpu(cpu)?;
                    let (packets, took) = send_loop(prog, frame, ifindex, args.batch, plan)?;
                    Ok(ThreadResult {
                        cpu,
                        packets,
                        usec: took.as_micros() as u64,
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("a sending thread panicked"))
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let per_thread = results.into_iter().collect::<Result<Vec<_>>>()?;
    let packets: u64 = per_thread.iter().map(|r| r.packets).sum();
    let usec = elapsed.as_micros().max(1) as u64;
    let pps = packets as f64 * 1e6 / usec as f64;
    let wire_size = t.frame.len();
    let result = GenResult {
        dev: dev.to_owned(),
        size: args.size,
        wire_size,
        vxlan: args.vxlan,
        flows: args.flows,
        threads,
        batch: args.batch,
        packets,
        usec,
        pps,
        mbps: pps * wire_size as f64 * 8.0 / 1e6,
        errors: dev_counter(dev, "tx_dropped").saturating_sub(tx_dropped),
        per_thread,
    };
    if json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        print_gen(&result);
    }
    Ok(())
}

/// Prints a result the way the kernel's pktgen reports one.
fn print_gen(r: &GenResult) {
    println!(
        "Params: count {}  pkt_size: {}  wire_size: {}  flows: {}  threads: {}  batch: {}  ifname: {}{}",
        r.packets,
        r.size,
        r.wire_size,
        r.flows,
        r.threads,
        r.batch,
        r.dev,
        if r.vxlan { "  vxlan" } else { "" }
    );
    for t in &r.per_thread {
        println!(
            "  cpu{}: {} pkts in {} usec ({:.0}pps)",
            t.cpu,
            t.packets,
            t.usec,
            t.packets as f64 * 1e6 / t.usec.max(1) as f64
        );
    }
    println!(
        "Result: OK: {}(c{}+d0) usec, {} ({}byte,0frags)",
        r.usec, r.usec, r.packets, r.wire_size
    );
    println!(
        "  {:.0}pps {:.0}Mb/sec ({:.0}bps) errors: {}",
        r.pps,
        r.mbps,
        r.mbps * 1e6,
        r.errors
    );
}

// ---- sink -----------------------------------------------------------------------

/// What a sink counted, as `vtep pktgen sink -j` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct SinkResult {
    pub dev: String,
    pub packets: u64,
    pub bytes: u64,
    /// From attach to stop.
    pub usec: u64,
}

fn sink(args: &SinkArgs, json: bool) -> Result<()> {
    let ifindex = ifindex(&args.dev)?;
    let mut ebpf = load_lab()?;
    let prog: &mut Xdp = ebpf
        .program_mut(lab::programs::SINK)
        .context("program lab_sink missing from the object")?
        .try_into()?;
    prog.load().context("loading lab_sink (verifier)")?;
    let link = prog
        .attach_to_if_index(ifindex, XdpMode::default())
        .or_else(|_| prog.attach_to_if_index(ifindex, XdpMode::Skb))
        .with_context(|| format!("attaching lab_sink to {}", args.dev))?;
    let started = Instant::now();
    wait_for_stop(args.duration, || {
        eprintln!("vtep pktgen sink: counting on {}", args.dev);
    })?;
    let usec = started.elapsed().as_micros() as u64;
    let counters = typed_map::<PerCpuArray<_, SinkCounters>>(&mut ebpf, lab::names::SINK)?
        .get(&0, 0)
        .context("reading the sink's counters")?;
    let (packets, bytes) = counters
        .iter()
        .fold((0, 0), |(p, b), c| (p + c.packets, b + c.bytes));
    let prog: &mut Xdp = ebpf
        .program_mut(lab::programs::SINK)
        .context("program lab_sink")?
        .try_into()?;
    prog.detach(link)?;
    let r = SinkResult {
        dev: args.dev.clone(),
        packets,
        bytes,
        usec,
    };
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "Result: {}: {} pkts {} bytes in {} usec ({:.0}pps)",
            r.dev,
            r.packets,
            r.bytes,
            r.usec,
            r.packets as f64 * 1e6 / r.usec.max(1) as f64
        );
    }
    Ok(())
}

/// Calls `ready` once SIGINT and SIGTERM are caught, then returns at either
/// of them, or after `duration` seconds.
fn wait_for_stop(duration: Option<f64>, ready: impl FnOnce()) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        ready();
        let sleep = async {
            match duration {
                Some(d) => tokio::time::sleep(Duration::from_secs_f64(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            () = sleep => {}
        }
        anyhow::Ok(())
    })
}

// ---- forwarder --------------------------------------------------------------------

fn forward(args: &ForwardArgs) -> Result<()> {
    let (a, b) = (ifindex(&args.a)?, ifindex(&args.b)?);
    let mut ebpf = load_lab()?;
    {
        let mut fwd = typed_map::<DevMapHash<_>>(&mut ebpf, lab::names::FWD)?;
        fwd.insert(a, b, None, 0)?;
        fwd.insert(b, a, None, 0)?;
    }
    let prog: &mut Xdp = ebpf
        .program_mut(lab::programs::FWD)
        .context("program lab_fwd missing from the object")?
        .try_into()?;
    prog.load().context("loading lab_fwd (verifier)")?;
    for (name, ifindex) in [(&args.a, a), (&args.b, b)] {
        prog.attach_to_if_index(ifindex, XdpMode::default())
            .with_context(|| format!("attaching lab_fwd to {name}"))?;
    }
    // The links go with the program when the process ends.
    wait_for_stop(None, || {
        eprintln!("vtep pktgen forward: forwarding {} <-> {}", args.a, args.b);
    })
}

// ---- program cost -------------------------------------------------------------

/// The datapath `cost` configures: one VNI, its access port (ifindex 1, the
/// namespace's `lo`; nothing is sent), a remote VTEP with a resolved next hop.
mod bench_dp {
    pub const VNI: u32 = 100;
    pub const PORT: u32 = 1;
    pub const LOCAL_VTEP: [u8; 4] = [198, 18, 0, 1];
    pub const REMOTE_VTEP: [u8; 4] = [198, 18, 0, 2];
    pub const UPLINK_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
    /// Behind the access port: learned by encap, the destination of decap.
    pub const LOCAL_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];
    /// Behind the remote VTEP: the destination of encap (static).
    pub const REMOTE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x01];
    /// Behind the remote VTEP: the source of decap (learned).
    pub const FAR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0b, 0x02];
}

/// One program's cost, as `vtep pktgen cost -j` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct ProgramCost {
    pub program: String,
    pub direction: String,
    /// Inner frame size.
    pub size: usize,
    /// ns per run through the harness (restore + tail call + program).
    pub harness_ns: f64,
    /// The program's own ns per run: harness_ns less what the harness adds
    /// to the floor.
    pub ns: f64,
    /// `ns` over the floor.
    pub ratio_to_floor: f64,
    /// The program's verdict (XDP_REDIRECT = 4 expected).
    pub verdict: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct CostResult {
    pub repeat: u32,
    /// ns per run of a trivial XDP program (XDP_DROP) on the 64-byte frame
    /// (the kernel's measure: whole ns).
    pub floor_ns: f64,
    /// ns per run of the harness tail-calling the trivial program.
    pub harness_floor_ns: f64,
    pub programs: Vec<ProgramCost>,
}

fn cost(args: &CostArgs, json: bool) -> Result<()> {
    use bench_dp::*;
    ensure!(
        args.repeat > 0 && args.rounds > 0,
        "--repeat and --rounds must be positive"
    );
    let mut dp = EbpfLoader::new()
        .load(loader::object())
        .context("loading vtep's eBPF object")?;
    configure_datapath(&mut dp)?;
    let uplink_fd = load_xdp(&mut dp, programs::UPLINK_XDP)?;
    let access_fd = load_xdp(&mut dp, programs::ACCESS_XDP)?;
    let mut lab_obj = load_lab()?;
    let drop_fd = load_xdp(&mut lab_obj, lab::programs::DROP)?;
    loader::load_xdp(&mut lab_obj, lab::programs::COST)?;

    let inner = |dst_mac, src_mac| Plain {
        dst_mac,
        src_mac,
        src_ip: Ipv4Addr::new(192, 0, 2, 1),
        dst_ip: Ipv4Addr::new(192, 0, 2, 2),
        src_port: 1024,
        dst_port: 9,
    };
    let outer = EncapV4 {
        dst_mac: UPLINK_MAC,
        src_mac: ROUTER_MAC,
        src_ip: REMOTE_VTEP,
        dst_ip: LOCAL_VTEP,
        ttl: 64,
        src_port: 49_152,
        dst_port: vtep_common::VXLAN_PORT,
        vni: VNI,
        inner_len: 0,
    };
    let best = |f: &mut dyn FnMut() -> Result<(u32, u32)>| -> Result<(u32, f64)> {
        let mut min = (0, u32::MAX);
        for _ in 0..args.rounds {
            let (verdict, ns) = f()?;
            if ns < min.1 {
                min = (verdict, ns);
            }
        }
        Ok((min.0, f64::from(min.1)))
    };
    let floor_frame = plain_frame(&inner(REMOTE_MAC, LOCAL_MAC), 64);
    let (_, floor_ns) = best(&mut || {
        testrun::xdp_repeat(
            xdp(&lab_obj, lab::programs::DROP)?,
            &floor_frame,
            PORT,
            args.repeat,
        )
        .context("BPF_PROG_TEST_RUN of lab_drop")
    })?;
    let through_harness = |lab_obj: &mut Ebpf, target: &ProgramFd, frame: &[u8]| {
        let mut len = typed_map::<Array<_, u32>>(lab_obj, lab::names::COST_LEN)?;
        len.set(0, frame.len() as u32, 0)?;
        let mut progs = typed_map::<ProgramArray<_>>(lab_obj, lab::names::COST_TARGET)?;
        progs
            .set(0, target, 0)
            .context("setting the harness's target")?;
        let harness = xdp(lab_obj, lab::programs::COST)?;
        best(&mut || {
            testrun::xdp_repeat(harness, frame, PORT, args.repeat)
                .context("BPF_PROG_TEST_RUN through lab_cost")
        })
    };
    let (_, harness_floor_ns) = through_harness(&mut lab_obj, &drop_fd, &floor_frame)?;
    let overhead = harness_floor_ns - floor_ns;
    let mut rows = Vec::new();
    for &size in &args.sizes {
        ensure!(
            size >= MIN_FRAME,
            "--sizes: {size} is below {MIN_FRAME} bytes"
        );
        let encap_in = plain_frame(&inner(REMOTE_MAC, LOCAL_MAC), size);
        let decap_in = template(&inner(LOCAL_MAC, FAR_MAC), size, Some(&outer), 1).frame;
        for (program, direction, fd, frame) in [
            (programs::ACCESS_XDP, "encap", &access_fd, &encap_in),
            (programs::UPLINK_XDP, "decap", &uplink_fd, &decap_in),
        ] {
            let (verdict, harness_ns) = through_harness(&mut lab_obj, fd, frame)?;
            ensure!(
                verdict == testrun::XDP_REDIRECT,
                "{program} returned {verdict} on the {size}-byte {direction} frame, not XDP_REDIRECT: \
                 the timing would be of another path"
            );
            let ns = (harness_ns - overhead).max(0.0);
            rows.push(ProgramCost {
                program: program.to_owned(),
                direction: direction.to_owned(),
                size,
                harness_ns,
                ns,
                ratio_to_floor: ns / floor_ns.max(0.001),
                verdict,
            });
        }
    }
    let r = CostResult {
        repeat: args.repeat,
        floor_ns,
        harness_floor_ns,
        programs: rows,
    };
    if json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "floor (lab_drop): {} ns/run; harness + lab_drop: {} ns/run; {} runs each, best of {}",
            r.floor_ns, r.harness_floor_ns, r.repeat, args.rounds
        );
        for p in &r.programs {
            println!(
                "{:<12} {:<6} {:>5} B: {:>6.1} ns/packet ({:.2}x floor)",
                p.program, p.direction, p.size, p.ns, p.ratio_to_floor
            );
        }
    }
    Ok(())
}

/// The datapath of [`bench_dp`], in `dp`'s private maps.
fn configure_datapath(dp: &mut Ebpf) -> Result<()> {
    use bench_dp::*;
    typed_map::<Array<_, Underlay>>(dp, names::UNDERLAY)?.set(
        0,
        Underlay {
            local: VtepAddr::v4(LOCAL_VTEP),
            uplink_ifindex: PORT,
            port: vtep_common::VXLAN_PORT,
            srcport_min: 49_152,
            srcport_max: 65_535,
            ttl: 64,
            uplink_mac: UPLINK_MAC,
            mtu: 9000,
            ..Underlay::default()
        },
        0,
    )?;
    typed_map::<HashMap<&mut MapData, VtepAddr, NeighEntry>>(dp, names::NEIGH)?.insert(
        VtepAddr::v4(REMOTE_VTEP),
        NeighEntry {
            dmac: ROUTER_MAC,
            smac: UPLINK_MAC,
            ifindex: PORT,
        },
        0,
    )?;
    typed_map::<DevMapHash<_>>(dp, names::PORT_TX)?.insert(PORT, PORT, None, 0)?;
    typed_map::<HashMap<&mut MapData, u32, VniInfo>>(dp, names::VNIS)?.insert(
        VNI,
        VniInfo {
            flags: VNI_F_LEARNING,
            ..VniInfo::default()
        },
        0,
    )?;
    let cpus = aya::util::nr_cpus().map_err(|(_, e)| e)?;
    let zero = vec![VniCounters::default(); cpus]
        .try_into()
        .map_err(|e| anyhow::anyhow!("per-CPU counters: {e:?}"))?;
    typed_map::<PerCpuHashMap<_, u32, VniCounters>>(dp, names::VNI_STATS)?.insert(VNI, zero, 0)?;
    typed_map::<HashMap<&mut MapData, u32, u64>>(dp, names::VNI_LEARNED)?.insert(VNI, 0, 0)?;
    typed_map::<HashMap<&mut MapData, PortKey, PortInfo>>(dp, names::PORTS)?.insert(
        PortKey::untagged(PORT),
        PortInfo { vni: VNI, flags: 0 },
        0,
    )?;
    let mut fdb = typed_map::<HashMap<&mut MapData, FdbKey, FdbEntry>>(dp, names::FDB)?;
    fdb.insert(
        FdbKey::new(VNI, LOCAL_MAC),
        FdbEntry::local(PORT, FDB_F_STATIC, 0),
        0,
    )?;
    fdb.insert(
        FdbKey::new(VNI, REMOTE_MAC),
        FdbEntry::remote(VtepAddr::v4(REMOTE_VTEP), FDB_F_STATIC, 0),
        0,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use vtep_common::header::ENCAP_V4_LEN;

    use super::*;

    fn plain() -> Plain {
        Plain {
            dst_mac: [0x02, 0, 0, 0, 0, 2],
            src_mac: [0x02, 0, 0, 0, 0, 1],
            src_ip: Ipv4Addr::new(192, 0, 2, 1),
            dst_ip: Ipv4Addr::new(192, 0, 2, 2),
            src_port: 1024,
            dst_port: 9,
        }
    }

    #[test]
    fn plain_frame_has_the_size_and_lengths_asked_for() {
        let f = plain_frame(&plain(), 64);
        assert_eq!(f.len(), 64);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 50, "IPv4 total length");
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 30, "UDP length");
        let ip: [u8; 20] = f[14..34].try_into().unwrap();
        assert_eq!(
            u16::from_be_bytes([ip[10], ip[11]]),
            ipv4_checksum(&ip),
            "IPv4 checksum"
        );
    }

    #[test]
    fn vxlan_template_parses_as_vxlan_with_the_inner_frame() {
        let outer = EncapV4 {
            dst_mac: [0x02, 0, 0, 0, 1, 1],
            src_mac: [0x02, 0, 0, 0, 1, 2],
            src_ip: [198, 18, 0, 2],
            dst_ip: [198, 18, 0, 1],
            ttl: 64,
            src_port: 49_152,
            dst_port: 4789,
            vni: 100,
            inner_len: 0,
        };
        let t = template(&plain(), 64, Some(&outer), 1024);
        assert_eq!(t.frame.len(), 64 + ENCAP_V4_LEN);
        let vtep_common::header::Uplink::Vxlan(d) =
            vtep_common::header::parse_vxlan_v4(&t.frame[..], [198, 18, 0, 1], 4789)
        else {
            panic!("not a VXLAN frame for 198.18.0.1");
        };
        assert_eq!(d.vni, 100);
        assert_eq!(&t.frame[d.inner_offset..], &plain_frame(&plain(), 64)[..]);
        assert_eq!(t.config.vxlan, 1);
        assert_eq!(t.config.flows, 1024);
        // Flow 0 is the template itself.
        let f0 = lab::flow_fields(&t.config, 0);
        let ip = &t.frame[ENCAP_V4_LEN + ETH_LEN..ENCAP_V4_LEN + ETH_LEN + IPV4_LEN];
        assert_eq!(f0.ip_csum, u16::from_be_bytes([ip[10], ip[11]]));
    }
}
