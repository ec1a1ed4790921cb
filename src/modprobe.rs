//! Running the module loader: exec'd directly (never through a shell) with argv exactly
//! `{PROGRAM, "-b", MODULE}`, the environment inherited.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::name::ModuleName;

/// Where modprobe is looked for when none is configured, in order.
pub const DEFAULT_PROGRAMS: [&str; 2] = ["/usr/sbin/modprobe", "/sbin/modprobe"];

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
}

impl Modprobe {
    pub fn is_disabled(&self) -> bool {
        *self == Modprobe::Disabled
    }

    fn program(&self) -> Option<PathBuf> {
        match self {
            Modprobe::Default => DEFAULT_PROGRAMS
                .iter()
                .map(Path::new)
                .find(|p| p.exists())
                .map(Path::to_path_buf),
            Modprobe::Program(p) => Some(p.clone()),
            Modprobe::Disabled => None,
        }
    }

    /// Runs `PROGRAM -b MODULE` (`-b`: honour the blacklist) and waits for it.
    pub fn load(&self, module: &ModuleName) -> Result<()> {
        self.try_load(module).map_err(Error::from)
    }

    /// As `load`, but tells "modprobe says no module has that name" apart from every other
    /// failure: name resolution reports the first as "no such driver", not as a failed load.
    pub(crate) fn try_load(&self, module: &ModuleName) -> Result<(), LoadError> {
        let fail = |detail: String| {
            LoadError::Failed(Error::ModuleLoad {
                module: module.to_string(),
                detail,
            })
        };
        let program = match self {
            Modprobe::Disabled => return Err(fail("module loading is disabled".into())),
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
        let output = Command::new(&program)
            .arg("-b")
            .arg(module.as_str())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| fail(format!("cannot run {}: {e}", program.display())))?;
        if output.status.success() {
            return Ok(());
        }
        let status = match output.status.code() {
            Some(code) => format!("exited with status {code}"),
            None => format!("was killed ({})", output.status),
        };
        let stderr = String::from_utf8_lossy(&output.stderr);
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
        if output.status.code() == Some(1) && says_not_found(stderr, module) {
            return Err(LoadError::NotFound {
                module: module.clone(),
                detail,
            });
        }
        Err(fail(detail))
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
mod tests {
    use super::*;

    fn module(name: &str) -> ModuleName {
        ModuleName::new(name).unwrap()
    }

    #[test]
    fn kmod_and_busybox_not_found_messages() {
        let m = module("foo_bar");
        assert!(says_not_found(
            "modprobe: FATAL: Module foo_bar not found in directory /lib/modules/6.12.0",
            &m
        ));
        assert!(says_not_found(
            "modprobe: module foo_bar not found in modules.dep",
            &m
        ));
    }

    #[test]
    fn other_failures_are_not_not_found() {
        let m = module("foo_bar");
        for stderr in [
            "",
            "modprobe: ERROR: could not insert 'foo_bar': Operation not permitted",
            "modprobe: FATAL: Module foo_bar is blacklisted",
            // A dependency that is missing is a broken install, not an unknown name.
            "modprobe: FATAL: Module foo_bar_core not found in directory /lib/modules/6.12.0",
            "modprobe: FATAL: Module foo not found in directory /lib/modules/6.12.0",
            "modprobe: module foo_bar is builtin",
        ] {
            assert!(!says_not_found(stderr, &m), "{stderr}");
        }
    }
}
