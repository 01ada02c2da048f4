//! Running the lab's commands: foreground commands with a timeout, background
//! processes behind a guard that ends them on drop.
//!
//! Command lines are written as one string and split on whitespace: nothing the
//! lab runs has an argument with a space in it, and the lines read like the
//! shell commands a person would type (which is also what the trace prints).

use std::cell::Cell;
use std::fs::File;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long a foreground command may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a process is given to exit after SIGTERM before it gets SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(10);

static TRACE: AtomicBool = AtomicBool::new(false);

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Print every command the lab runs (`$ ip ...`) on stdout; used by the demo.
pub fn set_trace(on: bool) {
    TRACE.store(on, Ordering::Relaxed);
}

/// Runs `f` without tracing its commands: polling and bookkeeping that would
/// only clutter the trace.
pub fn quietly<T>(f: impl FnOnce() -> T) -> T {
    /// Restores the previous setting, also when `f` panics.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            QUIET.with(|q| q.set(self.0));
        }
    }
    let _restore = Restore(QUIET.with(|q| q.replace(true)));
    f()
}

fn trace(line: &str) {
    if TRACE.load(Ordering::Relaxed) && !QUIET.with(Cell::get) {
        println!("$ {line}");
    }
}

fn command(line: &str) -> Command {
    let mut words = line.split_whitespace();
    let program = words.next().unwrap_or_else(|| panic!("empty command line"));
    let mut cmd = Command::new(program);
    cmd.args(words).stdin(Stdio::null());
    cmd
}

/// A finished foreground command.
#[derive(Debug)]
pub struct Run {
    pub line: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The command's stdout; panics with the command, its status and stderr if it failed.
    pub fn expect_ok(self) -> String {
        assert!(self.success(), "command failed: {self}");
        self.stdout
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` ({})", self.line, self.status)?;
        for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if !text.trim().is_empty() {
                write!(f, "\n--- {name}:\n{}", text.trim_end())?;
            }
        }
        Ok(())
    }
}

/// Runs `line` to completion with `timeout`; `Err` if it cannot be started or
/// runs too long (then it is killed). Never panics: usable from `Drop`.
pub fn try_run(line: &str, timeout: Duration) -> Result<Run, String> {
    run_command(command(line), line, timeout)
}

/// Like [`try_run`], for a program whose arguments have spaces in them
/// (`vtysh -c 'show evpn mac vni 100'`): `argv` is not split.
pub fn try_run_argv(argv: &[&str], timeout: Duration) -> Result<Run, String> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| "empty command".to_owned())?;
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    let line = argv
        .iter()
        .map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                (*a).to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    run_command(cmd, &line, timeout)
}

fn run_command(mut cmd: Command, line: &str, timeout: Duration) -> Result<Run, String> {
    trace(line);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run `{line}`: {e}"))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_timeout(&mut child, timeout).map_err(|e| format!("`{line}`: {e}"));
    let status = match status {
        Ok(Some(status)) => status,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "`{line}` did not finish within {timeout:?}; killed"
            ));
        }
        Err(e) => return Err(e),
    };
    Ok(Run {
        line: line.to_owned(),
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// Runs `line` with the default timeout; panics if it cannot run or times out.
/// A non-zero exit is not a panic: look at [`Run::success`] or use [`run_ok`].
pub fn run(line: &str) -> Run {
    try_run(line, DEFAULT_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `line` and returns its stdout; panics if it fails.
pub fn run_ok(line: &str) -> String {
    run(line).expect_ok()
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for `child` up to `timeout`; `Ok(None)` if it is still running then.
fn wait_timeout(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Sends `signal` to the process `pid`; false if it does not exist (any more).
pub fn signal(pid: u32, signal: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// True if `pid` is a live process (a zombie counts as dead).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits until `cond` holds, polling every 100 ms; false if `timeout` passes first.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// A background process; SIGTERM (then SIGKILL) when dropped.
/// Its stdout and stderr go to a log file.
#[derive(Debug)]
pub struct Proc {
    line: String,
    child: Child,
    log: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Starts `line` in the background, output to `log`; panics if it cannot start.
    pub fn spawn(line: &str, log: &Path) -> Proc {
        trace(&format!("{line} >{} 2>&1 &", log.display()));
        let file = File::create(log)
            .unwrap_or_else(|e| panic!("cannot create log {}: {e}", log.display()));
        let stderr = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone log fd: {e}"));
        let child = command(line)
            .stdout(file)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{line}`: {e}"));
        Proc {
            line: line.to_owned(),
            child,
            log: log.to_owned(),
            status: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the process wrote so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Sends `sig`, waits up to [`TERM_GRACE`], then SIGKILLs; returns the exit status.
    pub fn stop_with(&mut self, sig: libc::c_int) -> ExitStatus {
        if let Some(status) = self.exited() {
            return status;
        }
        trace(&format!("kill -{sig} {}  # {}", self.pid(), self.line));
        signal(self.pid(), sig);
        let status = match wait_timeout(&mut self.child, TERM_GRACE) {
            Ok(Some(status)) => status,
            _ => {
                eprintln!(
                    "lab: `{}` ignored signal {sig} for {TERM_GRACE:?}; SIGKILL",
                    self.line
                );
                let _ = self.child.kill();
                // Never panic here: this runs from Drop, maybe while unwinding.
                self.child
                    .wait()
                    .unwrap_or_else(|_| ExitStatus::from_raw(libc::SIGKILL))
            }
        };
        self.status = Some(status);
        status
    }

    /// SIGINT (ping prints its summary), then SIGKILL after [`TERM_GRACE`].
    pub fn interrupt(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGINT)
    }

    /// SIGTERM, then SIGKILL after [`TERM_GRACE`].
    pub fn stop(&mut self) -> ExitStatus {
        self.stop_with(libc::SIGTERM)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}
