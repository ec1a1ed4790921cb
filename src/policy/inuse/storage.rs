//! Storage: disks below the device that the kernel says are held (`O_EXCL`), named by what
//! holds them where the host lists it (mounted by number or by source, btrfs members, swap,
//! `holders/`), and NVMe namespaces whose last live path is the device.

use std::path::{Path, PathBuf};

use super::{could_not_read, not_found, unread_detail, unread_of};
use crate::os::blockdev::{self, Exclusive};
use crate::os::procfs;
use crate::os::sysfs::EntryKind;
use crate::os::sysfs::Sysfs;
use crate::types::error::Result;

/// How many mount points one reason lists before it says how many more there are.
const MAX_MOUNTPOINTS_SHOWN: usize = 4;

/// Undoes the octal escapes (`\040` for a space, `\011`, `\012`, `\134`) of mountinfo and swaps
/// fields; anything else, a malformed escape included, is kept as it is.
pub(super) fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| b == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')));
        match octal {
            Some(value) if value <= 0xff => {
                out.push(value as u8);
                i += 4;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when a mount or swap source names the block device `name` (`/dev/NAME`).
fn names_device(source: &str, name: &str) -> bool {
    source.strip_prefix("/dev/") == Some(name)
}

/// One line of mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE
/// SOURCE SUPEROPTIONS".
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mount {
    dev: String,
    mountpoint: String,
    /// Empty when the line ends before the separator.
    fstype: String,
    source: String,
}

impl Mount {
    /// `None` for a line too short to name a device and a mount point.
    fn parse(line: &str) -> Option<Mount> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let dev = fields.get(2)?;
        let mountpoint = fields.get(4)?;
        // The optional fields (shared:N, master:N, ...) end at a lone "-".
        let fstype_at = fields.iter().skip(6).position(|f| *f == "-").map(|i| i + 7);
        let field = |at: Option<usize>| {
            at.and_then(|i| fields.get(i))
                .map(|f| unescape(f))
                .unwrap_or_default()
        };
        Some(Mount {
            dev: (*dev).to_owned(),
            mountpoint: unescape(mountpoint),
            fstype: field(fstype_at),
            source: field(fstype_at.map(|i| i + 1)),
        })
    }
}

/// The storage tables the disk checks need.
pub(super) struct Storage {
    mounts: Vec<Mount>,
    /// The first field of every `/proc/swaps` line but the header.
    swaps: Vec<String>,
    btrfs: Vec<BtrfsFilesystem>,
    /// Tables that could not be read ("PATH (ERROR)"): each refuses the device.
    pub(super) unread: Vec<String>,
}

impl Storage {
    pub(super) fn read(sysfs: &Sysfs, proc_root: &Path) -> Result<Storage> {
        let mut unread = Vec::new();
        let mut table = |rel| match procfs::lines(proc_root, rel) {
            Ok(lines) => Ok(lines),
            Err(e) => unread_of(e).map(|what| {
                unread.push(what);
                Vec::new()
            }),
        };
        let mounts = table("self/mountinfo")?
            .iter()
            .filter_map(|l| Mount::parse(l))
            .collect();
        let swaps = table("swaps")?
            .iter()
            .filter_map(|l| l.split_whitespace().next().map(unescape))
            .filter(|f| f != "Filename")
            .collect();
        let btrfs = match btrfs_filesystems(sysfs) {
            Ok(btrfs) => btrfs,
            Err(e) => {
                unread.push(unread_of(e)?);
                Vec::new()
            }
        };
        Ok(Storage {
            mounts,
            swaps,
            btrfs,
            unread,
        })
    }
}

/// What is said of a block device that the kernel says is held exclusively while the host
/// lists nothing that would hold it.
const HELD_BY_SOMETHING: &str = "is held open exclusively by something (not a mount, swap or \
                                 holder the host lists: e.g. a ZFS pool, an iSCSI/LIO \
                                 backstore or a VM's disk)";

/// Every way each of `disks` (disks and their partitions) is used, as "block device NAME ..."
/// sentences. With a dev root the kernel's `O_EXCL` answer decides: held is in use (named by
/// what the host lists, else `HELD_BY_SOMETHING`), free is not, whatever the tables say; where
/// it cannot be asked, the tables alone decide. A disk held only because a partition of it is
/// (the kernel claims the whole disk with the partition) is not said twice.
pub(super) fn disks_reasons(
    disks: &[&BlockDevice],
    storage: &Storage,
    dev_root: Option<&Path>,
) -> Vec<String> {
    let decided: Vec<(&BlockDevice, Vec<String>, bool)> = disks
        .iter()
        .map(|disk| {
            let mut uses: Vec<String> = disk.unread.iter().map(|u| could_not_read(u)).collect();
            let listed = disk_uses(disk, storage);
            let answer = match dev_root {
                Some(dev) => blockdev::exclusive(dev, &disk.dev, disk.devname.as_deref()),
                None => Exclusive::Unknown,
            };
            let mut only_held = false;
            match answer {
                Exclusive::Free => {}
                Exclusive::Unknown => uses.extend(listed),
                Exclusive::Held(_) if listed.is_empty() => {
                    uses.push(HELD_BY_SOMETHING.to_owned());
                    only_held = uses.len() == 1;
                }
                Exclusive::Held(_) => uses.extend(listed),
                Exclusive::Failed(why) => {
                    uses.extend(listed);
                    uses.push(format!(
                        "could not be asked whether something holds it ({why}), so cannot tell \
                         whether it is in use"
                    ));
                }
            }
            (*disk, uses, only_held)
        })
        .collect();
    let explained_by_a_partition = |disk: &BlockDevice| {
        decided.iter().any(|(part, uses, _)| {
            part.whole.as_deref() == Some(disk.name.as_str()) && !uses.is_empty()
        })
    };
    decided
        .iter()
        .filter(|(disk, _, only_held)| !(*only_held && explained_by_a_partition(disk)))
        .flat_map(|(disk, uses, _)| {
            uses.iter()
                .map(move |use_| format!("block device {} {use_}", disk.name))
        })
        .collect()
}

/// Every way `disk` is used, as predicates ("is mounted on /", ...).
fn disk_uses(disk: &BlockDevice, storage: &Storage) -> Vec<String> {
    [
        holders(disk),
        mounts(disk, storage),
        btrfs_member(disk, storage),
        swap(disk, storage),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Device-mapper, md, bcache, ... stacked on the disk.
fn holders(disk: &BlockDevice) -> Option<String> {
    (!disk.holders.is_empty()).then(|| format!("is held by {}", disk.holders.join(", ")))
}

/// The mount's `MAJ:MIN` is the disk's: every file system on a block device of its own, but
/// not btrfs, zfs and others, which show an anonymous `0:NN`.
fn mounted_by_number(mount: &Mount, disk: &BlockDevice) -> bool {
    !disk.dev.is_empty() && mount.dev == disk.dev
}

/// The mount's source names the disk (`/dev/nvme0n1p2`), whatever its number.
fn mounted_by_source(mount: &Mount, disk: &BlockDevice) -> bool {
    names_device(&mount.source, &disk.name)
}

/// Where the disk is mounted, found by number or by source.
fn mounts(disk: &BlockDevice, storage: &Storage) -> Option<String> {
    let points: Vec<&str> = storage
        .mounts
        .iter()
        .filter(|m| mounted_by_number(m, disk) || mounted_by_source(m, disk))
        .map(|m| m.mountpoint.as_str())
        .collect();
    (!points.is_empty()).then(|| format!("is mounted on {}", list_mountpoints(&points)))
}

/// "/, /home and 3 more", each mount point once.
fn list_mountpoints(points: &[&str]) -> String {
    let mut unique: Vec<&str> = Vec::new();
    for p in points {
        if !unique.contains(p) {
            unique.push(p);
        }
    }
    let shown = unique
        .iter()
        .take(MAX_MOUNTPOINTS_SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    match unique.len().saturating_sub(MAX_MOUNTPOINTS_SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// The disk is a member of a mounted (multi-device) btrfs: `fs/btrfs/UUID/devices/` lists it,
/// and mountinfo may name any member as the source, not necessarily this one.
fn btrfs_member(disk: &BlockDevice, storage: &Storage) -> Option<String> {
    let fs = storage
        .btrfs
        .iter()
        .find(|fs| fs.members.contains(&disk.name))?;
    let through_other: Vec<&Mount> = storage
        .mounts
        .iter()
        .filter(|m| m.fstype == "btrfs")
        .filter(|m| {
            fs.members
                .iter()
                .any(|member| *member != disk.name && names_device(&m.source, member))
        })
        .collect();
    if let Some(first) = through_other.first() {
        let points: Vec<&str> = through_other
            .iter()
            .map(|m| m.mountpoint.as_str())
            .collect();
        return Some(format!(
            "is a member of the btrfs file system {} mounted on {} (from {})",
            fs.uuid,
            list_mountpoints(&points),
            first.source
        ));
    }
    // Mounted under its own name: `mounts` says so. Under no member's name (a source we
    // cannot tell): the file system is in `fs/btrfs/` only while it is mounted.
    let own = storage.mounts.iter().any(|m| mounted_by_source(m, disk));
    (!own).then(|| format!("is a member of the mounted btrfs file system {}", fs.uuid))
}

/// The disk is active swap (`/proc/swaps` by path).
fn swap(disk: &BlockDevice, storage: &Storage) -> Option<String> {
    storage
        .swaps
        .iter()
        .any(|s| names_device(s, &disk.name))
        .then(|| "is used as swap".to_owned())
}

// --- what the tree says of disks ---

/// A block device (a disk or a partition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    pub name: String,
    /// `MAJOR:MINOR`, as in its `dev` attribute; empty when it has none.
    pub dev: String,
    /// Entries of its `holders/` (device-mapper, md, bcache, ... stacked on it).
    pub holders: Vec<String>,
    /// A disk nobody can open: an NVMe native-multipath per-path disk (`nvmeXcYnZ`), whose
    /// `hidden` attribute reads 1 (kernels that give hidden disks no device number show no
    /// `dev` instead). The usable disk of the namespace hangs under the `nvme-subsystem`
    /// device.
    pub hidden: bool,
    /// The `DEVNAME` of its `uevent`: the name of its node below the dev root, as devtmpfs
    /// makes it (`nvme0n1p2`); `None` when it has none or it is no safe relative path.
    pub devname: Option<String>,
    /// The disk this one is a partition of (the block device whose directory holds it).
    pub whole: Option<String>,
    /// What could not be read about it, each as "its holders/ (PATH: ERROR)": the in-use
    /// check refuses what it could not look at.
    pub unread: Vec<String>,
}

/// A mounted btrfs file system (`fs/btrfs/UUID`, which exists while it is mounted) and the
/// names of its member block devices (`devices/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtrfsFilesystem {
    pub uuid: String,
    pub members: Vec<String>,
}

/// True when `dir` is a block device: its `subsystem` link names `block`.
pub(super) fn is_block_device(sysfs: &Sysfs, dir: &Path) -> bool {
    sysfs
        .read_link(&dir.join("subsystem"))
        .ok()
        .flatten()
        .is_some_and(|t| t.file_name().is_some_and(|n| n == "block"))
}

/// The block device whose directory is `dir`. What cannot be read (its number, its
/// `holders/`) is listed in `unread`.
pub(super) fn read_block_device(sysfs: &Sysfs, dir: &Path, name: String) -> BlockDevice {
    let mut unread = Vec::new();
    // No `dev` at all: a hidden per-path disk of an older kernel.
    let dev = match sysfs.read_small(&dir.join("dev"), "reading a block device's number") {
        Ok(t) => t.trim().to_owned(),
        Err(e) if not_found(&e) => String::new(),
        Err(e) => {
            unread.push(format!("its number ({})", unread_detail(&e)));
            String::new()
        }
    };
    let hidden = (dev.is_empty() && unread.is_empty())
        || sysfs
            .read_small(&dir.join("hidden"), "reading a disk's hidden flag")
            .is_ok_and(|t| t.trim() == "1");
    let holders = match sysfs.list_dir(&dir.join("holders"), "listing holders") {
        Ok(holders) => holders,
        Err(e) => {
            unread.push(format!("its holders/ ({})", unread_detail(&e)));
            Vec::new()
        }
    };
    BlockDevice {
        name,
        dev,
        holders,
        hidden,
        devname: read_devname(sysfs, dir),
        whole: None,
        unread,
    }
}

/// `DEVNAME=` of the device's `uevent`, when it is a relative path of plain names (as
/// devtmpfs names nodes: `nvme0n1`, `mapper/...` is not a disk's).
fn read_devname(sysfs: &Sysfs, dir: &Path) -> Option<String> {
    let uevent = sysfs
        .read_small(&dir.join("uevent"), "reading a device's uevent")
        .ok()?;
    let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
    let safe = !name.is_empty()
        && !name.starts_with('/')
        && name
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..");
    safe.then(|| name.to_owned())
}

/// The block devices directly below `dir`, in name order.
pub(super) fn child_block_devices(sysfs: &Sysfs, dir: &Path) -> Vec<(PathBuf, BlockDevice)> {
    let mut out: Vec<(PathBuf, BlockDevice)> = sysfs
        .read_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, kind)| *kind == EntryKind::Dir)
        .map(|(name, _)| dir.join(&name))
        .filter(|path| is_block_device(sysfs, path))
        .map(|path| {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let disk = read_block_device(sysfs, &path, name);
            (path, disk)
        })
        .collect();
    out.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    out
}

/// Every mounted btrfs file system (`fs/btrfs/UUID/devices/`); none without btrfs.
fn btrfs_filesystems(sysfs: &Sysfs) -> Result<Vec<BtrfsFilesystem>> {
    let dir = sysfs.root().join("fs/btrfs");
    let names = match sysfs.list_dir(&dir, "listing btrfs file systems") {
        Ok(names) => names,
        Err(e) if not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for uuid in names {
        // `features/` and anything else without `devices/` is no file system.
        let devices = dir.join(&uuid).join("devices");
        match sysfs.list_dir(&devices, "listing a btrfs file system's devices") {
            Ok(mut members) => {
                members.sort();
                out.push(BtrfsFilesystem { uuid, members });
            }
            Err(e) if not_found(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.uuid.cmp(&b.uuid));
    Ok(out)
}
