//! Layer 3, the datapath as userspace sees it: the pin path, the loader
//! (load, pin, attach, detach) and the pinned maps of a running gateway with
//! every change to them. Uses [`crate::model`] and [`crate::system`].

pub mod batch;
pub mod gateway;
pub mod loader;
pub mod migrate;
pub mod pins;
