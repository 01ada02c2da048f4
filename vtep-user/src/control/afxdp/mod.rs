//! The AF_XDP engine (`engine = "afxdp"`): the datapath in userspace.
//!
//! Small XDP programs (`vtep_xsk_uplink`, `vtep_xsk_access`) steer vtep's
//! frames into AF_XDP sockets — one per interface and receive queue, keyed
//! in `XSKS` by the interface's slot (`XSK_SLOTS`) and the queue — and the
//! [`worker`] decapsulates, encapsulates, learns and floods with the same
//! tables ([`view`]) and rules as the XDP engine — over an IPv4, IPv6 or
//! dual-stack underlay, with multicast groups and RFC 6040 ECN — and
//! answers oversize frames with path-MTU errors ([`pmtu`]). Sockets bind in
//! zero-copy mode where the driver has it and in copy mode otherwise (veth).
//!
//! When the engine stops, the daemon puts the XDP engine's programs back on
//! the links, so forwarding goes on while no daemon runs.

pub mod pmtu;
pub mod view;
pub mod worker;

use std::{
    path::Path,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::JoinHandle,
};

use std::os::fd::AsRawFd as _;

use anyhow::{Context as _, Result, anyhow};
use vtep_common::XSK_MAX_QUEUES;

use self::{
    view::{Shared, View, lock},
    worker::{Sock, SockRole, Worker},
};
use crate::{
    datapath::{
        gateway::Gateway,
        loader::{self, EngineMaps},
        pins::Pins,
    },
    model::config::EngineKind,
    system::{
        clock, iface,
        xsk::{self, FRAME, pin_to_cpu, rx_queues},
    },
};

/// An interface the engine serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Iface {
    pub ifindex: u32,
    pub name: String,
    pub role: SockRole,
}

/// A running engine: one worker thread per receive queue.
pub struct Engine {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    /// Shared by the workers while they register their sockets.
    maps: Option<Arc<Mutex<EngineMaps>>>,
    pub ifaces: Vec<Iface>,
}

impl Engine {
    /// Starts the engine on `ifaces` (the uplink first): per receive queue
    /// `q` of the interface with the most, a worker thread with the sockets
    /// of queue `q` of every interface, registered in `XSKS`.
    pub fn start(
        pin_path: &Path,
        mut maps: EngineMaps,
        ifaces: Vec<Iface>,
        tuning: Tuning,
    ) -> Result<Self> {
        for (slot, iface) in ifaces.iter().enumerate() {
            maps.slots
                .insert(iface.ifindex, slot as u32, 0)
                .with_context(|| format!("{}: XSK_SLOTS", iface.name))?;
        }
        let queues: Vec<u32> = ifaces.iter().map(|i| rx_queues(&i.name)).collect();
        let workers = queues.iter().copied().max().unwrap_or(1);
        let stop = Arc::new(AtomicBool::new(false));
        let maps = Arc::new(Mutex::new(maps));
        let shared = Shared::new(workers as usize);
        let cpus = clock::nr_cpus().unwrap_or(1).max(1);
        let mut engine = Engine {
            stop: stop.clone(),
            threads: Vec::new(),
            maps: Some(maps.clone()),
            ifaces: ifaces.clone(),
        };
        log::info!(
            "AF_XDP engine: {workers} worker thread(s), one per receive queue ({})",
            ifaces
                .iter()
                .zip(&queues)
                .map(|(i, q)| format!("{} {q}", i.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for q in 0..workers {
            let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
            let pin_path = pin_path.to_owned();
            let ifaces = ifaces.clone();
            let queues = queues.clone();
            let (stop, maps, shared) = (stop.clone(), maps.clone(), shared.clone());
            let cpu = tuning.cpu.map(|c| (c + q as usize) % cpus);
            let thread = std::thread::Builder::new()
                .name(format!("vtep-afxdp-{q}"))
                .spawn(move || {
                    if let Some(cpu) = cpu {
                        pin_to_cpu(cpu);
                    }
                    let set_up = setup(&pin_path, &maps, &ifaces, &queues, q, shared, tuning);
                    match set_up {
                        Ok(mut worker) => {
                            let _ = ready_tx.send(Ok(()));
                            worker.run(&stop);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("{e:#}")));
                        }
                    }
                    let mut maps = lock(&maps);
                    for (slot, _) in ifaces.iter().enumerate() {
                        let _ = maps.xsks.unset(slot as u32 * XSK_MAX_QUEUES + q);
                    }
                })
                .context("starting an AF_XDP worker thread")?;
            engine.threads.push(thread);
            // Dropping `engine` on an error stops and joins the workers
            // started so far.
            ready_rx
                .recv()
                .map_err(|_| anyhow!("AF_XDP worker {q} ended during set-up"))?
                .map_err(|e| anyhow!("AF_XDP engine, queue {q}: {e}"))?;
        }
        Ok(engine)
    }

    /// Stops the packet loops; returns the maps for a restart.
    pub fn stop(mut self) -> Option<EngineMaps> {
        self.join();
        let maps = Arc::into_inner(self.maps.take()?)?;
        Some(maps.into_inner().unwrap_or_else(PoisonError::into_inner))
    }

    fn join(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.join();
    }
}

/// Creates worker `queue`'s UMEM and sockets (queue `queue` of each
/// interface that has it, `queues[i]` being interface `i`'s count),
/// registers them, and builds the worker.
fn setup(
    pin_path: &Path,
    maps: &Mutex<EngineMaps>,
    ifaces: &[Iface],
    queues: &[u32],
    queue: u32,
    shared: Arc<Shared>,
    tuning: Tuning,
) -> Result<Worker> {
    let mine: Vec<(usize, &Iface)> = ifaces
        .iter()
        .enumerate()
        .filter(|(i, _)| queue < queues[*i])
        .collect();
    let (umem, descs) = xsk::umem(mine.len() as u32)?;
    let frames = descs.len();
    let mut socks = Vec::new();
    for (slot, iface) in mine {
        let r = xsk::socket(&umem, &iface.name, queue)?;
        lock(maps)
            .xsks
            .set(
                slot as u32 * XSK_MAX_QUEUES + queue,
                r.rx.fd().as_raw_fd(),
                0,
            )
            .with_context(|| format!("{} queue {queue}: XSKS", iface.name))?;
        socks.push(Sock::new(iface.ifindex, iface.role, r.rx, r.tx, r.fq, r.cq));
    }
    let view = View::new(Gateway::open(pin_path)?, shared, queue as usize)?;
    log::info!(
        "AF_XDP engine, queue {queue}: {} socket(s), {} frames of {FRAME} bytes{}",
        socks.len(),
        frames,
        if tuning.busy_poll {
            ", busy polling"
        } else {
            ""
        }
    );
    let all: Vec<u32> = ifaces.iter().map(|i| i.ifindex).collect();
    Worker::new(queue, umem, socks, descs, view, tuning.busy_poll, &all)
        .context("opening a packet socket")
}

/// How the engine's worker runs (`[afxdp]` in the config).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tuning {
    /// Spin on the rings instead of sleeping in poll(2) when idle.
    pub busy_poll: bool,
    /// Pin the worker of queue 0 to this CPU, that of queue `q` to the
    /// `q`-th CPU after it (wrapping around).
    pub cpu: Option<usize>,
}

