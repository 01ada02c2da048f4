//! The benchmark lab's programs (`vtep-lab`): not part of the gateway.
//!
//! | program     | run by                                  | job                                        |
//! |-------------|-----------------------------------------|--------------------------------------------|
//! | `lab_gen`   | `vtep pktgen` (live-frames test run)    | rewrite the flow fields, `XDP_TX`          |
//! | `lab_sink`  | `vtep pktgen sink` (attached, XDP)      | count packets and bytes per CPU, drop      |
//! | `lab_drop`  | `vtep pktgen cost` (test run, repeat)   | `XDP_DROP`: the floor of a test run        |
//! | `lab_cost`  | `vtep pktgen cost` (test run, repeat)   | undo the last run's head move, tail-call   |
//! | `lab_fwd`   | `vtep pktgen forward` (attached, XDP)   | redirect to the paired port: the ceiling   |
//! | `lab_xsk`   | `vtep pktgen forward --xsk` (attached)  | redirect to the queue's AF_XDP socket      |
//!
//! Names and layouts come from `vtep_common::lab`.
#![no_std]
#![no_main]

use core::mem::size_of;

use aya_ebpf::{
    bindings::xdp_action::{XDP_ABORTED, XDP_DROP, XDP_TX},
    helpers::generated::bpf_xdp_adjust_head,
    macros::{map, xdp},
    maps::{Array, DevMapHash, HashMap, PerCpuArray, ProgramArray, XskMap},
    programs::XdpContext,
};
use vtep_common::{
    XSK_MAX_QUEUES,
    header::{ENCAP_V4_LEN, ENCAP_V6_LEN, ENCAP_V6_UDP_CSUM, ETH_LEN, IPV4_LEN},
    lab::{
        FlowFields, GEN_VXLAN_V4, GEN_VXLAN_V6, GenConfig, OUTER6_UDP_SPORT, SinkCounters,
        XSK_PORTS, flow_fields,
    },
};

#[map(name = "LAB_GEN")]
static GEN_CONFIG: Array<GenConfig> = Array::with_max_entries(1, 0);

#[map(name = "LAB_SEQ")]
static GEN_SEQ: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "LAB_SINK")]
static SINK: PerCpuArray<SinkCounters> = PerCpuArray::with_max_entries(1, 0);

#[map(name = "LAB_COST_PROG")]
static COST_TARGET: ProgramArray = ProgramArray::with_max_entries(1, 0);

#[map(name = "LAB_COST_LEN")]
static COST_LEN: Array<u32> = Array::with_max_entries(1, 0);

#[map(name = "LAB_FWD")]
static FWD: DevMapHash = DevMapHash::with_max_entries(8, 0);

#[map(name = "LAB_XSK_SLOTS")]
static XSK_SLOTS: HashMap<u32, u32> = HashMap::with_max_entries(XSK_PORTS, 0);

#[map(name = "LAB_XSKS")]
static XSKS: XskMap = XskMap::with_max_entries(XSK_PORTS * XSK_MAX_QUEUES, 0);

/// Offsets in an untagged IPv4/UDP frame without options.
const IP_CSUM: usize = ETH_LEN + 10;
const IP_SRC: usize = ETH_LEN + 12;
const UDP_SPORT: usize = ETH_LEN + IPV4_LEN;

/// A `T` at `offset` of the frame, if it fits.
#[inline(always)]
fn ptr_at_mut<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    let (start, end) = (ctx.data(), ctx.data_end());
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *mut T)
}

#[inline(always)]
fn write<T>(ctx: &XdpContext, offset: usize, v: T) -> Option<()> {
    let p = ptr_at_mut::<T>(ctx, offset)?;
    // SAFETY: bounds checked by ptr_at_mut; packet memory may be unaligned.
    unsafe { p.write_unaligned(v) };
    Some(())
}

/// Writes the inner fields of a flow into the frame whose inner Ethernet
/// header is at `BASE`.
#[inline(always)]
fn write_inner<const BASE: usize>(ctx: &XdpContext, f: &FlowFields) -> Option<()> {
    write(ctx, BASE + IP_SRC, f.src_ip)?;
    write(ctx, BASE + IP_CSUM, f.ip_csum.to_be_bytes())?;
    write(ctx, BASE + UDP_SPORT, f.src_port.to_be_bytes())
}

