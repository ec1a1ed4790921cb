//! Logging through a caller-supplied sink with syslog priorities, silent by default (like
//! libkmod's `kmod_set_log_fn`).

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

    /// Formats and delivers the message only when someone listens at that priority.
    pub fn log(&self, priority: Priority, message: fmt::Arguments<'_>) {
        if let Some((sink, max)) = &self.sink {
            if priority as i32 <= *max {
                sink(priority, &message.to_string());
            }
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
