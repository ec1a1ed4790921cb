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
        let fail = |detail: String| Error::ModuleLoad {
            module: module.to_string(),
            detail,
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
        Err(fail(format!(
            "{} -b {} {status}{tail}",
            program.display(),
            module
        )))
    }
}
