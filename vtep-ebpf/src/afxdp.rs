//! Steering for the AF_XDP engine.
//!
//! With `engine = "afxdp"` the uplink and the access ports run these small
//! programs instead of the XDP engine's: they hand vtep's frames to the
//! AF_XDP socket of their interface and queue (`XSKS`), where the userspace
//! engine decapsulates, encapsulates, learns and floods with the same
//! tables. Everything else passes to the host; a frame whose socket is
//! missing (the engine is not running) passes too.

use aya_ebpf::{
    bindings::xdp_action::XDP_PASS,
    macros::map,
    maps::{HashMap, XskMap},
    programs::XdpContext,
};
use network_types::{eth::EthHdr, ip::Ipv4Hdr, udp::UdpHdr};
use vtep_common::{
    PORT_CAPACITY, XSK_MAX_QUEUES,
    header::{
        ETH_LEN, ETH_P_8021AD, ETH_P_8021Q, ETH_P_IP, IPPROTO_UDP, IPV4_OFFSET_MASK, VLAN_LEN,
    },
};

use crate::{maps::underlay, parse::read};

/// (interface slot × XSK_MAX_QUEUES + queue) → AF_XDP socket.
#[map]
pub static XSKS: XskMap = XskMap::with_max_entries(PORT_CAPACITY * XSK_MAX_QUEUES, 0);

/// ifindex → interface slot in `XSKS`.
#[map]
pub static XSK_SLOTS: HashMap<u32, u32> = HashMap::with_max_entries(PORT_CAPACITY, 0);

/// Redirects the frame to the AF_XDP socket of its interface and queue, or
/// passes it when there is none.
#[inline(always)]
fn to_socket(ctx: &XdpContext) -> u32 {
    let ifindex = ctx.ingress_ifindex() as u32;
    // SAFETY: a live map value, read only.
    let Some(slot) = (unsafe { XSK_SLOTS.get(ifindex) }) else {
        return XDP_PASS;
    };
    let queue = ctx.rx_queue_index();
    if queue >= XSK_MAX_QUEUES {
        return XDP_PASS;
    }
    XSKS.redirect(*slot * XSK_MAX_QUEUES + queue, u64::from(XDP_PASS))
        .unwrap_or(XDP_PASS)
}

/// Uplink: IPv4/UDP to this VTEP's address and VXLAN port goes to the
/// engine (which checks the rest, as the XDP engine does); the host keeps
/// everything else, later fragments included.
pub fn try_xsk_uplink(ctx: &XdpContext) -> Result<u32, ()> {
    let Some(ul) = underlay() else {
        return Ok(XDP_PASS);
    };
    let Some(local) = ul.local.as_v4() else {
        return Ok(XDP_PASS);
    };
    let Some(eth) = read::<EthHdr>(ctx, 0) else {
        return Ok(XDP_PASS);
    };
    let mut off = ETH_LEN;
    let mut ether_type = u16::from_be(eth.ether_type);
    if ether_type == ETH_P_8021Q || ether_type == ETH_P_8021AD {
        let Some(tag) = read::<[u8; VLAN_LEN]>(ctx, off) else {
            return Ok(XDP_PASS);
        };
        ether_type = u16::from_be_bytes([tag[2], tag[3]]);
        off += VLAN_LEN;
    }
    if ether_type != ETH_P_IP {
        return Ok(XDP_PASS);
    }
    let Some(ip) = read::<Ipv4Hdr>(ctx, off) else {
        return Ok(XDP_PASS);
    };
    if ip.proto != IPPROTO_UDP
        || ip.dst_addr != local
        || u16::from_be_bytes(ip.frags) & IPV4_OFFSET_MASK != 0
    {
        return Ok(XDP_PASS);
    }
    let ihl = ((ip.vihl & 0x0f) as usize) * 4;
    // A broken IHL is the engine's to count (bad-ip-header).
    if ip.vihl >> 4 == 4 && ihl >= 20 {
        match read::<UdpHdr>(ctx, off + ihl) {
            Some(udp) if u16::from_be_bytes(udp.dst) == ul.port => {}
            _ => return Ok(XDP_PASS),
        }
    }
    Ok(to_socket(ctx))
}

/// Access port: every frame goes to the engine.
pub fn try_xsk_access(ctx: &XdpContext) -> Result<u32, ()> {
    Ok(to_socket(ctx))
}
