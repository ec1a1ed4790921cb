//! Per-device serialization: a mutex per device inside the process, and an advisory `flock`
//! on a file per device in the lock directory across processes. Only the device being changed
//! is locked, so a slow unbind of one device never holds up another.
//!
//! One deadline covers both waits (SPEC 3.5). The lock directory and its files belong to the
//! process's effective user and to nobody else: were a lock file readable by another user, that
//! user could open it, take the `flock` and hold every bind of the device up for good.
//!
//! What is found in place is checked, never trusted (a directory or file left by an older
//! version, or planted):
//! - the directory is opened without following a symbolic link and must be a directory of
//!   our effective uid; when it is open to others (0.1 created it 0755) and holds nothing but
//!   lock files, its mode is set to 0700; when it holds other files as well it is used as is
//!   if no other user can write to it (an administrator's choice of a shared directory: the
//!   lock files in it are 0600 all the same), and refused otherwise;
//! - a lock file is opened relative to that directory with `O_NOFOLLOW` (a symbolic link is
//!   refused) and must be a regular file of our effective uid; a mode other than 0600 (0.1
//!   made them 0644) is set to 0600. A file of another user is refused, not removed:
//!   removing a lock file another process may hold would let two holders in.
//!
//! A refusal is an `Error::Io` with `EPERM` (`PCIBIND_ERR_IO`): waiting would not help, an
//! administrator has to remove what is in the way. A file that another process opened while
//! it was still 0644 stays open to it after the repair; that only matters once, on the first
//! run after an upgrade from 0.1 without a reboot (`/run` is emptied at boot).

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::os::dirstream::DirStream;
use crate::os::record::MAX_RECORD;
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};

/// How long to wait for a device's lock, held by another thread or another process, before
/// giving up with `Busy`. Unbinding a GPU can take many seconds, so this is generous.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// The mode of the lock directory and of each lock file.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// The longest pause between two tries of a `flock` held by another process.
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// The devices locked by threads of this process, and a condition to wait on for one.
#[derive(Debug, Default)]
pub struct DeviceLocks {
    held: Mutex<HashSet<PciAddress>>,
    released: Condvar,
}

/// Holds a device's locks; dropping it releases both (the `flock` goes with the file). The
/// lock file also carries the record of the transaction in progress (`record.rs`), read and
/// written through the guard only: whoever holds the lock owns the record.
pub struct DeviceGuard<'a> {
    locks: &'a DeviceLocks,
    address: PciAddress,
    file: Option<File>,
    path: PathBuf,
}

