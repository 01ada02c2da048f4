//! FDB events that happen in the daemon's process beside the datapath's
//! ring buffer: the AF_XDP engine's learning (its worker threads) and the
//! follower's mirroring. Each is handed, as it happens, to the daemon's
//! monitor (`crate::daemon::monitor`) through one socket pair; nothing is
//! sent while no monitor listens (`vtep run` sets it up, tests do not).
//!
//! Reporting never waits: an event that does not fit (the daemon is
//! behind) is counted in [`lost`] and dropped, so a MAC flood costs the
//! workers a failed `send` at most.

use std::{
    io,
    os::unix::net::UnixDatagram,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

use vtep_common::event::{EVENT_LEN, FdbEvent};

/// The sending end, once the daemon's monitor has the other.
static SINK: OnceLock<UnixDatagram> = OnceLock::new();
/// Events that did not fit.
static LOST: AtomicU64 = AtomicU64::new(0);

/// Hands the events reported from now on to `sink` (non-blocking, one
/// [`FdbEvent`] per datagram). Once per process: false when a sink is set
/// already.
pub fn send_to(sink: UnixDatagram) -> io::Result<bool> {
    sink.set_nonblocking(true)?;
    Ok(SINK.set(sink).is_ok())
}

/// Reports `event` to the daemon's monitor, if there is one.
pub fn report(event: FdbEvent) {
    let Some(sink) = SINK.get() else {
        return;
    };
    let bytes: [u8; EVENT_LEN] = event.to_bytes();
    if sink.send(&bytes).is_err() {
        LOST.fetch_add(1, Ordering::Relaxed);
    }
}

/// Events reported but dropped so far (the daemon was behind).
pub fn lost() -> u64 {
    LOST.load(Ordering::Relaxed)
}
