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

pub(crate) fn severity(status: u8) -> u8 {
    // A device left somewhere unknown first, then unexpected errors, then the rest.
    match status {
        7 => 100,
        11 => 90,
        0 => 0,
        s => s,
    }
}

/// The name of an error's result code, as `include/pcibind.h` spells it after `PCIBIND_ERR_`
/// (the JSON results' `error`): a stable name a script can test, mapped here because the
/// library's core knows no C names. The same mapping as the C API's (`ffi/codes.rs`).
pub(crate) fn code_name(err: &Error) -> &'static str {
    match err {
        Error::InvalidArg(_) => "INVALID_ARG",
        Error::InvalidAddress { .. } => "INVALID_ADDRESS",
        Error::NoDevice { .. } | Error::Vanished { .. } => "NO_DEVICE",
        Error::NoDriver(_) => "NO_DRIVER",
        Error::ModuleLoad { .. } => "MODULE_LOAD",
        Error::Io { .. } | Error::Malformed { .. } | Error::Escape { .. } => "IO",
        Error::Bind { .. } => "BIND",
        Error::Restore { .. } => "RESTORE",
        Error::InUse { .. } | Error::HeldByVmm { .. } => "IN_USE",
        Error::NotClaimed { .. } => "NOT_CLAIMED",
        Error::Busy(_) => "BUSY",
        Error::Unsupported { .. } => "UNSUPPORTED",
        Error::Internal(_) => "INTERNAL",
    }
}

/// The JSON results' `outcome` of a failed device (pcibind(1), JSON RESULTS): `refused` when
/// nothing was changed (an argument, a check, the lock, the driver's module, a device that
/// cannot do it), `restored` when the kernel did not bind and the device was put back,
/// `failed` otherwise (not put back: the message says where it is; gone; an I/O error).
pub(crate) fn failure_outcome(err: &Error) -> &'static str {
    match err {
        Error::InvalidArg(_)
        | Error::InvalidAddress { .. }
        | Error::NoDevice { .. }
        | Error::NoDriver(_)
        | Error::ModuleLoad { .. }
        | Error::InUse { .. }
        | Error::HeldByVmm { .. }
        | Error::NotClaimed { .. }
        | Error::Busy(_)
        | Error::Unsupported { .. } => "refused",
        Error::Bind { .. } => "restored",
        Error::Restore { .. }
        | Error::Vanished { .. }
        | Error::Io { .. }
        | Error::Malformed { .. }
        | Error::Escape { .. }
        | Error::Internal(_) => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code name is one the C header defines, so a script's `IN_USE` means what a C
    /// caller's `PCIBIND_ERR_IN_USE` means.
    #[test]
    fn code_names_are_the_headers() {
        let header =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/pcibind.h"))
                .unwrap();
        let address = pcibind::PciAddress::parse("0000:01:00.0").unwrap();
        let path = std::path::PathBuf::from("/sys");
        let errors = [
            Error::InvalidArg(String::new()),
            Error::InvalidAddress {
                input: String::new(),
                reason: "",
            },
            Error::NoDevice {
                address,
                path: path.clone(),
            },
            Error::NoDriver(String::new()),
            Error::ModuleLoad {
                module: String::new(),
                detail: String::new(),
            },
            Error::Io {
                step: "",
                path: path.clone(),
                source: std::io::Error::from_raw_os_error(libc::EIO),
            },
            Error::Bind {
                address,
                message: String::new(),
                errno: 0,
            },
            Error::Restore {
                address,
                message: String::new(),
                errno: 0,
            },
            Error::InUse {
                address,
                reason: String::new(),
                check: Check::InUse,
            },
            Error::HeldByVmm {
                address,
                reason: String::new(),
            },
            Error::NotClaimed {
                address,
                driver: pcibind::DriverName::new("e1000e").unwrap(),
                detail: String::new(),
                check: Check::Claims,
            },
            Error::Vanished {
                address,
                detail: String::new(),
            },
            Error::Malformed {
                path: path.clone(),
                detail: String::new(),
            },
            Error::Escape {
                step: "",
                path: path.clone(),
            },
            Error::Busy(String::new()),
            Error::Unsupported {
                address,
                detail: String::new(),
            },
            Error::Internal(String::new()),
        ];
        for e in &errors {
            let name = format!("PCIBIND_ERR_{} ", code_name(e));
            assert!(header.contains(&name), "{name}");
        }
    }
}
