//! `cargo xtask bench`: the kernel's vxlan + bridge, vtep's XDP engine and
//! vtep's AF_XDP engine, one after the other in one run, on the same
//! namespace topology ([`bed`]), with the same generator (`vtep pktgen`,
//! BPF_PROG_TEST_RUN live frames) and the same sink (`vtep pktgen sink`, an
//! XDP counter at the far end).
//!
//! Per cell (contender × underlay family × direction × frame size × flows;
//! IPv6-underlay cells at 64 bytes, each contender on a bed of its own with
//! `local 2001:db8::1`): the packet rate the
//! sink received over the generator's sending time, Gbit/s of tenant frames,
//! the loss (1 − received/sent) and the ratio to the kernel's rate in the
//! same cell. Next to them, each XDP program's cost per packet from
//! BPF_PROG_TEST_RUN repeat (`vtep pktgen cost`), with the floor of a trivial
//! XDP program measured in the same run.
//!
//! Output: a table on stdout, `target/bench/results.json` (a list of rows),
//! `target/bench/results.svg` (the chart) and `target/bench/cost.json`.
//! `--quick` (64-byte frames, 1 flow, both directions over IPv4 and decap
//! over IPv6, short cells) is the CI smoke test: it checks that the lab
//! works and asserts no number.
//!
//! After the packet rates: the follower's scale ([`follow`], not with
//! `--quick`) and a large FDB ([`scale`]: 1,000,000 entries, with `--quick`
//! 100,000): loading with `vtep -batch`, `fdb show`, the idle daemon's CPU,
//! memory per entry and the encap program's cost with the table full.
//! `--follow` and `--scale` run one of them alone.

mod bed;
mod chart;
mod follow;
mod scale;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use vtep_tests::lab::{self, Lab, Netns};

use self::bed::{Bed, Contender, Family};
use crate::cmd::{self, cargo};
use crate::setup;

#[derive(clap::Args)]
pub struct Options {
    /// A short subset: 64-byte frames, 1 flow, both directions, 1 s per cell
    /// (the CI smoke test; asserts no number).
    #[arg(long)]
    quick: bool,
    /// Seconds the generator sends per cell [default: 3, with --quick 1].
    #[arg(long, value_name = "SECS")]
    seconds: Option<f64>,
    /// Generator threads (each pinned to its own CPU, from CPU 0).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Only these contenders (kernel, xdp, afxdp); the kernel always runs,
    /// as every ratio is to it.
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    only: Vec<String>,
    /// Only the kernel-FDB follower's scale (`[follow]`: mirroring 100,000
    /// kernel FDB entries, follow rate under traffic, memory per entry):
    /// `target/bench/follow.json` (see bench/follow.rs). The full run
    /// (without --quick or --only) measures it too, after the packet rates.
    #[arg(long)]
    follow: bool,
    /// Only the large-FDB benchmark (`vtep -batch` load, `fdb show`, the
    /// idle daemon's CPU, memory per entry, the encap program's cost with a
    /// full table): `target/bench/scale.json` (see bench/scale.rs). The
    /// full run measures it too, with 1,000,000 entries; `--quick` with
    /// 100,000.
    #[arg(long)]
    scale: bool,
    /// Entries for --scale [default: 1000000, with --quick 100000].
    #[arg(long, value_name = "N")]
    entries: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Direction {
    Encap,
    Decap,
}

impl Direction {
    fn name(self) -> &'static str {
        match self {
            Direction::Encap => "encap",
            Direction::Decap => "decap",
        }
    }
}

/// One cell of the matrix.
#[derive(Clone, Copy, Debug)]
struct Cell {
    underlay: Family,
    direction: Direction,
    size: usize,
    flows: u32,
}

