//! The clock the datapath stamps entries with, and the CPU count that
//! sizes per-CPU map values.

use std::io;

/// Nanoseconds of CLOCK_MONOTONIC: the clock of `bpf_ktime_get_coarse_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write into.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Number of possible CPUs: the length of per-CPU map values.
pub fn nr_cpus() -> io::Result<usize> {
    aya::util::nr_cpus().map_err(|(_, e)| io::Error::other(format!("possible CPUs: {e}")))
}
