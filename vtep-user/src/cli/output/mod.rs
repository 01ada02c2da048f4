//! What the CLI prints: text in the manner of `bridge fdb show` and
//! `ip -s link`, or with `-j` JSON with iproute2's key names, both from one
//! list of fields per command ([`Printer`]).
//!
//! This is the presentation side: the maps layer (`crate::datapath::gateway`) hands
//! over what the maps hold (keys, entries, flags, ifindexes); here they
//! become rows, with interface names and the words of `bridge fdb`.

mod fdb;
pub mod monitor;
mod printer;
mod stats;
mod vni;

use std::collections::HashMap;

pub use fdb::{FdbRow, FloodRows, Place, show as fdb};
pub use printer::Printer;
pub use stats::show as stats;
pub use vni::{PortRow, VniRow, ports, show as vnis};

/// Interface names by ifindex, each looked up once (an FDB of a million
/// entries names the same few ports over and over).
#[derive(Debug, Default)]
pub struct IfNames(HashMap<u32, String>);

impl IfNames {
    /// The name of `ifindex` in this namespace, or `if<N>` if it has none.
    pub fn name(&mut self, ifindex: u32) -> String {
        self.0
            .entry(ifindex)
            .or_insert_with(|| {
                crate::system::iface::ifname(ifindex).unwrap_or_else(|| format!("if{ifindex}"))
            })
            .clone()
    }
}
