//! Loaders that did not end when killed, reaped as they end by one thread of their own, which
//! runs only while there are some: a loader stuck in the kernel holds no caller, and ends as
//! a zombie that is reaped, not one that stays.

use std::process::Child;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

struct Reaper {
    children: Vec<Child>,
    /// A reaping thread runs (it ends, and clears this, once `children` is empty).
    running: bool,
}

static REAPER: Mutex<Reaper> = Mutex::new(Reaper {
    children: Vec::new(),
    running: false,
});

/// The longest pause between two looks at the loaders left: a loader stuck in the kernel
/// may stay so for minutes, or for good.
const MAX_PAUSE: Duration = Duration::from_secs(1);

fn lock() -> MutexGuard<'static, Reaper> {
    REAPER.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes `child` over: it is reaped once it ends.
pub(super) fn adopt(child: Child) {
    let mut reaper = lock();
    reaper.children.push(child);
    start(&mut reaper);
}

/// Starts the thread again if it could not be started when a loader was adopted.
pub(super) fn restart() {
    let mut reaper = lock();
    if !reaper.children.is_empty() {
        start(&mut reaper);
    }
}

fn start(reaper: &mut Reaper) {
    if !reaper.running {
        // Should no thread be had now, the next load tries again.
        reaper.running = thread::Builder::new()
            .name("pcibind-reaper".into())
            .spawn(reap)
            .is_ok();
    }
}

fn reap() {
    let mut pause = Duration::from_millis(10);
    loop {
        thread::sleep(pause);
        let mut reaper = lock();
        // Ended (reaped now), or no longer ours to wait for (reaped by someone else).
        reaper
            .children
            .retain_mut(|child| matches!(child.try_wait(), Ok(None)));
        if reaper.children.is_empty() {
            reaper.running = false;
            return;
        }
        drop(reaper);
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// How many adopted loaders are not reaped yet, and whether the thread runs.
#[cfg(test)]
pub(super) fn state() -> (usize, bool) {
    let reaper = lock();
    (reaper.children.len(), reaper.running)
}
