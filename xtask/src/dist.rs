//! `cargo xtask dist`: the release binary and a Debian package of it.
//!
//! The package is staged under `target/dist/` (made anew each run) and
//! built with `dpkg-deb`: `/usr/bin/vtep`, the systemd unit, the example
//! config as a conffile, shell completions and man pages. The completions
//! and the pages come from the binary itself (`vtep completions SHELL`,
//! `vtep man DIR`), so they say what it parses; xtask does not link the vtep
//! crate, whose build script builds the eBPF object (that would make every
//! `cargo xtask`, `setup` first of all, need bpf-linker).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use crate::cmd;

/// Where each shell looks for a package's completions, and what `vtep
/// completions` calls the shell.
const COMPLETIONS: [(&str, &str); 3] = [
    ("bash", "usr/share/bash-completion/completions/vtep"),
    ("zsh", "usr/share/zsh/vendor-completions/_vtep"),
    ("fish", "usr/share/fish/vendor_completions.d/vtep.fish"),
];

pub fn run() -> anyhow::Result<()> {
    let root = cmd::workspace_root();
    let packaging = root.join("packaging");
    cmd::run(cmd::cargo().args(["build", "--release", "-p", "vtep"]))?;
    let bin = cmd::vtep_bin();

    let version = env!("CARGO_PKG_VERSION");
    let arch = tool_output(Command::new("dpkg").arg("--print-architecture"))?;
    let dist = bin
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("dist");
    let stage = dist.join(format!("vtep_{version}_{arch}"));
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("removing {}", stage.display()))?;
    }

    // The binary, stripped (the release profile keeps symbols).
    let usr_bin = install_dir(&stage, "usr/bin")?.join("vtep");
    cmd::run(
        Command::new("strip")
            .args(["--strip-unneeded", "--remove-section=.comment"])
            .arg("-o")
            .arg(&usr_bin)
            .arg(&bin),
    )?;
    fs::set_permissions(&usr_bin, fs::Permissions::from_mode(0o755))?;

    for (shell, path) in COMPLETIONS {
        let script = tool_output(Command::new(&usr_bin).args(["completions", shell]))?;
        install_file(&stage, path, format!("{script}\n").as_bytes())?;
    }
    let pages = dist.join("man");
    if pages.exists() {
        fs::remove_dir_all(&pages)?;
    }
    cmd::output(Command::new(&usr_bin).arg("man").arg(&pages)).context("`vtep man` failed")?;
    let man8 = install_dir(&stage, "usr/share/man/man8")?;
    for page in fs::read_dir(&pages)? {
        let page = page?.path();
        let name = page.file_name().context("a man page without a name")?;
        fs::copy(&page, man8.join(name))?;
        gzip(&man8.join(name))?;
    }

    let read = |name: &str| {
        let path = packaging.join(name);
        fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    install_file(
        &stage,
        "lib/systemd/system/vtep.service",
        read("vtep.service")?.as_bytes(),
    )?;
    install_file(&stage, "etc/vtep/vtep.toml", read("vtep.toml")?.as_bytes())?;
    install_file(
        &stage,
        "usr/share/doc/vtep/copyright",
        read("debian/copyright")?.as_bytes(),
    )?;
    let date = cmd::output(Command::new("git").args(["log", "-1", "--format=%aD"]))
        .map(|d| d.trim().to_owned())
        .filter(|d| !d.is_empty())
        .map_or_else(|| tool_output(Command::new("date").arg("-R")), Ok)?;
    let maintainer = maintainer();
    let changelog = read("debian/changelog")?
        .replace("@MAINTAINER@", &maintainer)
        .replace("@VERSION@", version)
        .replace("@DATE@", &date);
    gzip(&install_file(
        &stage,
        "usr/share/doc/vtep/changelog",
        changelog.as_bytes(),
    )?)?;

    // DEBIAN/: control with what the binary links to, the conffile, md5sums.
    let control = read("debian/control")?
        .replace("@MAINTAINER@", &maintainer)
        .replace("@VERSION@", version)
        .replace("@ARCH@", &arch)
        .replace("@DEPENDS@", &shlib_depends(&usr_bin, &dist)?)
        .replace("@INSTALLED_SIZE@", &installed_size_kib(&stage)?.to_string());
    let md5sums = md5sums(&stage)?;
    install_file(&stage, "DEBIAN/control", control.as_bytes())?;
    install_file(
        &stage,
        "DEBIAN/conffiles",
        read("debian/conffiles")?.as_bytes(),
    )?;
    install_file(&stage, "DEBIAN/md5sums", md5sums.as_bytes())?;

    let deb = dist.join(format!("vtep_{version}_{arch}.deb"));
    cmd::run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&deb),
    )?;
    println!("{}", deb.display());
    Ok(())
}

