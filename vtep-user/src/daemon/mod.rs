//! `vtep run`: bring the gateway up from a config, then keep it: age
//! learned MACs out, keep the remote VTEPs' neighbours resolved. A signal
//! stops the daemon and leaves the datapath forwarding with its tables; the
//! daemon's run lock goes with it.

use std::{os::fd::RawFd, path::Path, time::Duration};

use anyhow::{Context as _, Result};
use tokio::{
    io::{
        Interest,
        unix::{AsyncFd, AsyncFdReadyGuard},
    },
    signal::unix::{Signal, SignalKind, signal},
};

use crate::{
    control::{afxdp, apply, follow},
    datapath::{gateway::Gateway, loader, pins::Pins},
    model::config::EngineKind,
    system::{bpffs, clock, netlink, notify},
};

/// How often the daemon ages entries and refreshes neighbours.
const TICK: Duration = Duration::from_secs(1);

pub fn run(config_path: &Path, pin_path: &Path, engine: Option<EngineKind>) -> Result<()> {
    let mut cfg = apply::read_config(config_path)
        .with_context(|| format!("config {}", config_path.display()))?;
    if let Some(engine) = engine {
        cfg.engine = engine;
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
    let _lock = bpffs::lock_pin_path(pin_path)?;
    bpffs::ensure_bpffs(pin_path)?;
    let pins = Pins::new(pin_path);
    let loaded = loader::load(&pins, &cfg.capacity)?;
    let adopted = loaded.adopted;
    let mut gw = Gateway::open(pin_path)?;
    // No userspace engine runs yet (a previous one may have been killed
    // without saying so): the CLI must not wait for one.
    gw.set_applied_generation(0);
    apply::config(&mut gw, &cfg, &resolved)?;
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
        ul,
        cfg.underlay.interface.clone(),
        loaded.log,
        runner,
        follower,
        stop,
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

async fn housekeeping(
    mut gw: Gateway,
    mut ul: vtep_common::Underlay,
    uplink: String,
    log: Option<loader::DatapathLog>,
    mut runner: Option<afxdp::Runner>,
    mut follower: Option<follow::Follower>,
    mut stop: Stop,
) -> Result<Option<afxdp::Runner>> {
    if let Some(log) = log {
        tokio::spawn(print_datapath_log(log));
    }
    let mut tick = tokio::time::interval(TICK);
    let mut rtnl = netlink::Rtnl::new().context("opening rtnetlink")?;
    let mut delivery = apply::DeliveryState::default();
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
                }
            }
            _ = tick.tick() => {
                let aged = gw.age(clock::monotonic_ns());
                if !aged.is_empty() {
                    log::debug!("aged out {} learned MAC(s)", aged.len());
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
