//! `cargo xtask test`: setup, the layer check of vtep-user, unit tests (including vtep's BPF_PROG_TEST_RUN
//! tests, which need root), a release build of vtep, and the integration
//! tests against it in network namespaces, one test at a time, once with
//! each engine (XDP, AF_XDP).

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
        step("layers of vtep-user", crate::layers::run),
        step("unit tests", || {
            // vtep-ebpf builds only for the BPF target (through vtep's build.rs).
            let excluded = ["vtep-tests", "vtep-ebpf"].map(|p| ["--exclude", p]);
            cmd::run(
                cargo()
                    .args(["test", "--workspace"])
                    .args(excluded.as_flattened()),
            )
        }),
        step(BUILD, || {
            cmd::run(cargo().args(["build", "--release", "-p", "vtep"]))
        }),
    ];
    let built = steps
        .iter()
        .any(|s| s.name == BUILD && matches!(s.outcome, Outcome::Passed));
    if built && (options.tests.is_empty() || options.tests.iter().any(|t| t == UPGRADE)) {
        // The upgrade test starts from the previous release: built once,
        // before the suite, where its progress shows (if it fails, so does
        // the upgrade test, which tries again; the others run).
        steps.push(step(BUILD_BASE, || {
            let bin = vtep_tests::lab::upgrade::base_vtep().map_err(anyhow::Error::msg)?;
            println!("upgrade base: {}", bin.display());
            Ok(())
        }));
    }
    // The whole namespace suite runs against each engine.
    for (name, engine) in [
        ("integration tests (xdp)", "xdp"),
        ("integration tests (afxdp)", "afxdp"),
    ] {
        steps.push(if built {
            step(name, || integration_tests(options, engine))
        } else {
            Step {
                name,
                outcome: Outcome::Skipped("vtep did not build"),
                took: Duration::ZERO,
            }
        });
    }
    summarize(&steps)
}

/// The step whose success the integration tests need.
const BUILD: &str = "build vtep (release)";
/// The previous release, for the upgrade test (`tests/tests/upgrade.rs`).
const BUILD_BASE: &str = "build upgrade base v0.1.0";
const UPGRADE: &str = "upgrade";

/// The lab tests against the release build, one at a time (each builds a
/// whole lab; in parallel they would mostly compete for the 2 cores).
fn integration_tests(options: &Options, engine: &str) -> anyhow::Result<()> {
    let mut files = options.tests.clone();
    if engine == "xdp" {
        // Tests of the AF_XDP engine start it themselves: once is enough.
        if files.is_empty() {
            files = test_files()?;
        }
        files.retain(|f| !AFXDP_ONLY.contains(&f.as_str()));
    } else {
        // `[follow]` (and so the EVPN lab) runs with the XDP engine only.
        if files.is_empty() {
            files = test_files()?;
        }
        files.retain(|f| !XDP_ONLY.contains(&f.as_str()));
        println!(
            "(not with {engine}: {}: [follow] needs the XDP engine)",
            XDP_ONLY.join(", ")
        );
    }
    if files.is_empty() {
        // Every file asked for is of the other engine: nothing to run here
        // (with no `--test` at all, cargo would run the whole suite).
        println!("(no integration test of those runs with {engine})");
        return Ok(());
    }
    let only: Vec<&str> = files.iter().flat_map(|t| ["--test", t.as_str()]).collect();
    cmd::run(
        cargo()
            .env("VTEP_BIN", cmd::vtep_bin())
            .env("VTEP_ENGINE", engine)
            .args(["test", "--release", "--no-fail-fast", "-p", "vtep-tests"])
            .args(only)
            .args(["--", "--test-threads=1"])
            .args(&options.args),
    )
}

/// Integration test files that need the XDP engine.
const XDP_ONLY: [&str; 2] = ["evpn", "follow"];

/// Integration test files of the AF_XDP engine alone (run in its pass).
const AFXDP_ONLY: [&str; 1] = ["afxdp"];

/// The integration test files (`tests/tests/*.rs`), by name.
fn test_files() -> anyhow::Result<Vec<String>> {
    let dir = cmd::workspace_root().join("tests/tests");
    let mut names: Vec<String> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

fn summarize(steps: &[Step]) -> anyhow::Result<()> {
    println!("\n==> summary");
    let mut failed = 0;
    for step in steps {
        let took = step.took.as_secs_f32();
        match &step.outcome {
            Outcome::Passed => println!("PASS  {:<26} {took:>6.1} s", step.name),
            Outcome::Failed(e) => {
                failed += 1;
                println!("FAIL  {:<26} {took:>6.1} s  {e:#}", step.name);
            }
            Outcome::Skipped(why) => {
                failed += 1;
                println!("SKIP  {:<26}           {why}", step.name);
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} steps did not pass", steps.len());
    }
    println!("all {} steps passed", steps.len());
    Ok(())
}
