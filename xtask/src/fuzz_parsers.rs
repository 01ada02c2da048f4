//! `cargo xtask fuzz-parsers [--time SECS] [TARGET...]`: runs the cargo-fuzz
//! (libFuzzer) targets of `fuzz/`, the userspace parsers that take outside
//! input, each for SECS, and prints a line per target: runs, coverage,
//! crashes.
//!
//! Each target starts from its seeds (`fuzz/corpus/TARGET`, kept in git)
//! and from what earlier runs found (`fuzz/work/TARGET`, not kept); new
//! inputs go to the latter only. A crash, a panic or a hang (an input that
//! runs over ten seconds) stops that target and is written under
//! `fuzz/artifacts/TARGET/`; the task fails once every target has run.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::{cmd, setup};

/// The targets of `fuzz/fuzz_targets/`.
const TARGETS: [&str; 4] = ["config", "addr", "batch", "netlink"];

/// The nightly toolchain the eBPF build uses (aya-build's default), which
/// libFuzzer's instrumentation needs too.
const NIGHTLY: &str = "nightly";

/// An input that takes longer than this, in seconds, is a hang.
const HANG_SECS: u64 = 10;

#[derive(clap::Args)]
pub struct Options {
    /// Seconds each target runs (libFuzzer's -max_total_time).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    time: u64,
    /// The targets to run (all when none is given).
    #[arg(value_name = "TARGET", value_parser = TARGETS)]
    targets: Vec<String>,
}

/// What one target's run came to.
struct Outcome {
    target: String,
    runs: Option<u64>,
    /// Edges covered (`cov:`) and features (`ft:`), at the end.
    cov: Option<u64>,
    features: Option<u64>,
    corpus: Option<u64>,
    /// The input that crashed, panicked or hung, if one did.
    crash: Option<PathBuf>,
    log: PathBuf,
}

pub fn run(options: &Options) -> anyhow::Result<()> {
    setup::ensure_fuzz()?;
    let root = cmd::workspace_root();
    let fuzz_dir = root.join("fuzz");
    let targets: Vec<String> = if options.targets.is_empty() {
        TARGETS.map(str::to_owned).to_vec()
    } else {
        options.targets.clone()
    };

    println!("==> building the fuzz targets (nightly, address sanitizer)");
    cmd::run(
        cargo_fuzz(&root)
            .args(["build", "--fuzz-dir"])
            .arg(&fuzz_dir),
    )?;

    let logs = fuzz_dir.join("target").join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let mut outcomes = Vec::new();
    for target in &targets {
        println!("==> fuzzing {target} for {} s", options.time);
        outcomes.push(fuzz(&root, &fuzz_dir, &logs, target, options.time)?);
    }

    println!("==> fuzz-parsers summary ({} s a target)", options.time);
    for o in &outcomes {
        println!("{}", summary(o));
    }
    let crashed: Vec<&Outcome> = outcomes.iter().filter(|o| o.crash.is_some()).collect();
    if !crashed.is_empty() {
        for o in &crashed {
            println!(
                "{}: see {} (reproduce: cargo +{NIGHTLY} fuzz run --fuzz-dir fuzz {} {})",
                o.target,
                o.log.display(),
                o.target,
                o.crash.as_deref().map(Path::display).expect("crashed"),
            );
        }
        bail!(
            "{} of {} targets crashed: fix the parser, add the input as a unit test next to it \
             and to fuzz/corpus/TARGET",
            crashed.len(),
            outcomes.len()
        );
    }
    Ok(())
}

/// `cargo fuzz` on the nightly toolchain, from the workspace root. The
/// variables the stable cargo that runs xtask sets would make it build
/// with stable.
fn cargo_fuzz(root: &Path) -> Command {
    let mut c = Command::new("rustup");
    c.args(["run", NIGHTLY, "cargo", "fuzz"])
        .current_dir(root)
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTUP_TOOLCHAIN");
    c
}

