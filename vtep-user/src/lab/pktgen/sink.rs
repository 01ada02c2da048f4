//! The counting sink (`pktgen sink`) and the untouched forwarder (`pktgen
//! forward`), the two ends of the lab.

use super::*;

/// What a sink counted, as `vtep pktgen sink -j` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct SinkResult {
    pub dev: String,
    pub packets: u64,
    pub bytes: u64,
    /// From attach to stop.
    pub usec: u64,
}

pub(super) fn sink(args: &SinkArgs, json: bool) -> Result<()> {
    let ifindex = ifindex(&args.dev)?;
    let mut ebpf = load_lab()?;
    let prog: &mut Xdp = ebpf
        .program_mut(lab::programs::SINK)
        .context("program lab_sink missing from the object")?
        .try_into()?;
    loader::verify(|| prog.load()).context("loading lab_sink (verifier)")?;
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
pub(super) fn wait_for_stop(duration: Option<f64>, ready: impl FnOnce()) -> Result<()> {
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

pub(super) fn forward(args: &ForwardArgs) -> Result<()> {
    if args.xsk {
        return forward_xsk(args);
    }
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
    loader::verify(|| prog.load()).context("loading lab_fwd (verifier)")?;
    for (name, ifindex) in [(&args.a, a), (&args.b, b)] {
        prog.attach_to_if_index(ifindex, XdpMode::default())
            .with_context(|| format!("attaching lab_fwd to {name}"))?;
    }
    // The links go with the program when the process ends.
    wait_for_stop(None, || {
        eprintln!("vtep pktgen forward: forwarding {} <-> {}", args.a, args.b);
    })
}
