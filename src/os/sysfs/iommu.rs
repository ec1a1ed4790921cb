//! IOMMU groups: a device's group number, and a group's members. The one reader of them:
//! `policy/group.rs` (the members and their classes), `policy/unit.rs` (the unit of a group
//! move), the VMM check and the device nodes all read groups through these two.

use super::Sysfs;
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};

impl Sysfs {
    /// The device's IOMMU group number; `None` when it has none (no IOMMU).
    pub fn iommu_group(&self, address: &PciAddress) -> Result<Option<u32>> {
        let link = self.require_device(address)?.join("iommu_group");
        match self.link_basename(&link, "reading the device's iommu_group link")? {
            None => Ok(None),
            Some(name) => name.parse().map(Some).map_err(|_| Error::Malformed {
                path: link,
                detail: format!("names group {name:?}, not a number"),
            }),
        }
    }

    /// The members of IOMMU group `group`, in address order.
    pub fn iommu_group_devices(&self, group: u32) -> Result<Vec<PciAddress>> {
        let dir = self
            .root
            .join("kernel/iommu_groups")
            .join(group.to_string())
            .join("devices");
        let mut out: Vec<PciAddress> = self
            .list_dir(&dir, "listing an IOMMU group")?
            .iter()
            .filter_map(|n| PciAddress::parse(n).ok())
            .collect();
        out.sort();
        Ok(out)
    }
}
