//! `cargo xtask fuzz --time SECS [--seed N]`: a long run of the datapath's
//! differential fuzzer (`vtep-user/tests/fuzz.rs`: every program through
//! BPF_PROG_TEST_RUN against the reference model of `vtep_common::model`).
//! `cargo test -p vtep` runs the same test bounded (100,000 frames a
//! program); this runs it for a time instead, optimised, with a progress
//! line every 5 s. Disagreements are kept in `vtep-user/tests/fuzz-corpus/`.

use crate::cmd::{self, cargo};
use crate::setup;

#[derive(clap::Args)]
pub struct Options {
    /// How long to fuzz, in seconds.
    #[arg(long = "time", value_name = "SECS", default_value_t = 60)]
    secs: u64,
    /// The generator's seed (printed by every run): repeats a run.
    #[arg(long)]
    seed: Option<u64>,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    cmd::ensure_root()?;
    setup::ensure()?;
    let mut test = cargo();
    test.env("VTEP_FUZZ_SECS", options.secs.to_string());
    if let Some(seed) = options.seed {
        test.env("VTEP_FUZZ_SEED", seed.to_string());
    }
    cmd::run(
        test.args(["test", "--release", "-p", "vtep", "--test", "fuzz"])
            .args([
                "--",
                "--exact",
                "datapath_agrees_with_the_model",
                "--nocapture",
            ]),
    )
}
