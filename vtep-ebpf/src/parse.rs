//! Bounds-checked access to packet memory, and the XDP → TC metadata.
//!
//! Every read and write of a packet goes through [`ptr_at`] or
//! [`ptr_at_mut`]: the verifier sees one comparison against `data_end` per
//! access, and nothing else in the crate touches raw packet addresses.

use core::mem::size_of;

use aya_ebpf::{
    helpers::generated::bpf_xdp_adjust_meta,
    programs::{TcContext, XdpContext},
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr};
use vtep_common::{
    META_MAGIC, Meta,
    header::{
        ETH_LEN, ETH_P_IP, FlowKeys, IPPROTO_TCP, IPPROTO_UDP, IPV4_LEN, IPV4_MF, IPV4_OFFSET_MASK,
    },
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

/// A frame that header fields can be read from: an XDP frame (direct,
/// bounds-checked access) or an skb (`bpf_skb_load_bytes`, which also
/// reaches a non-linear part).
pub trait Frame {
    fn read_at<T: Copy>(&self, offset: usize) -> Option<T>;
}

impl Frame for XdpContext {
    #[inline(always)]
    fn read_at<T: Copy>(&self, offset: usize) -> Option<T> {
        read(self, offset)
    }
}

impl Frame for TcContext {
    #[inline(always)]
    fn read_at<T: Copy>(&self, offset: usize) -> Option<T> {
        self.load(offset).ok()
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

/// The flow keys of the Ethernet frame at `offset`: MACs, and for IPv4 the
/// addresses, protocol and L4 ports (not of fragments).
#[inline(always)]
pub fn flow_keys(frame: &impl Frame, offset: usize) -> Option<FlowKeys> {
    let eth: EthHdr = frame.read_at(offset)?;
    let mut k = FlowKeys {
        dst_mac: eth.dst_addr,
        src_mac: eth.src_addr,
        ether_type: u16::from_be(eth.ether_type),
        ..FlowKeys::default()
    };
    if k.ether_type != ETH_P_IP {
        return Some(k);
    }
    let Some(ip) = frame.read_at::<Ipv4Hdr>(offset + ETH_LEN) else {
        return Some(k);
    };
    k.proto = ip.proto;
    k.src_ip = ip.src_addr;
    k.dst_ip = ip.dst_addr;
    let frag = u16::from_be_bytes(ip.frags);
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    if (k.proto == IPPROTO_TCP || k.proto == IPPROTO_UDP)
        && frag & (IPV4_MF | IPV4_OFFSET_MASK) == 0
        && ihl >= IPV4_LEN
        && let Some(p) = frame.read_at::<[u8; 4]>(offset + ETH_LEN + ihl)
    {
        k.src_port = u16::from_be_bytes([p[0], p[1]]);
        k.dst_port = u16::from_be_bytes([p[2], p[3]]);
    }
    Some(k)
}
