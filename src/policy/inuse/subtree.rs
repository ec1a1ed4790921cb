//! What lies below a PCI device, read in one walk of its subtree: the interfaces, disks,
//! framebuffers, NVMe controllers and mediated devices the in-use checks look at.

use std::path::Path;

use super::network::{read_interface, NetInterface};
use super::nvme::{read_nvme_controller, NvmeController};
use super::storage::{is_block_device, read_block_device, BlockDevice};
use super::{is_gone, not_found, unread_detail};
use crate::os::sysfs::EntryKind;
use crate::os::sysfs::Sysfs;
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};

/// What lies below a PCI device in the device tree, as far as the in-use checks need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceSubtree {
    /// Interfaces in a `net/` directory anywhere below (virtio-net: `BDF/virtioN/net/IF`).
    pub interfaces: Vec<NetInterface>,
    /// Disks and partitions anywhere below, hidden ones included.
    pub disks: Vec<BlockDevice>,
    /// Framebuffers (`graphics/fbN`) anywhere below.
    pub framebuffers: Vec<String>,
    /// NVMe controllers (`nvme/nvmeN`) anywhere below.
    pub nvme_controllers: Vec<NvmeController>,
    /// Mediated devices made on it: the entries of `mdev_supported_types/TYPE/devices/`
    /// (links to the mdev devices, named by UUID), in name order.
    pub mdevs: Vec<String>,
    /// Directories below that could not be looked at ("PATH (ERROR)"): what lies there is
    /// unknown, so the in-use check refuses.
    pub unread: Vec<String>,
}

/// How deep below a PCI device the walk goes: USB storage behind a controller is
/// `BDF/usb1/1-1/1-1.2/1-1.2:1.0/host0/target0:0:0/0:0:0:0/block/sda/sda1`, deeper behind
/// more hubs.
const MAX_SUBTREE_DEPTH: usize = 16;

/// How many directories below a PCI device the walk visits before giving up (with an error:
/// an in-use check that has not looked everywhere must not say "not in use").
const MAX_SUBTREE_DIRS: usize = 100_000;

/// Walks the device's subtree once (directories only, never through a link, at most
/// `MAX_SUBTREE_DEPTH` deep) and collects its interfaces, disks, framebuffers and NVMe
/// controllers. Children of a class directory are recognised by its name, as the kernel
/// names them (`net`, `graphics`, `nvme`); disks by their `subsystem` link.
///
/// The device itself missing is [`Error::NoDevice`]. Something below that went away while
/// it was walked is skipped (the caller checks that the device is still there at the
/// end); a directory or attribute that cannot be read is listed in `unread`, never taken
/// for "nothing there".
pub(super) fn device_subtree(sysfs: &Sysfs, address: &PciAddress) -> Result<DeviceSubtree> {
    let top = sysfs.device_dir(address);
    let mut out = DeviceSubtree::default();
    let mut visited = 0usize;
    // Each directory with the block device whose directory holds it, if any.
    let mut stack = vec![(top.clone(), 0usize, None::<String>)];
    while let Some((dir, depth, block_parent)) = stack.pop() {
        let entries = match sysfs.read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if is_gone(&e) && depth == 0 => {
                return Err(Error::NoDevice {
                    address: *address,
                    path: top,
                })
            }
            // Something below went away while we looked (a device being removed).
            Err(e) if is_gone(&e) => continue,
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                return Err(Error::io("walking the device's subtree", dir, e))
            }
            Err(e) => {
                out.unread.push(format!("{} ({e})", dir.display()));
                continue;
            }
        };
        let class = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // `BDF/mdev_supported_types/TYPE/devices/`: its entries are links, one per
        // mediated device of that type.
        let mdev_list = depth == 3
            && class == "devices"
            && dir
                .parent()
                .and_then(Path::parent)
                .and_then(Path::file_name)
                .is_some_and(|n| n == "mdev_supported_types");
        for (name, kind) in entries {
            if mdev_list {
                out.mdevs.push(name.to_string_lossy().into_owned());
                continue;
            }
            if kind != EntryKind::Dir {
                continue;
            }
            visited += 1;
            if visited > MAX_SUBTREE_DIRS {
                return Err(Error::Malformed {
                    path: top,
                    detail: format!("more than {MAX_SUBTREE_DIRS} directories below it"),
                });
            }
            let path = dir.join(&name);
            let shown = name.to_string_lossy().into_owned();
            match class {
                // Nothing the checks need lies below an interface or a framebuffer.
                "net" => {
                    out.interfaces.push(read_interface(sysfs, &path, shown));
                    continue;
                }
                "graphics" => {
                    out.framebuffers.push(shown);
                    continue;
                }
                "nvme" => match read_nvme_controller(sysfs, &path, shown.clone()) {
                    Ok(Some(c)) => out.nvme_controllers.push(c),
                    Ok(None) => {}
                    Err(e) if not_found(&e) => continue,
                    Err(e @ Error::Escape { .. }) => return Err(e),
                    Err(e) => out.unread.push(unread_detail(&e)),
                },
                _ => {}
            }
            let mut parent_of_children = None;
            if is_block_device(sysfs, &path) {
                let mut disk = read_block_device(sysfs, &path, shown.clone());
                disk.whole = block_parent.clone();
                out.disks.push(disk);
                parent_of_children = Some(shown);
            }
            if depth + 1 < MAX_SUBTREE_DEPTH {
                stack.push((path, depth + 1, parent_of_children));
            }
        }
    }
    out.interfaces.sort_by(|a, b| a.name.cmp(&b.name));
    out.disks.sort_by(|a, b| a.name.cmp(&b.name));
    out.framebuffers.sort();
    out.mdevs.sort();
    out.nvme_controllers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
