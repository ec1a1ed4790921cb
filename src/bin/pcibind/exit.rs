//! Exit statuses (the table in `pcibind --help`) and how errors reach stderr: the status of
//! each `Error`, which of several is the worst, and the options the tool names in a refusal.

use pcibind::{Check, Error};

/// The exit status of an error (documented in AFTER_HELP), and how bad it is among several.
pub(crate) fn status_of(err: &Error) -> u8 {
    match err {
        Error::InvalidArg(_) | Error::InvalidAddress { .. } => 2,
        Error::NoDevice { .. } | Error::Vanished { .. } => 3,
        Error::NoDriver(_) => 4,
        Error::ModuleLoad { .. } => 5,
        Error::Bind { .. } => 6,
        Error::Restore { .. } => 7,
        Error::InUse { .. } | Error::HeldByVmm { .. } => 8,
        Error::NotClaimed { .. } => 9,
        Error::Busy(_) => 10,
        _ => 11,
    }
}

/// What the tool adds to a safety check's refusal: the options that skip that check (the
/// library's messages name none, since managers show them to their users as they are).
pub(crate) fn override_hint(e: &Error) -> &'static str {
    let check = match e {
        Error::InUse { check, .. } | Error::NotClaimed { check, .. } => *check,
        _ => return "",
    };
    match check {
        Check::InUse => " (--allow in-use or --force overrides this check)",
        Check::Sriov => " (--allow sriov or --force overrides this check)",
        Check::Claims => " (--allow unclaimed or --force overrides this check)",
        Check::GroupBridge | Check::RequireVfio => "",
    }
}

/// The worse of two statuses.
pub(crate) fn worse(a: u8, b: u8) -> u8 {
    if severity(b) > severity(a) {
        b
    } else {
        a
    }
}

/// Refuses a command before it changed anything: each error on stderr, and the status of the
/// worst.
pub(crate) fn refuse(errors: Vec<Error>) -> u8 {
    let mut status = 0;
    for e in &errors {
        eprintln!("pcibind: {e}{}", override_hint(e));
        status = worse(status, status_of(e));
    }
    eprintln!("pcibind: nothing was changed");
    status
}

pub(crate) fn severity(status: u8) -> u8 {
    // A device left somewhere unknown first, then unexpected errors, then the rest.
    match status {
        7 => 100,
        11 => 90,
        0 => 0,
        s => s,
    }
}
