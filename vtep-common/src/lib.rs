//! Types, constants and pure header logic shared by vtep's eBPF programs
//! (`vtep-ebpf`) and its userspace (`vtep-user`).
//!
//! Everything that crosses the kernel/user boundary lives here: map names and
//! capacities, the `#[repr(C)]` keys and values of every map, the reason codes
//! for packets that are not forwarded, and the metadata the XDP programs hand
//! to their TC companions. The header logic (checksums, the outer header of an
//! encapsulation, the flow hash behind the outer UDP source port, the checks a
//! VXLAN packet must pass) is written once, as plain functions, so that it is
//! unit-tested on the host and shared by every engine.
#![no_std]

pub mod ecn;
pub mod event;
pub mod fdb;
pub mod frame;
pub mod header;
pub mod icmp;
pub mod lab;
pub mod layout;
pub mod maps;
pub mod model;
pub mod reason;

pub use maps::*;
pub use reason::Reason;
