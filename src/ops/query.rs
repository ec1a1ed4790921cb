//! Read-only questions about devices and their VFIO state (SPEC 3.4): is a device on a VFIO
//! driver, who is in its IOMMU group, and can the group be assigned.

use crate::os::holders::Holder;
use crate::policy::group::{self, GroupMember};
use crate::policy::inuse::{vmm, InUse};
use crate::types::address::PciAddress;
use crate::types::error::Result;
use crate::types::name::DriverName;
use crate::Context;

impl Context {
    /// The driver the device at `address` is bound to, or `None` when it is unbound.
    pub fn current_driver(&self, address: &str) -> Result<Option<DriverName>> {
        let address = PciAddress::parse(address)?;
        self.sysfs.device_driver(&address)
    }

    /// True when the device is bound to a VFIO driver (`vfio-dev/` present, `vfio-pci`, or a
    /// variant), so callers stop comparing driver names with `"vfio-pci"`.
    pub fn is_vfio_bound(&self, address: &str) -> Result<bool> {
        let address = PciAddress::parse(address)?;
        Ok(self.classifier().vfio_driver_of(&address)?.is_some())
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

    /// Whether the device at `address` is in use, and how: the question the in-use check of a
    /// move off its driver asks (SPEC 3.14), answered alone. A device on a host driver or on
    /// none is asked about the host's use of it; one on a VFIO driver about a VMM holding it;
    /// one on a stub is in use by nobody. `None` when it is not in use.
    pub fn in_use(&self, address: &str) -> Result<Option<InUse>> {
        let address = PciAddress::parse(address)?;
        self.sysfs.require_device(&address)?;
        let driver = self.sysfs.device_driver(&address)?;
        let host = driver.is_none() || self.classifier().on_host_driver(&address, driver.as_ref());
        self.safety().in_use_now(&address, driver.as_ref(), host)
    }

    /// The processes that hold each of `addresses` that is on a VFIO driver (its group node or
    /// its cdev open: a running VM), found with one look at every process's open files; devices
    /// on no VFIO driver are left out. For listings (`pcibind status`); a move off a VFIO driver
    /// asks for its own device.
    pub fn vmm_holders(&self, addresses: &[PciAddress]) -> Result<Vec<(PciAddress, Vec<Holder>)>> {
        vmm::vmm_holders(
            &self.classifier(),
            &self.proc_root,
            &self.dev_root,
            addresses,
        )
    }
}