/// `Maintainer:`, from `DEBFULLNAME` and `DEBEMAIL` as Debian's tools take
/// it; without them a placeholder that lintian flags (bogus-mail-host).
fn maintainer() -> String {
    let name = std::env::var("DEBFULLNAME").unwrap_or_else(|_| "vtep developers".into());
    let email = std::env::var("DEBEMAIL").unwrap_or_else(|_| "vtep@localhost".into());
    format!("{name} <{email}>")
}

/// `stage/rel`, made with its parents, mode 0755.
fn install_dir(stage: &Path, rel: &str) -> anyhow::Result<PathBuf> {
    let dir = stage.join(rel);
    fs::create_dir_all(&dir).with_context(|| format!("making {}", dir.display()))?;
    let mut d = dir.as_path();
    while d.starts_with(stage) {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755))?;
        d = d.parent().context("the stage has a parent")?;
    }
    Ok(dir)
}

/// Writes `stage/rel` (mode 0644); its path.
fn install_file(stage: &Path, rel: &str, contents: &[u8]) -> anyhow::Result<PathBuf> {
    let path = stage.join(rel);
    let parent = path.parent().context("a file in the stage has a parent")?;
    install_dir(
        stage,
        parent
            .strip_prefix(stage)?
            .to_str()
            .context("a UTF-8 path")?,
    )?;
    fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644))?;
    Ok(path)
}

/// `gzip -9n`: no name or time stamp inside, as Debian wants.
fn gzip(path: &Path) -> anyhow::Result<()> {
    cmd::output(Command::new("gzip").args(["-9nf"]).arg(path))
        .map(drop)
        .with_context(|| format!("gzip {} failed", path.display()))
}

/// The stdout of a tool that must succeed, trimmed.
fn tool_output(command: &mut Command) -> anyhow::Result<String> {
    let shown = format!("{command:?}");
    let Some(out) = cmd::output(command) else {
        bail!("{shown} failed");
    };
    Ok(out.trim().to_owned())
}

/// `Depends:` for the libraries `bin` links to, from `dpkg-shlibdeps`
/// (which wants a `debian/control` where it runs).
fn shlib_depends(bin: &Path, dist: &Path) -> anyhow::Result<String> {
    let work = dist.join("shlibdeps");
    fs::create_dir_all(work.join("debian"))?;
    fs::write(
        work.join("debian/control"),
        "Source: vtep\n\nPackage: vtep\nArchitecture: any\n",
    )?;
    let out = tool_output(
        Command::new("dpkg-shlibdeps")
            .arg("-O")
            .arg(format!("-e{}", bin.display()))
            .current_dir(&work),
    )?;
    let depends = out
        .lines()
        .find_map(|l| l.strip_prefix("shlibs:Depends="))
        .with_context(|| format!("dpkg-shlibdeps said {out:?}"))?;
    Ok(depends.to_owned())
}

/// What the files take on disk, in KiB, as `Installed-Size` counts it.
fn installed_size_kib(stage: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for file in files(stage)? {
        total += fs::metadata(stage.join(&file))?.len().div_ceil(1024);
    }
    Ok(total)
}

/// `md5sum` of every file but DEBIAN's, paths relative to the root.
fn md5sums(stage: &Path) -> anyhow::Result<String> {
    let files = files(stage)?;
    let out = cmd::output(Command::new("md5sum").args(&files).current_dir(stage))
        .context("md5sum failed")?;
    Ok(out)
}

/// Every regular file under `stage`, relative, sorted, DEBIAN/ left out.
fn files(stage: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, stage: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, stage, out)?;
            } else {
                out.push(path.strip_prefix(stage)?.to_path_buf());
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(stage, stage, &mut out)?;
    out.retain(|p| !p.starts_with("DEBIAN"));
    out.sort();
    Ok(out)
}
