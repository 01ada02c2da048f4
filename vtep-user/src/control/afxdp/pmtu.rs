//! The AF_XDP engine's path-MTU errors, as the XDP engine's
//! (`vtep-ebpf/src/pmtu.rs`): a frame from an access port too large for the
//! underlay once encapsulated is turned, in its own UMEM frame, into the
//! ICMP "fragmentation needed" / ICMPv6 "packet too big" the kernel's vxlan
//! driver would send (`vtep_common::icmp`), and the worker sends it back
//! out of the port it came from. A frame that gets none (IPv4 without DF,
//! an ICMP error, a broadcast…) is only dropped.

use vtep_common::icmp;
use xsk_rs::{FrameDesc, Umem};

/// Rewrites the frame in `desc` into its path-MTU error, for an underlay
/// of IP MTU `uplink_mtu` whose encapsulation adds `overhead` bytes to an
/// inner IP packet (50 over IPv4, 70 over IPv6): true when it did (the
/// worker sends it back out of its port, counted `mtu-exceeded` and
/// `pmtu-sent`), false when the frame gets no error (it is left as it was,
/// and dropped, `mtu-exceeded`).
pub fn answer(umem: &Umem, desc: &mut FrameDesc, uplink_mtu: u16, overhead: usize) -> bool {
    let mtu = usize::from(uplink_mtu).saturating_sub(overhead);
    // SAFETY: a frame the worker owns, not in any ring.
    let mut m = unsafe { umem.data_mut(desc) };
    let len = m.contents().len();
    // Only a frame the MTU really refuses (encap also refuses one its
    // UMEM frame has no room to encapsulate).
    if len.saturating_sub(vtep_common::header::ETH_LEN) <= mtu {
        return false;
    }
    // An oversize frame is longer than its error: it is built in the
    // frame's own bytes.
    let Some(n) = icmp::build(m.contents_mut(), len, mtu as u32) else {
        return false;
    };
    m.cursor().set_pos(n);
    true
}
