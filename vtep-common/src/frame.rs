//! Reading headers out of a frame, whatever holds it.
//!
//! [`Frame`] is the one read the parsers of [`crate::header`] need: a
//! header at an offset, if all of it is there. vtep-common implements it for
//! a byte slice (the AF_XDP engine, the host tests); vtep-ebpf implements it
//! for an XDP frame (direct, bounds-checked access) and an skb
//! (`bpf_skb_load_bytes`), so the classifier and the flow-key reader are
//! written once for every engine (as Katran's `parse_hdr_opt_raw` serves its
//! XDP and TC wrappers).

use core::mem::size_of;

use network_types::{eth::EthHdr, ip::Ipv4Hdr, udp::UdpHdr, vlan::VlanHdr, vxlan::VxlanHdr};

/// A type any bytes of its size are a valid value of: what may be read out
/// of packet memory.
///
/// # Safety
/// Every bit pattern of `size_of::<Self>()` bytes must be a valid `Self`
/// (integers, byte arrays and `#[repr(C)]` structs of them, no padding
/// invariants, no enums, no `bool`).
pub unsafe trait Plain: Copy {}

// SAFETY: integers and byte arrays take any bits.
unsafe impl Plain for u8 {}
// SAFETY: as above.
unsafe impl Plain for u16 {}
// SAFETY: as above.
unsafe impl Plain for u32 {}
// SAFETY: as above.
unsafe impl<const N: usize> Plain for [u8; N] {}
// SAFETY: network-types' headers are `#[repr(C)]` structs of integers and
// byte arrays.
unsafe impl Plain for EthHdr {}
// SAFETY: as above.
unsafe impl Plain for VlanHdr {}
// SAFETY: as above.
unsafe impl Plain for Ipv4Hdr {}
// SAFETY: as above.
unsafe impl Plain for UdpHdr {}
// SAFETY: as above.
unsafe impl Plain for VxlanHdr {}

/// A frame header fields can be read from.
pub trait Frame {
    /// The `T` at `offset` bytes into the frame, if all of it is there.
    fn read_at<T: Plain>(&self, offset: usize) -> Option<T>;

    /// The frame's length in bytes.
    fn len(&self) -> usize;

    /// Whether the frame has no bytes at all.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Frame for [u8] {
    #[inline(always)]
    fn read_at<T: Plain>(&self, offset: usize) -> Option<T> {
        let bytes = self.get(offset..offset.checked_add(size_of::<T>())?)?;
        // SAFETY: `bytes` holds size_of::<T>() bytes, any of which make a
        // valid T (`Plain`); the read is unaligned.
        Some(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
    }

    #[inline(always)]
    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_reads_stay_inside() {
        let f = [1u8, 2, 3, 4, 5];
        assert_eq!(f[..].read_at::<[u8; 2]>(3), Some([4, 5]));
        assert_eq!(f[..].read_at::<[u8; 2]>(4), None);
        assert_eq!(f[..].read_at::<u8>(usize::MAX), None);
        assert_eq!(Frame::len(&f[..]), 5);
    }
}