impl DeviceGuard<'_> {
    pub fn address(&self) -> &PciAddress {
        &self.address
    }

    /// The lock file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn file(&self) -> Result<&File> {
        self.file
            .as_ref()
            .ok_or_else(|| Error::Internal("a device guard without its lock file".into()))
    }

    /// Another descriptor of the lock file, sharing its `flock`: the lock stays taken while
    /// it is open, after this guard is gone (an unbind still waiting in the kernel for a VMM
    /// keeps the device locked until it is done).
    pub fn keep_alive(&self) -> Result<File> {
        self.file()?
            .try_clone()
            .map_err(|e| Error::io("keeping the device's lock", &self.path, e))
    }

    /// The record the lock file holds: empty when no transaction is in progress (or a
    /// transaction left none). At most `MAX_RECORD` bytes are read: a longer one is malformed.
    pub fn read_record(&self) -> Result<String> {
        let file = self.file()?;
        let mut buf = vec![0u8; MAX_RECORD + 1];
        let mut len = 0;
        while len < buf.len() {
            // SAFETY: pread into the unused tail of a buffer we own.
            let n = unsafe {
                libc::pread(
                    file.as_raw_fd(),
                    buf[len..].as_mut_ptr().cast(),
                    buf.len() - len,
                    len as libc::off_t,
                )
            };
            match n {
                0 => break,
                n if n > 0 => len += n as usize,
                _ => {
                    let err = io::Error::last_os_error();
                    if err.raw_os_error() == Some(libc::EINTR) {
                        continue;
                    }
                    return Err(Error::io("reading the device's lock file", &self.path, err));
                }
            }
        }
        if len > MAX_RECORD {
            return Err(Error::Malformed {
                path: self.path.clone(),
                detail: format!("a transaction record longer than {MAX_RECORD} bytes"),
            });
        }
        buf.truncate(len);
        String::from_utf8(buf).map_err(|_| Error::Malformed {
            path: self.path.clone(),
            detail: "a transaction record that is not UTF-8".into(),
        })
    }

    /// Replaces the record with `text` (empty: removes it). The file is emptied first, so a
    /// death between the two leaves no record rather than a mix of two; a record is written
    /// before the transaction's first change, so there is nothing to roll back then. (The
    /// lock directory is on /run, a tmpfs: a written record is seen by every process at once,
    /// and a reboot, which forgets the kernel state it describes, forgets it too.)
    pub fn write_record(&self, text: &str) -> Result<()> {
        let file = self.file()?;
        let fail = |e| Error::io("writing the transaction record", &self.path, e);
        file.set_len(0).map_err(fail)?;
        if !text.is_empty() {
            std::os::unix::fs::FileExt::write_all_at(file, text.as_bytes(), 0).map_err(fail)?;
        }
        Ok(())
    }
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

/// When a call stops waiting for locks: one deadline for the whole call, however many devices'
/// locks it takes (SPEC 3.5), and the timeout it came from, for messages.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    at: Option<Instant>,
    timeout: Duration,
}

impl Deadline {
    /// `timeout` from now; `Duration::MAX` (or any time too far to say) never passes.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline {
            at: Instant::now().checked_add(timeout),
            timeout,
        }
    }

    /// Time left; `None` when it never passes.
    fn left(&self) -> Option<Duration> {
        self.at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }
}

/// How a wait that ran out is described: "gave up after 60s", or "lock timeout 0".
fn gave_up(timeout: Duration) -> String {
    if timeout.is_zero() {
        "not waiting: the lock timeout is 0".to_owned()
    } else {
        format!("gave up after {timeout:?}")
    }
}

/// A refusal of what was found in the lock directory.
fn refused(step: &'static str, path: &Path) -> Error {
    Error::io(step, path, io::Error::from_raw_os_error(libc::EPERM))
}

impl DeviceLocks {
    /// As [`DeviceLocks::lock_until`], both waits within `timeout` in all (zero: `Busy` at once
    /// when either is held; `Duration::MAX`: no limit).
    #[cfg(test)]
    pub fn lock(
        &self,
        lock_dir: &Path,
        address: &PciAddress,
        timeout: Duration,
    ) -> Result<DeviceGuard<'_>> {
        self.lock_until(lock_dir, address, &Deadline::after(timeout))
    }

    /// Locks `address` for the calling thread: first in-process, then `LOCK_DIR/ADDRESS.lock`
    /// with `flock`, both waits ending at `deadline` (`Busy` after it).
    pub fn lock_until(
        &self,
        lock_dir: &Path,
        address: &PciAddress,
        deadline: &Deadline,
    ) -> Result<DeviceGuard<'_>> {
        let timeout = deadline.timeout;
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            while held.contains(address) {
                held = match deadline.left() {
                    None => self.released.wait(held).unwrap_or_else(|e| e.into_inner()),
                    Some(left) => {
                        if left.is_zero() {
                            return Err(Error::Busy(format!(
                                "{address} is locked by another thread of this process ({})",
                                gave_up(timeout)
                            )));
                        }
                        self.released
                            .wait_timeout(held, left)
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                };
            }
            held.insert(*address);
        }
        // From here on, dropping the guard releases the in-process lock on every path.
        let mut guard = DeviceGuard {
            locks: self,
            address: *address,
            file: None,
            path: PathBuf::new(),
        };
        let dir = open_lock_dir(lock_dir)?;
        let (file, path) = open_lock_file(&dir, lock_dir, address)?;
        guard.path = path.clone();
        let mut pause = Duration::from_millis(1);
        loop {
            // SAFETY: flock on a file descriptor we own.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                break;
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EWOULDBLOCK) => {}
                Some(libc::EINTR) => continue,
                _ => return Err(Error::io("locking the device", &path, err)),
            }
            let left = deadline.left().unwrap_or(pause);
            if left.is_zero() {
                return Err(Error::Busy(format!(
                    "{address} is locked by another process (lock file {}; {})",
                    path.display(),
                    gave_up(timeout)
                )));
            }
            thread::sleep(pause.min(left));
            pause = (pause * 2).min(MAX_PAUSE);
        }
        guard.file = Some(file);
        Ok(guard)
    }
}

