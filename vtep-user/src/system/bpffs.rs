//! bpffs, where a gateway's maps, programs and links are pinned, and the
//! run lock that keeps one `vtep run` per pin path.

use std::{ffi::CString, fs::File, io, os::fd::AsRawFd, path::Path};

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

/// An exclusive lock on a pin path: one `vtep run` per gateway. Held until
/// dropped (the kernel releases it when the process exits, however it
/// exits).
pub struct RunLock {
    _file: File,
}

/// Takes the run lock of `pin_path`, or says which process holds it.
pub fn lock_pin_path(pin_path: &Path) -> anyhow::Result<RunLock> {
    use std::io::{Read as _, Seek as _, Write as _};
    let dir = Path::new("/run/vtep");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let name: String = pin_path
        .to_string_lossy()
        .chars()
        .map(|c| if c == '/' { '%' } else { c })
        .collect();
    let path = dir.join(format!("{name}.lock"));
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
        bail!(
            "another `vtep run` (pid {}) manages the gateway at {}; stop it first",
            holder.trim(),
            pin_path.display()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(RunLock { _file: file })
}
