//! Running one operation on each device of a command: one report line per device (in the
//! order given, also when the devices are done in parallel), a summary, and the status of the
//! worst failure.

use std::io::{self, IsTerminal};
use std::sync::atomic::{AtomicUsize, Ordering};

use pcibind::Error;

use crate::exit::{override_hint, status_of, worse};

/// Counts of one command's outcomes and the status of the worst failure.
#[derive(Default)]
pub(crate) struct Tally {
    done: usize,
    failed: usize,
    status: u8,
}

impl Tally {
    /// Reports one device's outcome: a line on stdout, or the error on stderr.
    fn report(&mut self, address: &str, outcome: Result<String, Error>) {
        match outcome {
            Ok(what) => {
                self.done += 1;
                println!("{address}: {what}");
            }
            Err(e) => {
                self.failed += 1;
                eprintln!("pcibind: {address}: {e}{}", override_hint(&e));
                self.status = worse(self.status, status_of(&e));
            }
        }
    }

    /// The summary line (for more than one device) and the status.
    fn finish(self, total: usize) -> u8 {
        if total > 1 {
            println!(
                "{total} devices: {} done, {} failed",
                self.done, self.failed
            );
        }
        self.status
    }
}

/// Runs `op` on each address, reporting one line per device and a summary; the status of the
/// worst failure.
pub(crate) fn each(
    addresses: &[String],
    verb: &str,
    op: impl Fn(&str) -> Result<String, Error>,
) -> u8 {
    let tty = io::stderr().is_terminal();
    let mut tally = Tally::default();
    for address in addresses {
        if tty && addresses.len() > 1 {
            eprint!("{verb} {address} ...\r");
        }
        tally.report(address, op(address));
    }
    tally.finish(addresses.len())
}

/// Most threads `each_in_parallel` runs.
const MAX_WORKERS: usize = 16;

/// `each`, with the devices done in parallel threads (a context is thread-safe and the kernel
/// locks per device); the reports come in the order of the addresses, each as soon as it and
/// those before it are done.
pub(crate) fn each_in_parallel(
    addresses: &[String],
    verb: &str,
    op: impl Fn(&str) -> Result<String, Error> + Sync,
) -> u8 {
    if addresses.len() < 2 {
        return each(addresses, verb, op);
    }
    let workers = std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .clamp(2, MAX_WORKERS)
        .min(addresses.len());
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut tally = Tally::default();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, op) = (&next, &op);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(address) = addresses.get(i) else {
                    break;
                };
                if tx.send((i, op(address))).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut pending = std::collections::BTreeMap::new();
        let mut reported = 0;
        for (i, outcome) in rx {
            pending.insert(i, outcome);
            while let Some(outcome) = pending.remove(&reported) {
                tally.report(&addresses[reported], outcome);
                reported += 1;
            }
        }
    });
    tally.finish(addresses.len())
}
