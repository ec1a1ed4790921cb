//! A VMM holding the device (SPEC 1, "Held by a VMM"): a process has the VFIO group node or
//! the cdev of a device on a VFIO driver open, a running VM. Unbinding it would make the
//! driver wait for that process, so a move off a VFIO driver asks here; listings ask for many
//! devices at once.

use std::path::{Path, PathBuf};

use crate::os::files;
use crate::os::holders::{self, Holder};
use crate::os::sysfs::Sysfs;
use crate::policy::classify::Classifier;
use crate::types::address::PciAddress;
use crate::types::error::Result;
use crate::types::name::DriverName;

/// Why a device on a VFIO driver belongs to a running VM (SPEC 1, "Held by a VMM"): a
/// process has its group node or its cdev open. Unbinding it would make vfio-pci ask that
/// process to let go and wait, forever if its guest does not answer. `None` for a device
/// on no VFIO driver, or held by nobody. Processes whose open files cannot be read are a
/// reason too: not knowing is not "not held".
pub(crate) fn vmm_holding(
    classifier: &Classifier<'_>,
    proc_root: &Path,
    dev_root: &Path,
    address: &PciAddress,
    driver: Option<&DriverName>,
) -> Result<Option<String>> {
    let Some(driver) = driver.filter(|d| classifier.on_vfio_driver(address, Some(d))) else {
        return Ok(None);
    };
    let nodes = vfio_nodes_held_by_a_vmm(classifier.sysfs, dev_root, address)?;
    let (holders, unreadable) = holders::find(proc_root, &nodes)?;
    if !holders.is_empty() {
        return Ok(Some(format!(
            "it is held by a VMM: {}; taking it off {driver} would make the kernel wait \
                 until that process lets go (forever, if its guest does not answer)",
            holders::describe(&holders)
        )));
    }
    if !unreadable.is_empty() {
        let pids: Vec<String> = unreadable
            .iter()
            .take(8)
            .map(|u| format!("{} ({})", u.pid, u.why))
            .collect();
        return Ok(Some(format!(
            "it is on {driver}, and whether a VMM holds it could not be seen: the open files \
                 of process {}{} could not be read",
            pids.join(", "),
            if unreadable.len() > 8 { ", ..." } else { "" }
        )));
    }
    Ok(None)
}

/// The nodes whose holders own a device on a VFIO driver: its group's node (legacy or
/// no-IOMMU) and its cdev, those that exist under the dev root.
fn vfio_nodes_held_by_a_vmm(
    sysfs: &Sysfs,
    dev_root: &Path,
    address: &PciAddress,
) -> Result<Vec<PathBuf>> {
    let mut nodes = Vec::new();
    if let Some(group) = sysfs.iommu_group(address)? {
        nodes.push(dev_root.join(format!("vfio/{group}")));
        nodes.push(dev_root.join(format!("vfio/noiommu-{group}")));
    }
    for name in sysfs.vfio_dev_names(address)? {
        nodes.push(dev_root.join("vfio/devices").join(name));
    }
    nodes.retain(|n| files::exists(n));
    Ok(nodes)
}

/// The processes that hold each of `addresses` that is on a VFIO driver (its group node or
/// its cdev open: a running VM), found with one look at every process's open files; devices
/// on no VFIO driver are left out. For listings (`pcibind status`); a move off a VFIO driver
/// asks for its own device.
pub(crate) fn vmm_holders(
    classifier: &Classifier<'_>,
    proc_root: &Path,
    dev_root: &Path,
    addresses: &[PciAddress],
) -> Result<Vec<(PciAddress, Vec<Holder>)>> {
    let mut wanted: Vec<(PciAddress, Vec<PathBuf>)> = Vec::new();
    for address in addresses {
        let driver = classifier.sysfs.device_driver(address)?;
        if classifier.on_vfio_driver(address, driver.as_ref()) {
            wanted.push((
                *address,
                vfio_nodes_held_by_a_vmm(classifier.sysfs, dev_root, address)?,
            ));
        }
    }
    let all: Vec<PathBuf> = wanted.iter().flat_map(|(_, n)| n.iter().cloned()).collect();
    let (holders, _) = holders::find(proc_root, &all)?;
    Ok(wanted
        .into_iter()
        .map(|(address, nodes)| {
            let mine = holders
                .iter()
                .filter(|h| nodes.contains(&h.node))
                .cloned()
                .collect();
            (address, mine)
        })
        .collect())
}
