//! Who holds a device's VFIO nodes open (SPEC 1, "Held by a VMM"), found as `fuser` finds
//! them: each process's open files, the `PROC/PID/fd/*` links, compared with the nodes' paths.
//! The VFIO device fd itself is an anonymous inode that names no device (6.1's fdinfo does not
//! say which), so the group node counts for every member of its group on a VFIO driver, and
//! the cdev (`vfio/devices/vfioN`) for its device.
//!
//! This walks every process's descriptors: it is run only when a device leaves a VFIO driver,
//! never on the way to one.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::os::dirstream::DirStream;
use crate::types::error::{Error, Result};

/// A process with one of a device's VFIO nodes open: a VMM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    /// Its `comm` ("qemu-system-x86"), or "?" when it could not be read.
    pub command: String,
    pub node: PathBuf,
}

/// What could not be looked at: a process whose open files cannot be read (another user's,
/// without the privilege to see them). Not knowing is not "not held".
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Unreadable {
    pub pid: u32,
    pub why: String,
}

/// The processes under `proc_root` that have one of `nodes` open (each node given as the
/// library names it; compared in canonical form, as the kernel shows an open file's path),
/// and the processes whose open files could not be read. A process that ends while it is
/// looked at is skipped.
pub(crate) fn find(proc_root: &Path, nodes: &[PathBuf]) -> Result<(Vec<Holder>, Vec<Unreadable>)> {
    let wanted: Vec<(PathBuf, OsString)> = nodes
        .iter()
        .map(|n| {
            let canonical = fs::canonicalize(n).unwrap_or_else(|_| n.clone());
            (n.clone(), canonical.into_os_string())
        })
        .collect();
    let mut holders = Vec::new();
    let mut unreadable = Vec::new();
    if wanted.is_empty() {
        return Ok((holders, unreadable));
    }
    let entries =
        fs::read_dir(proc_root).map_err(|e| Error::io("listing the processes", proc_root, e))?;
    let mut link = vec![0u8; 4096];
    for entry in entries {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Each descriptor's link read relative to the open fd/ directory (readlinkat): no path
        // walk from the root per descriptor, which is what the scan's cost is made of.
        let fd_dir = match DirStream::open(&entry.path().join("fd")) {
            Ok(dir) => dir,
            Err(e) if gone(&e) => continue,
            Err(e) => {
                unreadable.push(Unreadable {
                    pid,
                    why: e.to_string(),
                });
                continue;
            }
        };
        while let Some(name) = fd_dir.next_name() {
            let Some(target) = fd_dir.read_link(&name, &mut link) else {
                continue;
            };
            if let Some((node, _)) = wanted.iter().find(|(_, c)| c.as_encoded_bytes() == target) {
                holders.push(Holder {
                    pid,
                    command: command_of(&entry.path()),
                    node: node.clone(),
                });
            }
        }
    }
    holders.sort_by_key(|h| h.pid);
    holders.dedup_by(|a, b| a.pid == b.pid && a.node == b.node);
    Ok((holders, unreadable))
}

/// The process (or its descriptor) is gone: it ended while it was looked at.
fn gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ESRCH))
}

fn command_of(pid_dir: &Path) -> String {
    fs::read_to_string(pid_dir.join("comm"))
        .map(|c| c.trim_end().to_owned())
        .unwrap_or_else(|_| "?".to_owned())
}

/// "process 4242 (qemu-system-x86) has /dev/vfio/12 open" for each holder, joined.
pub(crate) fn describe(holders: &[Holder]) -> String {
    holders
        .iter()
        .map(|h| {
            format!(
                "process {} ({}) has {} open",
                h.pid,
                h.command,
                h.node.display()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A fake proc root: process `pid` named `comm` with descriptors linking to `targets`.
    fn process(proc_root: &Path, pid: u32, comm: &str, targets: &[&Path]) {
        let dir = proc_root.join(pid.to_string());
        fs::create_dir_all(dir.join("fd")).unwrap();
        fs::write(dir.join("comm"), format!("{comm}\n")).unwrap();
        for (i, t) in targets.iter().enumerate() {
            symlink(t, dir.join("fd").join(i.to_string())).unwrap();
        }
    }

    #[test]
    fn a_process_with_the_group_node_open_is_found_by_its_fd_links() {
        let tmp = tempfile::tempdir().unwrap();
        let dev = tmp.path().join("dev");
        fs::create_dir_all(dev.join("vfio")).unwrap();
        let group = dev.join("vfio/12");
        fs::write(&group, "").unwrap();
        let proc_root = tmp.path().join("proc");
        process(
            &proc_root,
            4242,
            "qemu-system-x86",
            &[Path::new("/dev/null"), &group],
        );
        process(&proc_root, 7, "sshd", &[Path::new("/dev/null")]);
        fs::create_dir_all(proc_root.join("self")).unwrap();
        let (holders, unreadable) = find(&proc_root, std::slice::from_ref(&group)).unwrap();
        assert_eq!(
            holders,
            vec![Holder {
                pid: 4242,
                command: "qemu-system-x86".into(),
                node: group.clone()
            }]
        );
        assert!(unreadable.is_empty());
        assert_eq!(
            describe(&holders),
            format!(
                "process 4242 (qemu-system-x86) has {} open",
                group.display()
            )
        );
    }

    #[test]
    fn nobody_holds_what_nobody_opened() {
        let tmp = tempfile::tempdir().unwrap();
        let proc_root = tmp.path().join("proc");
        process(&proc_root, 1, "init", &[Path::new("/dev/console")]);
        let (holders, _) = find(&proc_root, &[tmp.path().join("dev/vfio/3")]).unwrap();
        assert!(holders.is_empty());
        assert!(find(&proc_root, &[]).unwrap().0.is_empty());
    }

    /// The machine's real /proc, read only: this test process holds a file open and is found.
    #[test]
    fn this_process_is_found_in_the_real_proc() {
        let tmp = tempfile::tempdir().unwrap();
        let node = tmp.path().join("node");
        fs::write(&node, "").unwrap();
        let _open = fs::File::open(&node).unwrap();
        let (holders, _) = find(Path::new("/proc"), std::slice::from_ref(&node)).unwrap();
        assert!(
            holders.iter().any(|h| h.pid == std::process::id()),
            "{holders:?}"
        );
    }
}
