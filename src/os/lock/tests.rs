//! The per-device locks: in one process, across processes, against hostile lock directories
//! and files, with the record kept in them.

use super::*;
use std::os::unix::fs::{chown, symlink};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

fn addr(s: &str) -> PciAddress {
    PciAddress::parse(s).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
}

/// An unprivileged uid and gid for the ownership tests, which only root can set up.
fn other_user() -> Option<(u32, u32)> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        Some((65534, 65534))
    } else {
        eprintln!("not root: cannot give a file to another user; skipped");
        None
    }
}

/// Another process's hold on a device's lock file: its own open file description.
fn hold_as_another_process(path: &Path) -> File {
    let other = OpenOptions::new().read(true).open(path).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX) }, 0);
    other
}

fn expect_refused<T>(result: Result<T>, what: &str) {
    match result {
        Err(e @ Error::Io { .. }) => {
            assert_eq!(e.errno(), libc::EPERM, "{e}");
            assert!(e.to_string().contains(what), "{e}");
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("took a lock through {what}"),
    }
}

/// Threads locking the same device never overlap; other devices are not held up.
#[test]
fn one_holder_per_device() {
    let dir = tempfile::tempdir().unwrap();
    let locks = Arc::new(DeviceLocks::default());
    let inside = Arc::new(AtomicUsize::new(0));
    let a = addr("0000:01:00.0");
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
    let b = addr("0000:02:00.0");
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
    let a = addr("0000:01:00.0");
    let locks = DeviceLocks::default();
    drop(locks.lock(dir.path(), &a, DEFAULT_LOCK_TIMEOUT).unwrap());
    let other = hold_as_another_process(&dir.path().join("0000:01:00.0.lock"));
    let start = Instant::now();
    match locks.lock(dir.path(), &a, Duration::from_millis(200)) {
        Err(Error::Busy(msg)) => {
            assert!(
                msg.contains("0000:01:00.0") && msg.contains("another process"),
                "{msg}"
            )
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("took a lock another holder has"),
    }
    assert!(start.elapsed() >= Duration::from_millis(200));
    drop(other);
    assert!(locks
        .lock(dir.path(), &a, Duration::from_millis(50))
        .is_ok());
}

/// The directory is created 0700 (with any missing parents) and lock files 0600, so no
/// other user can open one.
#[test]
fn new_lock_dir_and_files_are_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run/pcibind");
    let locks = DeviceLocks::default();
    drop(
        locks
            .lock(&dir, &addr("0000:01:00.0"), DEFAULT_LOCK_TIMEOUT)
            .unwrap(),
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("0000:01:00.0.lock")), 0o600);
}

/// What 0.1 left behind (a 0755 directory, 0644 lock files) is made private on first use.
#[test]
fn open_dir_and_files_left_by_0_1_are_made_private() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("locks");
    fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o755);
    let file = dir.join("0000:01:00.0.lock");
    fs::write(&file, "").unwrap();
    set_mode(&file, 0o644);
    let locks = DeviceLocks::default();
    drop(
        locks
            .lock(&dir, &addr("0000:01:00.0"), DEFAULT_LOCK_TIMEOUT)
            .unwrap(),
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&file), 0o600);
}

/// A directory that holds other files is never chmod-ed: used as is when no other user can
/// write to it, refused when one can.
#[test]
fn shared_directory_is_used_only_when_others_cannot_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shared");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("README"), "not a lock").unwrap();
    let locks = DeviceLocks::default();
    let a = addr("0000:01:00.0");

    set_mode(&dir, 0o755);
    drop(locks.lock(&dir, &a, DEFAULT_LOCK_TIMEOUT).unwrap());
    assert_eq!(mode(&dir), 0o755);
    assert_eq!(mode(&dir.join("0000:01:00.0.lock")), 0o600);

    set_mode(&dir, 0o1777);
    expect_refused(
        locks.lock(&dir, &a, DEFAULT_LOCK_TIMEOUT),
        "writable by other users",
    );
    assert_eq!(mode(&dir), 0o1777);
}