/// One row of `results.json`.
#[derive(Clone, Debug, Serialize)]
struct Row {
    contender: &'static str,
    /// The underlay's family: "ipv4" or "ipv6".
    underlay: Family,
    direction: Direction,
    /// Tenant frame size in bytes (without FCS); the underlay carries 50
    /// more over IPv4, 70 over IPv6.
    size: usize,
    flows: u32,
    /// Received at the sink, per second of sending. `null` when the
    /// contender did not run (see `status`).
    mpps: Option<f64>,
    /// Tenant frames' bits per second at that rate.
    gbps: Option<f64>,
    /// 1 − received / sent.
    loss: Option<f64>,
    ratio_vs_kernel: Option<f64>,
    /// The lab's ceiling in this cell: Mpps through a gateway namespace that
    /// only redirects (XDP, frames untouched), and this row's share of it.
    ceiling_mpps: Option<f64>,
    ratio_vs_ceiling: Option<f64>,
    /// afxdp rows: the AF_XDP ceiling in this cell (Mpps through a gateway
    /// namespace whose AF_XDP sockets move every frame to the other port,
    /// untouched, on the engine's sockets, rings and batches) and this
    /// row's share of it.
    afxdp_ceiling_mpps: Option<f64>,
    ratio_vs_afxdp_ceiling: Option<f64>,
    /// The gateway's own cost per packet, ns: `1/Mpps − 1/ceiling_Mpps`
    /// (what this row's gateway spends beyond the lab's generator, links
    /// and sink, which the ceiling row spends too). Can come out slightly
    /// negative where a gateway runs within noise of the ceiling.
    own_ns: Option<f64>,
    /// The kernel's own cost in this cell over this row's (× cheaper).
    kernel_cost_ratio: Option<f64>,
    /// What the generator offered.
    offered_mpps: Option<f64>,
    sent: Option<u64>,
    received: Option<u64>,
    /// Frames the generator's interface dropped (its tx_dropped).
    generator_errors: Option<u64>,
    seconds: Option<f64>,
    /// The XDP program of this direction, ns per packet (BPF_PROG_TEST_RUN
    /// repeat; xdp rows only), the floor and their ratio.
    program: Option<String>,
    program_ns: Option<f64>,
    floor_ns: Option<f64>,
    program_vs_floor: Option<f64>,
    /// "ok", or why there are no numbers.
    status: String,
}

/// `vtep pktgen -j`.
#[derive(Debug, Deserialize)]
struct GenResult {
    packets: u64,
    usec: u64,
    pps: f64,
    errors: u64,
}

/// `vtep pktgen sink -j`.
#[derive(Debug, Deserialize)]
struct SinkResult {
    packets: u64,
}

/// `vtep pktgen cost -j`.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct CostResult {
    repeat: u32,
    floor_ns: f64,
    harness_floor_ns: f64,
    programs: Vec<ProgramCost>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
struct ProgramCost {
    program: String,
    direction: String,
    /// "ipv4" or "ipv6" (absent from an older vtep: IPv4).
    #[serde(default = "ipv4")]
    underlay: String,
    size: usize,
    ns: f64,
    ratio_to_floor: f64,
}

fn ipv4() -> String {
    Family::V4.name().to_owned()
}

/// What one measured cell gave.
#[derive(Clone, Copy, Debug)]
struct Measured {
    sent: u64,
    received: u64,
    seconds: f64,
    offered_pps: f64,
    errors: u64,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    cmd::ensure_root()?;
    // The lab's vtep daemons take their engine from the config here, not
    // from the test suite's variable.
    // SAFETY: no other thread exists yet.
    unsafe { std::env::remove_var("VTEP_ENGINE") };
    setup::ensure()?;
    println!("==> build vtep (release)");
    cmd::run(cargo().args(["build", "--release", "-p", "vtep"]))?;
    let vtep = cmd::vtep_bin();
    // SAFETY: no other thread exists yet (the lab reads VTEP_BIN).
    unsafe { std::env::set_var("VTEP_BIN", &vtep) };
    if options.follow {
        follow::run(&follow::Options::default(), &bench_dir())?;
        return Ok(());
    }
    let scale = {
        let mut s = if options.quick {
            scale::Options::quick()
        } else {
            scale::Options::full()
        };
        if let Some(n) = options.entries {
            s.entries = n;
        }
        s
    };
    if options.scale {
        scale::run(&scale, &bench_dir())?;
        return Ok(());
    }

