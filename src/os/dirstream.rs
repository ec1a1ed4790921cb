//! A directory read entry by entry with `readdir`, its links read with `readlinkat` relative to
//! it: what the lock directory check and the scan of every process's descriptors need, without
//! a path walk from the root per entry.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub(crate) struct DirStream {
    stream: *mut libc::DIR,
}

impl DirStream {
    /// The directory at `path`.
    pub fn open(path: &Path) -> io::Result<DirStream> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        Self::open_at(libc::AT_FDCWD, &c)
    }

    /// `name` relative to the directory descriptor `dir` (`c"."`: that directory itself, with a
    /// descriptor of its own for the stream).
    pub fn open_at(dir: RawFd, name: &CStr) -> io::Result<DirStream> {
        // SAFETY: openat with a NUL-terminated name; the descriptor goes to fdopendir or is
        // closed.
        let fd = unsafe {
            libc::openat(
                dir,
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fdopendir takes over the descriptor just opened.
        let stream = unsafe { libc::fdopendir(fd) };
        if stream.is_null() {
            let err = io::Error::last_os_error();
            // SAFETY: still ours when fdopendir fails.
            unsafe { libc::close(fd) };
            return Err(err);
        }
        Ok(DirStream { stream })
    }

    /// The next entry's name, "." and ".." skipped.
    pub fn next_name(&self) -> Option<CString> {
        loop {
            // SAFETY: a valid stream; the entry is copied before the next readdir.
            let entry = unsafe { libc::readdir64(self.stream) };
            if entry.is_null() {
                return None;
            }
            // SAFETY: d_name is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
            if name.to_bytes() != b"." && name.to_bytes() != b".." {
                return Some(name.to_owned());
            }
        }
    }

    /// The target of the link `name` in this directory, in `buf`; `None` when there is none
    /// (a descriptor closed meanwhile) or it does not fit.
    pub fn read_link<'b>(&self, name: &CStr, buf: &'b mut [u8]) -> Option<&'b [u8]> {
        // SAFETY: dirfd of a valid stream; readlinkat writes at most buf.len() bytes.
        let n = unsafe {
            libc::readlinkat(
                libc::dirfd(self.stream),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        (n > 0 && (n as usize) < buf.len()).then(|| &buf[..n as usize])
    }
}

impl Drop for DirStream {
    fn drop(&mut self) {
        // SAFETY: closes the stream and its descriptor once.
        unsafe { libc::closedir(self.stream) };
    }
}