/// Symbolic links are never followed, neither as the directory nor as a lock file.
#[test]
fn symbolic_links_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    set_mode(&real, 0o700);
    let link = tmp.path().join("link");
    symlink(&real, &link).unwrap();
    let locks = DeviceLocks::default();
    let a = addr("0000:01:00.0");
    expect_refused(locks.lock(&link, &a, DEFAULT_LOCK_TIMEOUT), "symbolic link");

    let target = tmp.path().join("target");
    fs::write(&target, "precious").unwrap();
    set_mode(&target, 0o644);
    symlink(&target, real.join("0000:01:00.0.lock")).unwrap();
    expect_refused(locks.lock(&real, &a, DEFAULT_LOCK_TIMEOUT), "symbolic link");
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
    assert_eq!(mode(&target), 0o644);
}

/// A directory or lock file of another user is refused, not used and not repaired.
#[test]
fn another_users_directory_or_file_is_refused() {
    let Some((uid, gid)) = other_user() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let locks = DeviceLocks::default();
    let a = addr("0000:01:00.0");

    let theirs = tmp.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    set_mode(&theirs, 0o700);
    chown(&theirs, Some(uid), Some(gid)).unwrap();
    expect_refused(
        locks.lock(&theirs, &a, DEFAULT_LOCK_TIMEOUT),
        "another user",
    );

    let ours = tmp.path().join("ours");
    fs::create_dir(&ours).unwrap();
    let planted = ours.join("0000:01:00.0.lock");
    fs::write(&planted, "").unwrap();
    set_mode(&planted, 0o644);
    chown(&planted, Some(uid), Some(gid)).unwrap();
    expect_refused(locks.lock(&ours, &a, DEFAULT_LOCK_TIMEOUT), "another user");
    assert_eq!(mode(&planted), 0o644);
    assert_eq!(fs::metadata(&planted).unwrap().uid(), uid);
}

