//! vtep's datapath: the concerns its programs (`src/main.rs`) are made of.
//!
//! A library, so that a test program can call one concern with inputs it
//! makes up (for example [`flood::dispatch_uplink`] with its own
//! [`vtep_common::Meta`]).
//!
//! vtep names this crate as a build dependency, so that cargo rebuilds it
//! when the datapath changes; built for the host that way, the library is
//! empty (its inline assembly is BPF's).
#![no_std]
#![cfg(target_arch = "bpf")]
#![feature(asm_experimental_arch)]

pub mod afxdp;
pub mod decap;
pub mod encap;
pub mod flood;
pub mod learn;
pub mod maps;
pub mod parse;
pub mod pmtu;
