//! libpcibind: move Linux PCI devices between kernel drivers for device assignment.
//!
//! The Rust API is [`Context`]; the C API (`src/ffi/`) is a thin layer over it. Data flows one
//! way: C API -> core (resolution, ...) -> `sysfs`, the only module that touches the file system.

mod address;
mod beneath;
mod bind;
mod device;
mod error;
mod ffi;
pub mod group;
mod inuse;
mod lock;
mod log;
mod modalias;
mod modprobe;
mod name;
mod query;
mod resolve;
mod safety;
mod sysfs;
mod tables;
mod txn;

use std::path::{Path, PathBuf};

pub use address::PciAddress;
pub use bind::{BindOptions, Plan};
pub use device::{class_name, DeviceInfo};
pub use error::{Error, Result};
pub use group::{GroupMember, MemberClass};
pub use log::{Logger, Priority, Sink};
pub use modprobe::Modprobe;
pub use name::{DriverName, ModuleName};
pub use sysfs::NO_DRIVER_OVERRIDE;

/// The parsers and matchers that the fuzz targets and benchmarks drive directly (feature
/// `internals`); not part of the stable API.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::modalias::Modalias;
    pub use crate::tables::{
        wildcard_count, AliasIndex, HostAliases, ModuleTables, Side, VFIO_PREFIX,
    };
}

use lock::DeviceLocks;
use sysfs::Sysfs;
use tables::ModuleTables;

/// Where per-device lock files go unless configured otherwise.
pub const DEFAULT_LOCK_DIR: &str = "/run/pcibind";

/// A handle on one sysfs tree and the settings used to act on it. Operations take `&self` and
/// may run from many threads at once; the setters take `&mut self`.
#[derive(Debug)]
pub struct Context {
    sysfs: Sysfs,
    tables: ModuleTables,
    modprobe: Modprobe,
    lock_dir: PathBuf,
    log: Logger,
    locks: DeviceLocks,
    proc_root: PathBuf,
}

fn require_absolute(what: &str, path: &Path) -> Result<()> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(Error::InvalidArg(format!(
            "{what} must be an absolute path, not {:?}",
            path
        )))
    }
}

impl Context {
    /// A context on the sysfs tree at `root` (normally `/sys`), which must be an existing
    /// directory given as an absolute path.
    pub fn new(root: impl Into<PathBuf>) -> Result<Context> {
        let root = root.into();
        require_absolute("the sysfs root", &root)?;
        // Opening the tree fails with ENOTDIR for a file, ENOENT for nothing.
        let sysfs = Sysfs::new(root)?;
        Ok(Context {
            sysfs,
            tables: ModuleTables::default(),
            modprobe: Modprobe::default(),
            lock_dir: PathBuf::from(DEFAULT_LOCK_DIR),
            log: Logger::default(),
            locks: DeviceLocks::default(),
            proc_root: PathBuf::from("/proc"),
        })
    }

    pub fn sysfs_root(&self) -> &Path {
        self.sysfs.root()
    }

    /// The directory holding `modules.alias`; `None` = `/lib/modules/<release>`, then
    /// `/usr/lib/modules/<release>`.
    pub fn set_modules_dir(&mut self, dir: Option<PathBuf>) -> Result<()> {
        if let Some(dir) = &dir {
            require_absolute("the modules directory", dir)?;
        }
        self.tables = ModuleTables::new(dir);
        Ok(())
    }

    pub fn modules_dir(&self) -> Option<&Path> {
        self.tables.configured_dir()
    }

    pub fn set_modprobe(&mut self, modprobe: Modprobe) -> Result<()> {
        if let Modprobe::Program(p) = &modprobe {
            require_absolute("the modprobe program", p)?;
        }
        self.modprobe = modprobe;
        Ok(())
    }

    /// The directory for per-device lock files; `None` = [`DEFAULT_LOCK_DIR`].
    pub fn set_lock_dir(&mut self, dir: Option<PathBuf>) -> Result<()> {
        match dir {
            Some(dir) => {
                require_absolute("the lock directory", &dir)?;
                self.lock_dir = dir;
            }
            None => self.lock_dir = PathBuf::from(DEFAULT_LOCK_DIR),
        }
        Ok(())
    }

    pub fn lock_dir(&self) -> &Path {
        &self.lock_dir
    }

    /// Where the in-use checks read `net/route`, `net/if_inet6`, `self/mountinfo` and `swaps`;
    /// `None` = `/proc`.
    pub fn set_proc_root(&mut self, dir: Option<PathBuf>) -> Result<()> {
        match dir {
            Some(dir) => {
                require_absolute("the proc root", &dir)?;
                self.proc_root = dir;
            }
            None => self.proc_root = PathBuf::from("/proc"),
        }
        Ok(())
    }

    pub fn set_logger(&mut self, log: Logger) {
        self.log = log;
    }

    pub fn logger(&self) -> &Logger {
        &self.log
    }

    /// The exact name of the registered PCI driver that `name` (a driver or module name, in
    /// either `-`/`_` spelling) stands for, loading its module when needed (SPEC 3.1).
    pub fn resolve_driver(&self, name: &str) -> Result<DriverName> {
        let name = DriverName::new(name)?;
        resolve::resolve_driver(&self.sysfs, &self.modprobe, &self.log, &name)
    }

    /// The driver the device at `address` is bound to, or `None` when it is unbound.
    pub fn current_driver(&self, address: &str) -> Result<Option<DriverName>> {
        let address = PciAddress::parse(address)?;
        self.sysfs.device_driver(&address)
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

    fn vfio_variant_for(&self, address: &PciAddress, modalias: &modalias::Modalias) -> ModuleName {
        self.tables.best_vfio_module(address, modalias, &self.log)
    }
}