    let seconds = options
        .seconds
        .unwrap_or(if options.quick { 1.0 } else { 3.0 });
    let cells = cells(options.quick);
    let afxdp = afxdp_available(&vtep);
    // The ceiling runs with every selection: each row carries it; the
    // AF_XDP ceiling wherever the AF_XDP engine runs.
    let selected = |c: &Contender| {
        *c != Contender::Kernel
            && (options.only.is_empty() || options.only.iter().any(|o| o == c.name()))
    };
    let afxdp_ceiling = afxdp && selected(&Contender::Afxdp);
    let contenders: Vec<Contender> = [Contender::Kernel, Contender::Ceiling]
        .into_iter()
        .chain(afxdp_ceiling.then_some(Contender::AfxdpCeiling))
        .chain(Contender::ALL.into_iter().filter(selected))
        .collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "\n==> bench: {} cells x {} contenders, {seconds} s each, {} generator thread(s), {cpus} CPUs",
        cells.len(),
        contenders.len(),
        options.threads
    );
    if !afxdp {
        println!("afxdp: not available in this build (`vtep run --help` shows no --engine)");
    }

    let lab = Lab::new("bench");
    let cost = measure_cost(&lab, &vtep, options.quick, &cells)?;
    println!(
        "program cost (BPF_PROG_TEST_RUN, {} runs): floor {:.1} ns",
        cost.repeat, cost.floor_ns
    );

    let mut rows: Vec<Row> = Vec::new();
    let mut ceiling: Vec<Row> = Vec::new();
    let mut afxdp_ceiling: Vec<Row> = Vec::new();
    let started = Instant::now();
    for contender in contenders {
        if contender == Contender::Afxdp && !afxdp {
            for cell in &cells {
                rows.push(absent(contender, cell, "not available in this build"));
            }
            continue;
        }
        for family in [Family::V4, Family::V6] {
            let of_family: Vec<&Cell> = cells.iter().filter(|c| c.underlay == family).collect();
            if of_family.is_empty() {
                continue;
            }
            let bar = spinner(&format!(
                "{} over {}: starting the gateway",
                contender.name(),
                family.name()
            ));
            let bed = Bed::new(&lab, contender, family, cpus);
            bar.finish_and_clear();
            let mut directions: Vec<Direction> = of_family.iter().map(|c| c.direction).collect();
            directions.dedup();
            warm_up(&bed, &vtep, &directions, options.threads)?;
            for cell in of_family {
                let label = format!(
                    "{:<13} {} {} {:>4} B {:>4} flow(s)",
                    contender.name(),
                    family.name(),
                    cell.direction.name(),
                    cell.size,
                    cell.flows
                );
                let bar = spinner(&format!("{label}: sending for {seconds} s"));
                let m = measure(&bed, &vtep, cell, seconds, options.threads)
                    .with_context(|| format!("bench cell {label}"))?;
                let mpps = m.received as f64 / m.seconds / 1e6;
                let done = format!(
                    "{label}: {mpps:>6.3} Mpps received, {:.3} Mpps offered, loss {:.2}%",
                    m.offered_pps / 1e6,
                    loss(&m) * 100.0
                );
                if bar.is_hidden() {
                    // Not a terminal (CI's log): one plain line per cell.
                    println!("{done}");
                }
                bar.finish_with_message(done);
                let r = row(contender, cell, &m, &cost);
                match contender {
                    Contender::Ceiling => ceiling.push(r),
                    Contender::AfxdpCeiling => afxdp_ceiling.push(r),
                    _ => rows.push(r),
                }
            }
            drop(bed);
        }
    }
    drop(lab);
    fill_ratios(&mut rows, &ceiling, &afxdp_ceiling);
    let ceilings: Vec<Row> = ceiling.iter().chain(&afxdp_ceiling).cloned().collect();

    let dir = bench_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let results = dir.join("results.json");
    std::fs::write(&results, serde_json::to_string_pretty(&rows)?)
        .with_context(|| format!("writing {}", results.display()))?;
    std::fs::write(dir.join("cost.json"), serde_json::to_string_pretty(&cost)?)?;
    std::fs::write(
        dir.join("ceilings.json"),
        serde_json::to_string_pretty(&ceilings)?,
    )?;
    let chart = dir.join("results.svg");
    chart::draw(
        &chart,
        &chart_data(&rows, &ceilings),
        &chart_title(seconds, options.threads),
    )
    .with_context(|| format!("drawing {}", chart.display()))?;
    let cost_chart = dir.join("own-cost.svg");
    chart::draw(
        &cost_chart,
        &cost_chart_data(&rows),
        "vtep bench: each gateway's own cost per packet, 1/Mpps − 1/ceiling Mpps (lower is better)",
    )
    .with_context(|| format!("drawing {}", cost_chart.display()))?;
    println!("\n{}", table(&rows, &cost));
    println!("{}", ceiling_table(&ceilings));
    println!("{}", targets(&rows, &cost));
    println!(
        "took {:.0} s; results: {}, chart: {}",
        started.elapsed().as_secs_f64(),
        results.display(),
        chart.display()
    );
    if !options.quick && options.only.is_empty() {
        // The follower's scale, next to the packet rates.
        follow::run(&follow::Options::default(), &dir)?;
    }
    if options.only.is_empty() {
        // A large FDB (with --quick, a smaller one).
        scale::run(&scale, &dir)?;
    }
    Ok(())
}

/// The matrix: over IPv4 both directions, 64, 512, 1500 bytes, 1 and 1024
/// flows; over IPv6 both directions at 64 bytes, 1 and 1024 flows. Quick:
/// 64 bytes, 1 flow, both directions over IPv4 and decap over IPv6.
fn cells(quick: bool) -> Vec<Cell> {
    let (sizes, flows): (&[usize], &[u32]) = if quick {
        (&[64], &[1])
    } else {
        (&[64, 512, 1500], &[1, 1024])
    };
    let both = [Direction::Encap, Direction::Decap];
    let v6_directions: &[Direction] = if quick { &[Direction::Decap] } else { &both };
    let mut cells = Vec::new();
    for (underlay, directions, sizes) in [
        (Family::V4, &both[..], sizes),
        (Family::V6, v6_directions, &[64][..]),
    ] {
        for &direction in directions {
            for &size in sizes {
                for &flows in flows {
                    cells.push(Cell {
                        underlay,
                        direction,
                        size,
                        flows,
                    });
                }
            }
        }
    }
    cells
}

