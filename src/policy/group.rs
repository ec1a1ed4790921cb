//! IOMMU groups (SPEC 3.4): a device's group members, what each member's driver means for
//! assigning the group, and whether the group is viable. Which class a driver is, is
//! `classify.rs`'s to say.

use std::fmt;

use crate::policy::classify::Classifier;
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::name::DriverName;

/// What a group member's driver means for assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberClass {
    /// Bound to a VFIO driver (`vfio-pci` or a variant).
    Vfio,
    /// No driver, a stub (`pci-stub`, Xen's `pciback`), or a PCIe port driver: no host use of
    /// the device.
    Harmless,
    /// Bound to some other driver: the host uses it, so the group cannot be assigned.
    Blocking,
}

impl fmt::Display for MemberClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberClass::Vfio => "vfio",
            MemberClass::Harmless => "harmless",
            MemberClass::Blocking => "blocking",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    pub address: PciAddress,
    pub driver: Option<DriverName>,
    pub class: MemberClass,
}

/// The members of the device's IOMMU group (itself included), with their drivers and what
/// those mean for assigning the group. A device with no group is an I/O error (`ENOENT` on its
/// `iommu_group` link).
pub(crate) fn members(drivers: &Classifier<'_>, address: &PciAddress) -> Result<Vec<GroupMember>> {
    let sysfs = drivers.sysfs;
    let group = sysfs.iommu_group(address)?.ok_or_else(|| {
        Error::io(
            "the device has no IOMMU group (is the IOMMU enabled?)",
            sysfs.device_dir(address).join("iommu_group"),
            std::io::Error::from_raw_os_error(libc::ENOENT),
        )
    })?;
    let mut members = Vec::new();
    for member in sysfs.iommu_group_devices(group)? {
        let driver = sysfs.device_driver(&member)?;
        members.push(GroupMember {
            address: member,
            class: drivers.member_class(&member, driver.as_ref()),
            driver,
        });
    }
    Ok(members)
}

/// `None` when the group is viable (no blocking member), else why not.
pub fn viability(members: &[GroupMember]) -> Option<String> {
    let blocking: Vec<String> = members
        .iter()
        .filter(|m| m.class == MemberClass::Blocking)
        .map(|m| match &m.driver {
            Some(d) => format!("{} (bound to {d})", m.address),
            None => m.address.to_string(),
        })
        .collect();
    (!blocking.is_empty()).then(|| format!("blocking group members: {}", blocking.join(", ")))
}
