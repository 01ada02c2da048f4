//! bpffs, where a gateway's maps, programs and links are pinned, and the
//! run lock that keeps one `vtep run` per pin path.

use std::{
    ffi::CString,
    fs::File,
    io,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};

const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// True when `path` is on a bpffs.
pub fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: an all-zero statfs is valid; c is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0) && st.f_type as i64 == BPF_FS_MAGIC
}

/// Makes sure `pin_path` is on a bpffs: creates it, and mounts a bpffs on
/// it (or on /sys/fs/bpf for the default path) when it is not.
pub fn ensure_bpffs(pin_path: &Path) -> anyhow::Result<()> {
    let sys_bpf = Path::new("/sys/fs/bpf");
    if pin_path.starts_with(sys_bpf) && !is_bpffs(sys_bpf) {
        mount_bpffs(sys_bpf)?;
    }
    std::fs::create_dir_all(pin_path)
        .with_context(|| format!("creating pin path {}", pin_path.display()))?;
    if !is_bpffs(pin_path) {
        mount_bpffs(pin_path)?;
    }
    Ok(())
}

fn mount_bpffs(at: &Path) -> anyhow::Result<()> {
    let target = CString::new(at.as_os_str().as_encoded_bytes())?;
    let bpf = c"bpf";
    // SAFETY: valid NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            bpf.as_ptr(),
            target.as_ptr(),
            bpf.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        bail!(
            "mounting bpffs on {}: {} (vtep needs root, or CAP_SYS_ADMIN, for this)",
            at.display(),
            io::Error::last_os_error()
        );
    }
    log::info!("mounted bpffs on {}", at.display());
    Ok(())
}

/// Where the run locks live.
const LOCK_DIR: &str = "/run/vtep";

/// The run lock file of `pin_path`: `/run/vtep/` and the path with its
/// slashes as `%` (`%sys%fs%bpf%vtep.lock`).
pub fn lock_file(pin_path: &Path) -> PathBuf {
    let name: String = pin_path
        .to_string_lossy()
        .chars()
        .map(|c| if c == '/' { '%' } else { c })
        .collect();
    Path::new(LOCK_DIR).join(format!("{name}.lock"))
}

/// An exclusive lock on a pin path: one `vtep run` per gateway. Held until
/// dropped, which removes its file (the kernel releases the lock when the
/// process exits, however it exits; a file left by a killed daemon is
/// taken over by the next one, or removed by `vtep down`).
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still held: a process that opened the file before
        // and takes the lock after sees that it is gone and makes a new one.
        if let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != io::ErrorKind::NotFound
        {
            log::warn!("removing {}: {e}", self.path.display());
        }
    }
}

/// Takes the run lock of `pin_path`, or says which process holds it.
pub fn lock_pin_path(pin_path: &Path) -> anyhow::Result<RunLock> {
    use std::io::Write as _;
    match try_lock(pin_path)? {
        Ok(mut lock) => {
            lock.file.set_len(0)?;
            write!(lock.file, "{}", std::process::id())?;
            Ok(lock)
        }
        Err(holder) => bail!(
            "another `vtep run` (pid {holder}) manages the gateway at {}; stop it first",
            pin_path.display()
        ),
    }
}

/// The run lock of `pin_path` when no process holds it (dropping it
/// removes its file), or the pid the holder wrote.
pub fn try_lock(pin_path: &Path) -> anyhow::Result<Result<RunLock, String>> {
    use std::io::Read as _;
    use std::os::unix::fs::MetadataExt as _;
    let path = lock_file(pin_path);
    std::fs::create_dir_all(LOCK_DIR).with_context(|| format!("creating {LOCK_DIR}"))?;
    loop {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: a valid fd we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Ok(Err(holder.trim().to_owned()));
        }
        // The holder before us may have removed the file between our open
        // and our lock: then the lock is on a file nobody else can find.
        let same = match (file.metadata(), std::fs::metadata(&path)) {
            (Ok(held), Ok(named)) => held.dev() == named.dev() && held.ino() == named.ino(),
            _ => false,
        };
        if same {
            return Ok(Ok(RunLock { file, path }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_files_are_named_after_the_pin_path() {
        assert_eq!(
            lock_file(Path::new("/sys/fs/bpf/vtep")),
            Path::new("/run/vtep/%sys%fs%bpf%vtep.lock")
        );
    }

    /// One holder at a time; the holder's drop removes the file.
    #[test]
    fn a_run_lock_is_exclusive_and_removed_when_dropped() {
        let pin = PathBuf::from(format!(
            "/nonexistent/vtep-lock-test-{}",
            std::process::id()
        ));
        let file = lock_file(&pin);
        let lock = lock_pin_path(&pin).expect("the lock of an unused pin path");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            std::process::id().to_string()
        );
        let second = lock_pin_path(&pin).err().expect("a second holder");
        assert_eq!(
            second.to_string(),
            format!(
                "another `vtep run` (pid {}) manages the gateway at {}; stop it first",
                std::process::id(),
                pin.display()
            )
        );
        assert!(matches!(try_lock(&pin), Ok(Err(_))));
        drop(lock);
        assert!(!file.exists(), "{} left after the drop", file.display());
        drop(try_lock(&pin).unwrap().expect("free again"));
        assert!(!file.exists(), "{} left after the drop", file.display());
    }
}
