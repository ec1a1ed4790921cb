//! Logging through a caller-supplied sink with syslog priorities, silent by default (like
//! libkmod's `kmod_set_log_fn`).

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;

/// syslog priorities (`LOG_ERR` .. `LOG_DEBUG`); lower is more severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(i32)]
pub enum Priority {
    Err = 3,
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

pub type Sink = Arc<dyn Fn(Priority, &str) + Send + Sync>;

/// Where log messages go: a sink and the least severe priority it wants.
#[derive(Clone, Default)]
pub struct Logger {
    sink: Option<(Sink, i32)>,
}

impl Logger {
    /// A logger delivering messages of priority `max_priority` or more severe to `sink`.
    pub fn new(sink: Sink, max_priority: i32) -> Logger {
        Logger {
            sink: Some((sink, max_priority)),
        }
    }

    pub fn enabled(&self, priority: Priority) -> bool {
        matches!(&self.sink, Some((_, max)) if priority as i32 <= *max)
    }

    /// Formats and delivers the message only when someone listens at that priority: one
    /// delivery per line (a message that carries, say, modprobe's stderr may have several).
    /// While this thread holds a guard of [`Logger::defer`], the lines are kept and delivered
    /// when the last such guard is dropped.
    pub fn log(&self, priority: Priority, message: fmt::Arguments<'_>) {
        let Some((sink, max)) = &self.sink else {
            return;
        };
        if priority as i32 > *max {
            return;
        }
        let text = message.to_string();
        let deferred = DEFERRED.with(|d| {
            let mut d = d.borrow_mut();
            if d.depth == 0 {
                return false;
            }
            for line in text.lines() {
                d.lines.push((Arc::clone(sink), priority, line.to_owned()));
            }
            true
        });
        // Delivered with no borrow held: the callback may call into the library, which logs.
        if !deferred {
            for line in text.lines() {
                sink(priority, line);
            }
        }
    }

    /// Holds back this thread's log deliveries until the returned guard (and every other one
    /// on this thread) is dropped. Taken before any internal lock, and so dropped after it:
    /// the callback never runs while the library holds a lock, and may call back into it.
    pub fn defer(&self) -> Deferral {
        DEFERRED.with(|d| d.borrow_mut().depth += 1);
        Deferral(())
    }
}

#[derive(Default)]
struct Deferred {
    depth: usize,
    lines: Vec<(Sink, Priority, String)>,
}

thread_local! {
    static DEFERRED: RefCell<Deferred> = RefCell::default();
}

/// See [`Logger::defer`].
#[must_use = "log lines are held back only while the deferral lives"]
pub struct Deferral(());

impl Drop for Deferral {
    fn drop(&mut self) {
        let lines = DEFERRED.with(|d| {
            let mut d = d.borrow_mut();
            d.depth -= 1;
            if d.depth == 0 {
                std::mem::take(&mut d.lines)
            } else {
                Vec::new()
            }
        });
        // Delivered with no borrow held: a callback may log through the library again.
        for (sink, priority, line) in lines {
            sink(priority, &line);
        }
    }
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.sink {
            Some((_, max)) => write!(f, "Logger(max_priority={max})"),
            None => f.write_str("Logger(silent)"),
        }
    }
}