/// True if this vtep has the AF_XDP engine (`vtep run --help` shows `--engine`).
fn afxdp_available(vtep: &std::path::Path) -> bool {
    cmd::output(Command::new(vtep).args(["run", "--help"]))
        .is_some_and(|help| help.contains("--engine"))
}

/// `target/bench`, honouring CARGO_TARGET_DIR.
fn bench_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| cmd::workspace_root().join("target"), PathBuf::from)
        .join("bench")
}

fn spinner(msg: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(msg.to_owned());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// `vtep pktgen ...` for `cell`, run in the namespace that sends.
fn pktgen_line(vtep: &std::path::Path, cell: &Cell, seconds: f64, threads: usize) -> String {
    use self::bed::*;
    let common = format!(
        "{} pktgen -j --dev eth0 --size {} --flows {} --threads {threads} --duration {seconds}",
        vtep.display(),
        cell.size,
        cell.flows
    );
    match cell.direction {
        Direction::Encap => format!(
            "{common} --dst-mac {REMOTE_WORKLOAD_MAC} --src-ip {TENANT_IP} --dst-ip {REMOTE_WORKLOAD_IP}"
        ),
        Direction::Decap => {
            let (local, remote) = cell.underlay.vteps();
            format!(
                "{common} --vxlan --vni {VNI} --outer-src {remote} --outer-dst {local} \
                 --outer-dst-mac {UPLINK_MAC} --src-mac {REMOTE_WORKLOAD_MAC} \
                 --dst-mac {TENANT_MAC} --src-ip {REMOTE_WORKLOAD_IP} --dst-ip {TENANT_IP}"
            )
        }
    }
}

/// (sending namespace, receiving namespace) of a direction.
fn ends(bed: &Bed, direction: Direction) -> (&Netns, &Netns) {
    match direction {
        Direction::Encap => (&bed.tenant, &bed.underlay),
        Direction::Decap => (&bed.underlay, &bed.tenant),
    }
}

/// Short runs in `directions` before measuring: learning, neighbour
/// tables and caches settle.
fn warm_up(
    bed: &Bed,
    vtep: &std::path::Path,
    directions: &[Direction],
    threads: usize,
) -> anyhow::Result<()> {
    let bar = spinner(&format!("{}: warming up", bed.contender.name()));
    for &direction in directions {
        let cell = Cell {
            underlay: bed.family,
            direction,
            size: 64,
            flows: 1,
        };
        measure(bed, vtep, &cell, 0.5, threads)
            .with_context(|| format!("{}: warm-up", bed.contender.name()))?;
    }
    bar.finish_and_clear();
    Ok(())
}

/// One cell: the sink on, the generator for `seconds`, the sink's count.
fn measure(
    bed: &Bed,
    vtep: &std::path::Path,
    cell: &Cell,
    seconds: f64,
    threads: usize,
) -> anyhow::Result<Measured> {
    let (sender, receiver) = ends(bed, cell.direction);
    let mut sink = receiver.spawn_as(
        "sink",
        &format!("{} pktgen sink -j --dev eth0", vtep.display()),
    );
    let attached = lab::wait_until(Duration::from_secs(10), || {
        sink.output().contains("counting on")
    });
    if !attached {
        sink.stop();
        bail!("the sink did not start: {}", sink.output());
    }
    let generator = sender.exec(&pktgen_line(vtep, cell, seconds, threads));
    // Frames still in flight (rings, NAPI) arrive within microseconds.
    sleep(Duration::from_millis(100));
    sink.interrupt();
    if !generator.success() {
        bail!("the generator failed: {generator}");
    }
    let g: GenResult = serde_json::from_str(generator.stdout.trim())
        .with_context(|| format!("`vtep pktgen -j` printed no result: {}", generator.stdout))?;
    let out = sink.output();
    let s: SinkResult = out
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("`vtep pktgen sink -j` printed no result: {out}"))?;
    Ok(Measured {
        sent: g.packets,
        received: s.packets,
        seconds: g.usec as f64 / 1e6,
        offered_pps: g.pps,
        errors: g.errors,
    })
}

fn loss(m: &Measured) -> f64 {
    if m.sent == 0 {
        return 0.0;
    }
    (1.0 - m.received as f64 / m.sent as f64).max(0.0)
}

