//! Per-device serialization: a mutex per device inside the process, and an advisory `flock`
//! on a file per device in the lock directory across processes. Only the device being changed
//! is locked, so a slow unbind of one device never holds up another.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::address::PciAddress;
use crate::error::{Error, Result};

/// How long to wait for another process's lock before giving up with `Busy`. Unbinding a GPU
/// can take many seconds, so this is generous.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// The devices locked by threads of this process, and a condition to wait on for one.
#[derive(Debug, Default)]
pub struct DeviceLocks {
    held: Mutex<HashSet<PciAddress>>,
    released: Condvar,
}

/// Holds a device's locks; dropping it releases both (the `flock` goes with the file).
pub struct DeviceGuard<'a> {
    locks: &'a DeviceLocks,
    address: PciAddress,
    file: Option<File>,
}

impl Drop for DeviceGuard<'_> {
    fn drop(&mut self) {
        // Release the flock (close the file) before letting the next thread in.
        self.file = None;
        let mut held = self.locks.held.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(&self.address);
        self.locks.released.notify_all();
    }
}

impl DeviceLocks {
    /// Locks `address` for the calling thread: first in-process (waiting as long as the other
    /// thread needs), then `LOCK_DIR/ADDRESS.lock` with `flock` (waiting up to `timeout`, then
    /// `Busy`).
    pub fn lock(
        &self,
        lock_dir: &Path,
        address: &PciAddress,
        timeout: Duration,
    ) -> Result<DeviceGuard<'_>> {
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            while held.contains(address) {
                held = self.released.wait(held).unwrap_or_else(|e| e.into_inner());
            }
            held.insert(*address);
        }
        // From here on, dropping the guard releases the in-process lock on every path.
        let mut guard = DeviceGuard {
            locks: self,
            address: *address,
            file: None,
        };

        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(lock_dir)
            .map_err(|e| Error::io("creating the lock directory", lock_dir, e))?;
        let path = lock_dir.join(format!("{address}.lock"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| Error::io("opening the device's lock file", &path, e))?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(Error::io("locking the device", &path, err));
            }
            if start.elapsed() >= timeout {
                return Err(Error::Busy(format!(
                    "{address} is locked by another process ({} held for over {:?})",
                    path.display(),
                    timeout
                )));
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
        guard.file = Some(file);
        Ok(guard)
    }
}
