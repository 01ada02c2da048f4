//! Reading a whole BPF hash map in a few syscalls.

use std::{io, mem::size_of};

/// Every (key, value) of the BPF hash map at `fd`, read with
/// `BPF_MAP_LOOKUP_BATCH` (Linux 5.6): one syscall per `CHUNK` entries.
/// `K` and `V` must be the map's key and value types.
pub fn lookup_batch<K: aya::Pod, V: aya::Pod>(fd: std::os::fd::RawFd) -> io::Result<Vec<(K, V)>> {
    /// Entries per call; also bounds a hash bucket's size (the kernel
    /// answers ENOSPC when one bucket does not fit).
    const CHUNK: usize = 4096;
    const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
    /// The `batch` member of `union bpf_attr`.
    #[repr(C)]
    #[derive(Default)]
    struct BatchAttr {
        in_batch: u64,
        out_batch: u64,
        keys: u64,
        values: u64,
        count: u32,
        map_fd: u32,
        elem_flags: u64,
        flags: u64,
    }
    let mut out = Vec::new();
    // SAFETY: K and V are Pod: all-zero is a valid value of each.
    let mut keys: Vec<K> = vec![unsafe { std::mem::zeroed() }; CHUNK];
    // SAFETY: as above.
    let mut values: Vec<V> = vec![unsafe { std::mem::zeroed() }; CHUNK];
    // The position token of a hash map is a bucket index (u32); room for more.
    let mut token = [0u64; 2];
    let mut next = [0u64; 2];
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { token.as_ptr() as u64 },
            out_batch: next.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: CHUNK as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: attr points to valid buffers of CHUNK keys and values and
        // to position tokens, all alive for the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>(),
            )
        };
        let done = if rc == 0 {
            false
        } else {
            match io::Error::last_os_error() {
                e if e.raw_os_error() == Some(libc::ENOENT) => true,
                e => return Err(e),
            }
        };
        let n = (attr.count as usize).min(CHUNK);
        out.extend(keys[..n].iter().copied().zip(values[..n].iter().copied()));
        if done {
            return Ok(out);
        }
        token = next;
        first = false;
    }
}
