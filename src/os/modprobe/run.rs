//! One run of the loader program: started in a process group of its own with no descriptor
//! of the caller's but its standard streams, its stderr read as it comes, supervised until it
//! exits or its time is up, then killed with whatever it started; one that does not end even
//! then is handed to the reaper.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::cloexec::cloexec_beyond_stdio;
use super::{reaper, MAX_STDERR};
use crate::types::name::ModuleName;

/// How much of modprobe's stderr is kept while it runs (the rest is read and dropped, so a
/// chatty modprobe never blocks on a full pipe): room for the trimmed message.
const KEEP_STDERR: usize = 4 * MAX_STDERR;

/// The longest pause between two looks at a running modprobe whose stderr tells nothing.
const MAX_POLL: Duration = Duration::from_millis(20);

/// How long a loader killed at the time limit is waited for before the call returns without it
/// (SPEC 3.6: "within about a second").
pub(super) const KILL_GRACE: Duration = Duration::from_secs(1);

/// How long stderr is still read once modprobe is gone: only a process it left behind (and
/// that escaped the kill) can keep the pipe open past that.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

/// How a run of modprobe ended, and the start of what it wrote to stderr.
pub(super) struct Ran {
    pub(super) end: End,
    pub(super) stderr: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum End {
    Exited(ExitStatus),
    /// Killed at the time limit, and reaped.
    Killed,
    /// Killed at the time limit, but still not ended `KILL_GRACE` later (a module init stuck
    /// in the kernel leaves modprobe in `D` state, where SIGKILL waits for the init): left to
    /// the reaper, never waited for here.
    Stuck {
        pid: u32,
    },
}

/// Runs `program -b module` in a process group of its own, with no descriptor of the caller's
/// but its standard streams, reading its stderr as it comes, until it exits or `timeout`
/// passes; then kills the group.
pub(super) fn run(program: &Path, module: &ModuleName, timeout: Duration) -> io::Result<Ran> {
    reaper::restart();
    let mut command = Command::new(program);
    command
        .arg("-b")
        .arg(module.as_str())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec, and makes only
    // async-signal-safe system calls (no allocation, no lock).
    unsafe { command.pre_exec(cloexec_beyond_stdio) };
    let mut child = command.spawn()?;
    let stderr = child
        .stderr
        .take()
        .map(|pipe| File::from(OwnedFd::from(pipe)));
    supervise(child, Output::new(stderr), timeout, KILL_GRACE)
}

/// What `supervise` needs of a running loader: a `Child` (the real one), or a test's stand-in
/// for one that cannot be reaped.
pub(super) trait Loader {
    fn pid(&self) -> u32;
    /// `Child::try_wait`: reaps the loader if it has ended.
    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>>;
    /// SIGKILL to the loader and its process group.
    fn kill(&mut self);
    /// Gives up on a loader that did not end once killed: it is reaped when it ends.
    fn abandon(self);
}

impl Loader for Child {
    fn pid(&self) -> u32 {
        self.id()
    }

    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        Child::try_wait(self)
    }

    fn kill(&mut self) {
        // The group's id is the child's pid, which stays ours until it is reaped. The child
        // itself too, in case it left its group (setpgid).
        let pid = self.id() as libc::pid_t;
        // SAFETY: kill has no memory-safety preconditions.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    }

    fn abandon(self) {
        reaper::adopt(self);
    }
}

/// Waits for `loader` while reading its stderr, at most `timeout`; then kills it and waits at
/// most `kill_grace` more for it to end. The caller (who may hold a device lock) is never kept
/// longer: a loader still running then is abandoned to the reaper.
pub(super) fn supervise<L: Loader>(
    mut loader: L,
    mut stderr: Output,
    timeout: Duration,
    kill_grace: Duration,
) -> io::Result<Ran> {
    let deadline = Instant::now().checked_add(timeout);
    let mut pause = Duration::from_millis(1);
    let end = loop {
        if let Some(status) = loader.try_wait()? {
            break End::Exited(status);
        }
        let left = deadline.map_or(MAX_POLL, |d| d.saturating_duration_since(Instant::now()));
        if left.is_zero() {
            break kill(loader, &mut stderr, kill_grace)?;
        }
        if stderr.is_open() {
            // Wakes as soon as modprobe writes or exits (its end of the pipe closes).
            stderr.read_for(left.min(MAX_POLL));
        } else {
            thread::sleep(pause.min(left));
            pause = (pause * 2).min(MAX_POLL);
        }
    };
    // What it wrote just before it ended is still in the pipe (read while waiting for a loader
    // that was killed, and not waited for past that).
    if let End::Exited(_) = end {
        let drain_until = Instant::now() + DRAIN_GRACE;
        while stderr.is_open() {
            let left = drain_until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            stderr.read_for(left);
        }
    }
    Ok(Ran {
        end,
        stderr: stderr.kept,
    })
}

/// Kills the loader and its process group, and waits at most `grace` for it to end, reading
/// its stderr meanwhile (what it writes as it dies, and a late line of a loader that had been
/// blocked writing).
fn kill<L: Loader>(mut loader: L, stderr: &mut Output, grace: Duration) -> io::Result<End> {
    loader.kill();
    let until = Instant::now() + grace;
    let mut pause = Duration::from_millis(1);
    loop {
        if loader.try_wait()?.is_some() {
            // The rest of the grace, at most DRAIN_GRACE, for what is still in the pipe.
            let drain_until = until.min(Instant::now() + DRAIN_GRACE);
            while stderr.is_open() {
                let left = drain_until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                stderr.read_for(left);
            }
            return Ok(End::Killed);
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            let pid = loader.pid();
            loader.abandon();
            return Ok(End::Stuck { pid });
        }
        if stderr.is_open() {
            stderr.read_for(left.min(MAX_POLL));
        } else {
            thread::sleep(pause.min(left));
            pause = (pause * 2).min(MAX_POLL);
        }
    }
}

/// modprobe's stderr pipe, read without ever blocking past a given time.
pub(super) struct Output {
    pipe: Option<File>,
    kept: Vec<u8>,
}

impl Output {
    pub(super) fn new(pipe: Option<File>) -> Output {
        Output {
            pipe,
            kept: Vec::new(),
        }
    }

    fn is_open(&self) -> bool {
        self.pipe.is_some()
    }

    /// Waits up to `wait` for output, and reads what came; closes the pipe at its end.
    fn read_for(&mut self, wait: Duration) {
        let Some(pipe) = &mut self.pipe else {
            return;
        };
        let mut fds = libc::pollfd {
            fd: pipe.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_millis().clamp(1, libc::c_int::MAX as u128) as libc::c_int;
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut fds, 1, ms) };
        if n <= 0 {
            return; // nothing yet, or EINTR: the caller looks again
        }
        // Readable or hung up: a read now returns data or end of file without blocking.
        let mut buf = [0u8; 4096];
        match pipe.read(&mut buf) {
            Ok(0) => self.pipe = None,
            Ok(n) => {
                let room = KEEP_STDERR.saturating_sub(self.kept.len());
                self.kept.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => self.pipe = None,
        }
    }
}
