//! The benchmark lab, beside the product: `vtep pktgen` (generator, sink,
//! program cost) and the BPF_PROG_TEST_RUN calls behind it. Uses
//! [`crate::system`] and [`crate::datapath`]; only the CLI uses it.

pub mod pktgen;
pub mod testrun;