/// The AF_XDP engine as the daemon runs it: on the uplink and every access
/// port, restarted when the ports change (an access port added with the
/// CLI starts on the XDP engine's programs and moves over within a tick),
/// and handing the links back to the XDP engine's programs when it stops.
pub struct Runner {
    pins: Pins,
    engine: Option<Engine>,
    maps: Option<EngineMaps>,
    uplink: Iface,
    tuning: Tuning,
}

impl Runner {
    pub fn start(
        pins: Pins,
        maps: EngineMaps,
        uplink: Iface,
        gw: &Gateway,
        tuning: Tuning,
    ) -> Result<Self> {
        let mut r = Runner {
            pins,
            engine: None,
            maps: Some(maps),
            uplink,
            tuning,
        };
        r.restart(r.wanted(gw))?;
        Ok(r)
    }

    /// The interfaces the engine should serve now.
    fn wanted(&self, gw: &Gateway) -> Vec<Iface> {
        let mut v = vec![self.uplink.clone()];
        for (ifindex, _) in gw.port_list() {
            if let Some(name) = iface::ifname(ifindex) {
                v.push(Iface {
                    ifindex,
                    name,
                    role: SockRole::AccessPort,
                });
            }
        }
        v
    }

    /// Follows the access ports: restarts the engine when they changed.
    pub fn refresh(&mut self, gw: &Gateway) -> Result<()> {
        let wanted = self.wanted(gw);
        if self.engine.as_ref().is_some_and(|e| e.ifaces == wanted) {
            return Ok(());
        }
        log::info!("access ports changed: restarting the AF_XDP engine");
        self.restart(wanted)
    }

    fn restart(&mut self, ifaces: Vec<Iface>) -> Result<()> {
        if let Some(engine) = self.engine.take() {
            self.steer(&engine.ifaces, EngineKind::Xdp);
            self.maps = engine.stop();
        }
        let maps = self
            .maps
            .take()
            .ok_or_else(|| anyhow!("the AF_XDP maps were lost with the previous engine"))?;
        let engine = Engine::start(&self.pins.root, maps, ifaces, self.tuning)?;
        self.steer(&engine.ifaces, EngineKind::Afxdp);
        self.engine = Some(engine);
        Ok(())
    }

    /// Puts the XDP program of `kind` on every interface of `ifaces`.
    fn steer(&self, ifaces: &[Iface], kind: EngineKind) {
        for i in ifaces {
            let role = match i.role {
                SockRole::Uplink => loader::Role::Uplink,
                SockRole::AccessPort => loader::Role::AccessPort,
            };
            if let Err(e) = loader::attach_engine(&self.pins, &i.name, i.ifindex, role, kind) {
                log::warn!("{}: switching to the {kind:?} engine: {e:#}", i.name);
            }
        }
    }

    /// Stops the engine; the XDP engine's programs take over first, so
    /// forwarding goes on.
    pub fn stop(mut self) {
        if let Some(engine) = self.engine.take() {
            self.steer(&engine.ifaces, EngineKind::Xdp);
            engine.stop();
        }
    }
}
