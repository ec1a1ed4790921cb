//! The only code that touches the file system under the sysfs root.
//!
//! Every path is built from the root and validated components (`PciAddress`, `DriverName`,
//! `ModuleName`), none of which can hold `/` or `..`; every open resolves beneath the root
//! (`beneath.rs`), so neither a path built here nor a link in a hostile tree leads outside it.
//! Names read back from the tree (directory entries, link targets) are validated before use,
//! and reads are bounded.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::beneath::{Beneath, EntryKind};

use crate::address::PciAddress;
use crate::error::{Error, Result};
use crate::modalias::Modalias;
use crate::name::{DriverName, ModuleName};

#[derive(Debug)]
pub struct Sysfs {
    root: PathBuf,
    tree: Beneath,
}

impl Sysfs {
    /// Opens the tree at `root`, which must be a directory.
    pub fn new(root: PathBuf) -> Result<Sysfs> {
        let tree =
            Beneath::new(&root).map_err(|e| Error::io("opening the sysfs root", &root, e))?;
        Ok(Sysfs { root, tree })
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
        self.tree.is_dir(&self.driver_dir(driver))
    }

    pub fn module_exists(&self, module: &ModuleName) -> bool {
        self.tree.is_dir(&self.module_dir(module))
    }

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
        let names = match self.list_dir(&dir, "listing a module's drivers") {
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
}

/// Largest sysfs attribute read; the kernel's are at most a page.
const MAX_ATTR: usize = 4096;

impl Sysfs {
    /// The content of the device attribute `name` (at most a page).
    pub fn device_attr(&self, address: &PciAddress, name: &'static str) -> Result<String> {
        let path = self.device_dir(address).join(name);
        match self.read_small(&path, "reading a device attribute") {
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                // Tell a missing device from a missing attribute.
                self.require_device(address)?;
                Err(Error::io("reading a device attribute", &path, source))
            }
            other => other,
        }
    }

