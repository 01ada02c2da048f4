//! BPF_PROG_TEST_RUN: running a loaded XDP (or TC) program on a frame without
//! an interface, once (the datapath fixtures), many times on one frame to time
//! it (`vtep pktgen cost`), or in live-frames mode, where every frame the
//! program returns `XDP_TX` for is really sent out of an interface
//! (`vtep pktgen`, the method of xdp-trafficgen).
//!
//! Through aya's own [`TestRun`]: it covers all of it (input and output
//! data, an input and output context, `repeat` with the kernel's timing,
//! and live frames with a batch size through [`TestRunAttrs::xdp_live_frames`]).
//! What is vtep's here is the XDP context ([`XdpMd`], which aya leaves to the
//! caller as bytes) and the split of an XDP run's output into metadata and
//! frame.

use std::{mem::size_of, time::Duration};

use aya::programs::{
    ProgramError, SchedClassifier, TestRun as _, TestRunAttrs, TestRunOptions, Xdp,
};

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// Most frames the kernel batches per live-frames iteration.
pub const MAX_BATCH: u32 = 256;
/// Largest frame a live-frames run takes (a 4 KiB page less its heads).
pub const MAX_LIVE_FRAME: usize = 3408;

/// `struct xdp_md`, the context of an XDP test run.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XdpMd {
    pub data: u32,
    pub data_end: u32,
    pub data_meta: u32,
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
    pub egress_ifindex: u32,
}

/// The size of [`XdpMd`] in bytes.
const XDP_MD_LEN: usize = size_of::<XdpMd>();

impl XdpMd {
    /// The context of `frame` arriving on `ifindex`, receive queue
    /// `rx_queue_index` (which the device must have).
    pub fn arriving(frame: &[u8], ifindex: u32, rx_queue_index: u32) -> Self {
        XdpMd {
            data_end: frame.len() as u32,
            ingress_ifindex: ifindex,
            rx_queue_index,
            ..XdpMd::default()
        }
    }

    fn words(&self) -> [u32; XDP_MD_LEN / 4] {
        [
            self.data,
            self.data_end,
            self.data_meta,
            self.ingress_ifindex,
            self.rx_queue_index,
            self.egress_ifindex,
        ]
    }

    /// The bytes the kernel takes as `ctx_in`.
    fn to_bytes(self) -> [u8; XDP_MD_LEN] {
        let mut bytes = [0; XDP_MD_LEN];
        for (b, w) in bytes.chunks_exact_mut(4).zip(self.words()) {
            b.copy_from_slice(&w.to_ne_bytes());
        }
        bytes
    }

    /// The context the kernel wrote back as `ctx_out`.
    fn from_bytes(bytes: &[u8; XDP_MD_LEN]) -> Self {
        let mut w = bytes
            .chunks_exact(4)
            .map(|b| u32::from_ne_bytes(b.try_into().expect("4-byte chunk")));
        let mut next = || w.next().expect("six words");
        XdpMd {
            data: next(),
            data_end: next(),
            data_meta: next(),
            ingress_ifindex: next(),
            rx_queue_index: next(),
            egress_ifindex: next(),
        }
    }
}

/// The mean time of one run of a test run, in whole ns as the kernel
/// measured it (it reports whole ns).
fn ns(d: Duration) -> u32 {
    u32::try_from(d.as_nanos()).unwrap_or(u32::MAX)
}

/// Runs the XDP program `prog` `repeat` times on `frame` "received" on
/// `ifindex` (no output buffers); the verdict of the last run and the mean
/// time of one run in ns, as the kernel measured it (whole ns; time the
/// thread spent scheduled out is not counted). The wall clock of the call
/// would not do: a test run with `repeat` > 1 switches a static key on and
/// off, milliseconds per call.
pub fn xdp_repeat(
    prog: &Xdp,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
) -> Result<(u32, u32), ProgramError> {
    let ctx = XdpMd::arriving(frame, ifindex, 0).to_bytes();
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        ctx_in: Some(&ctx),
        repeat,
        ..TestRunOptions::new()
    })?;
    Ok((r.return_value, ns(r.duration)))
}

/// Live frames: runs `prog` on `count` copies of `frame` as if each had
/// arrived on `ifindex`, carrying out the verdicts (XDP_TX sends the frame
/// out of `ifindex`), `batch` frames per kernel iteration.
pub fn xdp_live(
    prog: &Xdp,
    frame: &[u8],
    ifindex: u32,
    count: u32,
    batch: u32,
) -> Result<(), ProgramError> {
    let ctx = XdpMd::arriving(frame, ifindex, 0).to_bytes();
    prog.test_run(TestRunOptions {
        data_in: Some(frame),
        ctx_in: Some(&ctx),
        repeat: count,
        attrs: TestRunAttrs::new().xdp_live_frames(batch),
        ..TestRunOptions::new()
    })?;
    Ok(())
}

/// What one run of an XDP program gave back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpRun {
    pub verdict: u32,
    /// The XDP metadata in front of the frame (empty when none).
    pub meta: Vec<u8>,
    pub frame: Vec<u8>,
}

/// Runs the XDP program `prog` once on `frame` in context `ctx`, with room
/// for `out_len` bytes of output (metadata and frame).
pub fn xdp_once(
    prog: &Xdp,
    frame: &[u8],
    ctx: XdpMd,
    out_len: usize,
) -> Result<XdpRun, ProgramError> {
    let mut out = vec![0; out_len];
    let ctx_in = ctx.to_bytes();
    let mut ctx_out = [0; XDP_MD_LEN];
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ctx_in: Some(&ctx_in),
        ctx_out: Some(&mut ctx_out),
        ..TestRunOptions::new()
    })?;
    out.truncate(r.data_size_out as usize);
    // The output starts at data_meta; ctx_out.data is where the frame starts.
    let at = (XdpMd::from_bytes(&ctx_out).data as usize).min(out.len());
    let frame = out.split_off(at);
    Ok(XdpRun {
        verdict: r.return_value,
        meta: out,
        frame,
    })
}

/// Runs the TC program `prog` once on `frame` (an skb on the namespace's
/// loopback device), with room for `out_len` bytes of output; its verdict
/// (a `TC_ACT_*`) and the frame as it left the program.
pub fn tc_once(
    prog: &SchedClassifier,
    frame: &[u8],
    out_len: usize,
) -> Result<(u32, Vec<u8>), ProgramError> {
    let mut out = vec![0; out_len];
    let r = prog.test_run(TestRunOptions {
        data_in: Some(frame),
        data_out: Some(&mut out),
        ..TestRunOptions::new()
    })?;
    out.truncate(r.data_size_out as usize);
    Ok((r.return_value, out))
}