/// `vtep pktgen cost` in a namespace of its own (ifindex 1 there is its lo).
fn measure_cost(
    lab: &Lab,
    vtep: &std::path::Path,
    quick: bool,
    cells: &[Cell],
) -> anyhow::Result<CostResult> {
    let bar = spinner("program cost: BPF_PROG_TEST_RUN repeat");
    let ns = lab.netns("cost");
    let mut sizes: Vec<usize> = cells.iter().map(|c| c.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let sizes: Vec<String> = sizes.iter().map(usize::to_string).collect();
    let repeat = if quick { 1_000_000 } else { 5_000_000 };
    // Each timing is `repeat` runs of a program, best of 3: the two
    // programs at every size over both families, and the floors, take
    // minutes, not the lab's default minute.
    let timeout = Duration::from_secs(600);
    let run = |underlays: &str| {
        let line = ns.cmdline(&format!(
            "{} pktgen cost -j --repeat {repeat} --sizes {} --underlays {underlays}",
            vtep.display(),
            sizes.join(",")
        ));
        lab::try_run(&line, timeout).unwrap_or_else(|e| panic!("{e}"))
    };
    let mut out = run("ipv4,ipv6");
    if !out.success() {
        // A vtep whose XDP programs do not take IPv6 yet: IPv4 alone.
        let v4 = run("ipv4");
        if v4.success() {
            println!("program cost over IPv6 not measured: {}", out.stderr.trim());
        }
        out = v4;
    }
    bar.finish_and_clear();
    if !out.success() {
        bail!("vtep pktgen cost failed: {out}");
    }
    serde_json::from_str(out.stdout.trim())
        .with_context(|| format!("`vtep pktgen cost -j` printed no result: {}", out.stdout))
}

fn absent(contender: Contender, cell: &Cell, why: &str) -> Row {
    Row {
        contender: contender.name(),
        underlay: cell.underlay,
        direction: cell.direction,
        size: cell.size,
        flows: cell.flows,
        mpps: None,
        gbps: None,
        loss: None,
        ratio_vs_kernel: None,
        ceiling_mpps: None,
        ratio_vs_ceiling: None,
        afxdp_ceiling_mpps: None,
        ratio_vs_afxdp_ceiling: None,
        own_ns: None,
        kernel_cost_ratio: None,
        offered_mpps: None,
        sent: None,
        received: None,
        generator_errors: None,
        seconds: None,
        program: None,
        program_ns: None,
        floor_ns: None,
        program_vs_floor: None,
        status: why.to_owned(),
    }
}

fn row(contender: Contender, cell: &Cell, m: &Measured, cost: &CostResult) -> Row {
    let mpps = m.received as f64 / m.seconds / 1e6;
    let program = (contender == Contender::Xdp)
        .then(|| {
            cost.programs.iter().find(|p| {
                p.direction == cell.direction.name()
                    && p.size == cell.size
                    && p.underlay == cell.underlay.name()
            })
        })
        .flatten();
    Row {
        mpps: Some(mpps),
        gbps: Some(mpps * 1e6 * cell.size as f64 * 8.0 / 1e9),
        loss: Some(loss(m)),
        offered_mpps: Some(m.offered_pps / 1e6),
        sent: Some(m.sent),
        received: Some(m.received),
        generator_errors: Some(m.errors),
        seconds: Some(m.seconds),
        program: program.map(|p| p.program.clone()),
        program_ns: program.map(|p| p.ns),
        floor_ns: program.map(|_| cost.floor_ns),
        program_vs_floor: program.map(|p| p.ratio_to_floor),
        status: "ok".to_owned(),
        ..absent(contender, cell, "")
    }
}

/// Each row's rate over the kernel's and the ceiling's in the same cell,
/// and an afxdp row's over the AF_XDP ceiling's.
fn fill_ratios(rows: &mut [Row], ceiling: &[Row], afxdp_ceiling: &[Row]) {
    let same = |a: &Row, b: &Row| {
        a.underlay == b.underlay
            && a.direction == b.direction
            && a.size == b.size
            && a.flows == b.flows
    };
    let kernel: Vec<Row> = rows
        .iter()
        .filter(|r| r.contender == Contender::Kernel.name())
        .cloned()
        .collect();
    for r in rows.iter_mut() {
        let k = kernel.iter().find(|k| same(k, r)).and_then(|k| k.mpps);
        if let (Some(mpps), Some(k)) = (r.mpps, k)
            && k > 0.0
        {
            r.ratio_vs_kernel = Some(mpps / k);
        }
        r.ceiling_mpps = ceiling.iter().find(|c| same(c, r)).and_then(|c| c.mpps);
        r.ratio_vs_ceiling = share(r.mpps, r.ceiling_mpps);
        if r.contender == Contender::Afxdp.name() {
            r.afxdp_ceiling_mpps = afxdp_ceiling
                .iter()
                .find(|c| same(c, r))
                .and_then(|c| c.mpps);
            r.ratio_vs_afxdp_ceiling = share(r.mpps, r.afxdp_ceiling_mpps);
        }
        r.own_ns = own_ns(r.mpps, r.ceiling_mpps);
    }
    // The kernel's own cost over each row's, in the same cell.
    let kernel_own: Vec<(Row, Option<f64>)> = rows
        .iter()
        .filter(|r| r.contender == Contender::Kernel.name())
        .map(|k| (k.clone(), k.own_ns))
        .collect();
    for r in rows.iter_mut() {
        let k = kernel_own
            .iter()
            .find(|(k, _)| same(k, r))
            .and_then(|(_, ns)| *ns);
        if let (Some(k), Some(own)) = (k, r.own_ns)
            && own > 0.0
        {
            r.kernel_cost_ratio = Some(k / own);
        }
    }
}

/// A rate's share of a ceiling's (both Mpps), where the ceiling ran.
fn share(mpps: Option<f64>, ceiling_mpps: Option<f64>) -> Option<f64> {
    match (mpps, ceiling_mpps) {
        (Some(m), Some(c)) if c > 0.0 => Some(m / c),
        _ => None,
    }
}

/// A gateway's own cost per packet in ns, from its rate and the lab's
/// ceiling in the same cell (both Mpps): the time per packet beyond what
/// the generator, the links and the sink take.
fn own_ns(mpps: Option<f64>, ceiling_mpps: Option<f64>) -> Option<f64> {
    match (mpps, ceiling_mpps) {
        (Some(m), Some(c)) if m > 0.0 && c > 0.0 => Some((1.0 / m - 1.0 / c) * 1e3),
        _ => None,
    }
}

fn table(rows: &[Row], cost: &CostResult) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| contender | underlay | direction | size (B) | flows | Mpps | Gbit/s | loss | × kernel | % of ceiling (Mpps) | % of AF_XDP ceiling (Mpps) | own ns/pkt | kernel's cost ÷ own | program ns/pkt (× floor) |"
    );
    let _ = writeln!(
        out,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        let program = match (r.program_ns, r.program_vs_floor) {
            (Some(ns), Some(x)) => format!("{ns:.1} ({x:.1}×)"),
            _ => String::new(),
        };
        match (r.mpps, r.gbps, r.loss) {
            (Some(mpps), Some(gbps), Some(loss)) => {
                let ceiling = percent_of(r.ratio_vs_ceiling, r.ceiling_mpps);
                let afxdp_ceiling = percent_of(r.ratio_vs_afxdp_ceiling, r.afxdp_ceiling_mpps);
                let own = r.own_ns.map_or(String::new(), |ns| format!("{ns:.0}"));
                let cheaper = match (r.contender == Contender::Kernel.name(), r.kernel_cost_ratio) {
                    (true, _) => "–".to_owned(),
                    (false, Some(x)) => format!("{x:.1}×"),
                    // Within noise of the ceiling: no cost to divide by.
                    (false, None) if r.own_ns.is_some() => "≈ ceiling".to_owned(),
                    (false, None) => String::new(),
                };
                let _ = writeln!(
                    out,
                    "{} {mpps:.3} | {gbps:.2} | {:.2}% | {} | {ceiling} | {afxdp_ceiling} | {own} | {cheaper} | {program} |",
                    cell_columns(r),
                    loss * 100.0,
                    r.ratio_vs_kernel
                        .map_or(String::from("–"), |x| format!("{x:.2}"))
                );
            }
            _ => {
                let _ = writeln!(out, "{} {} | | | | | | | | |", cell_columns(r), r.status);
            }
        }
    }
    let _ = writeln!(
        out,
        "\nPer-packet cost (BPF_PROG_TEST_RUN, {} runs, best of 3): trivial XDP (floor) {:.1} ns; \
         through the cost harness {:.1} ns",
        cost.repeat, cost.floor_ns, cost.harness_floor_ns
    );
    for p in &cost.programs {
        let _ = writeln!(
            out,
            "  {:<12} {:<5} {:<4} {:>5} B: {:>6.1} ns ({:.1}× floor)",
            p.program, p.direction, p.underlay, p.size, p.ns, p.ratio_to_floor
        );
    }
    out
}

