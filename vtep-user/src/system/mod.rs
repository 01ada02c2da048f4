//! Layer 2, the system: what vtep asks of and sets in the kernel outside
//! its own maps (rtnetlink, interfaces and the namespaces of their far
//! ends, bpffs and the run lock, the monotonic clock, sd_notify), and the
//! batched map reads aya lacks (`bpf_batch`), AF_XDP sockets (`xsk`). Uses
//! only [`crate::model`].

pub mod bpf_batch;
pub mod bpffs;
pub mod clock;
pub mod iface;
pub mod netlink;
pub mod notify;
pub mod xsk;
