//! Layer 4, what drives the datapath: applying a config ([`apply`]), the
//! kernel-FDB follower ([`follow`]) and the AF_XDP engine ([`afxdp`]). Uses
//! the layers below; the daemon and the CLI use it.

pub mod afxdp;
pub mod apply;
pub mod events;
pub mod follow;
