//! Running the module loader: exec'd directly (never through a shell) with argv exactly
//! `{PROGRAM, "-b", MODULE}`, the environment inherited, no descriptor of the caller's but the
//! standard streams, and a time limit. A modprobe that hangs (a module whose init never
//! returns, an `install` command waiting on something) would otherwise hold the device's lock
//! for good: at the limit it is killed, with anything it started (it runs in a process group
//! of its own), and the load fails. A modprobe that does not end even then (in `D` state,
//! waiting for a module init stuck in the kernel) is not waited for: the call returns about a
//! second later, and a thread of the library's reaps the loader whenever it ends.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::types::error::{Error, Result};
use crate::types::name::ModuleName;

/// Where modprobe is looked for when none is configured, in order.
pub const DEFAULT_PROGRAMS: [&str; 2] = ["/usr/sbin/modprobe", "/sbin/modprobe"];

/// How long modprobe may run before it is killed and the load fails. Loading a module takes
/// milliseconds to a few seconds (firmware, a slow device reset); a minute is a hang.
pub const DEFAULT_MODPROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest piece of modprobe's stderr carried in an error message.
const MAX_STDERR: usize = 2048;

/// How much of modprobe's stderr is kept while it runs (the rest is read and dropped, so a
/// chatty modprobe never blocks on a full pipe): room for the trimmed message.
const KEEP_STDERR: usize = 4 * MAX_STDERR;

/// The longest pause between two looks at a running modprobe whose stderr tells nothing.
const MAX_POLL: Duration = Duration::from_millis(20);

/// How long a loader killed at the time limit is waited for before the call returns without it
/// (SPEC 3.6: "within about a second").
const KILL_GRACE: Duration = Duration::from_secs(1);

/// How long stderr is still read once modprobe is gone: only a process it left behind (and
/// that escaped the kill) can keep the pipe open past that.
const DRAIN_GRACE: Duration = Duration::from_millis(200);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Modprobe {
    /// The first of `DEFAULT_PROGRAMS` that exists, looked up at each load.
    #[default]
    Default,
    Program(PathBuf),
    /// Never load modules.
    Disabled,
    /// The caller loads modules (SPEC 3.14): a manager with its own module policy.
    Loader(ModuleLoader),
}

/// Why a caller's module loader did not load a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// No module has that name (modprobe's "not found"): a name that resolves to no driver.
    pub no_such_module: bool,
    /// The loader's words.
    pub text: String,
}

/// What a caller's module loader says to a module: loaded (`Ok`), or why not.
pub type LoadFn = dyn Fn(&ModuleName) -> std::result::Result<(), Refusal> + Send + Sync;

/// A caller's module loader ([`Modprobe::Loader`]): called, in the calling thread, instead of
/// running modprobe, and not timed (its time is the caller's business). Two are equal when
/// they are the same loader.
#[derive(Clone)]
pub struct ModuleLoader(Arc<LoadFn>);

impl ModuleLoader {
    pub fn new(
        f: impl Fn(&ModuleName) -> std::result::Result<(), Refusal> + Send + Sync + 'static,
    ) -> Self {
        ModuleLoader(Arc::new(f))
    }
}

impl std::fmt::Debug for ModuleLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModuleLoader(..)")
    }
}

impl PartialEq for ModuleLoader {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for ModuleLoader {}

impl Modprobe {
    pub fn is_disabled(&self) -> bool {
        *self == Modprobe::Disabled
    }

    /// What loading `module` runs, as a plan says it: the one description of a module load,
    /// for every plan that loads one.
    pub fn describe_load(&self, module: &ModuleName) -> String {
        match self {
            Modprobe::Program(p) => format!("run {} -b {module}", p.display()),
            Modprobe::Loader(_) => format!("ask the caller's module loader for {module}"),
            Modprobe::Default => match self.program() {
                Some(p) => format!("run {} -b {module}", p.display()),
                None => format!("run modprobe -b {module} (no modprobe found: it would fail)"),
            },
            Modprobe::Disabled => {
                format!("load {module} (module loading is disabled: it would fail)")
            }
        }
    }

    fn program(&self) -> Option<PathBuf> {
        match self {
            Modprobe::Default => DEFAULT_PROGRAMS
                .iter()
                .map(Path::new)
                .find(|p| p.exists())
                .map(Path::to_path_buf),
            Modprobe::Program(p) => Some(p.clone()),
            Modprobe::Disabled | Modprobe::Loader(_) => None,
        }
    }

    /// Runs `PROGRAM -b MODULE` (`-b`: honour the blacklist) and waits for it, at most
    /// `timeout` (then it is killed and the load fails).
    pub fn load(&self, module: &ModuleName, timeout: Duration) -> Result<()> {
        self.try_load(module, timeout).map_err(Error::from)
    }