/// A thread waiting for another thread of the process gives up at the timeout.
#[test]
fn in_process_waiter_gives_up_after_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let locks = Arc::new(DeviceLocks::default());
    let a = addr("0000:01:00.0");
    let held = locks.lock(dir.path(), &a, DEFAULT_LOCK_TIMEOUT).unwrap();
    let (tx, rx) = mpsc::channel();
    let (waiter_locks, path) = (locks.clone(), dir.path().to_owned());
    thread::spawn(move || {
        let start = Instant::now();
        let result = waiter_locks
            .lock(&path, &a, Duration::from_millis(300))
            .map(drop);
        let _ = tx.send((result, start.elapsed()));
    });
    let answer = rx.recv_timeout(Duration::from_secs(10));
    drop(held);
    let (result, waited) = answer.expect("the waiter was still waiting after 10 s");
    match result {
        Err(Error::Busy(msg)) => assert!(msg.contains("another thread"), "{msg}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

/// Timeout 0 fails at once, whether a thread or another process holds the lock.
#[test]
fn zero_timeout_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let locks = Arc::new(DeviceLocks::default());
    let a = addr("0000:01:00.0");
    let held = locks.lock(dir.path(), &a, DEFAULT_LOCK_TIMEOUT).unwrap();
    let (tx, rx) = mpsc::channel();
    let (waiter_locks, path) = (locks.clone(), dir.path().to_owned());
    thread::spawn(move || {
        let start = Instant::now();
        let result = waiter_locks.lock(&path, &a, Duration::ZERO).map(drop);
        let _ = tx.send((result, start.elapsed()));
    });
    let answer = rx.recv_timeout(Duration::from_secs(10));
    drop(held);
    let (result, waited) = answer.expect("the waiter was still waiting after 10 s");
    assert!(matches!(result, Err(Error::Busy(_))), "{result:?}");
    assert!(waited < Duration::from_millis(100), "{waited:?}");

    let other = hold_as_another_process(&dir.path().join("0000:01:00.0.lock"));
    let start = Instant::now();
    match locks.lock(dir.path(), &a, Duration::ZERO) {
        Err(Error::Busy(msg)) => assert!(msg.contains("lock timeout is 0"), "{msg}"),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("took a lock another holder has"),
    }
    assert!(start.elapsed() < Duration::from_millis(100));
    drop(other);
    assert!(locks.lock(dir.path(), &a, Duration::ZERO).is_ok());
}

/// Several devices' locks share one deadline: a unit whose members are all held by another
/// process gives up after the timeout once, not once per member.
#[test]
fn one_deadline_covers_every_device_of_a_call() {
    let dir = tempfile::tempdir().unwrap();
    let locks = DeviceLocks::default();
    let members: Vec<PciAddress> = ["0000:01:00.0", "0000:01:00.1", "0000:01:00.2"]
        .iter()
        .map(|a| addr(a))
        .collect();
    // Free the first: it is taken, then the others are each held by another holder.
    drop(
        locks
            .lock(dir.path(), &members[1], DEFAULT_LOCK_TIMEOUT)
            .unwrap(),
    );
    drop(
        locks
            .lock(dir.path(), &members[2], DEFAULT_LOCK_TIMEOUT)
            .unwrap(),
    );
    let held: Vec<File> = members[1..]
        .iter()
        .map(|a| hold_as_another_process(&dir.path().join(format!("{a}.lock"))))
        .collect();
    let start = Instant::now();
    let deadline = Deadline::after(Duration::from_millis(300));
    let result = locks
        .lock_in_order(dir.path(), &members, &deadline)
        .map(drop);
    let waited = start.elapsed();
    drop(held);
    assert!(matches!(result, Err(Error::Busy(_))), "{result:?}");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    // Not 600 ms (the timeout again for the third member).
    assert!(waited < Duration::from_millis(550), "{waited:?}");
    // Nothing stays held: the first member is free again.
    assert!(locks.lock(dir.path(), &members[0], Duration::ZERO).is_ok());
}

/// The record goes with the lock file: written, read back, removed.
#[test]
fn the_record_lives_in_the_lock_file() {
    let dir = tempfile::tempdir().unwrap();
    let locks = DeviceLocks::default();
    let a = addr("0000:01:00.0");
    let guard = locks.lock(dir.path(), &a, DEFAULT_LOCK_TIMEOUT).unwrap();
    assert_eq!(guard.read_record().unwrap(), "");
    guard.write_record("pcibind-record 1\nlong line\n").unwrap();
    guard.write_record("pcibind-record 1\n").unwrap();
    assert_eq!(guard.read_record().unwrap(), "pcibind-record 1\n");
    let found = find_records(dir.path()).unwrap();
    assert_eq!(found.len(), 1);
    assert!(found[0].running, "held by this guard");
    drop(guard);
    let found = find_records(dir.path()).unwrap();
    assert!(!found[0].running, "nobody holds it: interrupted");
    let guard = locks.lock(dir.path(), &a, DEFAULT_LOCK_TIMEOUT).unwrap();
    guard.write_record("").unwrap();
    assert!(find_records(dir.path()).unwrap().is_empty());
    assert!(find_records(&dir.path().join("missing"))
        .unwrap()
        .is_empty());
}

/// The timeout is one deadline for both waits: time spent waiting for a thread is not
/// granted again for the other process's flock.
#[test]
fn one_deadline_covers_both_waits() {
    let dir = tempfile::tempdir().unwrap();
    let locks = Arc::new(DeviceLocks::default());
    let a = addr("0000:01:00.0");
    drop(locks.lock(dir.path(), &a, DEFAULT_LOCK_TIMEOUT).unwrap());
    // Another process holds the flock, and a thread of ours the in-process lock (taken
    // by hand: a guard would hold the flock too).
    let other = hold_as_another_process(&dir.path().join("0000:01:00.0.lock"));
    locks.held.lock().unwrap().insert(a);
    let (waiter_locks, path) = (locks.clone(), dir.path().to_owned());
    let waiter = thread::spawn(move || {
        let start = Instant::now();
        let result = waiter_locks
            .lock(&path, &a, Duration::from_millis(800))
            .map(drop);
        (result, start.elapsed())
    });
    thread::sleep(Duration::from_millis(500));
    locks.held.lock().unwrap().remove(&a);
    locks.released.notify_all();
    let (result, waited) = waiter.join().unwrap();
    drop(other);
    match result {
        Err(Error::Busy(msg)) => assert!(msg.contains("another process"), "{msg}"),
        other => panic!("expected Busy, got {other:?}"),
    }
    assert!(waited >= Duration::from_millis(800), "{waited:?}");
    assert!(waited < Duration::from_millis(1200), "{waited:?}");
}
