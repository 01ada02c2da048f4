//! Bounds-checked access to packet memory, and the XDP → TC metadata.
//!
//! Every read and write of a packet goes through [`ptr_at`] or
//! [`ptr_at_mut`]: the verifier sees one comparison against `data_end` per
//! access, and nothing else in the crate touches raw packet addresses.

use core::mem::size_of;

use aya_ebpf::{helpers::generated::bpf_xdp_adjust_meta, programs::XdpContext};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
use vtep_common::{
    META_MAGIC, Meta,
    header::{ETH_LEN, ETH_P_IP, FlowKeys, IPPROTO_TCP, IPPROTO_UDP, IPV4_MF, IPV4_OFFSET_MASK},
};

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
pub fn read<T: Copy>(ctx: &XdpContext, offset: usize) -> Option<T> {
    let p = ptr_at::<T>(ctx.data(), ctx.data_end(), offset)?;
    // SAFETY: bounds checked by ptr_at; packet memory may be unaligned.
    Some(unsafe { p.read_unaligned() })
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

/// The flow keys of the Ethernet frame at `offset` of `[start, end)`:
/// MACs, and for IPv4 the addresses, protocol and L4 ports.
#[inline(always)]
pub fn flow_keys(start: usize, end: usize, offset: usize) -> Option<FlowKeys> {
    let eth: *const EthHdr = ptr_at(start, end, offset)?;
    // SAFETY: bounds checked by ptr_at.
    let eth = unsafe { eth.read_unaligned() };
    let mut k = FlowKeys {
        dst_mac: eth.dst_addr,
        src_mac: eth.src_addr,
        ether_type: u16::from_be(eth.ether_type),
        ..FlowKeys::default()
    };
    if k.ether_type != ETH_P_IP {
        return Some(k);
    }
    let Some(ip) = ptr_at::<Ipv4Hdr>(start, end, offset + ETH_LEN) else {
        return Some(k);
    };
    // SAFETY: bounds checked by ptr_at.
    let ip = unsafe { ip.read_unaligned() };
    k.proto = ip.proto;
    k.src_ip = ip.src_addr;
    k.dst_ip = ip.dst_addr;
    let frag = u16::from_be_bytes(ip.frags);
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    if (k.proto == IPPROTO_TCP || k.proto == IPPROTO_UDP)
        && frag & (IPV4_MF | IPV4_OFFSET_MASK) == 0
        && ihl >= 20
    {
        if let Some(ports) = ptr_at::<[u8; 4]>(start, end, offset + ETH_LEN + ihl) {
            // SAFETY: bounds checked by ptr_at.
            let p = unsafe { ports.read_unaligned() };
            k.src_port = u16::from_be_bytes([p[0], p[1]]);
            k.dst_port = u16::from_be_bytes([p[2], p[3]]);
        }
    }
    Some(k)
}