    /// As `load`, but tells "modprobe says no module has that name" apart from every other
    /// failure: name resolution reports the first as "no such driver", not as a failed load.
    pub(crate) fn try_load(&self, module: &ModuleName, timeout: Duration) -> Result<(), LoadError> {
        let fail = |detail: String| {
            LoadError::Failed(Error::ModuleLoad {
                module: module.to_string(),
                detail,
            })
        };
        let program = match self {
            Modprobe::Disabled => return Err(fail("module loading is disabled".into())),
            Modprobe::Loader(loader) => {
                return (loader.0)(module).map_err(|r| {
                    if r.no_such_module {
                        LoadError::NotFound {
                            module: module.clone(),
                            detail: format!("the module loader knows no such module: {}", r.text),
                        }
                    } else {
                        fail(format!("the module loader refused it: {}", r.text))
                    }
                })
            }
            _ => self.program().ok_or_else(|| {
                fail(format!(
                    "no modprobe program found (looked for {})",
                    DEFAULT_PROGRAMS.join(", ")
                ))
            })?,
        };
        // Checked first so a missing program reads the same however spawning reports it.
        if let Err(e) = std::fs::metadata(&program) {
            return Err(fail(format!("cannot run {}: {e}", program.display())));
        }
        let ran = run(&program, module, timeout)
            .map_err(|e| fail(format!("cannot run {}: {e}", program.display())))?;
        outcome(&program, module, timeout, ran)
    }
}

/// A run's end as the load's result: the error carries the command, how it ended and the
/// start of what it printed.
fn outcome(
    program: &Path,
    module: &ModuleName,
    timeout: Duration,
    ran: Ran,
) -> Result<(), LoadError> {
    let status = match ran.end {
        End::Exited(status) if status.success() => return Ok(()),
        End::Exited(status) => match status.code() {
            Some(code) => format!("exited with status {code}"),
            None => format!("was killed ({status})"),
        },
        End::Killed => format!("timed out after {timeout:?} and was killed"),
        End::Stuck { pid } => format!(
            "timed out after {timeout:?} and did not exit when killed (process {pid}, \
             perhaps stuck in the kernel; it is reaped when it ends)"
        ),
    };
    let stderr = String::from_utf8_lossy(&ran.stderr);
    let mut stderr = stderr.trim();
    if stderr.len() > MAX_STDERR {
        let mut end = MAX_STDERR;
        while !stderr.is_char_boundary(end) {
            end -= 1;
        }
        stderr = &stderr[..end];
    }
    let tail = if stderr.is_empty() {
        String::from(" (no output)")
    } else {
        format!(": {stderr}")
    };
    let detail = format!("{} -b {} {status}{tail}", program.display(), module);
    let exit_code = match ran.end {
        End::Exited(status) => status.code(),
        _ => None,
    };
    if exit_code == Some(1) && says_not_found(stderr, module) {
        return Err(LoadError::NotFound {
            module: module.clone(),
            detail,
        });
    }
    Err(LoadError::Failed(Error::ModuleLoad {
        module: module.to_string(),
        detail,
    }))
}

/// How a run of modprobe ended, and the start of what it wrote to stderr.
struct Ran {
    end: End,
    stderr: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum End {
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
fn run(program: &Path, module: &ModuleName, timeout: Duration) -> io::Result<Ran> {
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
trait Loader {
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
fn supervise<L: Loader>(
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

/// Loaders that did not end when killed, reaped as they end by one thread of their own, which
/// runs only while there are some: a loader stuck in the kernel holds no caller, and ends as
/// a zombie that is reaped, not one that stays.
mod reaper {
    use std::process::Child;
    use std::sync::{Mutex, MutexGuard};
    use std::thread;
    use std::time::Duration;

    struct Reaper {
        children: Vec<Child>,
        /// A reaping thread runs (it ends, and clears this, once `children` is empty).
        running: bool,
    }

    static REAPER: Mutex<Reaper> = Mutex::new(Reaper {
        children: Vec::new(),
        running: false,
    });

    /// The longest pause between two looks at the loaders left: a loader stuck in the kernel
    /// may stay so for minutes, or for good.
    const MAX_PAUSE: Duration = Duration::from_secs(1);

    fn lock() -> MutexGuard<'static, Reaper> {
        REAPER.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes `child` over: it is reaped once it ends.
    pub(super) fn adopt(child: Child) {
        let mut reaper = lock();
        reaper.children.push(child);
        start(&mut reaper);
    }

    /// Starts the thread again if it could not be started when a loader was adopted.
    pub(super) fn restart() {
        let mut reaper = lock();
        if !reaper.children.is_empty() {
            start(&mut reaper);
        }
    }

    fn start(reaper: &mut Reaper) {
        if !reaper.running {
            // Should no thread be had now, the next load tries again.
            reaper.running = thread::Builder::new()
                .name("pcibind-reaper".into())
                .spawn(reap)
                .is_ok();
        }
    }

    fn reap() {
        let mut pause = Duration::from_millis(10);
        loop {
            thread::sleep(pause);
            let mut reaper = lock();
            // Ended (reaped now), or no longer ours to wait for (reaped by someone else).
            reaper
                .children
                .retain_mut(|child| matches!(child.try_wait(), Ok(None)));
            if reaper.children.is_empty() {
                reaper.running = false;
                return;
            }
            drop(reaper);
            pause = (pause * 2).min(MAX_PAUSE);
        }
    }

    /// How many adopted loaders are not reaped yet, and whether the thread runs.
    #[cfg(test)]
    pub(super) fn state() -> (usize, bool) {
        let reaper = lock();
        (reaper.children.len(), reaper.running)
    }
}

/// Marks every descriptor but the standard streams close-on-exec, so the loader inherits
/// none of the caller's (a C caller may hold descriptors without `O_CLOEXEC`). Runs in the
/// child between fork and exec: async-signal-safe system calls only, no allocation. Marked,
/// not closed: the standard library's own pipe that reports a failed exec must stay open
/// until the exec.
fn cloexec_beyond_stdio() -> io::Result<()> {
    // close_range(3, ~0U, CLOSE_RANGE_CLOEXEC), Linux 5.11.
    // SAFETY: a system call that touches no memory of ours.
    let marked = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_long,
            libc::c_uint::MAX as libc::c_long,
            libc::CLOSE_RANGE_CLOEXEC as libc::c_long,
        )
    } == 0;
    if !marked && cloexec_listed().is_err() {
        cloexec_counted();
    }
    Ok(())
}

/// Without close_range: each descriptor that `/proc/self/fd` lists, read with getdents64
/// into a buffer on the stack (opendir would allocate).
fn cloexec_listed() -> io::Result<()> {
    // SAFETY: a NUL-terminated path.
    let dir = unsafe {
        libc::open(
            c"/proc/self/fd".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if dir < 0 {
        return Err(io::Error::last_os_error());
    }
    // linux_dirent64 records: d_ino (8 bytes), d_off (8), d_reclen (2), d_type (1), d_name.
    let mut buf = [0u64; 512];
    let result = loop {
        // SAFETY: `buf` is writable for the length given.
        let n = unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir as libc::c_long,
                buf.as_mut_ptr(),
                std::mem::size_of_val(&buf),
            )
        };
        if n < 0 {
            break Err(io::Error::last_os_error());
        }
        if n == 0 {
            break Ok(());
        }
        // SAFETY: the kernel wrote `n` bytes of records.
        let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
        let mut at = 0;
        while at + 19 < bytes.len() {
            let reclen = u16::from_ne_bytes([bytes[at + 16], bytes[at + 17]]) as usize;
            if reclen == 0 {
                break;
            }
            let name = &bytes[at + 19..(at + reclen).min(bytes.len())];
            let mut fd: libc::c_int = 0;
            let mut digits = 0;
            for &b in name.iter().take_while(|&&b| b != 0) {
                if !b.is_ascii_digit() || digits == 9 {
                    digits = 0;
                    break;
                }
                fd = fd * 10 + libc::c_int::from(b - b'0');
                digits += 1;
            }
            if digits > 0 && fd > 2 && fd != dir {
                set_cloexec(fd);
            }
            at += reclen;
        }
    };
    // SAFETY: our own descriptor.
    unsafe { libc::close(dir) };
    result
}

/// Without close_range nor /proc: every descriptor number below the limit on open files.
fn cloexec_counted() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: one rlimit to fill.
    let max = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur.min(1 << 20) as libc::c_int
    } else {
        1 << 16
    };
    for fd in 3..max {
        set_cloexec(fd);
    }
}

fn set_cloexec(fd: libc::c_int) {
    // SAFETY: fcntl on a descriptor number; one that is not open fails with EBADF.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFD);
        if flags >= 0 && flags & libc::FD_CLOEXEC == 0 {
            libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC);
        }
    }
}

