//! vtep's userspace: the loader, the daemon (`vtep run`) and the CLI that
//! manage the eBPF datapath's maps.
//!
//! - [`config`]: the TOML config and its validation;
//! - [`loader`]: loading, pinning, attaching and detaching the programs;
//! - [`gateway`]: the pinned maps of a running gateway and every change to
//!   them (FDB, VNIs, access ports, flood lists, counters, ageing);
//! - [`control`]: applying a config, adding access ports;
//! - [`daemon`]: `vtep run`;
//! - [`follow`]: mirroring kernel vxlan devices and bridges (`[follow]`);
//! - [`cli`] and [`output`]: the command line;
//! - [`netlink`] and [`sys`]: the kernel facts and knobs vtep needs.

pub mod addr;
pub mod afxdp;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon;
pub mod follow;
pub mod gateway;
pub mod loader;
pub mod netlink;
pub mod output;
pub mod pktgen;
pub mod sys;
pub mod testrun;
