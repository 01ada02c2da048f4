//! AF_XDP sockets as vtep makes them: ring and frame sizes, the UMEM of a
//! queue's sockets, one socket per (interface, queue), the batch sizes of
//! a packet loop, and pinning its thread. The AF_XDP engine and the lab's
//! AF_XDP forwarder both take them from here, so the lab's ceiling runs on
//! the engine's sockets and rings.

use std::num::NonZeroU32;

use anyhow::{Result, anyhow};
use vtep_common::XSK_MAX_QUEUES;
use xsk_rs::{
    CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem,
    config::{BindFlags, FrameSize, LibxdpFlags, QueueSize, SocketConfig, UmemConfig},
};

/// Ring sizes (descriptors) of every socket.
pub const RING: u32 = 2048;
/// UMEM frame size: a 1500-byte frame plus an outer header fits.
pub const FRAME: u32 = 2048;
/// Descriptors worked per ring per round.
pub const BATCH: usize = 256;
/// Most wake-ups of one socket's TX per round (copy mode sends 32 frames
/// per wake-up).
pub const MAX_KICKS: usize = 16;

/// Receive queues of `name` (one socket each), at most XSK_MAX_QUEUES.
pub fn rx_queues(name: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{name}/queues"))
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .clamp(1, XSK_MAX_QUEUES)
}

/// The UMEM of one queue's `sockets` sockets (two rings' worth of frames
/// each, between 4 and 32 rings' worth) and its frames.
pub fn umem(sockets: u32) -> Result<(Umem, Vec<FrameDesc>)> {
    let frames = NonZeroU32::new((sockets * 2 * RING).clamp(4 * RING, 64 * 1024))
        .ok_or_else(|| anyhow!("no frames"))?;
    let umem_config = UmemConfig::builder()
        .frame_size(FrameSize::new(FRAME).map_err(|e| anyhow!("{e}"))?)
        .fill_queue_size(QueueSize::new(RING).map_err(|e| anyhow!("{e}"))?)
        .comp_queue_size(QueueSize::new(RING).map_err(|e| anyhow!("{e}"))?)
        .build()
        .map_err(|e| anyhow!("UMEM config: {e}"))?;
    Umem::new(umem_config, frames, false).map_err(|e| anyhow!("creating the UMEM: {e}"))
}

/// A socket's four rings.
pub struct Rings {
    pub rx: RxQueue,
    pub tx: TxQueue,
    pub fq: FillQueue,
    pub cq: CompQueue,
}

/// An AF_XDP socket on queue `queue` of interface `name`, in `umem`: zero
/// copy where the driver has it, copy mode otherwise (veth), woken only
/// when it needs to be; the steering XDP program is the caller's.
pub fn socket(umem: &Umem, name: &str, queue: u32) -> Result<Rings> {
    let socket_config = SocketConfig::builder()
        .rx_queue_size(QueueSize::new(RING).map_err(|e| anyhow!("{e}"))?)
        .tx_queue_size(QueueSize::new(RING).map_err(|e| anyhow!("{e}"))?)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(BindFlags::XDP_USE_NEED_WAKEUP)
        .build();
    let if_name = name
        .parse()
        .map_err(|e| anyhow!("{name}: interface name: {e}"))?;
    // SAFETY: the callers make one socket per (interface, queue); the
    // program is theirs (INHIBIT_PROG_LOAD), so dropping sockets never
    // detaches anything.
    let (tx, rx, rings) = unsafe { Socket::new(socket_config, umem, &if_name, queue) }
        .map_err(|e| anyhow!("{name} queue {queue}: AF_XDP socket: {e}"))?;
    let (fq, cq) =
        rings.ok_or_else(|| anyhow!("{name} queue {queue}: no fill/completion rings"))?;
    Ok(Rings { rx, tx, fq, cq })
}

/// Keeps `fq` full from the end of the free pool `free`.
pub fn refill(fq: &mut FillQueue, free: &mut Vec<FrameDesc>) {
    let want = fq.nb_free(free.len() as u32) as usize;
    let n = want.min(free.len());
    if n == 0 {
        return;
    }
    let from = free.len() - n;
    // SAFETY: free frames belong to this UMEM and to nobody else.
    let done = unsafe { fq.produce(&free[from..]) };
    free.truncate(free.len() - done);
}

/// Returns the frames `cq` says were sent to `free`, less `in_flight`.
pub fn complete(
    cq: &mut CompQueue,
    in_flight: &mut usize,
    free: &mut Vec<FrameDesc>,
    scratch: &mut [FrameDesc],
) {
    // SAFETY: the descriptors come from this UMEM's rings.
    let n = unsafe { cq.consume(scratch) };
    free.extend_from_slice(&scratch[..n]);
    *in_flight = in_flight.saturating_sub(n);
}

/// Sends `pending` from a socket (`tx`, `cq`, `in_flight` frames in its TX
/// ring). In copy mode the kernel sends at most a small batch (32) per
/// wake-up, so it is woken until the frames are out (completed) or
/// [`MAX_KICKS`] is reached; a full TX ring refuses the rest of the
/// round's frames, which go back to `free`. Returns how many it refused.
pub fn send(
    tx: &mut TxQueue,
    cq: &mut CompQueue,
    pending: &mut Vec<FrameDesc>,
    in_flight: &mut usize,
    free: &mut Vec<FrameDesc>,
    scratch: &mut [FrameDesc],
) -> usize {
    if pending.is_empty() {
        return 0;
    }
    // SAFETY: pending frames belong to this UMEM and to nobody else.
    let sent = unsafe { tx.produce(pending) };
    let refused = pending.len() - sent;
    free.extend(pending.drain(sent..));
    pending.clear();
    *in_flight += sent;
    for _ in 0..MAX_KICKS {
        if *in_flight == 0 || tx.wakeup().is_err() {
            break;
        }
        complete(cq, in_flight, free, scratch);
    }
    refused
}

/// Pins the calling thread to `cpu` (a warning if it cannot).
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: an all-zero cpu_set_t is empty; CPU_SET stays within it for
    // cpu < CPU_SETSIZE, which the config checks.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        log::warn!(
            "AF_XDP: pinning to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
}
