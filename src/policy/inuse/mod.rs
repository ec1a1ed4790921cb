//! Is a device in use on the host? (SPEC 3.3 step 5; the shapes are SPEC 1, "What 'in use on
//! the host' looks like in sysfs".) One small function per shape, each giving the sentences
//! that end up in the refusal: network interfaces anywhere below the device, and the interfaces
//! above them; disks below it that the kernel says are held (`O_EXCL`, `blockdev`), named by
//! what holds them where the host lists it (mounted by number or by source, btrfs members,
//! swap, `holders/`); NVMe namespaces whose last live path is the device; framebuffers below
//! it, and the firmware's boot framebuffer inside its BARs. One file per shape: `network.rs`,
//! `storage.rs` (disks), `nvme.rs` (NVMe multipath), `display.rs`, and `vmm.rs` (a VMM holding
//! a device on a VFIO driver: no host use, asked apart); mediated devices and what could not
//! be read are here. The data model (what the tree says of a device's subtree, an
//! interface, a disk, an NVMe subsystem) is read by `subtree.rs` and the shape's own file.
//!
//! Could not look is not "not in use": whatever a check needs and cannot read (an interface's
//! flags, a disk's `holders/`, a proc table, the kernel's netlink answer) becomes a reason of
//! its own, naming what could not be read, so the device is refused unless forced. A proc file
//! that does not exist at all (`ENOENT`: a test tree without it, a kernel without the feature)
//! describes nothing and refuses nothing.
//!
//! Nothing here opens a file: sysfs is read through `Sysfs` (every path resolved beneath the
//! root); the proc files through `procfs`, under the configured proc root (`/proc` normally; a
//! fake tree's in tests); addresses and routes over netlink (`netlink`) when the proc root is
//! the real `/proc`, else from the tree's `net/route` and `net/if_inet6`; device
//! nodes under the dev root. Proc content is parsed field by field with `get`: an odd line is
//! skipped or read as far as it goes, never a panic.

use std::io;
use std::path::Path;

use crate::os::sysfs::Sysfs;
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::log::Logger;

mod display;
mod network;
mod nvme;
mod storage;
mod subtree;
#[cfg(test)]
mod tests;
pub(crate) mod vmm;

use display::{boot_framebuffer, framebuffers};
use network::network_below;
use nvme::nvme_multipath;
use storage::{disks_reasons, BlockDevice, Storage};
use subtree::{device_subtree, DeviceSubtree};

/// The ways a device is in use (SPEC 3.14's kinds, the C API's `PCIBIND_IN_USE_*` bits): a
/// set, since one device can be several at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InUseKinds(u32);

impl InUseKinds {
    /// A network interface below it carries the host's traffic.
    pub const NETWORK: InUseKinds = InUseKinds(1);
    /// A disk below it is mounted, swap, a btrfs member, or held.
    pub const STORAGE: InUseKinds = InUseKinds(2);
    /// It drives a framebuffer, or its BAR holds the boot framebuffer.
    pub const DISPLAY: InUseKinds = InUseKinds(4);
    /// A VMM holds it (its VFIO group or cdev open).
    pub const VMM: InUseKinds = InUseKinds(8);
    /// Anything else: mediated devices on it, a part of its subtree that could not be read.
    pub const OTHER: InUseKinds = InUseKinds(16);

    /// The bits, as the C API gives them.
    pub const fn bits(self) -> u32 {
        self.0
    }

    pub fn contains(self, other: InUseKinds) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds' names ("network", "storage", "display", "vmm", "other"), in bit order.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Self::NETWORK, "network"),
            (Self::STORAGE, "storage"),
            (Self::DISPLAY, "display"),
            (Self::VMM, "vmm"),
            (Self::OTHER, "other"),
        ]
        .into_iter()
        .filter(|(k, _)| self.contains(*k))
        .map(|(_, name)| name)
        .collect()
    }
}

impl std::ops::BitOr for InUseKinds {
    type Output = InUseKinds;
    fn bitor(self, rhs: InUseKinds) -> InUseKinds {
        InUseKinds(self.0 | rhs.0)
    }
}

/// How a device is in use: the kinds, and the reasons as one text (sentences joined with
/// "; "), what a refusal says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InUse {
    pub kinds: InUseKinds,
    pub reason: String,
}

