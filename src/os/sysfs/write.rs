//! Every write a transaction step makes (`driver_override`, `unbind`, `drivers_probe`), each
//! opened beneath the root like every read, and the bounded write: one made by a child
//! process, so that a write the kernel never answers does not hold this process.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use super::Sysfs;
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::name::DriverName;

impl Sysfs {
    /// Writes `value` to a kernel file in one write, opened beneath the root like every read.
    pub(super) fn write_kernel_file(
        &self,
        path: PathBuf,
        value: &[u8],
        step: &'static str,
    ) -> Result<()> {
        self.tree
            .write(&path, value)
            .map_err(|e| Error::io(step, &path, e))
    }

    /// Sets (`Some`) or clears (`None`, written as `"\n"`) the device's `driver_override`.
    pub fn set_driver_override(&self, address: &PciAddress, value: Option<&str>) -> Result<()> {
        let path = self.device_dir(address).join("driver_override");
        let bytes = value.map_or(&b"\n"[..], str::as_bytes);
        self.write_kernel_file(path, bytes, "writing driver_override")
    }

    pub fn unbind(&self, driver: &DriverName, address: &PciAddress) -> Result<()> {
        let path = self.driver_dir(driver).join("unbind");
        self.write_kernel_file(path, address.to_string().as_bytes(), "unbinding")
    }

    /// Unbinds from `driver`, waiting at most `limit` for the kernel (`Duration::MAX`: as long
    /// as it takes): true when done, false when the write still waits (a VFIO driver waits for
    /// the process holding the device, a VMM, to let go, forever if its guest does not answer).
    /// The file is opened beneath the root here; the write is made by a child process, which
    /// holds nothing of ours but that file and `keep` (the device's lock file, whose lock it so
    /// keeps taken until the kernel answers): a thread waiting in the kernel would keep this
    /// process from exiting, a child does not. A child still waiting is reaped by a thread of
    /// ours once it ends (or by init once we are gone).
    pub fn unbind_within(
        &self,
        driver: &DriverName,
        address: &PciAddress,
        limit: Duration,
        keep: &[&File],
    ) -> Result<bool> {
        let path = self.driver_dir(driver).join("unbind");
        self.write_within(path, address.to_string(), limit, keep, "unbinding")
    }

