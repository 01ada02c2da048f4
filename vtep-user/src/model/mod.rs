//! Layer 1, plain types and the config model: MAC and VTEP addresses, the
//! TOML config and its validation, the engine choice and the follower's
//! defaults. Uses nothing else of vtep's.

pub mod addr;
pub mod config;
