//! `cargo xtask test`: setup, unit tests (including vtep's BPF_PROG_TEST_RUN
//! tests, which need root), a release build of vtep, and the integration
//! tests against it in network namespaces, one test at a time.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::cmd::{self, cargo};
use crate::setup;

#[derive(clap::Args)]
pub struct Options {
    /// Run only this integration test file (`tests/tests/<NAME>.rs`); repeatable.
    #[arg(long = "test", value_name = "NAME")]
    tests: Vec<String>,
    /// Passed to the integration test binaries, e.g. a test name filter.
    #[arg(last = true)]
    args: Vec<OsString>,
}

enum Outcome {
    Passed,
    Failed(anyhow::Error),
    Skipped(&'static str),
}

struct Step {
    name: &'static str,
    outcome: Outcome,
    took: Duration,
}

fn step(name: &'static str, f: impl FnOnce() -> anyhow::Result<()>) -> Step {
    println!("\n==> {name}");
    let started = Instant::now();
    let outcome = match f() {
        Ok(()) => Outcome::Passed,
        Err(e) => Outcome::Failed(e),
    };
    Step {
        name,
        outcome,
        took: started.elapsed(),
    }
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    cmd::ensure_root()?;
    setup::ensure()?;
    let mut steps = vec![
        step("unit tests", || {
            // vtep-ebpf builds only for the BPF target (through vtep's build.rs).
            let excluded = ["vtep-tests", "vtep-ebpf"].map(|p| ["--exclude", p]);
            cmd::run(
                cargo()
                    .args(["test", "--workspace"])
                    .args(excluded.as_flattened()),
            )
        }),
        step("build vtep (release)", || {
            cmd::run(cargo().args(["build", "--release", "-p", "vtep"]))
        }),
    ];
    let built = matches!(steps[1].outcome, Outcome::Passed);
    steps.push(if built {
        step("integration tests", || integration_tests(options))
    } else {
        Step {
            name: "integration tests",
            outcome: Outcome::Skipped("vtep did not build"),
            took: Duration::ZERO,
        }
    });
    summarize(&steps)
}

/// The lab tests against the release build, one at a time (each builds a
/// whole lab; in parallel they would mostly compete for the 2 cores).
fn integration_tests(options: &Options) -> anyhow::Result<()> {
    let only: Vec<&str> = options
        .tests
        .iter()
        .flat_map(|t| ["--test", t.as_str()])
        .collect();
    cmd::run(
        cargo()
            .env("VTEP_BIN", cmd::vtep_bin())
            .args(["test", "--release", "--no-fail-fast", "-p", "vtep-tests"])
            .args(only)
            .args(["--", "--test-threads=1"])
            .args(&options.args),
    )
}

fn summarize(steps: &[Step]) -> anyhow::Result<()> {
    println!("\n==> summary");
    let mut failed = 0;
    for step in steps {
        let took = step.took.as_secs_f32();
        match &step.outcome {
            Outcome::Passed => println!("PASS  {:<24} {took:>6.1} s", step.name),
            Outcome::Failed(e) => {
                failed += 1;
                println!("FAIL  {:<24} {took:>6.1} s  {e:#}", step.name);
            }
            Outcome::Skipped(why) => {
                failed += 1;
                println!("SKIP  {:<24}           {why}", step.name);
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} steps did not pass", steps.len());
    }
    println!("all {} steps passed", steps.len());
    Ok(())
}
