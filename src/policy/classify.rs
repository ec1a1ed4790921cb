//! What a driver is, in one place: a VFIO driver (`vfio-pci`, or one whose module is a VFIO
//! one: a variant the kernel ships, or one declaring `vfio_pci:` aliases), a stub that holds a
//! device for nobody (`pci-stub`, Xen's `pciback`), the PCIe port driver, or a host driver.
//! Every other file asks here: the safety check (is the target VFIO, is the device on a host
//! driver), the group queries and the unit of a group move (what a member's driver means), the
//! operations (where a device may be given back).
//!
//! The questions that need the tree or the tables are a [`Classifier`], made from the context
//! by `Context::classifier` (and from the engine's and the checks' views, which hold the same
//! tree and tables).

use crate::os::sysfs::Sysfs;
use crate::policy::group::MemberClass;
use crate::tables::ModuleTables;
use crate::types::address::PciAddress;
use crate::types::error::Result;
use crate::types::log::Logger;
use crate::types::name::{DriverName, ModuleName};
use crate::types::state::Target;

/// The one VFIO driver that is no variant, known by name without tables.
const VFIO_PCI_DRIVER: &str = "vfio-pci";

/// Drivers that hold a device for nobody: a device on one is not "on its host driver", never
/// a host driver to give it back to, and harmless in an IOMMU group. `pciback` is Xen's, which
/// holds devices for guests as pci-stub does for nobody.
pub(crate) const STUB_DRIVERS: [&str; 2] = ["pci-stub", "pciback"];

/// The PCIe port driver: bridges in an IOMMU group are bound to it, and it serves no host use
/// of the port that assigning the group would take away.
const PORT_DRIVER: &str = "pcieport";

/// True for a stub driver ([`STUB_DRIVERS`]).
pub(crate) fn is_stub_driver(driver: &DriverName) -> bool {
    STUB_DRIVERS.contains(&driver.as_str())
}

/// True for a driver whose binding means the host does not use the device: a stub, or the
/// PCIe port driver.
pub(crate) fn is_harmless_driver(driver: &DriverName) -> bool {
    is_stub_driver(driver) || driver.as_str() == PORT_DRIVER
}

/// Classifies a group member from its driver and whether that driver is a VFIO one.
pub(crate) fn classify(driver: Option<&DriverName>, is_vfio: bool) -> MemberClass {
    match driver {
        None => MemberClass::Harmless,
        Some(_) if is_vfio => MemberClass::Vfio,
        Some(d) if is_harmless_driver(d) => MemberClass::Harmless,
        Some(_) => MemberClass::Blocking,
    }
}

/// The questions about drivers that need the tree (a driver's `module` link, a device's
/// `vfio-dev/`) or the module tables (which modules are VFIO ones).
#[derive(Clone, Copy)]
pub(crate) struct Classifier<'a> {
    pub sysfs: &'a Sysfs,
    pub tables: &'a ModuleTables,
    pub log: &'a Logger,
}

impl Classifier<'_> {
    /// The modules a driver may belong to, most likely first: its `module` link, the module
    /// name the user gave, the driver name in `_` spelling.
    pub fn module_candidates(
        &self,
        driver: &DriverName,
        given: Option<&DriverName>,
    ) -> Result<Vec<ModuleName>> {
        let mut out = Vec::new();
        if let Some(m) = self.sysfs.driver_module(driver)? {
            out.push(m);
        }
        for m in given.into_iter().chain([driver]).map(ModuleName::from) {
            if !out.contains(&m) {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// The modules a target may belong to: a registered driver's candidates, or the module a
    /// dry run would load.
    pub fn target_modules(
        &self,
        target: &Target,
        given: Option<&DriverName>,
    ) -> Result<Vec<ModuleName>> {
        match target {
            Target::Driver(d) => self.module_candidates(d, given),
            Target::Unloaded(m) => Ok(vec![m.clone()]),
        }
    }

    /// True when `driver` is a VFIO driver: `vfio-pci`, or a driver whose module is a VFIO
    /// one (a variant the kernel ships, or one declaring `vfio_pci:` aliases).
    pub fn is_vfio_driver(&self, driver: &DriverName) -> bool {
        self.is_vfio_target(&Target::Driver(driver.clone()))
    }

    /// [`Classifier::is_vfio_driver`] for a target, which may be a module not loaded yet.
    pub fn is_vfio_target(&self, target: &Target) -> bool {
        if matches!(target, Target::Driver(d) if d.as_str() == VFIO_PCI_DRIVER) {
            return true;
        }
        let Ok(candidates) = self.target_modules(target, None) else {
            return false;
        };
        candidates
            .iter()
            .any(|m| self.tables.is_vfio_module(m, self.log))
    }

    /// Whether a device bound to `driver` (as the caller read it) is on a VFIO driver: it has
    /// a `vfio-dev/` entry, or the driver is `vfio-pci` or a variant. Unbound is not.
    pub fn on_vfio_driver(&self, address: &PciAddress, driver: Option<&DriverName>) -> bool {
        driver.is_some_and(|d| self.sysfs.has_vfio_dev(address) || self.is_vfio_driver(d))
    }

    /// True for a device on a host driver: a driver that is neither a VFIO driver nor a stub.
    pub fn on_host_driver(&self, address: &PciAddress, driver: Option<&DriverName>) -> bool {
        driver.is_some_and(|d| !is_stub_driver(d) && !self.on_vfio_driver(address, Some(d)))
    }

    /// What the device at `address`, bound to `driver`, is as a member of an IOMMU group.
    pub fn member_class(&self, address: &PciAddress, driver: Option<&DriverName>) -> MemberClass {
        classify(driver, self.on_vfio_driver(address, driver))
    }

    /// The device's driver when it is a VFIO driver, else `None`.
    pub fn vfio_driver_of(&self, address: &PciAddress) -> Result<Option<DriverName>> {
        let driver = self.sysfs.device_driver(address)?;
        Ok(driver.filter(|d| self.on_vfio_driver(address, Some(d))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(name: &str) -> DriverName {
        DriverName::new(name).unwrap()
    }

    #[test]
    fn stubs_and_the_port_driver_are_harmless_host_drivers_are_not() {
        for harmless in ["pci-stub", "pciback", "pcieport"] {
            assert!(is_harmless_driver(&d(harmless)), "{harmless}");
        }
        assert!(is_stub_driver(&d("pci-stub")));
        assert!(!is_stub_driver(&d("pcieport")), "a port driver is no stub");
        assert!(!is_harmless_driver(&d("e1000e")));
    }

    #[test]
    fn a_member_is_classed_by_its_driver() {
        assert_eq!(classify(None, false), MemberClass::Harmless);
        assert_eq!(classify(Some(&d("vfio-pci")), true), MemberClass::Vfio);
        assert_eq!(classify(Some(&d("pcieport")), false), MemberClass::Harmless);
        assert_eq!(classify(Some(&d("e1000e")), false), MemberClass::Blocking);
    }
}
