//! BPF_PROG_TEST_RUN: running a loaded XDP (or TC) program on a frame without
//! an interface, once (the datapath fixtures), many times on one frame to time
//! it (`vtep pktgen cost`), or in live-frames mode, where every frame the
//! program returns `XDP_TX` for is really sent out of an interface
//! (`vtep pktgen`, the method of xdp-trafficgen).
//!
//! The raw `bpf(2)` syscall through libc: aya 0.14 exposes no test run.

use std::{
    io,
    mem::{offset_of, size_of},
    os::fd::RawFd,
};

const BPF_PROG_TEST_RUN: libc::c_long = 10;

/// Run on the given CPU (`TestRun::cpu`); not for XDP.
pub const BPF_F_TEST_RUN_ON_CPU: u32 = 1 << 0;
/// XDP live frames: verdicts are carried out (XDP_TX sends, XDP_REDIRECT
/// redirects) instead of reported.
pub const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;
pub const XDP_REDIRECT: u32 = 4;

/// Most frames the kernel batches per live-frames iteration.
pub const MAX_BATCH: u32 = 256;
/// Largest frame a live-frames run takes (a 4 KiB page less its heads).
pub const MAX_LIVE_FRAME: usize = 3408;

/// The `test` member of `union bpf_attr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TestRunAttr {
    pub prog_fd: u32,
    pub retval: u32,
    pub data_size_in: u32,
    pub data_size_out: u32,
    pub data_in: u64,
    pub data_out: u64,
    pub repeat: u32,
    pub duration: u32,
    pub ctx_size_in: u32,
    pub ctx_size_out: u32,
    pub ctx_in: u64,
    pub ctx_out: u64,
    pub flags: u32,
    pub cpu: u32,
    pub batch_size: u32,
    pub _pad: u32,
}

const _: () = {
    assert!(offset_of!(TestRunAttr, data_in) == 16);
    assert!(offset_of!(TestRunAttr, repeat) == 32);
    assert!(offset_of!(TestRunAttr, ctx_size_in) == 40);
    assert!(offset_of!(TestRunAttr, ctx_in) == 48);
    assert!(offset_of!(TestRunAttr, flags) == 64);
    assert!(offset_of!(TestRunAttr, batch_size) == 72);
    assert!(size_of::<TestRunAttr>() == 80);
};

/// `struct xdp_md`, the context of an XDP test run.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct XdpMd {
    pub data: u32,
    pub data_end: u32,
    pub data_meta: u32,
    pub ingress_ifindex: u32,
    pub rx_queue_index: u32,
    pub egress_ifindex: u32,
}

impl XdpMd {
    /// The context of `frame` arriving on `ifindex`.
    fn arriving(frame: &[u8], ifindex: u32) -> Self {
        XdpMd {
            data_end: frame.len() as u32,
            ingress_ifindex: ifindex,
            ..XdpMd::default()
        }
    }
}

/// The attributes of a run of `prog_fd` on `frame` in context `ctx`, `repeat`
/// times (both must outlive the call that uses them).
fn xdp_attr(prog_fd: RawFd, frame: &[u8], ctx: &XdpMd, repeat: u32) -> TestRunAttr {
    TestRunAttr {
        prog_fd: prog_fd as u32,
        data_size_in: frame.len() as u32,
        data_in: frame.as_ptr() as u64,
        repeat,
        ctx_size_in: size_of::<XdpMd>() as u32,
        ctx_in: ctx as *const XdpMd as u64,
        ..TestRunAttr::default()
    }
}

/// `bpf(BPF_PROG_TEST_RUN, attr)`; the kernel fills in `retval`,
/// `duration` and the output sizes.
///
/// # Safety
///
/// Every buffer `attr` points to (`data_in`, `data_out`, `ctx_in`,
/// `ctx_out`) must be valid, with the size given next to it, until the call
/// returns; the output buffers writable.
pub unsafe fn test_run(attr: &mut TestRunAttr) -> io::Result<()> {
    // SAFETY: attr is a bpf_attr for BPF_PROG_TEST_RUN of the size given;
    // the caller guarantees its buffers.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_TEST_RUN,
            attr as *mut TestRunAttr,
            size_of::<TestRunAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Runs the XDP program `prog_fd` `repeat` times on `frame` "received" on
/// `ifindex` (no output buffers); the verdict of the last run and the mean
/// time of one run in ns, as the kernel measured it (whole ns; time the
/// thread spent scheduled out is not counted). The wall clock of the call
/// would not do: a test run with `repeat` > 1 switches a static key on and
/// off, milliseconds per call.
pub fn xdp_repeat(
    prog_fd: RawFd,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
) -> io::Result<(u32, u32)> {
    let ctx = XdpMd::arriving(frame, ifindex);
    let mut attr = xdp_attr(prog_fd, frame, &ctx, repeat);
    // SAFETY: frame and ctx outlive the call, with the sizes given.
    unsafe { test_run(&mut attr)? };
    Ok((attr.retval, attr.duration))
}

/// Live frames: runs `prog_fd` on `count` copies of `frame` as if each had
/// arrived on `ifindex`, carrying out the verdicts (XDP_TX sends the frame
/// out of `ifindex`), `batch` frames per kernel iteration.
pub fn xdp_live(
    prog_fd: RawFd,
    frame: &[u8],
    ifindex: u32,
    count: u32,
    batch: u32,
) -> io::Result<()> {
    let ctx = XdpMd::arriving(frame, ifindex);
    let mut attr = TestRunAttr {
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        batch_size: batch,
        ..xdp_attr(prog_fd, frame, &ctx, count)
    };
    // SAFETY: frame and ctx outlive the call, with the sizes given.
    unsafe { test_run(&mut attr) }
}