/// How the device is in use on the host, or `None` when it is not. An NVMe controller that
/// is one of several live paths to an in-use namespace is not in use; `log` gets a warning
/// naming the namespace. A device that is gone when the checks end (removed while they walked
/// its subtree) is [`Error::NoDevice`], whatever the walk met. A VMM holding the device is
/// the caller's to ask (`Safety::in_use_now`).
pub(crate) fn in_use(
    sysfs: &Sysfs,
    proc_root: &Path,
    dev_root: &Path,
    log: &Logger,
    address: &PciAddress,
) -> Result<Option<InUse>> {
    let answer = reasons(sysfs, proc_root, dev_root, log, address);
    sysfs.require_device(address)?;
    let reasons = answer?;
    if reasons.is_empty() {
        return Ok(None);
    }
    Ok(Some(InUse {
        kinds: reasons
            .iter()
            .fold(InUseKinds::default(), |all, (kind, _)| all | *kind),
        reason: reasons
            .into_iter()
            .map(|(_, why)| why)
            .collect::<Vec<_>>()
            .join("; "),
    }))
}

/// [`in_use`]'s reason alone.
#[cfg(test)]
pub(crate) fn in_use_reason(
    sysfs: &Sysfs,
    proc_root: &Path,
    dev_root: &Path,
    log: &Logger,
    address: &PciAddress,
) -> Result<Option<String>> {
    Ok(in_use(sysfs, proc_root, dev_root, log, address)?.map(|u| u.reason))
}

fn reasons(
    sysfs: &Sysfs,
    proc_root: &Path,
    dev_root: &Path,
    log: &Logger,
    address: &PciAddress,
) -> Result<Vec<(InUseKinds, String)>> {
    let tree = device_subtree(sysfs, address)?;
    let tag = |kind: InUseKinds| move |why: String| (kind, why);
    let mut reasons: Vec<(InUseKinds, String)> = tree
        .unread
        .iter()
        .map(|what| could_not_read(&format!("{what} below it")))
        .map(tag(InUseKinds::OTHER))
        .collect();
    reasons.extend(
        network_below(sysfs, proc_root, &tree.interfaces)?
            .into_iter()
            .map(tag(InUseKinds::NETWORK)),
    );
    if !tree.disks.is_empty() || !tree.nvme_controllers.is_empty() {
        let storage = Storage::read(sysfs, proc_root)?;
        let mut found: Vec<String> = storage
            .unread
            .iter()
            .map(|what| could_not_read(what))
            .collect();
        // Hidden disks (multipath paths) cannot be opened; their namespace's disk is checked
        // by `nvme_multipath`.
        let disks: Vec<&BlockDevice> = tree.disks.iter().filter(|d| !d.hidden).collect();
        found.extend(disks_reasons(&disks, &storage, Some(dev_root)));
        found.extend(nvme_multipath(sysfs, &storage, dev_root, log, &tree)?);
        reasons.extend(found.into_iter().map(tag(InUseKinds::STORAGE)));
    }
    reasons.extend(
        framebuffers(&tree)
            .into_iter()
            .chain(boot_framebuffer(sysfs, proc_root, address)?)
            .map(tag(InUseKinds::DISPLAY)),
    );
    reasons.extend(mediated_devices(&tree).map(tag(InUseKinds::OTHER)));
    Ok(reasons)
}

/// Mediated devices made on the device (`mdev_supported_types/TYPE/devices/UUID`): each is a
/// vGPU or a queue slice that a guest or the host may be using, which unbinding the parent
/// driver destroys.
fn mediated_devices(tree: &DeviceSubtree) -> Option<String> {
    let shown: Vec<&str> = tree.mdevs.iter().take(4).map(String::as_str).collect();
    (!shown.is_empty()).then(|| {
        format!(
            "it has {} mediated device(s) ({}{}), which unbinding its driver would destroy",
            tree.mdevs.len(),
            shown.join(", "),
            if tree.mdevs.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        )
    })
}

/// The reason given for something a check needed and could not read.
fn could_not_read(what: &str) -> String {
    format!("could not read {what}, so cannot tell whether it is in use")
}

/// What an error says could not be read: "PATH (ERROR)" for an OS error. A link leading out of
/// the root is no failure to read but a hostile tree, and stays an error.
fn unread_of(e: Error) -> Result<String> {
    match e {
        Error::Io { path, source, .. } => Ok(format!("{} ({source})", path.display())),
        Error::Malformed { path, detail } => Ok(format!("{} ({detail})", path.display())),
        e => Err(e),
    }
}

/// True for an OS error that says the entry is not there (any more): `ENOENT`, `ENOTDIR` (a
/// file where a directory was), `ENODEV` (kernfs's answer for an attribute of a removed
/// device).
fn is_gone(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ENODEV)
    )
}

/// What an error says could not be read, for an `unread` list: "PATH: ERROR".
fn unread_detail(e: &Error) -> String {
    match e {
        Error::Io { path, source, .. } => format!("{}: {source}", path.display()),
        e => e.to_string(),
    }
}

/// True for an error that says there is no such entry (or a file where a directory would be).
fn not_found(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. }
        if source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(libc::ENOTDIR))
}