/// Generator: the template frame, its flow fields rewritten from this CPU's
/// sequence number, sent back out of the interface it "arrived" on.
#[xdp]
pub fn lab_gen(ctx: XdpContext) -> u32 {
    generate(&ctx).unwrap_or(XDP_ABORTED)
}

#[inline(always)]
fn generate(ctx: &XdpContext) -> Option<u32> {
    let cfg = GEN_CONFIG.get(0)?;
    if cfg.flows > 1 {
        let seq = GEN_SEQ.get_ptr_mut(0)?;
        // SAFETY: per-CPU value, no concurrent writer on this CPU.
        let n = unsafe {
            let n = *seq;
            *seq = n + 1;
            n
        };
        let f = flow_fields(cfg, (n % u64::from(cfg.flows)) as u32);
        match cfg.vxlan {
            GEN_VXLAN_V4 => {
                write_inner::<ENCAP_V4_LEN>(ctx, &f)?;
                write(ctx, UDP_SPORT, f.outer_src_port.to_be_bytes())?;
            }
            GEN_VXLAN_V6 => {
                write_inner::<ENCAP_V6_LEN>(ctx, &f)?;
                write(ctx, OUTER6_UDP_SPORT, f.outer_src_port.to_be_bytes())?;
                write(ctx, ENCAP_V6_UDP_CSUM, f.outer_udp_csum.to_be_bytes())?;
            }
            _ => write_inner::<0>(ctx, &f)?,
        }
    }
    Some(XDP_TX)
}

/// Sink: counts what arrives, drops it.
#[xdp]
pub fn lab_sink(ctx: XdpContext) -> u32 {
    if let Some(c) = SINK.get_ptr_mut(0) {
        let len = (ctx.data_end() - ctx.data()) as u64;
        // SAFETY: per-CPU value, no concurrent writer on this CPU.
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
    XDP_DROP
}

/// The floor: a program that does nothing but decide.
#[xdp]
pub fn lab_drop(_ctx: XdpContext) -> u32 {
    XDP_DROP
}

/// Cost harness. BPF_PROG_TEST_RUN with `repeat` runs a program again and
/// again on the same xdp_buff without resetting it, so a program that moves
/// the head (encap, decap) would see its own output the next time. This
/// moves the head back to the frame's original length, then tail-calls the
/// program under test; frames whose bytes the program changed in place are
/// not restored (encap and decap only write in front of or move past them).
#[xdp]
pub fn lab_cost(ctx: XdpContext) -> u32 {
    let Some(&want) = COST_LEN.get(0) else {
        return XDP_ABORTED;
    };
    let have = (ctx.data_end() - ctx.data()) as i64;
    let delta = have - i64::from(want);
    // SAFETY: the helper checks the adjustment against the buffer.
    if delta != 0 && unsafe { bpf_xdp_adjust_head(ctx.ctx, delta as i32) } != 0 {
        return XDP_ABORTED;
    }
    // SAFETY: a tail call either jumps (never returns) or fails.
    unsafe { COST_TARGET.tail_call(&ctx, 0) };
    XDP_ABORTED
}

/// Forwarder: every frame goes out of the port paired with the one it came
/// in on, untouched — the least any XDP gateway does, so the rate it gets
/// is the ceiling of the lab.
#[xdp]
pub fn lab_fwd(ctx: XdpContext) -> u32 {
    FWD.redirect(ctx.ingress_ifindex() as u32, 0)
        .unwrap_or(XDP_DROP)
}

/// AF_XDP forwarder's steering: every frame to the AF_XDP socket of its
/// port's slot and receive queue (`LAB_XSKS[slot * XSK_MAX_QUEUES +
/// queue]`), as the engine's steering programs do; dropped where there is
/// none.
#[xdp]
pub fn lab_xsk(ctx: XdpContext) -> u32 {
    // SAFETY: a live map value, read only.
    let Some(slot) = (unsafe { XSK_SLOTS.get(ctx.ingress_ifindex() as u32) }) else {
        return XDP_DROP;
    };
    let queue = ctx.rx_queue_index();
    if queue >= XSK_MAX_QUEUES {
        return XDP_DROP;
    }
    XSKS.redirect(*slot * XSK_MAX_QUEUES + queue, u64::from(XDP_DROP))
        .unwrap_or(XDP_DROP)
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
