//! Running one operation on each device of a command: one report per device (in the order
//! given, also when the devices are done in parallel), as a line of text or an object of a
//! JSON array (`--json`), a summary, and the status of the worst failure.

use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};

use pcibind::{Context, DriverName, Error, PciAddress};

use crate::exit::{failure_outcome, override_hint, status_of, worse};
use crate::output::{json_opt, json_str};

/// How a command reports its devices: a line each (and a summary), or a JSON array of one
/// object each (pcibind(1), JSON RESULTS), for which the context tells where a device that
/// failed is.
#[derive(Clone, Copy)]
pub(crate) enum Format<'a> {
    Text,
    Json(&'a Context),
}

impl<'a> Format<'a> {
    pub(crate) fn new(json: bool, ctx: &'a Context) -> Format<'a> {
        if json {
            Format::Json(ctx)
        } else {
            Format::Text
        }
    }
}

/// What an operation did to one device that it did not fail on.
pub(crate) struct Done {
    /// `moved`, `unchanged` or `planned` (the JSON results' vocabulary).
    pub outcome: &'static str,
    /// The driver the device is on after the call (`None`: unbound, or a plan's unknown).
    pub driver: Option<DriverName>,
    /// The report as text.
    pub line: String,
    /// A dry run's plan, one line each.
    pub plan: Option<Vec<String>>,
    /// A group operation's members moved (or, in a dry run, that would move).
    pub group_moved: Option<Vec<PciAddress>>,
}

impl Done {
    /// A device that is now where it was asked to be: `moved` when its driver changed.
    pub(crate) fn now_on(
        before: Option<&DriverName>,
        driver: Option<DriverName>,
        line: String,
    ) -> Done {
        Done {
            outcome: if before == driver.as_ref() {
                "unchanged"
            } else {
                "moved"
            },
            driver,
            line,
            plan: None,
            group_moved: None,
        }
    }

    /// A dry run: nothing changed; `driver` is where the device would end, when known.
    pub(crate) fn planned(driver: Option<DriverName>, plan: &pcibind::Plan) -> Done {
        Done {
            outcome: "planned",
            driver,
            line: crate::output::plan_text(plan.clone()),
            plan: Some(plan.lines.clone()),
            group_moved: None,
        }
    }
}

/// One device's JSON result object (keys always present, `null` when not applicable):
/// `error` is the code name of `error`, `message` what stderr says of it.
pub(crate) fn json_result(
    address: Option<&str>,
    outcome: &str,
    driver: Option<&DriverName>,
    error: Option<(&Error, &str)>,
    plan: Option<&[String]>,
    group_moved: Option<&[PciAddress]>,
) -> String {
    let array = |items: Vec<String>| format!("[{}]", items.join(", "));
    format!(
        "{{\"address\": {}, \"outcome\": {}, \"driver\": {}, \"error\": {}, \"message\": {}, \
         \"plan\": {}, \"group_moved\": {}}}",
        json_opt(address),
        json_str(outcome),
        json_opt(driver.map(|d| d.as_str())),
        json_opt(error.map(|(e, _)| crate::exit::code_name(e))),
        json_opt(error.map(|(_, message)| message)),
        plan.map_or("null".into(), |p| array(
            p.iter().map(|l| json_str(l)).collect()
        )),
        group_moved.map_or("null".into(), |m| {
            array(m.iter().map(|a| json_str(&a.to_string())).collect())
        }),
    )
}

/// Why a command is refused before it touches any device: the argument or device it is about
/// (`None`: the command as a whole), the error, the exit status it stands for, and the line
/// that says it on stderr.
pub(crate) struct Refusal {
    address: Option<String>,
    error: Error,
    status: u8,
    line: String,
}

impl Refusal {
    /// The line is the error with the options that would skip its check.
    pub(crate) fn new(address: Option<String>, error: Error, status: u8) -> Refusal {
        let line = format!("{error}{}", override_hint(&error));
        Refusal::with_line(address, line, error, status)
    }

    /// `line` is what stderr says of it.
    pub(crate) fn with_line(
        address: Option<String>,
        line: String,
        error: Error,
        status: u8,
    ) -> Refusal {
        Refusal {
            address,
            error,
            status,
            line,
        }
    }