/// modprobe's stderr pipe, read without ever blocking past a given time.
struct Output {
    pipe: Option<File>,
    kept: Vec<u8>,
}

impl Output {
    fn new(pipe: Option<File>) -> Output {
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

/// Why `Modprobe::try_load` failed.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// modprobe ran and said that no module has this name; `detail` is the command, its exit
    /// status and what it printed.
    NotFound { module: ModuleName, detail: String },
    /// Anything else: modprobe could not be run, or failed for another reason (blacklisted,
    /// refused by the kernel, ...).
    Failed(Error),
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Error {
        match e {
            LoadError::NotFound { module, detail } => Error::ModuleLoad {
                module: module.to_string(),
                detail,
            },
            LoadError::Failed(e) => e,
        }
    }
}

/// True when modprobe's stderr is its "no such module" message for exactly `module`, as kmod
/// (`modprobe: FATAL: Module foo_bar not found in directory /lib/modules/6.12.0`, exit 1) and
/// busybox (`modprobe: module foo_bar not found in modules.dep`, exit 1) print it. Any other
/// text, a message about another module (a dependency) included, is not a "not found".
fn says_not_found(stderr: &str, module: &ModuleName) -> bool {
    let kmod = format!("Module {module} not found in directory ");
    let busybox = format!("module {module} not found in modules.dep");
    stderr
        .lines()
        .any(|line| line.contains(&kmod) || line.trim_end().ends_with(&busybox))
}

#[cfg(test)]
mod tests;
