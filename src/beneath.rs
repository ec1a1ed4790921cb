//! Opening paths under the sysfs root without ever leaving it, whatever links the tree holds:
//! `openat2(RESOLVE_BENEATH)` relative to a descriptor of the root, so an absolute link or a
//! `..` climbing out fails with `EXDEV`, a link loop with `ELOOP`. Where the kernel has no
//! `openat2` (before 5.6, or under valgrind), the path is resolved with `realpath` and checked
//! against the resolved root instead. Only `sysfs.rs` uses this.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The kind of a directory entry, as far as the walk of a device needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    Link,
    Other,
}

#[derive(Debug)]
pub struct Beneath {
    root: PathBuf,
    fd: OwnedFd,
    /// The root with every link resolved, for the fallback.
    canonical: PathBuf,
}

/// Cleared at the first ENOSYS: the process uses the fallback from then on.
static OPENAT2: AtomicBool = AtomicBool::new(true);

/// How often an openat2 answered with EAGAIN is retried before the realpath check is used.
const OPENAT2_TRIES: usize = 16;

fn escape() -> io::Error {
    io::Error::from_raw_os_error(libc::EXDEV)
}

impl Beneath {
    pub fn new(root: &Path) -> io::Result<Beneath> {
        let fd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(root)?;
        Ok(Beneath {
            root: root.to_path_buf(),
            fd: fd.into(),
            canonical: std::fs::canonicalize(root)?,
        })
    }

    /// `path` (built by joining the root and validated names) relative to the root.
    fn relative<'a>(&self, path: &'a Path) -> io::Result<&'a Path> {
        let rel = path.strip_prefix(&self.root).map_err(|_| escape())?;
        Ok(if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        })
    }

    /// Opens `path` with `flags` (O_CLOEXEC added), failing with EXDEV when resolving it would
    /// leave the root.
    pub fn open(&self, path: &Path, flags: libc::c_int) -> io::Result<File> {
        let rel = self.relative(path)?;
        if OPENAT2.load(Ordering::Relaxed) {
            let c = CString::new(rel.as_os_str().as_bytes())?;
            // SAFETY: open_how is plain data; zeroed is valid, then filled.
            let mut how: libc::open_how = unsafe { std::mem::zeroed() };
            how.flags = (flags | libc::O_CLOEXEC) as u64;
            how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
            // EAGAIN: a rename or mount anywhere in the system raced with a lookup through
            // `..` (every bus/pci/devices link has some), and the kernel asks us to retry
            // (openat2(2)). After a few tries the realpath check below serves this call.
            for _ in 0..OPENAT2_TRIES {
                // SAFETY: valid descriptor, NUL-terminated path, a correctly sized open_how.
                let fd = unsafe {
                    libc::syscall(
                        libc::SYS_openat2,
                        self.fd.as_raw_fd(),
                        c.as_ptr(),
                        &how as *const libc::open_how,
                        std::mem::size_of::<libc::open_how>(),
                    )
                };
                if fd >= 0 {
                    // SAFETY: the kernel just gave us this descriptor.
                    return Ok(unsafe { File::from_raw_fd(fd as libc::c_int) });
                }
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                    Some(libc::ENOSYS) => {
                        OPENAT2.store(false, Ordering::Relaxed);
                        break;
                    }
                    _ => return Err(err),
                }
            }
        }
        // Fallback: resolve every link, then insist the result is still under the root.
        let resolved = std::fs::canonicalize(path)?;
        if !resolved.starts_with(&self.canonical) {
            return Err(escape());
        }
        std::fs::OpenOptions::new()
            .read(flags & libc::O_ACCMODE == libc::O_RDONLY)
            .write(flags & libc::O_ACCMODE != libc::O_RDONLY)
            .custom_flags(flags & !libc::O_ACCMODE)
            .open(resolved)
    }

    /// True when `path` is a directory under the root.
    pub fn is_dir(&self, path: &Path) -> bool {
        self.open(path, libc::O_PATH | libc::O_DIRECTORY).is_ok()
    }

    /// Up to `max` bytes of the file at `path` (one more tells the caller it was longer), read
    /// in one call: sysfs hands over a whole attribute at once, and a short read of a regular
    /// file means its end.
    pub fn read(&self, path: &Path, max: usize) -> io::Result<Vec<u8>> {
        // O_NONBLOCK: a FIFO planted where an attribute should be must not hang the caller.
        let mut file = self.open(path, libc::O_RDONLY | libc::O_NONBLOCK)?;
        let mut buf = vec![0u8; max + 1];
        let n = loop {
            match file.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        buf.truncate(n);
        Ok(buf)
    }

    /// The entries of the directory at `path` (without `.` and `..`), with their kinds.
    pub fn read_dir(&self, path: &Path) -> io::Result<Vec<(OsString, EntryKind)>> {
        let dir: OwnedFd = self.open(path, libc::O_RDONLY | libc::O_DIRECTORY)?.into();
        let raw = dir.as_raw_fd();
        // SAFETY: fdopendir takes ownership of the descriptor, which we give up here.
        let stream = unsafe { libc::fdopendir(raw) };
        if stream.is_null() {
            return Err(io::Error::last_os_error());
        }
        std::mem::forget(dir);
        let mut out = Vec::new();
        loop {
            // SAFETY: a valid stream; the entry stays valid until the next readdir.
            let entry = unsafe { libc::readdir64(stream) };
            if entry.is_null() {
                break;
            }
            // SAFETY: d_name is NUL-terminated.
            let (name, kind) = unsafe {
                let name = CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes().to_vec();
                let kind = match (*entry).d_type {
                    libc::DT_DIR => EntryKind::Dir,
                    libc::DT_LNK => EntryKind::Link,
                    _ => EntryKind::Other,
                };
                (name, kind)
            };
            if name != b"." && name != b".." {
                out.push((OsString::from_vec(name), kind));
            }
        }
        // SAFETY: closes the stream and its descriptor once.
        unsafe { libc::closedir(stream) };
        Ok(out)
    }

    /// The target of the symlink at `path` (its parent resolved beneath the root, the link
    /// itself not followed); `None` when there is no such entry.
    pub fn read_link(&self, path: &Path) -> io::Result<Option<PathBuf>> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(escape());
        };
        let dir = match self.open(parent, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let c = CString::new(name.as_bytes())?;
        let mut buf = vec![0u8; 4096];
        // SAFETY: valid descriptor and name; buf has buf.len() writable bytes.
        let n = unsafe {
            libc::readlinkat(
                dir.as_raw_fd(),
                c.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::NotFound {
                Ok(None)
            } else {
                Err(err)
            };
        }
        buf.truncate(n as usize);
        Ok(Some(PathBuf::from(OsStr::from_bytes(&buf))))
    }

    /// The (device, inode) pair of what `path` resolves to beneath the root: two paths reached
    /// through different links name the same directory when their identities are equal.
    pub fn identity(&self, path: &Path) -> io::Result<(u64, u64)> {
        let meta = self.open(path, libc::O_PATH)?.metadata()?;
        Ok((meta.dev(), meta.ino()))
    }

    /// Refuses a write target that resolves outside the root, before it is opened (by path, so
    /// that the test suite's kernel emulation sees the open).
    pub fn check(&self, path: &Path) -> io::Result<()> {
        self.open(path, libc::O_PATH).map(drop)
    }
}
