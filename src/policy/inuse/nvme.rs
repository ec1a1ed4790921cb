//! NVMe native multipath: a controller below the device is in use when it is the last live
//! path to a namespace that is in use; the namespaces and their paths, as the tree shows them.

use std::io;
use std::path::Path;

use super::storage::{child_block_devices, disks_reasons, BlockDevice, Storage};
use super::{could_not_read, not_found, unread_of, DeviceSubtree};
use crate::os::sysfs::EntryKind;
use crate::os::sysfs::Sysfs;
use crate::types::error::{Error, Result};
use crate::types::log::{Logger, Priority};

/// The namespace's multipath disk and its partitions.
fn namespace_disks(ns: &NvmeNamespace) -> Vec<&BlockDevice> {
    std::iter::once(&ns.disk).chain(&ns.partitions).collect()
}

/// NVMe native multipath: the usable disk of a namespace hangs under the `nvme-subsystem`
/// device, not under the controller, whose subtree holds only hidden per-path disks. A
/// controller of the device is in use when it is the last live path to a namespace that is
/// in use (the kernel's `O_EXCL` answer deciding, as for any disk); when another live path
/// remains, binding it is allowed with a warning (from the host's tables: the namespace is not
/// opened then). Namespaces are matched to paths by `nsid` within the subsystem, never by disk
/// name.
pub(super) fn nvme_multipath(
    sysfs: &Sysfs,
    storage: &Storage,
    dev_root: &Path,
    log: &Logger,
    tree: &DeviceSubtree,
) -> Result<Vec<String>> {
    let mut reasons = Vec::new();
    if tree.nvme_controllers.is_empty() {
        return Ok(reasons);
    }
    let subsystems = match nvme_subsystems(sysfs) {
        Ok(subsystems) => subsystems,
        Err(e) => return Ok(vec![could_not_read(&unread_of(e)?)]),
    };
    for subsys in subsystems {
        let (ours, others): (Vec<_>, Vec<_>) = subsys
            .controllers
            .iter()
            .partition(|c| tree.nvme_controllers.iter().any(|t| t.is(c)));
        for ctrl in &ours {
            for ns in &subsys.namespaces {
                // A namespace whose nsid cannot be read counts as reachable through this
                // controller and no other: refusing is the safe mistake.
                if !ns.nsid.map_or(true, |id| ctrl.path_nsids.contains(&id)) {
                    continue;
                }
                let live_others: Vec<&str> = others
                    .iter()
                    .filter(|c| c.live && ns.nsid.is_some_and(|id| c.path_nsids.contains(&id)))
                    .map(|c| c.name.as_str())
                    .collect();
                let last_path = live_others.is_empty();
                let uses =
                    disks_reasons(&namespace_disks(ns), storage, last_path.then_some(dev_root));
                if uses.is_empty() {
                    continue;
                }
                if last_path {
                    reasons.push(format!(
                        "NVMe controller {} is the last live path to namespace {} of {}: {}",
                        ctrl.name,
                        ns.disk.name,
                        subsys.name,
                        uses.join(", ")
                    ));
                } else {
                    log.log(
                        Priority::Warning,
                        format_args!(
                            "NVMe controller {} is a path to namespace {} of {}, which is in use \
                             ({}); allowed, since {} remain(s) a live path to it",
                            ctrl.name,
                            ns.disk.name,
                            subsys.name,
                            uses.join(", "),
                            live_others.join(", ")
                        ),
                    );
                }
            }
        }
    }
    Ok(reasons)
}

// --- what the tree says of NVMe subsystems ---

/// An NVMe controller (`nvme/nvmeN` below its PCI function) and its namespaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvmeController {
    pub name: String,
    /// Its `state` reads `live`: a live path to its namespaces.
    pub live: bool,
    /// The `nsid` of every disk directly below it: under native multipath, the namespaces it is
    /// a path to.
    pub path_nsids: Vec<u32>,
    /// Device and inode of its directory, so that one reached through the subsystem's link is
    /// recognised as the one found below the PCI function.
    identity: (u64, u64),
}

impl NvmeController {
    /// True when both are the same controller, however each was reached.
    pub fn is(&self, other: &NvmeController) -> bool {
        self.identity == other.identity
    }
}

/// A namespace's usable disk under native multipath, with its partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvmeNamespace {
    /// Its `nsid`; `None` when unreadable.
    pub nsid: Option<u32>,
    pub disk: BlockDevice,
    pub partitions: Vec<BlockDevice>,
}

/// An NVMe subsystem (`class/nvme-subsystem/nvme-subsysN`): its controllers (the links in its
/// directory) and the multipath disks of its namespaces (the disks below it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvmeSubsystem {
    pub name: String,
    pub controllers: Vec<NvmeController>,
    pub namespaces: Vec<NvmeNamespace>,
}

fn read_nsid(sysfs: &Sysfs, disk: &Path) -> Option<u32> {
    sysfs
        .read_small(&disk.join("nsid"), "reading a namespace id")
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

/// The controller at `dir` (reached directly or through a subsystem's link); `None` when
/// it has no `state`, so is no NVMe controller.
pub(super) fn read_nvme_controller(
    sysfs: &Sysfs,
    dir: &Path,
    name: String,
) -> Result<Option<NvmeController>> {
    let state = match sysfs.read_small(&dir.join("state"), "reading a controller's state") {
        Ok(state) => state,
        Err(e) if not_found(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let identity = sysfs
        .identity(dir)
        .map_err(|e| Error::io("looking up an NVMe controller", dir, e))?;
    let path_nsids = child_block_devices(sysfs, dir)
        .iter()
        .filter_map(|(path, _)| read_nsid(sysfs, path))
        .collect();
    Ok(Some(NvmeController {
        name,
        live: state.trim() == "live",
        path_nsids,
        identity,
    }))
}

/// Every NVMe subsystem (`class/nvme-subsystem/`), with its controllers and the multipath
/// disks of its namespaces; none when the class does not exist.
fn nvme_subsystems(sysfs: &Sysfs) -> Result<Vec<NvmeSubsystem>> {
    let class = sysfs.root().join("class/nvme-subsystem");
    let names = match sysfs.list_dir(&class, "listing NVMe subsystems") {
        Ok(names) => names,
        Err(e) if not_found(&e) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        let dir = class.join(&name);
        let entries = match sysfs.read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io("listing an NVMe subsystem", dir, e)),
        };
        let mut controllers = Vec::new();
        for (entry, kind) in entries {
            // The subsystem links each of its controllers by the controller's name.
            if kind != EntryKind::Link || entry == "subsystem" {
                continue;
            }
            let shown = entry.to_string_lossy().into_owned();
            if let Some(c) = read_nvme_controller(sysfs, &dir.join(&entry), shown)? {
                controllers.push(c);
            }
        }
        controllers.sort_by(|a, b| a.name.cmp(&b.name));
        let namespaces = child_block_devices(sysfs, &dir)
            .into_iter()
            .map(|(path, disk)| NvmeNamespace {
                nsid: read_nsid(sysfs, &path),
                partitions: child_block_devices(sysfs, &path)
                    .into_iter()
                    .map(|(_, mut part)| {
                        part.whole = Some(disk.name.clone());
                        part
                    })
                    .collect(),
                disk,
            })
            .collect();
        out.push(NvmeSubsystem {
            name,
            controllers,
            namespaces,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
