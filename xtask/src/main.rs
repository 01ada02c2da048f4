//! `cargo xtask <task>`: vtep's project tasks.
//!
//! - `setup`: install what building and testing vtep needs (idempotent).
//! - `test`: unit tests, then the integration tests in a namespace lab.
//! - `demo`: walk through vtep in a namespace lab, showing every command
//!   (`--metrics`: Prometheus graphs of its rates, for the README).
//! - `layers`: check that vtep-user's imports point down its layers.
//! - `bench`: the kernel's vxlan + bridge against vtep's engines, in a namespace lab.
//! - `dist`: the release binary and a Debian package of it (unit, completions, man pages).
//! - `fuzz`: a timed run of the datapath's differential fuzzer.
//! - `fuzz-parsers`: the cargo-fuzz targets of the userspace parsers (`fuzz/`).

mod bench;
mod cmd;
mod demo;
mod demo_evpn;
mod demo_metrics;
mod dist;
mod fuzz;
mod fuzz_parsers;
mod layers;
mod setup;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "vtep's project tasks", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the toolchain pieces, packages and mounts vtep needs (a no-op when all are there).
    Setup(setup::Options),
    /// Run setup, the unit tests, then the integration tests (root, network namespaces).
    Test(test::Options),
    /// Run setup, build vtep, and walk through it in a namespace lab
    /// (`--evpn`: three hosts under BGP EVPN with FRR, vtep following them;
    /// `--metrics`: Prometheus scraping the gateways, screenshots of its graphs).
    Demo(demo::Options),
    /// Benchmark the kernel's vxlan + bridge and vtep's engines in a namespace lab.
    Bench(bench::Options),
    /// Check that vtep-user's modules import only from the layers below them.
    Layers,
    /// Build the release binary and a Debian package of it (target/dist/).
    Dist,
    /// Fuzz the datapath against its reference model for a while (root).
    Fuzz(fuzz::Options),
    /// Run the userspace parsers' libFuzzer targets (fuzz/), each for --time SECS.
    FuzzParsers(fuzz_parsers::Options),
}

fn main() -> ExitCode {
    cmd::put_cargo_bin_on_path();
    let result = match Cli::parse().task {
        Task::Setup(options) => setup::run(&options),
        Task::Test(options) => test::run(&options),
        Task::Demo(options) => demo::run(&options),
        Task::Bench(options) => bench::run(&options),
        Task::Layers => layers::run(),
        Task::Dist => dist::run(),
        Task::Fuzz(options) => fuzz::run(&options),
        Task::FuzzParsers(options) => fuzz_parsers::run(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The chain of contexts says what failed; a backtrace would not help.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
