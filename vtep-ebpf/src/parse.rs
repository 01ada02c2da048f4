//! Bounds-checked access to packet memory, the XDP → TC metadata, and the
//! sum of a frame's bytes (the outer UDP checksum). The header parsers
//! themselves are vtep-common's (`vtep_common::header`), reading XDP frames
//! and skbs through the [`Frame`] impls here.
//!
//! Every read and write of a packet goes through [`ptr_at`] or
//! [`ptr_at_mut`]: the verifier sees one comparison against `data_end` per
//! access, and nothing else in the crate touches raw packet addresses.

use core::mem::size_of;

use aya_ebpf::{
    helpers::generated::{
        bpf_csum_diff, bpf_skb_load_bytes, bpf_xdp_adjust_meta, bpf_xdp_load_bytes,
    },
    programs::{TcContext, XdpContext},
};
use vtep_common::{
    META_MAGIC, Meta,
    frame::{Frame, Plain},
};

use crate::maps::CSUM_SCRATCH;

/// A `T` at `offset` bytes into the packet `[start, end)`, if it fits.
#[inline(always)]
pub fn ptr_at<T>(start: usize, end: usize, offset: usize) -> Option<*const T> {
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// Mutable variant of [`ptr_at`].
#[inline(always)]
pub fn ptr_at_mut<T>(start: usize, end: usize, offset: usize) -> Option<*mut T> {
    ptr_at::<T>(start, end, offset).map(|p| p as *mut T)
}

/// Reads a `T` at `offset` of an XDP frame.
#[inline(always)]
pub fn read<T: Plain>(ctx: &XdpContext, offset: usize) -> Option<T> {
    let p = ptr_at::<T>(ctx.data(), ctx.data_end(), offset)?;
    // SAFETY: bounds checked by ptr_at; packet memory may be unaligned.
    Some(unsafe { p.read_unaligned() })
}

/// An XDP frame as a [`Frame`] (direct, bounds-checked access), for the
/// parsers of `vtep_common::header`. (A wrapper: Rust lets no crate but
/// vtep-common or aya-ebpf implement vtep-common's trait for aya's type.)
pub struct Xdp<'a>(pub &'a XdpContext);

impl Frame for Xdp<'_> {
    #[inline(always)]
    fn read_at<T: Plain>(&self, offset: usize) -> Option<T> {
        read(self.0, offset)
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.0.data_end() - self.0.data()
    }
}

/// An skb as a [`Frame`]: reads go through `bpf_skb_load_bytes`, which also
/// reaches a non-linear part.
pub struct Skb<'a>(pub &'a TcContext);

impl Frame for Skb<'_> {
    #[inline(always)]
    fn read_at<T: Plain>(&self, offset: usize) -> Option<T> {
        self.0.load(offset).ok()
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.0.len() as usize
    }
}

/// A frame whose bytes can be copied out in chunks, for [`packet_csum`].
pub trait CopyOut {
    /// Copies `len` (1..=[`CSUM_CHUNK`]) bytes at `offset` to `dst`, which
    /// must hold them; `false` when they are not all in the frame.
    fn copy_out(&self, offset: u32, dst: *mut u8, len: u32) -> bool;
}

impl CopyOut for XdpContext {
    #[inline(always)]
    fn copy_out(&self, offset: u32, dst: *mut u8, len: u32) -> bool {
        // SAFETY: the helper checks the range against the frame, and `dst`
        // holds `len` bytes (the caller's contract).
        unsafe { bpf_xdp_load_bytes(self.ctx, offset, dst.cast(), len) == 0 }
    }
}

impl CopyOut for TcContext {
    #[inline(always)]
    fn copy_out(&self, offset: u32, dst: *mut u8, len: u32) -> bool {
        // SAFETY: as for XDP; this one also reads a non-linear part.
        unsafe { bpf_skb_load_bytes(self.skb.skb.cast(), offset, dst.cast(), len) == 0 }
    }
}

