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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Threads locking the same device never overlap; other devices are not held up.
    #[test]
    fn one_holder_per_device() {
        let dir = tempfile::tempdir().unwrap();
        let locks = Arc::new(DeviceLocks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let a = PciAddress::parse("0000:01:00.0").unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (locks, inside, dir) = (locks.clone(), inside.clone(), dir.path().to_owned());
                thread::spawn(move || {
                    for _ in 0..50 {
                        let _g = locks.lock(&dir, &a, DEFAULT_LOCK_TIMEOUT).unwrap();
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        // Meanwhile another device locks at once.
        let b = PciAddress::parse("0000:02:00.0").unwrap();
        drop(
            locks
                .lock(dir.path(), &b, Duration::from_millis(100))
                .unwrap(),
        );
        for t in threads {
            t.join().unwrap();
        }
        assert!(dir.path().join("0000:01:00.0.lock").exists());
    }

    /// A lock held through another open file description (as another process would) makes
    /// the caller wait, then give up with Busy.
    #[test]
    fn busy_when_another_holder_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = PciAddress::parse("0000:01:00.0").unwrap();
        let path = dir.path().join("0000:01:00.0.lock");
        let other = File::create(&path).unwrap();
        // SAFETY: flock on a descriptor we own.
        assert_eq!(unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX) }, 0);
        let locks = DeviceLocks::default();
        match locks.lock(dir.path(), &a, Duration::from_millis(50)) {
            Err(Error::Busy(msg)) => assert!(msg.contains("0000:01:00.0")),
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("took a lock another holder has"),
        }
        drop(other);
        assert!(locks
            .lock(dir.path(), &a, Duration::from_millis(50))
            .is_ok());
    }
}
