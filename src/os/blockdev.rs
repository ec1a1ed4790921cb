//! The kernel's own answer to "is this disk in use" (SPEC 1, "The kernel's own answer for
//! block devices"): open its node under the dev root with `O_EXCL` and close it at once.
//! `EBUSY` means something holds it exclusively: a mounted file system of any kind, swap,
//! device-mapper/md/bcache, a ZFS pool member, LIO's iblock backstore, a VM's disk opened
//! exclusively; most of these leave no other trace (no `holders/`, no mount naming the disk).
//!
//! The node is `DEV/block/MAJ:MIN` (udev's link) or else `DEV/NAME` (devtmpfs names nodes by
//! the device's `DEVNAME`). A node is trusted only when it is a block device numbered MAJ:MIN:
//! a stale node, a regular file or a character device is never opened (opening a tape
//! rewinds it). Read-only and non-blocking; the descriptor is closed at once.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What the kernel said about one block device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Exclusive {
    /// `EBUSY`: held exclusively, through the node at this path.
    Held(PathBuf),
    /// The exclusive open succeeded: nothing holds it.
    Free,
    /// No usable node (no dev root, no such node, a stale one) or no device behind it
    /// (`ENXIO`, `ENODEV`, `ENOMEDIUM`): the kernel was not asked.
    Unknown,
    /// The node could not be looked at or opened for another reason (`EACCES`, ...).
    Failed(String),
}

/// `MAJ:MIN` as the `dev` attribute writes it.
fn parse_dev(dev: &str) -> Option<(u32, u32)> {
    let (major, minor) = dev.trim().split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The candidate nodes of a block device numbered `dev` (`MAJ:MIN`) and named `devname`.
fn candidates(dev_root: &Path, dev: &str, devname: Option<&str>) -> Vec<PathBuf> {
    let mut out = vec![dev_root.join("block").join(dev)];
    out.extend(devname.map(|n| dev_root.join(n)));
    out
}

/// True when `meta` is a block device numbered `(major, minor)`.
fn is_the_device(meta: &fs::Metadata, (major, minor): (u32, u32)) -> bool {
    meta.file_type().is_block_device()
        && libc::major(meta.rdev()) == major
        && libc::minor(meta.rdev()) == minor
}

/// Asks the kernel whether the block device numbered `dev` (`MAJ:MIN`, from its `dev`
/// attribute) is held exclusively, through its node under `dev_root`.
pub(crate) fn exclusive(dev_root: &Path, dev: &str, devname: Option<&str>) -> Exclusive {
    let Some(number) = parse_dev(dev) else {
        return Exclusive::Unknown;
    };
    for node in candidates(dev_root, dev, devname) {
        match ask(&node, number) {
            Exclusive::Unknown => continue,
            answer => return answer,
        }
    }
    Exclusive::Unknown
}

fn gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR))
}

fn failed(node: &Path, e: io::Error) -> Exclusive {
    Exclusive::Failed(format!("{}: {e}", node.display()))
}

/// One node: looked at first (never opened unless it is the device), then opened.
fn ask(node: &Path, number: (u32, u32)) -> Exclusive {
    let before = match fs::metadata(node) {
        Ok(meta) => meta,
        Err(e) if gone(&e) => return Exclusive::Unknown,
        Err(e) => return failed(node, e),
    };
    if !is_the_device(&before, number) {
        return Exclusive::Unknown;
    }
    let open = loop {
        let open = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL | libc::O_NONBLOCK)
            .open(node);
        match open {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other,
        }
    };
    match open {
        // What was opened is the device (the node was not swapped since it was looked at).
        Ok(file) => match file.metadata() {
            Ok(meta) if is_the_device(&meta, number) => Exclusive::Free,
            Ok(_) => Exclusive::Unknown,
            Err(e) => failed(node, e),
        },
        Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
            // Trusted when the node is still the one looked at.
            match fs::metadata(node) {
                Ok(after)
                    if is_the_device(&after, number)
                        && (after.dev(), after.ino()) == (before.dev(), before.ino()) =>
                {
                    Exclusive::Held(node.to_path_buf())
                }
                _ => Exclusive::Unknown,
            }
        }
        Err(e)
            if gone(&e)
                || matches!(
                    e.raw_os_error(),
                    Some(libc::ENXIO) | Some(libc::ENODEV) | Some(libc::ENOMEDIUM)
                ) =>
        {
            Exclusive::Unknown
        }
        Err(e) => failed(node, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_parse_as_the_dev_attribute_writes_them() {
        assert_eq!(parse_dev("259:2\n"), Some((259, 2)));
        assert_eq!(parse_dev(""), None);
        assert_eq!(parse_dev("259"), None);
        assert_eq!(parse_dev("a:b"), None);
    }

    #[test]
    fn no_dev_root_is_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("dev");
        assert_eq!(
            exclusive(&root, "259:0", Some("nvme0n1")),
            Exclusive::Unknown
        );
    }

    /// A regular file where the node should be is never trusted (nor is it opened with
    /// `O_EXCL`, which a regular file would not refuse).
    #[test]
    fn a_regular_file_is_not_a_node() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("block")).unwrap();
        fs::write(dir.path().join("block/259:0"), "").unwrap();
        fs::write(dir.path().join("nvme0n1"), "").unwrap();
        assert_eq!(
            exclusive(dir.path(), "259:0", Some("nvme0n1")),
            Exclusive::Unknown
        );
    }
}
