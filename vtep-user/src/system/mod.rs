//! Layer 2, the system: what vtep asks of and sets in the kernel outside
//! its own maps (rtnetlink, interfaces and the namespaces of their far
//! ends, bpffs and the run lock, the monotonic clock, sd_notify). Uses only
//! [`crate::model`].

pub mod bpffs;
pub mod clock;
pub mod iface;
pub mod netlink;
pub mod notify;
