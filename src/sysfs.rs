//! The only code that touches the file system under the sysfs root.
//!
//! Every path is built from the root and validated components (`PciAddress`, `DriverName`,
//! `ModuleName`), none of which can hold `/` or `..`, so no path built here leaves the root.
//! Names read back from the tree (directory entries, link targets) are validated before use.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::address::PciAddress;
use crate::error::{Error, Result};
use crate::modalias::Modalias;
use crate::name::{DriverName, ModuleName};

#[derive(Clone, Debug)]
pub struct Sysfs {
    root: PathBuf,
}

impl Sysfs {
    pub fn new(root: PathBuf) -> Sysfs {
        Sysfs { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn drivers_dir(&self) -> PathBuf {
        self.root.join("bus/pci/drivers")
    }

    pub fn driver_dir(&self, driver: &DriverName) -> PathBuf {
        self.drivers_dir().join(driver.as_str())
    }

    pub fn module_dir(&self, module: &ModuleName) -> PathBuf {
        self.root.join("module").join(module.as_str())
    }

    pub fn device_dir(&self, address: &PciAddress) -> PathBuf {
        self.root.join("bus/pci/devices").join(address.to_string())
    }

    /// True when `bus/pci/drivers/DRIVER` is a directory, i.e. the PCI driver is registered.
    pub fn driver_exists(&self, driver: &DriverName) -> bool {
        is_dir(&self.driver_dir(driver))
    }

    pub fn module_exists(&self, module: &ModuleName) -> bool {
        is_dir(&self.module_dir(module))
    }

    /// Registered PCI drivers, in name order. Entries that are not valid names are skipped.
    pub fn drivers(&self) -> Result<Vec<DriverName>> {
        let dir = self.drivers_dir();
        let mut out = Vec::new();
        for name in list_dir(&dir, "listing PCI drivers")? {
            if let Ok(driver) = DriverName::new(&name) {
                if is_dir(&dir.join(&name)) {
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
        let names = match list_dir(&dir, "listing a module's drivers") {
            Ok(names) => names,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
        let mut out: Vec<DriverName> = names
            .iter()
            .filter_map(|n| n.strip_prefix("pci:"))
            .filter_map(|n| DriverName::new(n).ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// The module a driver belongs to, from its `module` link (absent for built-in drivers).
    pub fn driver_module(&self, driver: &DriverName) -> Result<Option<ModuleName>> {
        let link = self.driver_dir(driver).join("module");
        Ok(link_basename(&link, "reading a driver's module link")?
            .and_then(|n| ModuleName::new(&n).ok()))
    }

    /// Fails with `NoDevice` unless `bus/pci/devices/ADDRESS` exists.
    pub fn require_device(&self, address: &PciAddress) -> Result<PathBuf> {
        let dir = self.device_dir(address);
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => Ok(dir),
            Ok(_) => Err(Error::NoDevice {
                address: *address,
                path: dir,
            }),
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
        let dir = self.require_device(address)?;
        let link = dir.join("driver");
        match link_basename(&link, "reading the device's driver link")? {
            None => Ok(None),
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
}

/// Largest sysfs attribute read; the kernel's are at most a page.
const MAX_ATTR: usize = 4096;

impl Sysfs {
    /// The content of the device attribute `name` (at most a page), in one read: sysfs hands
    /// over a whole attribute at once, and a short read of a regular file means its end.
    pub fn device_attr(&self, address: &PciAddress, name: &'static str) -> Result<String> {
        let path = self.device_dir(address).join(name);
        let step = "reading a device attribute";
        let mut file = match fs::File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                // Tell a missing device from a missing attribute.
                self.require_device(address)?;
                return Err(Error::io(step, &path, e));
            }
        };
        let mut buf = [0u8; MAX_ATTR + 1];
        let n = loop {
            match io::Read::read(&mut file, &mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(step, &path, e)),
            }
        };
        if n > MAX_ATTR {
            return Err(Error::Malformed {
                path,
                detail: format!("longer than {MAX_ATTR} bytes"),
            });
        }
        String::from_utf8(buf[..n].to_vec()).map_err(|_| Error::Malformed {
            path,
            detail: "not UTF-8".into(),
        })
    }

    /// The device's validated `modalias`.
    pub fn modalias(&self, address: &PciAddress) -> Result<Modalias> {
        let content = self.device_attr(address, "modalias")?;
        Modalias::parse(&content).map_err(|detail| Error::Malformed {
            path: self.device_dir(address).join("modalias"),
            detail,
        })
    }
}

fn is_dir(path: &Path) -> bool {
    fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false)
}

fn list_dir(dir: &Path, step: &'static str) -> Result<Vec<String>> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(step, dir, e))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(step, dir, e))?;
        // Non-UTF-8 names cannot be valid driver or module names; skip them.
        if let Ok(name) = entry.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// The last component of a symlink's target, or `None` when the link does not exist.
fn link_basename(link: &Path, step: &'static str) -> Result<Option<String>> {
    match fs::read_link(link) {
        Ok(target) => Ok(target
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(step, link, e)),
    }
}