/// A row's first columns: who, and which cell.
fn cell_columns(r: &Row) -> String {
    format!(
        "| {} | {} | {} | {} | {} |",
        r.contender,
        r.underlay.name(),
        r.direction.name(),
        r.size,
        r.flows
    )
}

/// `x` of a ceiling `c` Mpps, as the table shows it: `83% (1.234)`.
fn percent_of(x: Option<f64>, c: Option<f64>) -> String {
    match (x, c) {
        (Some(x), Some(c)) => format!("{:.0}% ({c:.3})", x * 100.0),
        _ => String::new(),
    }
}

/// The lab's ceilings, each cell's rate and loss: what the lab allows a
/// gateway of each kind (XDP redirect, AF_XDP forward) on these ports.
fn ceiling_table(ceilings: &[Row]) -> String {
    let mut out = String::from(
        "Lab ceilings (frames untouched, same ports and cells):\n\
         | ceiling | underlay | direction | size (B) | flows | Mpps | offered Mpps | loss |\n\
         |---|---|---|---:|---:|---:|---:|---:|\n",
    );
    for r in ceilings {
        let (Some(mpps), Some(offered), Some(loss)) = (r.mpps, r.offered_mpps, r.loss) else {
            continue;
        };
        let _ = writeln!(
            out,
            "{} {mpps:.3} | {offered:.3} | {:.2}% |",
            cell_columns(r),
            loss * 100.0
        );
    }
    out
}