    /// One write of `value` to the kernel file `path`, made by a child process that keeps the
    /// files `keep` (locks) open until the kernel answers; true when it answered within
    /// `limit`.
    pub(super) fn write_within(
        &self,
        path: PathBuf,
        value: String,
        limit: Duration,
        keep: &[&File],
        step: &'static str,
    ) -> Result<bool> {
        let file = self
            .tree
            .open(&path, libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW)
            .map_err(|e| Error::io(step, &path, e))?;
        let fd = file.as_raw_fd();
        // The child's answer comes through a pipe, not its exit status: a tool wrapping the
        // process (valgrind's --error-exitcode) may rewrite that, and a caller that reaps
        // every child (a SIGCHLD handler, SIG_IGN) may take it first.
        let mut pipe = [-1 as RawFd; 2];
        // SAFETY: pipe2 fills the two descriptors.
        if unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(Error::io(step, &path, io::Error::last_os_error()));
        }
        // SAFETY: descriptors just made, owned by nothing else.
        let (answer, tell) =
            unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
        // What the child keeps, in order (the child only reads it).
        let mut kept: Vec<RawFd> = keep.iter().map(|f| f.as_raw_fd()).collect();
        kept.push(fd);
        kept.push(tell.as_raw_fd());
        kept.sort_unstable();
        kept.dedup();
        // SAFETY: fork; the child makes async-signal-safe system calls only (close_range or
        // getrlimit and close, write, _exit) on memory prepared before the fork.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Error::io(step, &path, io::Error::last_os_error()));
        }
        if pid == 0 {
            // SAFETY: in the child, see above.
            unsafe { write_child(fd, tell.as_raw_fd(), &kept, value.as_bytes()) }
        }
        drop(file);
        drop(tell);
        let reap = move || {
            let mut status = 0;
            // SAFETY: waitpid on our own child (ECHILD when someone else reaped it).
            while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
                && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
            {}
        };
        let timeout_ms: libc::c_int = if limit == Duration::MAX {
            -1
        } else {
            limit.as_millis().min(libc::c_int::MAX as u128) as libc::c_int
        };
        let started = Instant::now();
        loop {
            let mut pfd = libc::pollfd {
                fd: answer.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let left = if timeout_ms < 0 {
                -1
            } else {
                (timeout_ms as u128).saturating_sub(started.elapsed().as_millis()) as libc::c_int
            };
            // SAFETY: poll on one descriptor we own.
            let n = unsafe { libc::poll(&mut pfd, 1, left) };
            if n < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            if n == 0 {
                // Still waiting in the kernel: reaped once it ends (the thread ends with it, or
                // with the process).
                let _ = thread::Builder::new()
                    .name("pcibind-write-reaper".into())
                    .spawn(reap);
                return Ok(false);
            }
            break;
        }
        let mut code = [0u8; 4];
        // SAFETY: read into a buffer we own; the pipe is ready (or at end: the child died).
        let got = unsafe { libc::read(answer.as_raw_fd(), code.as_mut_ptr().cast(), 4) };
        reap();
        match (got, i32::from_ne_bytes(code)) {
            (4, 0) => Ok(true),
            (4, errno) => Err(Error::io(step, &path, io::Error::from_raw_os_error(errno))),
            _ => Err(Error::io(
                "the process writing it ended without an answer",
                &path,
                io::Error::from_raw_os_error(libc::EINTR),
            )),
        }
    }

    /// Asks the kernel to probe drivers for an unbound device. The kernel reports success even
    /// when no driver took the device: callers must look at the `driver` link afterwards.
    pub fn probe(&self, address: &PciAddress) -> Result<()> {
        let path = self.root.join("bus/pci/drivers_probe");
        self.write_kernel_file(path, address.to_string().as_bytes(), "probing drivers")
    }
}

/// The child of [`Sysfs::write_within`]: closes every descriptor but those in `keep` (in
/// order: the kernel file `fd`, the pipe `tell` and the lock files), writes `value` to `fd` in
/// one write, tells the errno (0: done) through `tell`, and exits.
///
/// # Safety
/// Only in a child just forked: async-signal-safe system calls only, no allocation.
unsafe fn write_child(fd: RawFd, tell: RawFd, keep: &[RawFd], value: &[u8]) -> ! {
    // SAFETY: plain system calls on descriptors and on memory prepared before the fork.
    unsafe {
        // close_range (5.9); else one by one, up to the soft limit (at most 2^20).
        let close_gap = |from: RawFd, to: RawFd| {
            if from > to {
                return;
            }
            if libc::syscall(
                libc::SYS_close_range,
                from as libc::c_uint,
                to as libc::c_uint,
                0,
            ) == 0
            {
                return;
            }
            let mut limit: libc::rlimit = std::mem::zeroed();
            let max = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur.min(1 << 20) as RawFd
            } else {
                65536
            };
            let mut n = from;
            while n <= to && n < max {
                libc::close(n);
                n += 1;
            }
        };
        let mut from = 0;
        for &k in keep {
            close_gap(from, k - 1);
            from = k + 1;
        }
        close_gap(from, RawFd::MAX);
        let written = libc::write(fd, value.as_ptr().cast(), value.len());
        let code: i32 = if written == value.len() as isize {
            0
        } else if written < 0 {
            *libc::__errno_location()
        } else {
            libc::EIO
        };
        let bytes = code.to_ne_bytes();
        libc::write(tell, bytes.as_ptr().cast(), bytes.len());
        libc::_exit(0)
    }
}
