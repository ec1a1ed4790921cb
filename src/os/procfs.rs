//! The proc files, under the configured proc root (`/proc` normally; a fake tree's in tests):
//! the in-use check's `self/mountinfo`, `swaps`, `iomem`, `net/route` and `net/if_inet6`.

use std::io;
use std::path::Path;

use crate::os::files::{self, ReadError};
use crate::types::error::{Error, Result};

/// Largest proc file read (a mountinfo of tens of thousands of mounts fits).
const MAX_PROC_FILE: u64 = 64 << 20;

/// True when `proc_root` is the real `/proc` (however spelled: `/proc/`, `/proc/.`).
pub(crate) fn is_real_proc(proc_root: &Path) -> bool {
    proc_root.components().eq(Path::new("/proc").components())
}

/// Lines of a proc file, read whole (bounded) and as lossy UTF-8: one odd byte in a mount
/// point must not make the whole table read as empty. A missing file reads as empty (a fake
/// tree may not have every file; the real /proc always does); any other failure is an error,
/// since "could not look" must not pass for "not in use".
pub(crate) fn lines(proc_root: &Path, rel: &str) -> Result<Vec<String>> {
    let path = proc_root.join(rel);
    match files::read(&path, MAX_PROC_FILE) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()),
        Err(e @ ReadError::Longer(_)) => Err(Error::Malformed {
            path,
            detail: e.to_string(),
        }),
        Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(ReadError::Io(e)) => Err(Error::io("reading a proc file", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the real /proc is asked over netlink (however spelled); a tree keeps its own files.
    #[test]
    fn netlink_only_for_the_real_proc() {
        for p in ["/proc", "/proc/", "/proc/."] {
            assert!(is_real_proc(Path::new(p)), "{p}");
        }
        for p in ["/tmp/proc", "/proc/self", "/", "/proc/.."] {
            assert!(!is_real_proc(Path::new(p)), "{p}");
        }
    }
}
