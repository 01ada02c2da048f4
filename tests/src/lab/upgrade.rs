//! The previous release, for the upgrade test: the vtep of the tag the
//! project keeps (`v0.1.0`), built once from a git worktree under
//! `target/upgrade-base/<commit>` and reused by every later run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The release whose pinned maps the upgrade test starts from.
pub const BASE_TAG: &str = "v0.1.0";
/// Its commit, for a clone without the tag.
pub const BASE_COMMIT: &str = "76764e7811aa14813a04960194ca37251dbcb5ff";

fn workspace_root() -> PathBuf {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    root.canonicalize().unwrap_or(root)
}

fn git(args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(workspace_root())
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The commit of [`BASE_TAG`], else [`BASE_COMMIT`] if the clone has it.
pub fn base_commit() -> Result<String, String> {
    git(&[
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{BASE_TAG}^{{commit}}"),
    ])
    .or_else(|_| {
        git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{BASE_COMMIT}^{{commit}}"),
        ])
    })
    .map_err(|_| {
        format!(
            "neither the tag {BASE_TAG} nor the commit {BASE_COMMIT} is in this clone: \
                 `git fetch --tags` (a shallow clone needs `git fetch --unshallow`)"
        )
    })
}

/// Where the base of `commit` is built: `target/upgrade-base/<commit>`.
fn base_dir(commit: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    target.join("upgrade-base").join(commit)
}

/// The base release's `vtep`, if it was built already.
pub fn built_base_vtep() -> Option<PathBuf> {
    let bin = base_dir(&base_commit().ok()?).join("vtep");
    bin.is_file().then_some(bin)
}

/// The base release's `vtep`, built first if no earlier run did (a few
/// minutes on a clean clone; cargo's progress goes to stderr).
pub fn base_vtep() -> Result<PathBuf, String> {
    let commit = base_commit()?;
    let dir = base_dir(&commit);
    let bin = dir.join("vtep");
    if bin.is_file() {
        return Ok(bin);
    }
    let src = dir.join("src");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    if !src.join("Cargo.toml").is_file() {
        // A worktree left half made by an interrupted run goes first.
        let _ = git(&["worktree", "remove", "--force", &src.to_string_lossy()]);
        let _ = std::fs::remove_dir_all(&src);
        let _ = git(&["worktree", "prune"]);
        git(&[
            "worktree",
            "add",
            "--detach",
            &src.to_string_lossy(),
            &commit,
        ])?;
    }
    eprintln!(
        "upgrade base: building vtep {BASE_TAG} ({}) in {} (once: later runs reuse it)",
        &commit[..12],
        src.display()
    );
    let started = Instant::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .args(["build", "--release", "-p", "vtep"])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "building vtep {BASE_TAG} in {}: {status}",
            src.display()
        ));
    }
    copy_atomically(&dir.join("target/release/vtep"), &bin)?;
    eprintln!(
        "upgrade base: vtep {BASE_TAG} built in {:.0} s: {}",
        started.elapsed().as_secs_f64(),
        bin.display()
    );
    Ok(bin)
}

/// Copies `from` to `to` through a temporary name, so that `to` is either
/// absent or complete.
fn copy_atomically(from: &Path, to: &Path) -> Result<(), String> {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).map_err(|e| format!("copying {}: {e}", from.display()))?;
    std::fs::rename(&tmp, to).map_err(|e| format!("renaming {}: {e}", tmp.display()))
}