/// The targets, measured: met or not, with the ratio.
fn targets(rows: &[Row], cost: &CostResult) -> String {
    let mut out = String::from("Targets (ratios of this run):\n");
    // The targets' cell: IPv4, 64 B, 1 flow.
    let target_row = |contender: &str, direction: Direction| {
        rows.iter().find(|r| {
            r.contender == contender
                && r.underlay == Family::V4
                && r.direction == direction
                && r.size == 64
                && r.flows == 1
        })
    };
    let ratio = |contender: &str, direction: Direction| {
        target_row(contender, direction).and_then(|r| r.ratio_vs_kernel)
    };
    for (contender, want) in [("xdp", 8.0), ("afxdp", 2.0)] {
        for direction in [Direction::Encap, Direction::Decap] {
            let line = match ratio(contender, direction) {
                Some(x) => format!("{x:.2}× ({})", if x >= want { "met" } else { "NOT met" }),
                None => "not measured".to_owned(),
            };
            let _ = writeln!(
                out,
                "  {contender} ≥ {want}× kernel, {} 64 B 1 flow: {line}",
                direction.name()
            );
        }
    }
    for direction in [Direction::Encap, Direction::Decap] {
        let afxdp = target_row(Contender::Afxdp.name(), direction);
        let line = match afxdp.and_then(|r| r.ratio_vs_afxdp_ceiling.zip(r.loss)) {
            Some((x, loss)) => format!(
                "{:.0}% ({}), loss {:.2}%",
                x * 100.0,
                if x >= 0.8 { "met" } else { "NOT met" },
                loss * 100.0
            ),
            None => "not measured".to_owned(),
        };
        let _ = writeln!(
            out,
            "  afxdp ≥ 80% of the AF_XDP ceiling, {} 64 B 1 flow: {line}",
            direction.name()
        );
    }
    for p in cost.programs.iter().filter(|p| p.size == 64) {
        let _ = writeln!(
            out,
            "  {} ({} over {}) ≤ 2× floor: {:.1}× ({})",
            p.program,
            p.direction,
            p.underlay,
            p.ratio_to_floor,
            if p.ratio_to_floor <= 2.0 {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    out
}

fn chart_title(seconds: f64, threads: usize) -> String {
    format!(
        "vtep bench: Mpps received at the sink ({seconds} s per cell, {threads} generator thread(s))"
    )
}

/// A cell's label in the chart: `encap 64B 1f`, and ` v6` over IPv6.
fn group_label(r: &Row) -> String {
    let v6 = if r.underlay == Family::V6 { " v6" } else { "" };
    format!("{} {}B {}f{v6}", r.direction.name(), r.size, r.flows)
}

fn chart_data(rows: &[Row], ceilings: &[Row]) -> chart::Data {
    let mut groups: Vec<String> = Vec::new();
    for r in rows {
        let g = group_label(r);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let afxdp_ceiling = ceilings
        .iter()
        .any(|r| r.contender == Contender::AfxdpCeiling.name());
    let series = Contender::ALL
        .iter()
        .chain([&Contender::Ceiling])
        .chain(afxdp_ceiling.then_some(&Contender::AfxdpCeiling))
        .map(|c| {
            let values = groups
                .iter()
                .map(|g| {
                    rows.iter()
                        .chain(ceilings)
                        .find(|r| r.contender == c.name() && group_label(r) == *g)
                        .and_then(|r| r.mpps)
                })
                .collect();
            chart::Series {
                name: match c {
                    Contender::Afxdp
                        if rows
                            .iter()
                            .all(|r| r.contender != "afxdp" || r.mpps.is_none()) =>
                    {
                        format!("{} (not available in this build)", c.title())
                    }
                    _ => c.title().to_owned(),
                },
                values,
            }
        })
        .collect();
    chart::Data {
        groups,
        series,
        y_desc: "Mpps received",
        decimals: 2,
    }
}

/// The cost chart: each gateway's own ns per packet ([`Row::own_ns`]) in
/// every cell, the kernel's beside vtep's engines.
fn cost_chart_data(rows: &[Row]) -> chart::Data {
    let mut groups: Vec<String> = Vec::new();
    for r in rows {
        let g = group_label(r);
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    let series = Contender::ALL
        .iter()
        .map(|c| chart::Series {
            name: c.title().to_owned(),
            values: groups
                .iter()
                .map(|g| {
                    rows.iter()
                        .find(|r| r.contender == c.name() && group_label(r) == *g)
                        .and_then(|r| r.own_ns)
                        .map(|ns| ns.max(0.0))
                })
                .collect(),
        })
        .collect();
    chart::Data {
        groups,
        series,
        y_desc: "own ns per packet",
        decimals: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(contender: Contender, mpps: f64) -> Row {
        let cell = Cell {
            underlay: Family::V4,
            direction: Direction::Encap,
            size: 64,
            flows: 1,
        };
        Row {
            mpps: Some(mpps),
            ..absent(contender, &cell, "ok")
        }
    }

    #[test]
    fn own_cost_is_the_time_beyond_the_ceiling() {
        // 2 Mpps is 500 ns a packet, the ceiling's 4 Mpps 250 ns: 250 ns own.
        let ns = own_ns(Some(2.0), Some(4.0)).expect("a cost");
        assert!((ns - 250.0).abs() < 1e-9, "{ns}");
        assert_eq!(own_ns(None, Some(4.0)), None);
        assert_eq!(own_ns(Some(2.0), Some(0.0)), None);
    }

    #[test]
    fn the_kernels_cost_over_each_rows() {
        // Ceiling 4 Mpps (250 ns); kernel 0.4 Mpps (2500 − 250 = 2250 ns
        // own); vtep 2 Mpps (250 ns own): 9× cheaper; a row at the ceiling
        // has no cost to divide by.
        let ceiling = vec![row(Contender::Kernel, 4.0)];
        let mut rows = vec![
            row(Contender::Kernel, 0.4),
            row(Contender::Xdp, 2.0),
            row(Contender::Afxdp, 4.0),
        ];
        fill_ratios(&mut rows, &ceiling, &[]);
        assert!((rows[1].kernel_cost_ratio.unwrap() - 9.0).abs() < 1e-9);
        assert!((rows[1].ratio_vs_kernel.unwrap() - 5.0).abs() < 1e-9);
        assert_eq!(rows[2].kernel_cost_ratio, None);
        assert_eq!(rows[2].own_ns, Some(0.0));
    }

    #[test]
    fn afxdp_rows_get_their_share_of_the_afxdp_ceiling() {
        // XDP ceiling 4 Mpps, AF_XDP ceiling 0.5 Mpps; the engine's 0.4
        // Mpps is 10% of the one and 80% of the other; other rows get no
        // AF_XDP share, and no AF_XDP ceiling leaves it empty.
        let ceiling = vec![row(Contender::Ceiling, 4.0)];
        let afxdp_ceiling = vec![row(Contender::AfxdpCeiling, 0.5)];
        let mut rows = vec![
            row(Contender::Kernel, 0.4),
            row(Contender::Xdp, 2.0),
            row(Contender::Afxdp, 0.4),
        ];
        fill_ratios(&mut rows, &ceiling, &afxdp_ceiling);
        let afxdp = &rows[2];
        assert_eq!(afxdp.afxdp_ceiling_mpps, Some(0.5));
        assert!((afxdp.ratio_vs_afxdp_ceiling.unwrap() - 0.8).abs() < 1e-9);
        assert!((afxdp.ratio_vs_ceiling.unwrap() - 0.1).abs() < 1e-9);
        for r in &rows[..2] {
            assert_eq!(r.afxdp_ceiling_mpps, None, "{}", r.contender);
            assert_eq!(r.ratio_vs_afxdp_ceiling, None, "{}", r.contender);
        }
        fill_ratios(&mut rows, &ceiling, &[]);
        assert_eq!(rows[2].ratio_vs_afxdp_ceiling, None);
        assert_eq!(percent_of(rows[2].ratio_vs_afxdp_ceiling, None), "");
    }

    #[test]
    fn a_share_needs_a_ceiling_that_ran() {
        assert_eq!(share(Some(1.0), Some(4.0)), Some(0.25));
        assert_eq!(share(Some(1.0), Some(0.0)), None);
        assert_eq!(share(None, Some(4.0)), None);
        assert_eq!(percent_of(Some(0.834), Some(1.2345)), "83% (1.234)");
    }

    #[test]
    fn the_ceiling_table_has_a_row_per_measured_ceiling() {
        let mut afxdp = row(Contender::AfxdpCeiling, 0.5);
        afxdp.offered_mpps = Some(0.6);
        afxdp.loss = Some(0.125);
        let absent = absent(
            Contender::Ceiling,
            &Cell {
                underlay: Family::V4,
                direction: Direction::Decap,
                size: 64,
                flows: 1,
            },
            "not run",
        );
        let t = ceiling_table(&[afxdp, absent]);
        assert!(
            t.contains("| afxdp-ceiling | ipv4 | encap | 64 | 1 | 0.500 | 0.600 | 12.50% |"),
            "{t}"
        );
        assert_eq!(t.lines().count(), 4, "{t}");
    }
}
