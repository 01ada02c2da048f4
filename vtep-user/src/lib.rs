//! vtep's userspace: the loader, the daemon (`vtep run`) and the CLI that
//! manage the eBPF datapath's maps.
//!
//! In layers, each using only the layers below it (checked by
//! `cargo xtask layers`):
//!
//! 1. [`model`]: plain types and the config model (MAC addresses, VTEP
//!    addresses, the TOML config and its validation);
//! 2. [`system`]: the kernel facts and knobs vtep needs (netlink,
//!    interfaces and namespaces, bpffs, the clock, readiness);
//! 3. [`datapath`]: the datapath as userspace sees it: the pinned maps, one
//!    module per table family, and the loader;
//! 4. [`control`]: what drives the datapath: applying a config, the
//!    kernel-FDB follower, the AF_XDP engine;
//! 5. [`daemon`] (`vtep run`) and [`cli`] (the command line and its
//!    printer).
//!
//! [`lab`], the benchmark lab (`vtep pktgen`), stands beside the product:
//! it uses the system and datapath layers, and only the CLI uses it.

pub mod model;

pub mod system;

pub mod datapath;

pub mod control;

pub mod cli;
pub mod daemon;

pub mod lab;