    /// A small file under the root (at most a page), as UTF-8.
    fn read_small(&self, path: &Path, step: &'static str) -> Result<String> {
        let bytes = self
            .tree
            .read(path, MAX_ATTR)
            .map_err(|e| Error::io(step, path, e))?;
        if bytes.len() > MAX_ATTR {
            return Err(Error::Malformed {
                path: path.to_path_buf(),
                detail: format!("longer than {MAX_ATTR} bytes"),
            });
        }
        String::from_utf8(bytes).map_err(|_| Error::Malformed {
            path: path.to_path_buf(),
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

/// A block device found under a PCI device (a disk or a partition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    pub name: String,
    /// `MAJOR:MINOR`, as in its `dev` attribute.
    pub dev: String,
    /// Entries of its `holders/` (device-mapper, md, ... stacked on it).
    pub holders: Vec<String>,
}

/// How deep below a PCI device block devices are looked for (AHCI puts them at
/// `BDF/ata1/host0/target0:0:0/0:0:0:0/block/sda/sda1`).
const MAX_BLOCK_DEPTH: usize = 8;

/// The driver_override value that names no driver: what `unbind` leaves so nothing grabs the
/// device on a later probe.
pub const NO_DRIVER_OVERRIDE: &str = "none";

impl Sysfs {
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

    /// Writes `value` to a kernel file in one write, never creating or truncating it, and
    /// never through a link that leads outside the root.
    fn write_kernel_file(&self, path: PathBuf, value: &[u8], step: &'static str) -> Result<()> {
        self.tree
            .check(&path)
            .map_err(|e| Error::io(step, &path, e))?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            // A FIFO planted in the tree fails (ENXIO) instead of blocking.
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| Error::io(step, &path, e))?;
        io::Write::write_all(&mut file, value).map_err(|e| Error::io(step, &path, e))
    }

    /// Sets (`Some`) or clears (`None`, written as `"\n"`) the device's `driver_override`.
    pub fn set_driver_override(&self, address: &PciAddress, value: Option<&str>) -> Result<()> {
        let path = self.device_dir(address).join("driver_override");
        let bytes = value.map_or(&b"\n"[..], str::as_bytes);
        self.write_kernel_file(path, bytes, "writing driver_override")
    }

    pub fn unbind(&self, driver: &DriverName, address: &PciAddress) -> Result<()> {
        let path = self.driver_dir(driver).join("unbind");
        self.write_kernel_file(path, address.to_string().as_bytes(), "unbinding")
    }

    pub fn bind(&self, driver: &DriverName, address: &PciAddress) -> Result<()> {
        let path = self.driver_dir(driver).join("bind");
        self.write_kernel_file(path, address.to_string().as_bytes(), "binding")
    }

    /// Asks the kernel to probe drivers for an unbound device. The kernel reports success even
    /// when no driver took the device: callers must look at the `driver` link afterwards.
    pub fn probe(&self, address: &PciAddress) -> Result<()> {
        let path = self.root.join("bus/pci/drivers_probe");
        self.write_kernel_file(path, address.to_string().as_bytes(), "probing drivers")
    }

    /// True when the device has `vfio-dev/` (bound to a VFIO driver, kernel 6.1 or later).
    pub fn has_vfio_dev(&self, address: &PciAddress) -> bool {
        self.tree.is_dir(&self.device_dir(address).join("vfio-dev"))
    }

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

    /// The number of enabled SR-IOV virtual functions (0 for a device that is no PF).
    pub fn sriov_numvfs(&self, address: &PciAddress) -> Result<u32> {
        match self.device_attr(address, "sriov_numvfs") {
            Ok(text) => text.trim().parse().map_err(|_| Error::Malformed {
                path: self.device_dir(address).join("sriov_numvfs"),
                detail: format!("{:?} is not a number", text.trim()),
            }),
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// The device's network interfaces with their `flags` (IFF_UP is bit 0).
    pub fn net_interfaces(&self, address: &PciAddress) -> Result<Vec<(String, u32)>> {
        // A device that vanished has no interfaces; the caller checked it exists.
        let dir = self.device_dir(address).join("net");
        let names = match self.list_dir(&dir, "listing the device's network interfaces") {
            Ok(names) => names,
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for name in names {
            if name.contains('/') || name.starts_with('.') {
                continue;
            }
            let flags_path = dir.join(&name).join("flags");
            let flags = self
                .read_small(&flags_path, "reading an interface's flags")
                .ok()
                .and_then(|t| u32::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok())
                .unwrap_or(0);
            out.push((name, flags));
        }
        out.sort();
        Ok(out)
    }

    /// Block devices (disks and partitions) anywhere below the device, found by their
    /// `subsystem` link naming `block`; symlinks are not followed.
    pub fn block_devices(&self, address: &PciAddress) -> Result<Vec<BlockDevice>> {
        let mut out = Vec::new();
        let mut stack = vec![(self.device_dir(address), 0usize)];
        while let Some((dir, depth)) = stack.pop() {
            let Ok(entries) = self.tree.read_dir(&dir) else {
                continue;
            };
            for (name, kind) in entries {
                if kind != EntryKind::Dir || depth >= MAX_BLOCK_DEPTH {
                    continue;
                }
                let path = dir.join(&name);
                let is_block = self
                    .tree
                    .read_link(&path.join("subsystem"))
                    .ok()
                    .flatten()
                    .is_some_and(|t| t.file_name().is_some_and(|n| n == "block"));
                if is_block {
                    let dev = self
                        .read_small(&path.join("dev"), "reading a block device's number")
                        .map(|t| t.trim().to_owned())
                        .unwrap_or_default();
                    let holders = self
                        .list_dir(&path.join("holders"), "listing holders")
                        .unwrap_or_default();
                    out.push(BlockDevice {
                        name: name.to_string_lossy().into_owned(),
                        dev,
                        holders,
                    });
                }
                stack.push((path, depth + 1));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The UTF-8 names in a directory (others cannot be valid names and are skipped).
    fn list_dir(&self, dir: &Path, step: &'static str) -> Result<Vec<String>> {
        let entries = self
            .tree
            .read_dir(dir)
            .map_err(|e| Error::io(step, dir, e))?;
        Ok(entries
            .into_iter()
            .filter_map(|(name, _)| name.into_string().ok())
            .collect())
    }

    /// The last component of a symlink's target, or `None` when the link does not exist. A
    /// target whose last component is not UTF-8 is an error, not an absent link.
    fn link_basename(&self, link: &Path, step: &'static str) -> Result<Option<String>> {
        match self.tree.read_link(link) {
            Ok(None) => Ok(None),
            Ok(Some(target)) => match target.file_name().map(|n| n.to_str()) {
                Some(Some(name)) => Ok(Some(name.to_owned())),
                _ => Err(Error::Malformed {
                    path: link.to_path_buf(),
                    detail: format!("link target {target:?} has no usable last component"),
                }),
            },
            Err(e) => Err(Error::io(step, link, e)),
        }
    }
}