/// Runs one target for `secs`, its output into `logs/TARGET.log`.
fn fuzz(
    root: &Path,
    fuzz_dir: &Path,
    logs: &Path,
    target: &str,
    secs: u64,
) -> anyhow::Result<Outcome> {
    let work = fuzz_dir.join("work").join(target);
    let seeds = fuzz_dir.join("corpus").join(target);
    fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let log = logs.join(format!("{target}.log"));
    let out = fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut c = cargo_fuzz(root);
    c.args(["run", "--fuzz-dir"])
        .arg(fuzz_dir)
        .arg(target)
        .arg(&work)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={secs}"))
        .arg(format!("-timeout={HANG_SECS}"))
        .arg("-print_final_stats=1")
        .stdout(out.try_clone()?)
        .stderr(out);
    let status = c
        .status()
        .with_context(|| format!("running cargo fuzz run {target}"))?;
    let text = fs::read_to_string(&log).with_context(|| format!("reading {}", log.display()))?;
    let mut o = parse_log(target, &text);
    o.log = log;
    if !status.success() && o.crash.is_none() {
        bail!(
            "cargo fuzz run {target} failed ({status}) without a crash input: see {}",
            o.log.display()
        );
    }
    Ok(o)
}

/// Reads libFuzzer's output: the last status line (`#N ... cov: C ft: F
/// corp: K/...`), the final stats, and the input it wrote on a crash.
fn parse_log(target: &str, text: &str) -> Outcome {
    let mut o = Outcome {
        target: target.to_owned(),
        runs: None,
        cov: None,
        features: None,
        corpus: None,
        crash: None,
        log: PathBuf::new(),
    };
    for line in text.lines() {
        if line.starts_with('#') && line.contains(" cov: ") {
            let field = |name: &str| {
                let rest = line.split(name).nth(1)?;
                let value = rest.split_whitespace().next()?;
                value.split('/').next()?.parse().ok()
            };
            o.cov = field(" cov: ").or(o.cov);
            o.features = field(" ft: ").or(o.features);
            o.corpus = field(" corp: ").or(o.corpus);
            o.runs = line[1..]
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .or(o.runs);
        } else if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            o.runs = n.trim().parse().ok().or(o.runs);
        } else if let Some(rest) = line.split("Test unit written to ").nth(1) {
            o.crash = Some(PathBuf::from(rest.trim()));
        }
    }
    o
}

fn summary(o: &Outcome) -> String {
    let n = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    let crashes = match &o.crash {
        Some(input) => format!("1 ({})", input.display()),
        None => "0".to_owned(),
    };
    format!(
        "{:<8} runs {:>10}  cov {:>6}  ft {:>6}  corpus {:>5}  crashes {crashes}",
        o.target,
        n(o.runs),
        n(o.cov),
        n(o.features),
        n(o.corpus),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzer_output_is_read() {
        let text = "\
INFO: Seed: 1
#2\tINITED cov: 250 ft: 400 corp: 15/1234b exec/s: 0 rss: 40Mb
#63355\tDONE   cov: 3319 ft: 9561 corp: 565/412Kb lim: 12036 exec/s: 3016 rss: 427Mb
Done 63355 runs in 21 second(s)
stat::number_of_executed_units: 63356
";
        let o = parse_log("config", text);
        assert_eq!(
            (o.runs, o.cov, o.features, o.corpus),
            (Some(63356), Some(3319), Some(9561), Some(565))
        );
        assert!(o.crash.is_none());
        let crashed = "\
#100\tNEW    cov: 30 ft: 40 corp: 3/10b lim: 4 exec/s: 0 rss: 40Mb L: 2/2 MS: 1 ChangeBit-
thread '<unnamed>' panicked at src/model/addr.rs:1:1:
==1== ERROR: libFuzzer: deadly signal
artifact_prefix='/w/fuzz/artifacts/addr/'; Test unit written to /w/fuzz/artifacts/addr/crash-da39a3ee
";
        let o = parse_log("addr", crashed);
        assert_eq!(o.runs, Some(100));
        assert_eq!(
            o.crash,
            Some(PathBuf::from("/w/fuzz/artifacts/addr/crash-da39a3ee"))
        );
        assert!(summary(&o).contains("crashes 1 (/w/fuzz/artifacts/addr/crash-da39a3ee)"));
    }
}
