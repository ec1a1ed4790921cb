//! Names of drivers and modules (SPEC 3.1, 3.2): the registered driver a name stands for, whether
//! a name is a driver's or a module's at all, and the VFIO module best for a device.

use crate::policy::resolve;
use crate::types::address::PciAddress;
use crate::types::error::Result;
use crate::types::name::{DriverName, ModuleName};
use crate::Context;

impl Context {
    /// The exact name of the registered PCI driver that `name` (a driver or module name, in
    /// either `-`/`_` spelling) stands for, loading its module when needed (SPEC 3.1).
    pub fn resolve_driver(&self, name: &str) -> Result<DriverName> {
        let name = DriverName::new(name)?;
        resolve::resolve_driver(
            &self.sysfs,
            &self.modprobe,
            self.modprobe_timeout,
            &self.log,
            &name,
        )
    }

    /// Whether `name` (in either `-`/`_` spelling) is a registered PCI driver or a module the
    /// kernel has (loaded or built in) now. Nothing is loaded and nothing resolved: a question
    /// about the tree as it is, for telling a driver's name from another name (the tool: a
    /// network interface called like a driver). A malformed name names nothing.
    pub fn names_driver_or_module(&self, name: &str) -> bool {
        let Ok(name) = DriverName::new(name) else {
            return false;
        };
        let dashed = DriverName::new(&name.as_str().replace('_', "-"));
        dashed
            .iter()
            .chain([&name.underscored()])
            .any(|d| self.sysfs.driver_exists(d))
            || self.sysfs.module_exists(&ModuleName::from(&name))
    }

    /// The module of the most specific VFIO driver for the device at `address` (SPEC 3.2):
    /// a variant such as `mlx5_vfio_pci` when one of its `vfio_pci:` aliases matches the
    /// device's modalias, else `vfio_pci`. Missing or unreadable alias tables are not an
    /// error: a warning is logged and the answer is `vfio_pci`.
    pub fn find_vfio_variant(&self, address: &str) -> Result<ModuleName> {
        let address = PciAddress::parse(address)?;
        let modalias = self.sysfs.modalias(&address)?;
        Ok(self.vfio_variant_for(&address, &modalias))
    }
}
