//! The unit an IOMMU-group transaction moves (SPEC 3.8): the device's IOMMU group, plus every
//! function a member to be moved names through a `consumer:pci:` device link (a GPU's HDMI
//! audio function), plus that function's whole group, and so on until closed.

use std::collections::BTreeMap;

use crate::policy::classify::is_harmless_driver;
use crate::policy::classify::Classifier;
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::name::DriverName;

/// One member of a unit, as it is when the unit is worked out.
#[derive(Clone, Debug)]
pub(crate) struct UnitMember {
    pub address: PciAddress,
    pub driver: Option<DriverName>,
    /// A bridge (`Modalias::is_bridge`): never moved.
    pub bridge: bool,
    /// On a VFIO driver already.
    pub vfio: bool,
}

impl UnitMember {
    /// A bridge on a host driver (an LPC bridge on `lpc_ich`): the unit cannot be assigned
    /// safely, forced or not.
    pub fn is_host_bridge(&self) -> bool {
        self.bridge && self.driver.as_ref().is_some_and(|d| !is_harmless_driver(d))
    }
}

fn unit_member(classifier: &Classifier<'_>, address: &PciAddress) -> Result<UnitMember> {
    let driver = classifier.sysfs.device_driver(address)?;
    let vfio = classifier.on_vfio_driver(address, driver.as_ref());
    let bridge = classifier.sysfs.modalias(address)?.is_bridge();
    Ok(UnitMember {
        address: *address,
        driver,
        bridge,
        vfio,
    })
}

/// The unit of the device at `address`, in address order: its IOMMU group, closed over the
/// `consumer:pci:` links of the members for which `moves` is true. A device with no IOMMU
/// group is [`Error::Unsupported`].
pub(crate) fn unit(
    classifier: &Classifier<'_>,
    address: &PciAddress,
    moves: impl Fn(&UnitMember) -> bool,
) -> Result<Vec<UnitMember>> {
    let no_group = |address: PciAddress| Error::Unsupported {
        address,
        detail: "it has no IOMMU group (is the IOMMU enabled?)".into(),
    };
    let sysfs = classifier.sysfs;
    let first = sysfs.iommu_group(address)?.ok_or(no_group(*address))?;
    let mut groups = vec![first];
    let mut members: BTreeMap<PciAddress, UnitMember> = BTreeMap::new();
    let mut next = 0;
    while next < groups.len() {
        for m in sysfs.iommu_group_devices(groups[next])? {
            if let std::collections::btree_map::Entry::Vacant(e) = members.entry(m) {
                e.insert(unit_member(classifier, &m)?);
            }
        }
        next += 1;
        if next < groups.len() {
            continue;
        }
        // Every group read: follow the consumers of the members that move.
        for m in members.values().filter(|m| moves(m)) {
            for consumer in sysfs.pci_consumers(&m.address)? {
                if members.contains_key(&consumer) {
                    continue;
                }
                let group = sysfs.iommu_group(&consumer)?.ok_or(no_group(consumer))?;
                if !groups.contains(&group) {
                    groups.push(group);
                }
            }
        }
    }
    Ok(members.into_values().collect())
}
