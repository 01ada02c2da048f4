//! `vtep run`: bring the gateway up from a config, then keep it: age
//! learned MACs out, keep the remote VTEPs' neighbours resolved. A signal
//! stops the daemon and leaves the datapath forwarding with its tables.

use std::{path::Path, time::Duration};

use anyhow::{Context as _, Result};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    config::Config,
    control,
    gateway::{Gateway, Pins},
    loader, netlink, sys,
};

/// How often the daemon ages entries and refreshes neighbours.
const TICK: Duration = Duration::from_secs(1);

pub fn run(config_path: &Path, pin_path: &Path) -> Result<()> {
    let cfg = Config::from_file(config_path)
        .with_context(|| format!("config {}", config_path.display()))?;
    let resolved =
        control::resolve(&cfg).with_context(|| format!("config {}", config_path.display()))?;
    let _lock = sys::lock_pin_path(pin_path)?;
    sys::ensure_bpffs(pin_path)?;
    let pins = Pins::new(pin_path);
    let loaded = loader::load(&pins)?;
    let adopted = loaded.adopted;
    let mut gw = Gateway::open(pin_path)?;
    control::apply(&mut gw, &cfg, &resolved)?;
    control::attach_uplink(&mut gw, &cfg.underlay.interface, resolved.uplink)?;
    log::info!(
        "vtep up: uplink {} ({}), {} VNI(s), {} access port(s), pinned at {}{}",
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

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    sys::notify_ready();
    let ul = control::underlay(&cfg, &resolved);
    if !resolved.fib {
        log::info!(
            "forwarding is off on {}: next hops come from the daemon's neighbour table, not bpf_fib_lookup",
            cfg.underlay.interface
        );
    }
    rt.block_on(housekeeping(
        gw,
        ul,
        cfg.underlay.interface.clone(),
        loaded.log,
    ))?;
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
) -> Result<()> {
    if let Some(log) = log {
        tokio::spawn(print_datapath_log(log));
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(TICK);
    let mut rtnl = netlink::Rtnl::new().context("opening rtnetlink")?;
    let mut delivery = control::DeliveryState::default();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let aged = gw.age(sys::monotonic_ns());
                if aged > 0 {
                    log::debug!("aged out {aged} learned MAC(s)");
                }
                control::refresh_underlay(&mut gw, &mut rtnl, &mut ul, &uplink);
                control::forget_vanished_ports(&mut gw);
                control::refresh_xdp_delivery(&mut gw, &mut rtnl, &mut delivery, ul.uplink_ifindex);
                control::resolve_neighbours(&mut gw, &mut rtnl, &ul);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    Ok(())
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
