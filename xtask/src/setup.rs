//! `cargo xtask setup`: everything a fresh Debian machine of the project's kind
//! lacks to build and test vtep, each step checked first and skipped when done.
//! See docs/toolchain.md for why each piece is needed.

use std::process::Command;

use anyhow::{Context as _, bail};

use crate::cmd::{self, on_path};

#[derive(clap::Args)]
pub struct Options {
    /// Only report what is missing; exit status 1 if anything is.
    #[arg(long)]
    check: bool,
    /// Also cargo-fuzz, which `cargo xtask fuzz-parsers` needs (not part of
    /// the default setup: installing it takes about a minute).
    #[arg(long)]
    fuzz: bool,
}

/// Debian packages: LLVM 22 for bpf-linker (matching rustc's LLVM), clang and
/// friends for bundled C builds (xsk-rs builds libxdp, which needs libpcap's
/// headers), and the tools the tests and demo run.
/// (`ip`, `bridge` and `ss` come with iproute2, which the machine has.)
const PACKAGES: [&str; 18] = [
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "clang",
    "llvm",
    "libelf-dev",
    "zlib1g-dev",
    "m4",
    "pkg-config",
    "libpcap-dev",
    "iputils-ping",
    "ethtool",
    "tcpdump",
    "iperf3",
    "bpftool",
    // FRR 8.4 (zebra, bgpd, vtysh under /usr/lib/frr): the BGP EVPN lab
    // (`cargo xtask demo --evpn`, tests/tests/evpn.rs). No service is
    // started: the lab runs one instance per host namespace.
    "frr",
    // promtool (`promtool check metrics`) and curl: tests/tests/metrics.rs
    // checks the daemon's Prometheus endpoint with them.
    "prometheus",
    "curl",
];

/// Debian packages only `cargo xtask demo --metrics` needs, installed when
/// it runs ([`ensure_metrics`]) rather than by every setup: Chromium and
/// what it pulls in take about 650 MB. A headless Chromium screenshots the
/// graph page of the distribution's Prometheus (2.42, one of [`PACKAGES`]),
/// which scrapes the demo's gateways inside the lab.
const METRICS_PACKAGES: [&str; 1] = ["chromium"];

/// Packages installed without their recommends: `prometheus` recommends the
/// node exporter, a service that would listen on the host; Chromium's are
/// of no use headless.
const WITHOUT_RECOMMENDS: [&str; 2] = ["prometheus", "chromium"];

const BPF_LINKER_VERSION: &str = "0.13.0";
const CARGO_FUZZ_VERSION: &str = "0.13.2";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPFFS: &str = "/sys/fs/bpf";

/// One thing to install: what is missing (nothing when done) and how to install it.
struct Step {
    name: &'static str,
    missing: fn() -> Vec<String>,
    install: fn(&[String]) -> anyhow::Result<()>,
}

const STEPS: [Step; 4] = [
    Step {
        name: "rust-src for the nightly toolchain (builds the eBPF crate's core)",
        missing: missing_rust_src,
        install: install_rust_src,
    },
    Step {
        name: "Debian packages",
        missing: missing_packages,
        install: install_packages,
    },
    Step {
        name: "bpf-linker (links the eBPF crate)",
        missing: missing_bpf_linker,
        install: install_bpf_linker,
    },
    Step {
        name: "bpffs at /sys/fs/bpf",
        missing: missing_bpffs,
        install: mount_bpffs,
    },
];

/// cargo-fuzz, for the userspace parsers' fuzz targets (`fuzz/`): asked
/// for by `cargo xtask fuzz-parsers` and `setup --fuzz` only.
const FUZZ_STEP: Step = Step {
    name: "cargo-fuzz (runs the parsers' fuzz targets)",
    missing: missing_cargo_fuzz,
    install: install_cargo_fuzz,
};

pub fn run(options: &Options) -> anyhow::Result<()> {
    let fuzz: &[Step] = if options.fuzz { &[FUZZ_STEP] } else { &[] };
    let steps: Vec<&Step> = STEPS.iter().chain(fuzz).collect();
    if options.check {
        check(&steps)
    } else {
        ensure_steps(&steps)
    }
}

/// Reports every missing piece; error if there is any.
fn check(steps: &[&Step]) -> anyhow::Result<()> {
    let mut missing_any = false;
    for step in steps {
        let missing = (step.missing)();
        if missing.is_empty() {
            println!("ok       {}", step.name);
        } else {
            println!("MISSING  {}: {}", step.name, missing.join(" "));
            missing_any = true;
        }
    }
    let missing = missing_packages_of(&METRICS_PACKAGES);
    if missing.is_empty() {
        println!("ok       {METRICS_STEP}");
    } else {
        // Not an error: `cargo xtask demo --metrics` installs them itself.
        println!("later    {METRICS_STEP}: {}", missing.join(" "));
    }
    if missing_any {
        bail!("some pieces are missing: run `cargo xtask setup`");
    }
    Ok(())
}

const METRICS_STEP: &str =
    "Debian packages of `cargo xtask demo --metrics` (installed when it runs)";

