//! IOMMU groups (SPEC 3.4): a device's group members, what each member's driver means for
//! assigning the group, and whether the group is viable.

use std::fmt;

use crate::address::PciAddress;
use crate::name::DriverName;

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

/// Drivers that hold a device for nobody: a device on one is not "on its host driver", never
/// a host driver to give it back to, and harmless in an IOMMU group. `pciback` is Xen's, which
/// holds devices for guests as pci-stub does for nobody.
pub(crate) const STUB_DRIVERS: [&str; 2] = ["pci-stub", "pciback"];

/// True for a driver whose binding means the host does not use the device: a stub, or the
/// PCIe port driver.
pub(crate) fn is_harmless_driver(driver: &DriverName) -> bool {
    STUB_DRIVERS.contains(&driver.as_str()) || driver.as_str() == "pcieport"
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupMember {
    pub address: PciAddress,
    pub driver: Option<DriverName>,
    pub class: MemberClass,
}

/// Classifies a member from its driver and whether that driver is a VFIO one.
pub(crate) fn classify(driver: Option<&DriverName>, is_vfio: bool) -> MemberClass {
    match driver {
        None => MemberClass::Harmless,
        Some(_) if is_vfio => MemberClass::Vfio,
        Some(d) if is_harmless_driver(d) => MemberClass::Harmless,
        Some(_) => MemberClass::Blocking,
    }
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
