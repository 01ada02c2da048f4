//! Reading a whole BPF hash map in a few syscalls.

use std::io;

use crate::system::bpf_batch::{Cursor, lookup_from};

/// Every (key, value) of the BPF hash map at `fd`, read with
/// `BPF_MAP_LOOKUP_BATCH` (Linux 5.6): one syscall per thousands of
/// entries. `K` and `V` must be the map's key and value types.
pub fn lookup_batch<K: aya::Pod, V: aya::Pod>(fd: std::os::fd::RawFd) -> io::Result<Vec<(K, V)>> {
    let mut out = Vec::new();
    lookup_from(fd, Cursor::START, usize::MAX, &mut out)?;
    Ok(out)
}
