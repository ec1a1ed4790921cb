//! Opening paths under the sysfs root without ever leaving it, whatever links the tree holds:
//! `openat2(RESOLVE_BENEATH)` relative to a descriptor of the root, so an absolute link or a
//! `..` climbing out fails with `EXDEV`, a link loop with `ELOOP`. Reads and writes alike: no
//! path is checked and then opened again by name. Where `openat2` is refused (`ENOSYS`: before
//! 5.6, or under valgrind; `EPERM`: a seccomp filter, as Docker's default profile and older
//! systemd units install) the same rules are kept by a walk that opens one name at a time
//! (`walk`). Only `sysfs/` uses this.

use std::ffi::{CStr, CString, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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
}

/// Cleared once openat2 is found refused: the process walks from then on (a seccomp filter is
/// never lifted, a kernel never grows the call).
static OPENAT2: AtomicBool = AtomicBool::new(true);

/// How often an openat2 answered with EAGAIN is retried before the walk serves the call.
const OPENAT2_TRIES: usize = 16;

/// How many links one lookup follows before `ELOOP`, as the kernel's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

fn escape() -> io::Error {
    io::Error::from_raw_os_error(libc::EXDEV)
}

/// `openat2(dirfd, path, how)`.
fn openat2(dirfd: RawFd, path: &CStr, how: &libc::open_how) -> io::Result<OwnedFd> {
    // SAFETY: valid descriptor, NUL-terminated path, a correctly sized open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd,
            path.as_ptr(),
            how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn open_how(flags: libc::c_int) -> libc::open_how {
    // SAFETY: open_how is plain data; zeroed is valid, then filled.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    how
}

/// `openat(dirfd, name, flags)`.
fn openat(dirfd: RawFd, name: &CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: valid descriptor and NUL-terminated name; no O_CREAT, so no mode argument.
    let fd = unsafe { libc::openat(dirfd, name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The target of the link `name` in `dirfd` (an empty name: the link `dirfd` itself is).
fn readlinkat(dirfd: RawFd, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: valid descriptor and name; buf has buf.len() writable bytes.
    let n = unsafe { libc::readlinkat(dirfd, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize == buf.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n as usize);
    Ok(buf)
}

fn is_link(fd: &OwnedFd) -> io::Result<bool> {
    // SAFETY: stat is plain data, filled by fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor and a stat buffer of the right size.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFLNK)
}

fn has(flags: libc::c_int, flag: libc::c_int) -> bool {
    flags & flag != 0
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
        let flags = flags | libc::O_CLOEXEC;
        if OPENAT2.load(Ordering::Relaxed) {
            if let Some(fd) = self.open_openat2(rel, flags)? {
                return Ok(fd.into());
            }
        }
        self.walk(rel, flags).map(File::from)
    }

    /// `rel` opened by openat2; `None` when openat2 cannot serve the call (refused, or EAGAIN
    /// on every try) and the walk must.
    fn open_openat2(&self, rel: &Path, flags: libc::c_int) -> io::Result<Option<OwnedFd>> {
        let c = CString::new(rel.as_os_str().as_bytes())?;
        let how = open_how(flags);
        // EAGAIN: a rename or mount anywhere in the system raced with a lookup through `..`
        // (every bus/pci/devices link has some), and the kernel asks us to retry (openat2(2)).
        for _ in 0..OPENAT2_TRIES {
            match openat2(self.fd.as_raw_fd(), &c, &how) {
                Ok(fd) => return Ok(Some(fd)),
                Err(e) => match e.raw_os_error() {
                    Some(libc::EAGAIN) | Some(libc::EINTR) => continue,
                    Some(libc::ENOSYS) | Some(libc::EPERM) if self.openat2_refused() => {
                        OPENAT2.store(false, Ordering::Relaxed);
                        return Ok(None);
                    }
                    _ => return Err(e),
                },
            }
        }
        Ok(None)
    }

    /// True when openat2 itself is refused, not the open of one file (EPERM also means, say,
    /// a file seal): reopening the root it resolves from fails for no other reason.
    fn openat2_refused(&self) -> bool {
        let how = open_how(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
        match openat2(self.fd.as_raw_fd(), c".", &how) {
            Ok(_) => false,
            Err(e) => matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)),
        }
    }

    /// Resolves `rel` beneath the root by the rules of `RESOLVE_BENEATH`, without openat2: one
    /// name at a time, each opened with O_NOFOLLOW in a directory the walk already holds, so
    /// the kernel never follows a link or `..` for us. A link is read and its target walked in
    /// its place (absolute: `EXDEV`; more than `MAX_LINKS`: `ELOOP`); `..` returns to the
    /// directory the walk came from, and above the root is `EXDEV`. Every descriptor held was
    /// reached from the root by names, so whatever is renamed or relinked meanwhile, what is
    /// opened lies beneath it. The final name is opened with `flags`; it is followed when it is
    /// a link unless `flags` holds O_NOFOLLOW (then `ELOOP`, or the link itself with O_PATH),
    /// as openat2 does.
    fn walk(&self, rel: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
        // The directories entered below the root, innermost last.
        let mut dirs: Vec<OwnedFd> = Vec::new();
        // The names still to resolve, the next one last.
        let mut todo: Vec<Vec<u8>> = components(rel.as_os_str().as_bytes());
        let mut links = 0;
        while let Some(name) = todo.pop() {
            if name == b"." {
                continue;
            }
            if name == b".." {
                dirs.pop().ok_or_else(escape)?;
                continue;
            }
            let dir = dirs.last().unwrap_or(&self.fd).as_raw_fd();
            let c = CString::new(name)?;
            let last = todo.is_empty();
            let step = if last {
                flags | libc::O_NOFOLLOW
            } else {
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC
            };
            let target = match openat(dir, &c, step) {
                Ok(fd) if !last => {
                    dirs.push(fd);
                    continue;
                }
                // O_PATH|O_NOFOLLOW opens a link itself, without an error.
                Ok(fd)
                    if has(flags, libc::O_PATH)
                        && !has(flags, libc::O_NOFOLLOW)
                        && is_link(&fd)? =>
                {
                    readlinkat(fd.as_raw_fd(), c"")?
                }
                Ok(fd) => return Ok(fd),
                // A link met with O_NOFOLLOW: ELOOP, or ENOTDIR with O_DIRECTORY.
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR))
                        && !(last && has(flags, libc::O_NOFOLLOW)) =>
                {
                    readlinkat(dir, &c).map_err(|_| e)?
                }
                Err(e) => return Err(e),
            };
            links += 1;
            if links > MAX_LINKS {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            if target.first() == Some(&b'/') {
                return Err(escape());
            }
            if target.is_empty() {
                return Err(io::Error::from_raw_os_error(libc::ENOENT));
            }
            todo.extend(components(&target));
        }
        // The path ended on a directory (`.`, or `..` last): open the one reached.
        let dir = dirs.last().unwrap_or(&self.fd).as_raw_fd();
        openat(dir, c".", flags)
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
        match readlinkat(dir.as_raw_fd(), &c) {
            Ok(target) => Ok(Some(PathBuf::from(OsString::from_vec(target)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The (device, inode) pair of what `path` resolves to beneath the root: two paths reached
    /// through different links name the same directory when their identities are equal.
    pub fn identity(&self, path: &Path) -> io::Result<(u64, u64)> {
        let meta = self.open(path, libc::O_PATH)?.metadata()?;
        Ok((meta.dev(), meta.ino()))
    }

    /// Writes `value` to the file at `path` in one write, never creating or truncating it.
    /// O_NOFOLLOW: a kernel attribute is never a link. O_NONBLOCK: a FIFO planted in the tree
    /// fails (ENXIO) instead of blocking.
    pub fn write(&self, path: &Path, value: &[u8]) -> io::Result<()> {
        let mut file = self.open(path, libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW)?;
        file.write_all(value)
    }
}

/// The names of a relative path, last first (a stack to pop), empty ones (`a//b`) left out. A
/// trailing slash asks for a directory: it becomes a final `.`, which makes the name before it
/// a directory to enter.
fn components(path: &[u8]) -> Vec<Vec<u8>> {
    let mut names: Vec<Vec<u8>> = path
        .split(|&b| b == b'/')
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    if path.ends_with(b"/") {
        names.push(b".".to_vec());
    }
    names.reverse();
    names
}

#[cfg(test)]
mod tests;
