//! `vtep run`: bring the gateway up from a config, then keep it: age
//! learned MACs out, keep the remote VTEPs' neighbours resolved. A signal
//! stops the daemon and leaves the datapath forwarding with its tables; the
//! daemon's run lock goes with it. With `[metrics]` it serves Prometheus
//! metrics ([`metrics`]); its [`monitor`] passes every FDB event on to
//! `vtep monitor`.

pub mod monitor;

use std::{
    net::SocketAddr,
    os::fd::RawFd,
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::{Context as _, Result};
use tokio::{
    io::{
        Interest,
        unix::{AsyncFd, AsyncFdReadyGuard},
    },
    signal::unix::{Signal, SignalKind, signal},
};

use vtep_common::event::{EventKind, FdbEvent};

use self::monitor::Monitor;
use crate::{
    control::{afxdp, apply, follow},
    datapath::{gateway::Gateway, loader, pins::Pins},
    model::config::{EngineKind, MetricsConfig},
    system::{bpffs, clock, netlink, notify},
};

pub mod metrics;

/// How often the daemon ages entries and refreshes neighbours.
const TICK: Duration = Duration::from_secs(1);

/// `vtep run`: `engine` and `metrics` (ADDR:PORT) override the config's.
pub fn run(
    config_path: &Path,
    pin_path: &Path,
    engine: Option<EngineKind>,
    metrics: Option<SocketAddr>,
) -> Result<()> {
    let mut cfg = apply::read_config(config_path)
        .with_context(|| format!("config {}", config_path.display()))?;
    if let Some(engine) = engine {
        cfg.engine = engine;
    }
    if let Some(listen) = metrics {
        cfg.metrics = Some(MetricsConfig { listen });
    }
    if cfg.follow.is_some() && cfg.engine != EngineKind::Xdp {
        anyhow::bail!(
            "config {}: [follow] needs the XDP engine (the AF_XDP engine does not pass a \
             followed VNI's misses to the kernel yet)",
            config_path.display()
        );
    }
    // [follow] may leave underlay.local and .port to the followed devices.
    follow::complete_underlay(&mut cfg)
        .with_context(|| format!("config {}", config_path.display()))?;
    let resolved =
        apply::resolve(&cfg).with_context(|| format!("config {}", config_path.display()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    // SIGTERM and SIGINT are caught from here on: one that comes while the
    // gateway is brought up stops the daemon once it is up, the way every
    // stop goes (which removes the run lock's file).
    let stop = {
        let _in_runtime = rt.enter();
        Stop::new()?
    };
    let daemon = Arc::new(metrics::Daemon::new(cfg.engine));
    let _lock = bpffs::lock_pin_path(pin_path)?;
    // Bound before the gateway comes up: a port in use stops `vtep run` here.
    let metrics_listener = match cfg.metrics {
        Some(m) => {
            let _in_runtime = rt.enter();
            Some((metrics::bind(m.listen)?, m.listen))
        }
        None => None,
    };
    bpffs::ensure_bpffs(pin_path)?;
    let pins = Pins::new(pin_path);
    let loaded = loader::load(&pins, &cfg.capacity)?;
    let adopted = loaded.adopted;
    let mut gw = Gateway::open(pin_path)?;
    // No userspace engine runs yet (a previous one may have been killed
    // without saying so): the CLI must not wait for one.
    gw.set_applied_generation(0);
    // Listening before the datapath is attached: a `vtep monitor` started
    // once it forwards finds the daemon.
    let monitor = {
        let _in_runtime = rt.enter();
        Monitor::start(&gw)
            .inspect_err(|e| log::warn!("vtep monitor unavailable: {e:#}"))
            .ok()
    };
    apply::config(&mut gw, &cfg, &resolved)?;
    // Before the uplink is attached, which is when the daemon is up to those
    // who watch it: the first BUM frame finds its flood copies' next hops.
    match netlink::Rtnl::new() {
        Ok(mut rtnl) => {
            let ul = apply::underlay(&cfg, &resolved);
            apply::resolve_before_ready(&mut gw, &mut rtnl, &ul, apply::FLOOD_RESOLVE_WAIT);
        }
        Err(e) => log::warn!("resolving next hops: opening rtnetlink: {e}"),
    }
    apply::attach_uplink(&mut gw, &cfg.underlay.interface, resolved.uplink)?;
    let follower = match cfg.follow {
        None => None,
        Some(_) => {
            let mut f = follow::Follower::new(&cfg, resolved.uplink)?;
            f.resync(&mut gw, "start")?;
            Some(f)
        }
    };
    let runner = match cfg.engine {
        EngineKind::Xdp => None,
        EngineKind::Afxdp => {
            let maps = loaded
                .engine_maps
                .context("the eBPF object has no AF_XDP maps")?;
            let uplink = afxdp::Iface {
                ifindex: resolved.uplink,
                name: cfg.underlay.interface.clone(),
                role: afxdp::worker::SockRole::Uplink,
            };
            let tuning = afxdp::Tuning {
                busy_poll: cfg.busy_poll,
                cpu: cfg.afxdp_cpu,
            };
            Some(afxdp::Runner::start(
                pins.clone(),
                maps,
                uplink,
                &gw,
                tuning,
            )?)
        }
    };
    log::info!(
        "vtep up ({:?} engine): uplink {} ({}), {} VNI(s), {} access port(s), pinned at {}{}",
        cfg.engine,
        cfg.underlay.interface,
        cfg.underlay.local,
        cfg.vnis.len(),
        resolved.ports.len(),
        pin_path.display(),
        if adopted {
            " (adopted the pinned tables)"
        } else {
            ""
        }
    );

    if let Some((listener, addr)) = metrics_listener {
        let endpoint = metrics::Endpoint::new(listener, Gateway::open(pin_path)?, daemon.clone());
        let _in_runtime = rt.enter();
        tokio::spawn(endpoint.serve());
        log::info!("serving Prometheus metrics on http://{addr}/metrics");
    }

    notify::notify_ready();
    let ul = apply::underlay(&cfg, &resolved);
    if !resolved.fib {
        log::info!(
            "forwarding is off on {}: next hops come from the daemon's neighbour table, not bpf_fib_lookup",
            cfg.underlay.interface
        );
    }
    let runner = rt.block_on(housekeeping(
        gw,
        monitor,
        ul,
        cfg.underlay.interface.clone(),
        loaded.log,
        runner,
        follower,
        stop,
        daemon,
    ))?;
    if let Some(runner) = runner {
        runner.stop();
    }
    log::info!(
        "vtep daemon stopped; the datapath keeps forwarding (`vtep down --pin-path {}` removes it)",
        pin_path.display()
    );
    Ok(())
}

#[expect(
    clippy::too_many_arguments,
    reason = "the parts the loop owns, handed over once"
)]
async fn housekeeping(
    mut gw: Gateway,
    mut monitor: Option<Monitor>,
    mut ul: vtep_common::Underlay,
    uplink: String,
    log: Option<loader::DatapathLog>,
    mut runner: Option<afxdp::Runner>,
    mut follower: Option<follow::Follower>,
    mut stop: Stop,
    daemon: Arc<metrics::Daemon>,
) -> Result<Option<afxdp::Runner>> {
    if let Some(log) = log {
        tokio::spawn(print_datapath_log(log));
    }
    let mut tick = tokio::time::interval(TICK);
    let mut rtnl = netlink::Rtnl::new().context("opening rtnetlink")?;
    let mut delivery = apply::DeliveryState::default();
    if let Some(f) = &follower {
        daemon
            .follow_resyncs
            .store(f.stats.resyncs, Ordering::Relaxed);
    }
    let follow_fd = match &follower {
        // SAFETY: the follower owns the socket behind this fd and outlives
        // follow_fd (a parameter, dropped after the locals).
        Some(f) => Some(unsafe { AsyncFd::register_with_interest(f.fd(), Interest::READABLE) }?),
        None => None,
    };
    loop {
        tokio::select! {
            ready = readable(follow_fd.as_ref()) => {
                let mut guard = ready.context("waiting for rtnetlink events")?;
                if let Some(f) = follower.as_mut() {
                    match f.drain(&mut gw) {
                        // More queued: stay ready, after the other branches had a turn.
                        Ok(true) => {}
                        Ok(false) => guard.clear_ready(),
                        Err(e) => {
                            log::error!("follow: {e:#}");
                            guard.clear_ready();
                        }
                    }
                    daemon.follow_resyncs.store(f.stats.resyncs, Ordering::Relaxed);
                }
            }
            _ = serve(monitor.as_mut()) => {}
            _ = tick.tick() => {
                let now = clock::monotonic_ns();
                // What the datapath learned since, for ageing to look at;
                // without a monitor, ageing finds it by walking the table.
                if let Some(m) = monitor.as_mut() {
                    m.tell_lost(&mut gw);
                    let (learned, untold) = m.take_learned(&gw);
                    gw.note_learned(&learned, untold);
                }
                let aged = gw.age(now);
                if !aged.is_empty() {
                    log::debug!("aged out {} learned MAC(s)", aged.len());
                }
                if let Some(m) = monitor.as_mut() {
                    let gone = vtep_common::FdbEntry::default();
                    let events: Vec<FdbEvent> = aged
                        .into_iter()
                        .map(|(k, e)| FdbEvent::new(EventKind::Aged, k, e, gone, now))
                        .collect();
                    m.publish(&events);
                }
                apply::refresh_underlay(&mut gw, &mut rtnl, &mut ul, &uplink);
                apply::forget_vanished_ports(&mut gw);
                apply::refresh_xdp_delivery(&mut gw, &mut rtnl, &mut delivery, ul.uplink_ifindex);
                apply::resolve_neighbours(&mut gw, &mut rtnl, &ul);
                if let Some(r) = runner.as_mut()
                    && let Err(e) = r.refresh(&gw)
                {
                    log::error!("AF_XDP engine: {e:#}");
                }
            }
            _ = stop.term.recv() => break,
            _ = stop.int.recv() => break,
        }
    }
    if let Some(f) = &follower {
        log::info!("{}", f.summary());
    }
    Ok(runner)
}

/// The signals that stop the daemon: SIGTERM and SIGINT.
struct Stop {
    term: Signal,
    int: Signal,
}

impl Stop {
    /// Catches them (in a runtime's context).
    fn new() -> Result<Self> {
        Ok(Stop {
            term: signal(SignalKind::terminate()).context("catching SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("catching SIGINT")?,
        })
    }
}

/// Serves the monitor's clients until there is something to do, and does
/// it; never, without a monitor.
async fn serve(monitor: Option<&mut Monitor>) {
    match monitor {
        Some(m) => m.serve().await,
        None => std::future::pending().await,
    }
}

/// Waits until `fd` is readable; never, without one.
async fn readable(fd: Option<&AsyncFd<RawFd>>) -> std::io::Result<AsyncFdReadyGuard<'_, RawFd>> {
    match fd {
        Some(fd) => fd.readable().await,
        None => std::future::pending().await,
    }
}

/// Prints the programs' aya-log records as they come.
async fn print_datapath_log(log: loader::DatapathLog) {
    // SAFETY: the logger owns its ring buffer's fd, which stays open and the
    // same for as long as the AsyncFd owns the logger.
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(log, tokio::io::Interest::READABLE)
    };
    let mut fd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            log::warn!("datapath log records unavailable: {e}");
            return;
        }
    };
    loop {
        let Ok(mut guard) = fd.readable_mut().await else {
            return;
        };
        guard.get_inner_mut().flush();
        guard.clear_ready();
    }
}