    /// A refusal whose status is its error's.
    pub(crate) fn of(error: Error) -> Refusal {
        let status = status_of(&error);
        Refusal::new(None, error, status)
    }
}

/// Refuses a command before it changed anything: each refusal on stderr (and with JSON, an
/// array of one `refused` object each), "nothing was changed", and the status of the worst.
pub(crate) fn refuse(format: Format, refusals: Vec<Refusal>) -> u8 {
    let mut status = 0;
    let mut objects = Vec::new();
    for r in &refusals {
        eprintln!("pcibind: {}", r.line);
        status = worse(status, r.status);
        if let Format::Json(ctx) = format {
            let address = r.address.as_deref();
            let now = address.and_then(|a| ctx.current_driver(a).ok().flatten());
            let error = Some((&r.error, r.line.as_str()));
            let object = json_result(address, "refused", now.as_ref(), error, None, None);
            objects.push(format!("  {object}"));
        }
    }
    eprintln!("pcibind: nothing was changed");
    if let Format::Json(_) = format {
        crate::output::print_json_array(&mut io::stdout().lock(), &objects);
    }
    status
}

/// Counts of one command's outcomes and the status of the worst failure.
pub(crate) struct Tally<'a> {
    format: Format<'a>,
    done: usize,
    failed: usize,
    status: u8,
}

impl<'a> Tally<'a> {
    pub(crate) fn new(format: Format<'a>) -> Tally<'a> {
        Tally {
            format,
            done: 0,
            failed: 0,
            status: 0,
        }
    }

    /// Reports one device's outcome: a line on stdout, or the error on stderr; with JSON,
    /// the device's object too (the array opened before the first).
    pub(crate) fn report(&mut self, address: &str, outcome: Result<Done, Error>) {
        let json = match (&outcome, self.format) {
            (_, Format::Text) => None,
            (Ok(d), Format::Json(_)) => Some(json_result(
                Some(address),
                d.outcome,
                d.driver.as_ref(),
                None,
                d.plan.as_deref(),
                d.group_moved.as_deref(),
            )),
            (Err(e), Format::Json(ctx)) => {
                // Where the device is now, as far as it can be read.
                let now = ctx.current_driver(address).ok().flatten();
                let message = format!("{e}{}", override_hint(e));
                let error = Some((e, message.as_str()));
                let outcome = failure_outcome(e);
                Some(json_result(
                    Some(address),
                    outcome,
                    now.as_ref(),
                    error,
                    None,
                    None,
                ))
            }
        };
        let mut out = io::stdout().lock();
        if let Some(object) = json {
            let sep = if self.done + self.failed == 0 {
                "[\n"
            } else {
                ",\n"
            };
            let _ = write!(out, "{sep}  {object}");
            let _ = out.flush();
        }
        match outcome {
            Ok(done) => {
                self.done += 1;
                if let Format::Text = self.format {
                    let _ = writeln!(out, "{address}: {}", done.line);
                }
            }
            Err(e) => {
                self.failed += 1;
                eprintln!("pcibind: {address}: {e}{}", override_hint(&e));
                self.status = worse(self.status, status_of(&e));
            }
        }
    }

    /// The summary line (for more than one device), or the JSON array's end; the status.
    pub(crate) fn finish(self, total: usize) -> u8 {
        match self.format {
            Format::Json(_) if self.done + self.failed == 0 => println!("[]"),
            Format::Json(_) => println!("\n]"),
            Format::Text if total > 1 => println!(
                "{total} devices: {} done, {} failed",
                self.done, self.failed
            ),
            Format::Text => {}
        }
        self.status
    }
}

/// Runs `op` on each address, reporting each device and a summary as `format` says; the
/// status of the worst failure.
pub(crate) fn each(
    format: Format,
    addresses: &[String],
    verb: &str,
    op: impl Fn(&str) -> Result<Done, Error>,
) -> u8 {
    let tty = io::stderr().is_terminal();
    let mut tally = Tally::new(format);
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
    format: Format,
    addresses: &[String],
    verb: &str,
    op: impl Fn(&str) -> Result<Done, Error> + Sync,
) -> u8 {
    if addresses.len() < 2 {
        return each(format, addresses, verb, op);
    }
    let workers = std::thread::available_parallelism()
        .map_or(4, |n| n.get())
        .clamp(2, MAX_WORKERS)
        .min(addresses.len());
    let next = AtomicUsize::new(0);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut tally = Tally::new(format);
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
