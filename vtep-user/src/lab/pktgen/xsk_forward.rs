//! The untouched AF_XDP forwarder (`pktgen forward --xsk`): the AF_XDP
//! engine's sockets, rings and batches (`system::xsk`) with no gateway
//! work, so its rate is what AF_XDP itself allows on these ports.

use std::{
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
};

use aya::maps::XskMap;
use vtep_common::XSK_MAX_QUEUES;
use xsk_rs::{FrameDesc, Umem};

use super::sink::wait_for_stop;
use super::*;
use crate::system::xsk::{self, BATCH, Rings};

/// One interface's socket on a queue, and its frames on their way out.
struct Port {
    rings: Rings,
    /// Frames to send at the end of the round.
    pending: Vec<FrameDesc>,
    /// Frames in the TX ring, not completed yet.
    in_flight: usize,
}

/// What one queue's loop moved, printed when the forwarder stops.
#[derive(Clone, Copy, Debug, Default)]
struct Moved {
    /// Received on A and on B.
    received: [u64; 2],
    /// Refused by the other port's full TX ring.
    refused: [u64; 2],
}

/// One queue's loop: A's and B's sockets of that queue in one UMEM.
struct Queue {
    _umem: Umem,
    ports: [Port; 2],
    free: Vec<FrameDesc>,
    moved: Moved,
}

pub(super) fn forward_xsk(args: &ForwardArgs) -> Result<()> {
    let names = [args.a.as_str(), args.b.as_str()];
    let ifindexes = [ifindex(names[0])?, ifindex(names[1])?];
    let queues = [xsk::rx_queues(names[0]), xsk::rx_queues(names[1])];
    ensure!(
        queues[0] == queues[1],
        "{} has {} receive queues and {} {}: the AF_XDP forwarder pairs queue q of one with queue q of the other",
        names[0],
        queues[0],
        names[1],
        queues[1]
    );
    let mut ebpf = load_lab()?;
    {
        let mut slots = typed_map::<HashMap<_, u32, u32>>(&mut ebpf, lab::names::XSK_SLOTS)?;
        for (slot, ifindex) in ifindexes.iter().enumerate() {
            slots.insert(ifindex, slot as u32, 0)?;
        }
    }
    let prog: &mut Xdp = ebpf
        .program_mut(lab::programs::XSK)
        .context("program lab_xsk missing from the object")?
        .try_into()?;
    loader::verify(|| prog.load()).context("loading lab_xsk (verifier)")?;
    for (name, ifindex) in names.iter().zip(ifindexes) {
        prog.attach_to_if_index(ifindex, XdpMode::default())
            .with_context(|| format!("attaching lab_xsk to {name}"))?;
    }
    let mut xsks = typed_map::<XskMap<_>>(&mut ebpf, lab::names::XSKS)?;
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut started = Ok(());
    for q in 0..queues[0] {
        // Sockets are made on the thread that runs them, as the engine's.
        let (ready_tx, ready_rx) = mpsc::channel::<Result<[i32; 2], String>>();
        let (stop, owned) = (stop.clone(), names.map(str::to_owned));
        let cpu = args.cpu.map(|c| (c + q as usize) % cpus);
        threads.push(thread::spawn(move || {
            if let Some(cpu) = cpu {
                xsk::pin_to_cpu(cpu);
            }
            match Queue::new(&owned, q) {
                Ok(mut queue) => {
                    let fds = queue.ports.each_ref().map(|p| p.rings.rx.fd().as_raw_fd());
                    let _ = ready_tx.send(Ok(fds));
                    queue.run(&stop);
                    queue.moved
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("{e:#}")));
                    Moved::default()
                }
            }
        }));
        let registered = ready_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("queue {q}: the forwarder's thread ended"))
            .and_then(|r| r.map_err(|e| anyhow::anyhow!("queue {q}: {e}")))
            .and_then(|fds| {
                for (slot, fd) in fds.into_iter().enumerate() {
                    xsks.set(slot as u32 * XSK_MAX_QUEUES + q, fd, 0)
                        .with_context(|| format!("{} queue {q}: LAB_XSKS", names[slot]))?;
                }
                Ok(())
            });
        if let Err(e) = registered {
            started = Err(e);
            break;
        }
    }
    if started.is_ok() {
        started = wait_for_stop(None, || {
            eprintln!(
                "vtep pktgen forward: forwarding {} <-> {} through AF_XDP ({} queue(s))",
                names[0], names[1], queues[0]
            );
        });
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Moved::default();
    for t in threads {
        let m = t.join().unwrap_or_default();
        for i in 0..2 {
            total.received[i] += m.received[i];
            total.refused[i] += m.refused[i];
        }
    }
    // The sockets are gone; the program and its links go with the process.
    started?;
    for i in 0..2 {
        eprintln!(
            "vtep pktgen forward: {} -> {}: {} frames received, {} refused by a full TX ring",
            names[i],
            names[1 - i],
            total.received[i],
            total.refused[i]
        );
    }
    Ok(())
}

impl Queue {
    /// The UMEM and the sockets of queue `q` of both interfaces.
    fn new(names: &[String; 2], q: u32) -> Result<Queue> {
        let (umem, free) = xsk::umem(2)?;
        let port = |name: &str| -> Result<Port> {
            Ok(Port {
                rings: xsk::socket(&umem, name, q)?,
                pending: Vec::with_capacity(4 * BATCH),
                in_flight: 0,
            })
        };
        let ports = [port(&names[0])?, port(&names[1])?];
        Ok(Queue {
            _umem: umem,
            ports,
            free,
            moved: Moved::default(),
        })
    }

    /// The engine's round without the gateway: every frame received on one
    /// port is sent, untouched, from the other's socket.
    fn run(&mut self, stop: &AtomicBool) {
        let Some(&placeholder) = self.free.first() else {
            return;
        };
        let mut batch = vec![placeholder; BATCH];
        for p in &mut self.ports {
            xsk::refill(&mut p.rings.fq, &mut self.free);
        }
        while !stop.load(Ordering::Relaxed) {
            let mut work = 0;
            for i in 0..2 {
                // SAFETY: the descriptors come from this UMEM's rings.
                let n = unsafe { self.ports[i].rings.rx.consume(&mut batch) };
                self.ports[1 - i].pending.extend_from_slice(&batch[..n]);
                self.moved.received[i] += n as u64;
                work += n;
                let p = &mut self.ports[i];
                xsk::complete(
                    &mut p.rings.cq,
                    &mut p.in_flight,
                    &mut self.free,
                    &mut batch,
                );
                xsk::refill(&mut p.rings.fq, &mut self.free);
            }
            for i in 0..2 {
                let p = &mut self.ports[i];
                let refused = xsk::send(
                    &mut p.rings.tx,
                    &mut p.rings.cq,
                    &mut p.pending,
                    &mut p.in_flight,
                    &mut self.free,
                    &mut batch,
                );
                self.moved.refused[1 - i] += refused as u64;
            }
            if work == 0 && self.ports.iter().all(|p| p.in_flight == 0) {
                self.idle();
            }
        }
    }

    /// Sleeps in poll(2) until a socket has frames (at most 10 ms), as the
    /// engine does without busy polling.
    fn idle(&self) {
        let mut fds = self.ports.each_ref().map(|p| libc::pollfd {
            fd: p.rings.rx.fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: fds is a valid array of pollfd.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 10) };
    }
}
