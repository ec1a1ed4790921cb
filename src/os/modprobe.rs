//! Running the module loader: exec'd directly (never through a shell) with argv exactly
//! `{PROGRAM, "-b", MODULE}`, the environment inherited, no descriptor of the caller's but the
//! standard streams, and a time limit. A modprobe that hangs (a module whose init never
//! returns, an `install` command waiting on something) would otherwise hold the device's lock
//! for good: at the limit it is killed, with anything it started (it runs in a process group
//! of its own), and the load fails. A modprobe that does not end even then (in `D` state,
//! waiting for a module init stuck in the kernel) is not waited for: the call returns about a
//! second later, and a thread of the library's reaps the loader whenever it ends.
//!
//! Here: the loader as configured (a program, the caller's callback, or none) and what a load's
//! end means; one run of the program is `run.rs`, its descriptors `cloexec.rs`, the loaders
//! that outlive their call `reaper.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::types::error::{Error, Result};
use crate::types::name::ModuleName;

mod cloexec;
mod reaper;
mod run;

use run::{run, End, Ran};

/// Where modprobe is looked for when none is configured, in order.
pub const DEFAULT_PROGRAMS: [&str; 2] = ["/usr/sbin/modprobe", "/sbin/modprobe"];

/// How long modprobe may run before it is killed and the load fails. Loading a module takes
/// milliseconds to a few seconds (firmware, a slow device reset); a minute is a hang.
pub const DEFAULT_MODPROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest piece of modprobe's stderr carried in an error message.
const MAX_STDERR: usize = 2048;

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
