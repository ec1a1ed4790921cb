//! The context: one sysfs tree, the settings used on it, and the questions that need nothing
//! but those (SPEC 4's `pcibind_ctx`). The operations on devices are in `ops/`, as `impl
//! Context` blocks, one file per subject.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::os::lock::{DeviceLocks, DEFAULT_LOCK_TIMEOUT};
use crate::os::modprobe::{Modprobe, DEFAULT_MODPROBE_TIMEOUT};
use crate::os::sysfs::Sysfs;
use crate::policy::resolve;
use crate::tables::{ModuleTables, VfioChoice};
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::log::Logger;
use crate::types::modalias;
use crate::types::name::{DriverName, ModuleName};

/// Where per-device lock files go unless configured otherwise: the build's lock directory,
/// meson's `-Dlockdir` (published as the `lockdir` variable of `pcibind.pc`), `/run/pcibind`
/// unless set (build.rs).
pub const DEFAULT_LOCK_DIR: &str = env!("PCIBIND_DEFAULT_LOCK_DIR");

/// A handle on one sysfs tree and the settings used to act on it. Operations take `&self` and
/// may run from many threads at once; the setters take `&mut self`.
#[derive(Debug)]
pub struct Context {
    pub(crate) sysfs: Sysfs,
    pub(crate) tables: ModuleTables,
    pub(crate) modprobe: Modprobe,
    pub(crate) modprobe_timeout: Duration,
    pub(crate) lock_dir: PathBuf,
    pub(crate) lock_timeout: Duration,
    pub(crate) log: Logger,
    pub(crate) locks: DeviceLocks,
    pub(crate) proc_root: PathBuf,
    /// Where the device nodes are (`/dev`; tests set their own).
    pub(crate) dev_root: PathBuf,
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

/// `dir` when it is absolute, `default` when it is `None`.
fn absolute_or(what: &str, dir: Option<PathBuf>, default: &str) -> Result<PathBuf> {
    match dir {
        Some(dir) => require_absolute(what, &dir).map(|()| dir),
        None => Ok(PathBuf::from(default)),
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
            modprobe_timeout: DEFAULT_MODPROBE_TIMEOUT,
            lock_dir: PathBuf::from(DEFAULT_LOCK_DIR),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            log: Logger::default(),
            locks: DeviceLocks::default(),
            proc_root: PathBuf::from("/proc"),
            dev_root: PathBuf::from("/dev"),
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

    /// How long modprobe may run: at the limit it is killed, with whatever it started, and the
    /// load fails with [`Error::ModuleLoad`] (saying it timed out, with what it printed). The
    /// default is [`DEFAULT_MODPROBE_TIMEOUT`] (60 s); `Duration::MAX` means no limit. Zero is
    /// refused: no module loads in no time.
    pub fn set_modprobe_timeout(&mut self, timeout: Duration) -> Result<()> {
        if timeout.is_zero() {
            return Err(Error::InvalidArg(
                "the modprobe timeout must be more than 0".into(),
            ));
        }
        self.modprobe_timeout = timeout;
        Ok(())
    }

    pub fn modprobe_timeout(&self) -> Duration {
        self.modprobe_timeout
    }

    /// The directory for per-device lock files; `None` = [`DEFAULT_LOCK_DIR`].
    pub fn set_lock_dir(&mut self, dir: Option<PathBuf>) -> Result<()> {
        self.lock_dir = absolute_or("the lock directory", dir, DEFAULT_LOCK_DIR)?;
        Ok(())
    }

    pub fn lock_dir(&self) -> &Path {
        &self.lock_dir
    }

    /// How long an operation waits for a device's lock, held by another thread or another
    /// process, before it fails with [`Error::Busy`]: one deadline for both waits. The default
    /// is [`DEFAULT_LOCK_TIMEOUT`] (60 s); zero fails at once when the lock is held;
    /// `Duration::MAX` waits as long as it takes.
    pub fn set_lock_timeout(&mut self, timeout: Duration) {
        self.lock_timeout = timeout;
    }

    pub fn lock_timeout(&self) -> Duration {
        self.lock_timeout
    }

    /// Where the in-use checks read `self/mountinfo`, `swaps` and `iomem`, and, when it is not
    /// `/proc` itself (a test tree), `net/route` and `net/if_inet6`; with `/proc` addresses and
    /// routes come from the kernel over netlink. `None` = `/proc`.
    pub fn set_proc_root(&mut self, dir: Option<PathBuf>) -> Result<()> {
        self.proc_root = absolute_or("the proc root", dir, "/proc")?;
        Ok(())
    }

    /// Where the device nodes are: those [`Context::vfio_device_nodes`] lists, and the block
    /// devices the in-use check opens with `O_EXCL` to ask the kernel whether they are held;
    /// `None` = `/dev`.
    pub fn set_dev_root(&mut self, dir: Option<PathBuf>) -> Result<()> {
        self.dev_root = absolute_or("the dev root", dir, "/dev")?;
        Ok(())
    }

    pub fn dev_root(&self) -> &Path {
        &self.dev_root
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

    /// The registered PCI drivers (`bus/pci/drivers/`), by their exact names, in name order.
    /// A question about the tree as it is (nothing is loaded), e.g. for offering driver names
    /// in the tool's shell completions.
    pub fn pci_drivers(&self) -> Result<Vec<DriverName>> {
        self.sysfs.drivers()
    }

    /// The modules that the module tables (`modules.alias` and `modules.builtin.modinfo` of
    /// [`Context::set_modules_dir`]'s directory) give PCI aliases, host (`pci:`) or VFIO
    /// (`vfio_pci:`) ones: the modules that can register a PCI driver, loaded or not, each once
    /// in name order. Read-only (nothing is loaded), e.g. for offering driver names in the
    /// tool's shell completions. Missing or unreadable tables are not an error: a warning is
    /// logged and the list is empty.
    pub fn pci_modules(&self) -> Vec<ModuleName> {
        match self.tables.pci_modules(&self.log) {
            Ok(modules) => modules,
            Err(why) => {
                self.log.log(
                    crate::types::log::Priority::Warning,
                    format_args!("{why}; no PCI modules listed"),
                );
                Vec::new()
            }
        }
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

    /// Drops what the context has cached (the module tables' indexes): the next call reads
    /// them afresh. After a caught panic, what it left half-built is not trusted.
    pub fn forget_caches(&self) {
        self.tables.forget();
    }

    pub(crate) fn vfio_variant_for(
        &self,
        address: &PciAddress,
        modalias: &modalias::Modalias,
    ) -> ModuleName {
        self.tables.best_vfio_module(address, modalias, &self.log)
    }

    /// `vfio_variant_for`, with what the choice rests on (for a plan to say).
    pub(crate) fn vfio_choice_for(
        &self,
        address: &PciAddress,
        modalias: &modalias::Modalias,
    ) -> VfioChoice {
        self.tables.vfio_choice(address, modalias, &self.log)
    }
}
