//! `BPF_MAP_LOOKUP_BATCH` (Linux 5.6), which aya 0.14 lacks: a BPF hash map
//! read thousands of entries per syscall, where iterating takes two
//! syscalls per entry (get_next_key, lookup), and resumable, so that a large
//! map can be read a slice at a time.

use std::{io, mem::size_of, os::fd::RawFd};

/// Entries per syscall; also bounds a hash bucket's size (the kernel
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

/// Where a batched read of a hash map stands: the start, or the kernel's
/// position token after the last chunk read (a bucket index, stable while
/// the map lives: entries never change buckets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor(Option<[u64; 2]>);

impl Cursor {
    /// The map's first bucket.
    pub const START: Cursor = Cursor(None);
}

/// Appends to `out` the entries of the BPF hash map at `fd` from `from` on,
/// whole chunks until at least `max` are read or the map ends. Returns where
/// the next read starts, or `None` when this one reached the end. `K` and
/// `V` must be the map's key and value types.
pub fn lookup_from<K: aya::Pod, V: aya::Pod>(
    fd: RawFd,
    from: Cursor,
    max: usize,
    out: &mut Vec<(K, V)>,
) -> io::Result<Option<Cursor>> {
    Reader::new().lookup_from(fd, from, max, out)
}

/// The buffers of batched reads, kept for the next read by a caller that
/// reads a slice every second.
pub struct Reader<K, V> {
    keys: Vec<K>,
    values: Vec<V>,
}

impl<K: aya::Pod, V: aya::Pod> Default for Reader<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: aya::Pod, V: aya::Pod> Reader<K, V> {
    pub fn new() -> Self {
        Reader {
            // SAFETY: K and V are Pod: all-zero is a valid value of each.
            keys: vec![unsafe { std::mem::zeroed() }; CHUNK],
            // SAFETY: as above.
            values: vec![unsafe { std::mem::zeroed() }; CHUNK],
        }
    }

    /// [`lookup_from`], in this reader's buffers.
    pub fn lookup_from(
        &mut self,
        fd: RawFd,
        from: Cursor,
        max: usize,
        out: &mut Vec<(K, V)>,
    ) -> io::Result<Option<Cursor>> {
        // The token of a hash map is a u32; room for more.
        let mut token = from.0.unwrap_or_default();
        let mut first = from.0.is_none();
        let mut next = [0u64; 2];
        let mut read = 0;
        loop {
            let mut attr = BatchAttr {
                in_batch: if first { 0 } else { token.as_ptr() as u64 },
                out_batch: next.as_mut_ptr() as u64,
                keys: self.keys.as_mut_ptr() as u64,
                values: self.values.as_mut_ptr() as u64,
                count: CHUNK as u32,
                map_fd: fd as u32,
                ..BatchAttr::default()
            };
            // SAFETY: attr points to buffers of CHUNK keys and values and to
            // position tokens, all alive for the call; the kernel writes at
            // most `count` of each.
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
            out.extend(
                self.keys[..n]
                    .iter()
                    .copied()
                    .zip(self.values[..n].iter().copied()),
            );
            read += n;
            if done {
                return Ok(None);
            }
            token = next;
            first = false;
            if read >= max {
                return Ok(Some(Cursor(Some(token))));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::{FromRawFd as _, OwnedFd};

    use super::*;

    /// `bpf(cmd, attr)` with `attr` as the first words of a zeroed `bpf_attr`.
    fn bpf(cmd: libc::c_long, words: &[u64]) -> i64 {
        let mut attr = [0u64; 16];
        attr[..words.len()].copy_from_slice(words);
        // SAFETY: attr is a zeroed bpf_attr of 128 bytes, alive for the
        // call; the commands used here only read it (and pointers in it to
        // live locals).
        unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), size_of_val(&attr)) }
    }

    /// A BPF hash map of u32 → u64 holding `n` entries (`i` → `i * 3`).
    fn hash_map(n: u32) -> OwnedFd {
        // map_type HASH (1), key_size 4 | value_size 8, max_entries n.
        let fd = bpf(0, &[1 | (4 << 32), 8 | (u64::from(n) << 32)]);
        assert!(
            fd >= 0,
            "BPF_MAP_CREATE: {} (the test needs root)",
            io::Error::last_os_error()
        );
        // SAFETY: the kernel just gave us this fd.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        use std::os::fd::AsRawFd as _;
        for i in 0..n {
            let (key, value) = (i, u64::from(i) * 3);
            let rc = bpf(
                2,
                &[
                    fd.as_raw_fd() as u64,
                    &key as *const u32 as u64,
                    &value as *const u64 as u64,
                    0,
                ],
            );
            assert_eq!(rc, 0, "BPF_MAP_UPDATE_ELEM: {}", io::Error::last_os_error());
        }
        fd
    }

    #[test]
    fn slices_resume_where_the_last_stopped_and_cover_the_map_once() {
        use std::os::fd::AsRawFd as _;
        let n = 20_000;
        let map = hash_map(n);
        let mut seen: Vec<(u32, u64)> = Vec::new();
        let mut at = Cursor::START;
        let mut slices = 0;
        loop {
            let before = seen.len();
            let next = lookup_from(map.as_raw_fd(), at, 5_000, &mut seen).expect("batch lookup");
            slices += 1;
            match next {
                Some(c) => {
                    assert!(seen.len() - before >= 5_000, "a slice short of its size");
                    at = c;
                }
                None => break,
            }
        }
        // Each slice but the last has 5,000 or more (whole chunks).
        assert!(
            (2..=4).contains(&slices),
            "{n} entries read in {slices} slices of at least 5,000"
        );
        seen.sort_unstable();
        let want: Vec<(u32, u64)> = (0..n).map(|i| (i, u64::from(i) * 3)).collect();
        assert_eq!(seen, want, "every entry once, with its value");
    }
}
