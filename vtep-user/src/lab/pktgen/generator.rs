//! The generator: BPF_PROG_TEST_RUN live frames, one pinned loop per thread,
//! and its result printed as the kernel's pktgen prints it.

use super::*;

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
    /// The underlay family of a VXLAN run: "ipv4" or "ipv6" (none without
    /// --vxlan).
    pub underlay: Option<&'static str>,
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

pub(super) fn generate(args: &GenArgs, json: bool) -> Result<()> {
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
        underlay: match t.config.vxlan {
            lab::GEN_VXLAN_V4 => Some("ipv4"),
            lab::GEN_VXLAN_V6 => Some("ipv6"),
            _ => None,
        },
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
        match r.underlay {
            Some(family) => format!("  vxlan over {family}"),
            None => String::new(),
        }
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
