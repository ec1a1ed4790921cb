//! Files outside the sysfs root, read whole and bounded: the module tables (for `tables`) and
//! the proc files (for `procfs`). Every one is opened `O_NONBLOCK`, so a FIFO planted where a
//! file should be never hangs the reader, and read to at most a limit, so a file that grows
//! without end is refused rather than held. A file's [`Stamp`] says which version of it was
//! read. Also whether a device node exists, and the running kernel's release, which names the
//! default modules directory.
//!
//! The sysfs tree has its own reads (`beneath.rs`: resolved beneath the root, one `read` per
//! attribute, as sysfs hands an attribute over); the lock files theirs (`lock.rs`: positional,
//! on a descriptor shared with the lock).

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// What identifies one version of a file: a change of any of these means it is read again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The stamp of a regular file; anything else (a FIFO would block the reader) is refused.
    pub fn of(m: &fs::Metadata) -> io::Result<Stamp> {
        if !m.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    /// The stamp of the file `path` leads to now (links followed).
    pub fn at(path: &Path) -> io::Result<Stamp> {
        Stamp::of(&metadata(path)?)
    }
}

/// What `path` leads to now (links followed).
pub(crate) fn metadata(path: &Path) -> io::Result<fs::Metadata> {
    fs::metadata(path)
}

/// True when there is something at `path` (a link is not followed): a device node under the
/// dev root.
pub(crate) fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// Opens `path` to read without waiting for a writer (`O_NONBLOCK`).
pub(crate) fn open(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

/// Opens the regular file at `path` as [`open`] does, with the stamp of the file as opened:
/// should a FIFO have replaced it since it was looked at, the open does not wait and the
/// stamp refuses it.
pub(crate) fn open_regular(path: &Path) -> io::Result<(File, Stamp)> {
    let file = open(path)?;
    let stamp = Stamp::of(&file.metadata()?)?;
    Ok((file, stamp))
}

/// Why a bounded read gave nothing.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    /// The file holds more than the limit.
    Longer(u64),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => e.fmt(f),
            ReadError::Longer(max) => write!(f, "longer than {max} bytes"),
        }
    }
}

/// All of `file`, when it holds at most `max` bytes (one more is read to tell).
pub(crate) fn read_bounded(file: impl Read, max: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::Longer(max));
    }
    Ok(bytes)
}

/// The file at `path`, opened as [`open`] does, when it holds at most `max` bytes.
pub(crate) fn read(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    read_bounded(open(path).map_err(ReadError::Io)?, max)
}

/// The running kernel's release (`uname -r`).
pub(crate) fn kernel_release() -> Option<String> {
    // SAFETY: uname fills the zeroed struct; its fields are NUL-terminated.
    unsafe {
        let mut uts: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut uts) != 0 {
            return None;
        }
        let release = std::ffi::CStr::from_ptr(uts.release.as_ptr());
        release.to_str().ok().map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_limit_and_refuses_one_byte_more() {
        assert_eq!(read_bounded(&b"four"[..], 4).unwrap(), b"four");
        let longer = read_bounded(&b"five!"[..], 4).unwrap_err();
        assert!(matches!(longer, ReadError::Longer(4)));
        assert_eq!(longer.to_string(), "longer than 4 bytes");
    }

    #[test]
    fn a_fifo_is_opened_without_waiting_and_refused_as_no_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("modules.alias");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(Stamp::at(&fifo).is_err());
    }
}