/// Writes `meta` in front of the frame for the TC program.
#[inline(always)]
pub fn set_meta(ctx: &XdpContext, action: u32, vni: u32, ifindex: u32) -> Option<()> {
    // SAFETY: the helper checks the adjustment against the headroom.
    if unsafe { bpf_xdp_adjust_meta(ctx.ctx, -(size_of::<Meta>() as i32)) } != 0 {
        return None;
    }
    let meta = ctx.metadata();
    if meta + size_of::<Meta>() > ctx.data() {
        return None;
    }
    let m = Meta {
        magic: META_MAGIC,
        action,
        vni,
        ifindex,
    };
    // SAFETY: [meta, meta + size_of::<Meta>()) is inside the metadata area.
    unsafe { (meta as *mut Meta).write_unaligned(m) };
    Some(())
}

/// Bytes `bpf_csum_diff` sums in one call (its limit), and so the bytes
/// [`packet_csum`] copies out of the frame at a time.
pub const CSUM_CHUNK: usize = 512;

/// Chunks [`packet_csum`] sums at most: frames up to 9,728 bytes, above any
/// jumbo MTU an underlay takes.
const CSUM_MAX_CHUNKS: u32 = 19;

/// The partial one's-complement sum of the `len` bytes of `frame` from
/// `offset` on, as [`vtep_common::header::csum_partial`] computes it, or
/// `None` when the range is longer than the bound above or cannot be read.
/// `offset` must be at an even offset of what the checksum covers.
///
/// Each chunk of up to 512 bytes is copied into a per-CPU scratch buffer and
/// summed there by `bpf_csum_diff`, the last one zero-padded to a multiple
/// of 4 bytes. No packet pointer moves, so the verifier walks the loop once
/// per chunk and nothing after it depends on the frame's length.
///
/// A function of its own (a BPF subprogram): its loop's registers then
/// take no room in the stack frame of the access program, which is near
/// the 512-byte limit.
#[inline(never)]
pub fn packet_csum(frame: &impl CopyOut, offset: u32, len: u32) -> Option<u32> {
    let buf = CSUM_SCRATCH.get_ptr_mut(0)?;
    // The loop's comparisons narrow `len` chunk by chunk; the verifier
    // would narrow every register of the callers that holds the same value
    // with it, and go on to check the callers' code once per chunk count.
    let len = unlinked(len);
    let mut sum = 0;
    for i in 0..CSUM_MAX_CHUNKS {
        let done = i * CSUM_CHUNK as u32;
        if done >= len {
            return Some(sum);
        }
        // LLVM knows n is 1..=512 and would drop these checks, but the
        // verifier, which cannot follow it there, needs them.
        let n = opaque(u64::from((len - done).min(CSUM_CHUNK as u32)));
        if n == 0 || n > CSUM_CHUNK as u64 {
            return None;
        }
        let n = n as u32;
        let buf = buf.cast::<u8>();
        if !frame.copy_out(offset + done, buf, n) {
            return None;
        }
        // SAFETY: n <= CSUM_CHUNK, and the buffer has 4 bytes more.
        unsafe {
            buf.add(n as usize)
                .cast::<[u8; 4]>()
                .write_unaligned([0; 4])
        };
        let words = (n + 3) & !3;
        // SAFETY: the helper reads `words` <= CSUM_CHUNK + 4 bytes of the
        // buffer; it writes nothing.
        let s = unsafe { bpf_csum_diff(core::ptr::null_mut(), 0, buf.cast(), words, sum) };
        if s < 0 {
            return None;
        }
        sum = s as u32;
    }
    (CSUM_MAX_CHUNKS * CSUM_CHUNK as u32 >= len).then_some(sum)
}

/// `x` (below 2^31) as a value the verifier no longer links to the
/// registers it was copied from: an ALU operation gives its result an
/// identity of its own, where a move would share the source's (and every
/// bound learnt about one would be learnt about all).
#[inline(always)]
pub(crate) fn unlinked(x: u32) -> u32 {
    let mut x = u64::from(x);
    // SAFETY: an AND of the register with a constant, nothing else.
    unsafe { core::arch::asm!("{0} &= 0x7fffffff", inout(reg) x, options(pure, nomem, nostack)) };
    x as u32
}

/// `x`, which LLVM can no longer relate to the expressions it came from.
#[inline(always)]
fn opaque(mut x: u64) -> u64 {
    // SAFETY: a register move onto itself: `x` goes in and out unchanged.
    // (An empty sequence would do for LLVM, but leaves BTF line info on an
    // instruction that is not there, which the kernel refuses.)
    unsafe { core::arch::asm!("{0} = {0}", inout(reg) x, options(pure, nomem, nostack)) };
    x
}