/// Installs the [`METRICS_PACKAGES`] that are missing.
pub fn ensure_metrics() -> anyhow::Result<()> {
    let missing = missing_packages_of(&METRICS_PACKAGES);
    if missing.is_empty() {
        println!("ok       {METRICS_STEP}");
        return Ok(());
    }
    println!("install  {METRICS_STEP}: {}", missing.join(" "));
    install_packages(&missing).with_context(|| format!("installing {}", missing.join(" ")))?;
    let still = missing_packages_of(&METRICS_PACKAGES);
    if !still.is_empty() {
        bail!("still missing after installing: {}", still.join(" "));
    }
    Ok(())
}

/// Installs every missing piece, in order.
pub fn ensure() -> anyhow::Result<()> {
    ensure_steps(&STEPS.iter().collect::<Vec<_>>())
}

/// [`ensure`], and cargo-fuzz.
pub fn ensure_fuzz() -> anyhow::Result<()> {
    ensure_steps(&STEPS.iter().chain([&FUZZ_STEP]).collect::<Vec<_>>())
}

fn ensure_steps(steps: &[&Step]) -> anyhow::Result<()> {
    println!("==> setup");
    for step in steps {
        let missing = (step.missing)();
        if missing.is_empty() {
            println!("ok       {}", step.name);
            continue;
        }
        println!("install  {}: {}", step.name, missing.join(" "));
        (step.install)(&missing).with_context(|| format!("installing {}", step.name))?;
        let still = (step.missing)();
        if !still.is_empty() {
            bail!(
                "{} still missing after installing: {}",
                step.name,
                still.join(" ")
            );
        }
    }
    Ok(())
}

fn missing_rust_src() -> Vec<String> {
    let installed = cmd::output(Command::new("rustup").args([
        "component",
        "list",
        "--toolchain",
        "nightly",
        "--installed",
    ]));
    match installed {
        Some(list) if list.lines().any(|l| l.trim() == "rust-src") => Vec::new(),
        Some(_) => vec!["rust-src".into()],
        None => vec!["nightly".into(), "rust-src".into()],
    }
}

fn install_rust_src(missing: &[String]) -> anyhow::Result<()> {
    if missing.iter().any(|m| m == "nightly") {
        return cmd::run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]));
    }
    cmd::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
}

fn package_installed(package: &str) -> bool {
    cmd::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|status| status.trim() == "install ok installed")
}

fn missing_packages() -> Vec<String> {
    missing_packages_of(&PACKAGES)
}

fn missing_packages_of(packages: &[&str]) -> Vec<String> {
    packages
        .iter()
        .filter(|p| !package_installed(p))
        .map(|p| (*p).to_owned())
        .collect()
}

fn install_packages(missing: &[String]) -> anyhow::Result<()> {
    let apt = || {
        let mut apt = Command::new("apt-get");
        apt.env("DEBIAN_FRONTEND", "noninteractive");
        apt
    };
    cmd::run(apt().arg("update"))?;
    let (bare, full): (Vec<&String>, Vec<&String>) = missing
        .iter()
        .partition(|p| WITHOUT_RECOMMENDS.contains(&p.as_str()));
    if !full.is_empty() {
        cmd::run(apt().args(["install", "-y"]).args(full))?;
    }
    if !bare.is_empty() {
        cmd::run(
            apt()
                .args(["install", "-y", "--no-install-recommends"])
                .args(bare),
        )?;
    }
    Ok(())
}

fn missing_bpf_linker() -> Vec<String> {
    if on_path("bpf-linker") {
        Vec::new()
    } else {
        vec![format!("bpf-linker {BPF_LINKER_VERSION}")]
    }
}

fn install_bpf_linker(_: &[String]) -> anyhow::Result<()> {
    // Without LLVM_PREFIX the build finds Debian's older LLVM under /usr and
    // fails to link (`unable to find library -lLLVM`).
    cmd::run(
        Command::new("cargo")
            .env("LLVM_PREFIX", LLVM_PREFIX)
            .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX)
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args(["--no-default-features", "--features", "llvm-22"]),
    )
}

fn missing_cargo_fuzz() -> Vec<String> {
    let version = cmd::output(Command::new("cargo-fuzz").arg("--version"));
    if version.is_some_and(|v| v.trim() == format!("cargo-fuzz {CARGO_FUZZ_VERSION}")) {
        Vec::new()
    } else {
        vec![format!("cargo-fuzz {CARGO_FUZZ_VERSION}")]
    }
}

fn install_cargo_fuzz(_: &[String]) -> anyhow::Result<()> {
    // About a minute on two cores.
    cmd::run(Command::new("cargo").args([
        "install",
        "cargo-fuzz",
        "--version",
        CARGO_FUZZ_VERSION,
        "--locked",
    ]))
}

fn missing_bpffs() -> Vec<String> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mounted = mounts.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&BPFFS) && fields.get(2) == Some(&"bpf")
    });
    if mounted {
        Vec::new()
    } else {
        vec![BPFFS.into()]
    }
}

fn mount_bpffs(_: &[String]) -> anyhow::Result<()> {
    cmd::run(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]))
}
