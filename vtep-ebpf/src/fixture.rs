//! Test-only programs: the TC dispatch of `vtep_uplink_tc` and
//! `vtep_access_tc` on metadata the test writes, not on metadata an XDP
//! program left in front of the frame (BPF_PROG_TEST_RUN cannot give an
//! skb XDP metadata). The SETUP of Cilium's BPF tests: inject the state,
//! then call the code under test. Loaded only by the BPF_PROG_TEST_RUN
//! fixtures (`vtep-user/tests/datapath.rs`), never by the gateway.
//!
//! | program                  | calls                                      |
//! |--------------------------|--------------------------------------------|
//! | `vtep_fixture_uplink_tc` | `flood::dispatch_uplink(ctx, TEST_META[0])` |
//! | `vtep_fixture_access_tc` | `flood::dispatch_access(ctx, TEST_META[0])` |
//!
//! Both count a drop as the real entry points do ([`flood::tc_verdict`]),
//! into the same maps (`vtep_ebpf::maps`).
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::TC_ACT_OK,
    macros::{classifier, map},
    maps::Array,
    programs::TcContext,
};
use vtep_common::Meta;
use vtep_ebpf::flood::{self, tc_verdict};

/// The metadata the next run dispatches on (one entry, written by the test).
#[map]
static TEST_META: Array<Meta> = Array::with_max_entries(1, 0);

/// The metadata the test wrote, as `flood::meta` would have read it.
#[inline(always)]
fn test_meta() -> Option<Meta> {
    TEST_META.get(0).copied()
}

/// `vtep_uplink_tc` after its metadata read.
#[classifier]
pub fn vtep_fixture_uplink_tc(ctx: TcContext) -> i32 {
    let Some(m) = test_meta() else {
        return TC_ACT_OK;
    };
    tc_verdict(flood::dispatch_uplink(&ctx, m))
}

/// `vtep_access_tc` after its metadata read.
#[classifier]
pub fn vtep_fixture_access_tc(ctx: TcContext) -> i32 {
    let Some(m) = test_meta() else {
        return TC_ACT_OK;
    };
    tc_verdict(flood::dispatch_access(&ctx, m))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
