//! vtep's integration tests: a lab of network namespaces, veth pairs, a bridge
//! as the underlay switch, vtep daemons and Linux vxlan hosts, driven with the
//! real tools (`ip`, `bridge`, `ethtool`, `ping`, `iperf3`).
//!
//! The tests themselves are in `tests/`; this library is the lab they share
//! (and that `cargo xtask demo` uses).

pub mod lab;