/// The lock directory, opened and checked (see the module's comment), created 0700 when it
/// does not exist.
fn open_lock_dir(lock_dir: &Path) -> Result<File> {
    let open = || {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(lock_dir)
    };
    let dir = match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(lock_dir)
                .map_err(|e| Error::io("creating the lock directory", lock_dir, e))?;
            open()
        }
        other => other,
    };
    let dir = dir.map_err(|e| {
        // O_NOFOLLOW with O_DIRECTORY answers ENOTDIR for a link, as for a file.
        let link = fs::symlink_metadata(lock_dir).is_ok_and(|m| m.file_type().is_symlink());
        if link {
            refused(
                "the lock directory is a symbolic link, which is refused",
                lock_dir,
            )
        } else {
            Error::io("opening the lock directory", lock_dir, e)
        }
    })?;
    let meta = dir
        .metadata()
        .map_err(|e| Error::io("checking the lock directory", lock_dir, e))?;
    // SAFETY: geteuid cannot fail.
    if meta.uid() != unsafe { libc::geteuid() } {
        return Err(refused(
            "the lock directory belongs to another user, which is refused",
            lock_dir,
        ));
    }
    if meta.mode() & 0o777 == DIR_MODE {
        return Ok(dir);
    }
    let only_locks = holds_only_lock_files(&dir)
        .map_err(|e| Error::io("reading the lock directory", lock_dir, e))?;
    if only_locks {
        // Ours, and nothing but lock files in it: made private (the umask may also have
        // taken bits from a directory just created).
        dir.set_permissions(Permissions::from_mode(DIR_MODE))
            .map_err(|e| Error::io("making the lock directory private", lock_dir, e))?;
    } else if meta.mode() & 0o022 != 0 {
        return Err(refused(
            "the lock directory is writable by other users and holds other files than lock \
             files, so its mode is not changed; it is refused",
            lock_dir,
        ));
    }
    Ok(dir)
}

/// True when the directory holds nothing but `*.lock` entries.
fn holds_only_lock_files(dir: &File) -> io::Result<bool> {
    let stream = DirStream::open_at(dir.as_raw_fd(), c".")?;
    while let Some(name) = stream.next_name() {
        if !name.to_bytes().ends_with(b".lock") {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `ADDRESS.lock` in the lock directory, opened (created 0600) and checked, and its path.
fn open_lock_file(dir: &File, lock_dir: &Path, address: &PciAddress) -> Result<(File, PathBuf)> {
    let name = format!("{address}.lock");
    let path = lock_dir.join(&name);
    let cname = CString::new(name).expect("an address has no NUL byte");
    // SAFETY: openat relative to a directory descriptor we own, with a NUL-terminated name;
    // the mode argument is read because of O_CREAT.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            cname.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY,
            FILE_MODE as libc::c_uint,
        )
    };
    if fd < 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ELOOP) => refused(
                "the device's lock file is a symbolic link, which is refused",
                &path,
            ),
            _ => Error::io("opening the device's lock file", &path, err),
        });
    }
    // SAFETY: a descriptor just opened, owned by nothing else.
    let file = unsafe { File::from_raw_fd(fd) };
    let meta = file
        .metadata()
        .map_err(|e| Error::io("checking the device's lock file", &path, e))?;
    if !meta.file_type().is_file() {
        return Err(refused(
            "the device's lock file is not a regular file, which is refused",
            &path,
        ));
    }
    // SAFETY: geteuid cannot fail.
    if meta.uid() != unsafe { libc::geteuid() } {
        return Err(refused(
            "the device's lock file belongs to another user, which is refused (remove it)",
            &path,
        ));
    }
    if meta.mode() & 0o777 != FILE_MODE {
        file.set_permissions(Permissions::from_mode(FILE_MODE))
            .map_err(|e| Error::io("making the device's lock file private", &path, e))?;
    }
    Ok((file, path))
}

