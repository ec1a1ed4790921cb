//! Read-only questions about devices and their VFIO state (SPEC 3.4): is a device on a VFIO
//! driver, who is in its IOMMU group, and can the group be assigned.

use crate::policy::group::{self, GroupMember};
use crate::types::address::PciAddress;
use crate::types::error::Result;
use crate::Context;

impl Context {
    /// True when the device is bound to a VFIO driver (`vfio-dev/` present, `vfio-pci`, or a
    /// variant), so callers stop comparing driver names with `"vfio-pci"`.
    pub fn is_vfio_bound(&self, address: &str) -> Result<bool> {
        let address = PciAddress::parse(address)?;
        Ok(self.vfio_driver_of(&address)?.is_some())
    }

    /// The members of the device's IOMMU group (itself included), with their drivers and what
    /// those mean for assigning the group.
    pub fn iommu_group(&self, address: &str) -> Result<Vec<GroupMember>> {
        let address = PciAddress::parse(address)?;
        group::members(&self.classifier(), &address)
    }

    /// `None` when the device's IOMMU group can be assigned (no blocking member), else why not.
    pub fn iommu_group_viability(&self, address: &str) -> Result<Option<String>> {
        Ok(group::viability(&self.iommu_group(address)?))
    }
}
