//! The only code that touches the file system under the sysfs root.
//!
//! Every path is built from the root and validated components (`PciAddress`, `DriverName`,
//! `ModuleName`), none of which can hold `/` or `..`; every open resolves beneath the root
//! (`beneath.rs`), so neither a path built here nor a link in a hostile tree leads outside it.
//! Names read back from the tree (directory entries, link targets) are validated before use,
//! and reads are bounded.
//!
//! Here: the `Sysfs` handle, its paths and its primitive reads. By subject: `device.rs` (the
//! devices, drivers and modules, a device's driver, modalias and override), `write.rs` (every
//! write a transaction step makes: `driver_override`, `unbind`, `drivers_probe`, and the
//! bounded write made by a child process), `sriov.rs` (a PF's VF count, autoprobe and VFs),
//! `iommu.rs` (IOMMU groups), `vfio.rs` (a device's `vfio-dev/`), `net.rs` (network
//! interfaces by name). What the in-use checks read below a device is theirs
//! (`policy/inuse/`), through the read-only methods of this file.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use crate::os::beneath::Beneath;

use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::name::{DriverName, ModuleName};

mod device;
mod iommu;
mod net;
mod sriov;
mod vfio;
mod write;

pub(crate) use crate::os::beneath::EntryKind;
pub use device::NO_DRIVER_OVERRIDE;
pub(crate) use net::valid_ifname;
pub use net::InterfaceDevice;

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
    pub(crate) fn read_small(&self, path: &Path, step: &'static str) -> Result<String> {
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
}

impl Sysfs {
    /// The UTF-8 names in a directory (others cannot be valid names and are skipped).
    pub(crate) fn list_dir(&self, dir: &Path, step: &'static str) -> Result<Vec<String>> {
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
    pub(crate) fn link_basename(&self, link: &Path, step: &'static str) -> Result<Option<String>> {
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

/// Reads of any path under the root, for the in-use checks (`policy/inuse/`), which know the
/// shapes of what lies below a device: each resolved beneath the root like every other read,
/// and none of them writes.
impl Sysfs {
    /// True when `path` is a directory under the root.
    pub(crate) fn is_dir(&self, path: &Path) -> bool {
        self.tree.is_dir(path)
    }

    /// The entries of the directory at `path`, with their kinds.
    pub(crate) fn read_dir(&self, path: &Path) -> io::Result<Vec<(OsString, EntryKind)>> {
        self.tree.read_dir(path)
    }

    /// The target of the link at `path`; `None` when there is no link there.
    pub(crate) fn read_link(&self, path: &Path) -> io::Result<Option<PathBuf>> {
        self.tree.read_link(path)
    }

    /// Device and inode of what `path` leads to, to tell one directory reached two ways.
    pub(crate) fn identity(&self, path: &Path) -> io::Result<(u64, u64)> {
        self.tree.identity(path)
    }
}

/// "Absent means empty": a read of a file or directory that is not there (`ENOENT`) gives
/// `empty` (no VFs, no drivers, no interfaces); any other error stays an error, since could
/// not read is not "nothing there".
pub(crate) trait AbsentMeans<T> {
    fn absent_means(self, empty: T) -> Result<T>;
}

impl<T> AbsentMeans<T> for Result<T> {
    fn absent_means(self, empty: T) -> Result<T> {
        match self {
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => Ok(empty),
            other => other,
        }
    }
}
