//! The one error type of the core. The C layer maps each variant to a `pcibind_error` code in
//! one place (`ffi::code_of`).

use std::io;
use std::path::PathBuf;

use crate::types::address::PciAddress;
use crate::types::name::DriverName;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad argument: a malformed name, a bad flag, a missing value.
    #[error("invalid argument: {0}")]
    InvalidArg(String),

    #[error("invalid PCI address {input}: {reason}")]
    InvalidAddress { input: String, reason: &'static str },

    #[error("no PCI device {address} (looked for {})", path.display())]
    NoDevice { address: PciAddress, path: PathBuf },

    /// The device disappeared while it was being moved or checked (hot removal, SPEC 3.13):
    /// nothing more was written for it; `detail` says what happened to the others.
    #[error("{address} disappeared during the operation{detail}")]
    Vanished { address: PciAddress, detail: String },

    /// The name resolves to no PCI driver; the message says what was looked for and where.
    #[error("{0}")]
    NoDriver(String),

    /// modprobe could not be run, or failed; `detail` carries its exit status and stderr.
    #[error("loading module '{module}' failed: {detail}")]
    ModuleLoad { module: String, detail: String },

    /// An unexpected OS error while doing `step` on `path`.
    #[error("{step}: {}: {source}", path.display())]
    Io {
        step: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A link in the tree leads outside the sysfs root (or loops): refused, never followed.
    #[error("{step}: {}: a link there leads outside the sysfs root; refusing to follow it", path.display())]
    Escape { step: &'static str, path: PathBuf },

    /// A sysfs attribute whose content is not what the kernel writes there.
    #[error("unexpected content in {}: {detail}", path.display())]
    Malformed { path: PathBuf, detail: String },

    /// The kernel did not bind; the device was restored to where it was (and `errno` is the
    /// kernel's answer to the step that failed, or 0).
    #[error("{address}: {message}")]
    Bind {
        address: PciAddress,
        message: String,
        errno: i32,
    },

    /// Binding failed and so did restoring; the message says where the device is now.
    #[error("{address}: {message}")]
    Restore {
        address: PciAddress,
        message: String,
        errno: i32,
    },

    /// A safety check refused the move: the device is in use on the host ([`Check::InUse`]),
    /// an SR-IOV PF whose VFs are in the way ([`Check::Sriov`]), or a host-bound bridge in the
    /// group ([`Check::GroupBridge`]). The message names no API: managers show it to users.
    #[error("{address} is in use on the host: {reason}")]
    InUse {
        address: PciAddress,
        reason: String,
        check: Check,
    },

    /// A forced move whose write still waits in the kernel for a VMM to let go of the device
    /// (the C API's PCIBIND_ERR_IN_USE): forcing was already done, so the message offers none.
    #[error("{address} is held by a VMM: {reason}")]
    HeldByVmm { address: PciAddress, reason: String },

    /// The target driver does not claim the device ([`Check::Claims`]), or is not the VFIO
    /// driver that was required ([`Check::RequireVfio`]).
    #[error("PCI driver '{driver}' does not claim {address}: {detail}")]
    NotClaimed {
        address: PciAddress,
        driver: DriverName,
        detail: String,
        check: Check,
    },

    /// The device cannot do what was asked: it is not on a VFIO driver, has no IOMMU group, no
    /// SR-IOV.
    #[error("{address}: {detail}")]
    Unsupported { address: PciAddress, detail: String },

    /// A lock could not be taken in time.
    #[error("{0}")]
    Busy(String),

    /// A bug: a caught panic, or a state the code says cannot happen.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The checks a move runs before it writes anything (SPEC 3.3 step 5), as the errors name the
/// one that refused it. The first three can be skipped one at a time
/// ([`crate::BindOptions`]); the last two cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The device is in use on the host (or a VMM holds it).
    InUse,
    /// The target driver does not claim the device.
    Claims,
    /// An SR-IOV PF whose VFs are in the way.
    Sriov,
    /// A bridge of the group is on a host driver (a group move; never skipped).
    GroupBridge,
    /// The target was required to be a VFIO driver and is not (never skipped).
    RequireVfio,
}

/// Longest piece of user input quoted in a message, in characters.
const MAX_QUOTED: usize = 80;

/// `input` as a message quotes it: escaped like a Rust string, and cut to a sane length with
/// its full size said, so a 1 MiB bad name does not become a 1 MiB message.
pub(crate) fn quote(input: &str) -> String {
    let chars = input.chars().count();
    if chars <= MAX_QUOTED {
        return format!("{input:?}");
    }
    let head: String = input.chars().take(MAX_QUOTED).collect();
    format!("{head:?}... ({} bytes)", input.len())
}

impl Error {
    pub(crate) fn io(step: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        if source.raw_os_error() == Some(libc::EXDEV) {
            return Error::Escape {
                step,
                path: path.into(),
            };
        }
        Error::Io {
            step,
            path: path.into(),
            source,
        }
    }

    /// The OS error number behind this error, or 0. Never 0 for the errors the C API reports
    /// as `PCIBIND_ERR_IO`: an I/O error that carries no OS error (a link naming an invalid
    /// driver, say) reports EINVAL for bad data and EIO otherwise.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(match source.kind() {
                io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput => libc::EINVAL,
                _ => libc::EIO,
            }),
            Error::NoDevice { .. } | Error::Vanished { .. } => libc::ENODEV,
            Error::Malformed { .. } => libc::EINVAL,
            Error::Escape { .. } => libc::EXDEV,
            Error::Bind { errno, .. } | Error::Restore { errno, .. } => *errno,
            Error::Busy(_) => libc::EWOULDBLOCK,
            _ => 0,
        }
    }
}