impl DeviceLocks {
    /// Locks several devices, in address order, and holds them all. Every caller that holds
    /// more than one device's lock takes them in this order (a group's members; a PF and then
    /// its VFs, whose addresses follow the PF's), so two of them never wait for each other.
    /// All within one `deadline`: a unit of eight members waits at most the lock timeout in
    /// all, not eight times it.
    pub fn lock_in_order<'a>(
        &self,
        lock_dir: &Path,
        addresses: impl IntoIterator<Item = &'a PciAddress>,
        deadline: &Deadline,
    ) -> Result<Vec<DeviceGuard<'_>>> {
        let mut addresses: Vec<&PciAddress> = addresses.into_iter().collect();
        addresses.sort();
        addresses.dedup();
        addresses
            .into_iter()
            .map(|a| self.lock_until(lock_dir, a, deadline))
            .collect()
    }
}

/// A transaction record found in the lock directory without taking the lock: the device,
/// the record's text, and whether its transaction is still running (another holder has the
/// lock) rather than interrupted.
#[derive(Clone, Debug)]
pub struct FoundRecord {
    pub address: PciAddress,
    pub text: String,
    pub running: bool,
}

/// The records in the lock directory, in address order, for `status` and `recover`. A missing
/// directory holds none; lock files that are not ours (links, other users' files) are skipped,
/// as locking them is refused anyway. Waits for nothing: a lock held by another holder means
/// its transaction is running.
pub fn find_records(lock_dir: &Path) -> Result<Vec<FoundRecord>> {
    match fs::symlink_metadata(lock_dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("reading the lock directory", lock_dir, e)),
        Ok(m) if !m.is_dir() => {
            return Err(refused(
                "the lock directory is not a directory, which is refused",
                lock_dir,
            ))
        }
        Ok(_) => {}
    }
    let entries =
        fs::read_dir(lock_dir).map_err(|e| Error::io("reading the lock directory", lock_dir, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("reading the lock directory", lock_dir, e))?;
        let name = entry.file_name();
        let Some(address) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".lock"))
            .and_then(|a| PciAddress::parse(a).ok())
        else {
            continue;
        };
        let path = entry.path();
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(&path)
        else {
            continue;
        };
        // SAFETY: geteuid cannot fail.
        let ours = file
            .metadata()
            .is_ok_and(|m| m.file_type().is_file() && m.uid() == unsafe { libc::geteuid() });
        if !ours {
            continue;
        }
        let mut bytes = Vec::new();
        io::Read::read_to_end(
            &mut io::Read::take(&file, MAX_RECORD as u64 + 1),
            &mut bytes,
        )
        .map_err(|e| Error::io("reading the device's lock file", &path, e))?;
        if bytes.is_empty() {
            continue;
        }
        // SAFETY: flock on a descriptor we own; a shared lock is refused while a holder has
        // the exclusive one, and released at once when granted.
        let running = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } != 0;
        found.push(FoundRecord {
            address,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            running,
        });
    }
    found.sort_by_key(|f| f.address);
    Ok(found)
}

#[cfg(test)]
mod tests;
