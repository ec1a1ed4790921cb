//! The devices, drivers and modules of the tree, and a device's state: its driver, modalias,
//! `driver_override`, and the devices that consume it through device links.

use std::io;
use std::path::PathBuf;

use super::{AbsentMeans, Sysfs};
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::modalias::Modalias;
use crate::types::name::{DriverName, ModuleName};

/// The driver_override value that names no driver: what `unbind` leaves so nothing grabs the
/// device on a later probe.
pub const NO_DRIVER_OVERRIDE: &str = "none";

impl Sysfs {
    /// Every PCI device (`bus/pci/devices/`), in address order.
    pub fn devices(&self) -> Result<Vec<PciAddress>> {
        let dir = self.root.join("bus/pci/devices");
        let mut out: Vec<PciAddress> = self
            .list_dir(&dir, "listing PCI devices")?
            .iter()
            .filter_map(|n| PciAddress::parse(n).ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// Registered PCI drivers, in name order. Entries that are not valid names are skipped.
    pub fn drivers(&self) -> Result<Vec<DriverName>> {
        let dir = self.drivers_dir();
        let mut out = Vec::new();
        for name in self.list_dir(&dir, "listing PCI drivers")? {
            if let Ok(driver) = DriverName::new(&name) {
                if self.tree.is_dir(&dir.join(&name)) {
                    out.push(driver);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// PCI drivers a module registers (`module/MOD/drivers/pci:DRV`), in name order.
    /// A module without a `drivers/` directory (typical of built-ins) registers none we can see.
    pub fn module_pci_drivers(&self, module: &ModuleName) -> Result<Vec<DriverName>> {
        let dir = self.module_dir(module).join("drivers");
        let names = self
            .list_dir(&dir, "listing a module's drivers")
            .absent_means(Vec::new())?;
        let mut out: Vec<DriverName> = names
            .iter()
            .filter_map(|n| n.strip_prefix("pci:"))
            .filter_map(|n| DriverName::new(n).ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// The module's `initstate` (`live`, `coming` while its init runs, `going`), trimmed;
    /// `None` when the module has no such file: it is built in (or gone).
    pub fn module_initstate(&self, module: &ModuleName) -> Result<Option<String>> {
        let path = self.module_dir(module).join("initstate");
        Ok(self
            .read_small(&path, "reading a module's initstate")
            .map(Some)
            .absent_means(None)?
            .map(|state| state.trim().to_owned()))
    }

    /// The module a driver belongs to, from its `module` link (absent for built-in drivers).
    pub fn driver_module(&self, driver: &DriverName) -> Result<Option<ModuleName>> {
        let link = self.driver_dir(driver).join("module");
        Ok(self
            .link_basename(&link, "reading a driver's module link")?
            .and_then(|n| ModuleName::new(&n).ok()))
    }

    /// Fails with `NoDevice` unless `bus/pci/devices/ADDRESS` exists.
    pub fn require_device(&self, address: &PciAddress) -> Result<PathBuf> {
        let dir = self.device_dir(address);
        match self.tree.open(&dir, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(_) => Ok(dir),
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => {
                Err(Error::NoDevice {
                    address: *address,
                    path: dir,
                })
            }
            Err(e) => Err(Error::io("looking up the device", dir, e)),
        }
    }

    /// The driver a device is bound to, from its `driver` link; `None` when unbound.
    pub fn device_driver(&self, address: &PciAddress) -> Result<Option<DriverName>> {
        let link = self.device_dir(address).join("driver");
        match self.link_basename(&link, "reading the device's driver link")? {
            None => {
                // No link: unbound, or no such device at all.
                self.require_device(address)?;
                Ok(None)
            }
            Some(name) => DriverName::new(&name).map(Some).map_err(|_| {
                Error::io(
                    "reading the device's driver link",
                    link,
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("link names an invalid driver {name:?}"),
                    ),
                )
            }),
        }
    }

    /// The device's validated `modalias`.
    pub fn modalias(&self, address: &PciAddress) -> Result<Modalias> {
        let content = self.device_attr(address, "modalias")?;
        Modalias::parse(&content).map_err(|detail| Error::Malformed {
            path: self.device_dir(address).join("modalias"),
            detail,
        })
    }

    /// The device's `driver_override`: `None` when unset (the kernel shows `(null)`, some
    /// kernels an empty line).
    pub fn driver_override(&self, address: &PciAddress) -> Result<Option<String>> {
        let content = self.device_attr(address, "driver_override")?;
        let value = content.strip_suffix('\n').unwrap_or(&content);
        Ok(match value {
            "" | "(null)" => None,
            v => Some(v.to_owned()),
        })
    }

    /// The PCI devices that consume this one through device links (`consumer:pci:BDF` entries
    /// of its directory: a GPU names its HDMI audio function so), in address order.
    pub fn pci_consumers(&self, address: &PciAddress) -> Result<Vec<PciAddress>> {
        let dir = self.require_device(address)?;
        let mut out: Vec<PciAddress> = self
            .list_dir(&dir, "listing the device's links")?
            .iter()
            .filter_map(|n| n.strip_prefix("consumer:pci:"))
            .filter_map(|n| PciAddress::parse(n).ok())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }
}
