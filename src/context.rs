//! The context (SPEC 4's `pcibind_ctx`): one sysfs tree and the settings used on it, and the
//! whole public Rust API in one place. The operations are listed here by subject, each
//! documented and each one delegation to its function in `ops/`; the views the layers below
//! are given of the context (the engine's, the checks', the classifier) are made in
//! `context/views.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ops;
use crate::ops::bind::{BindOutcome, Plan};
use crate::ops::device::DeviceInfo;
use crate::ops::group::GroupOutcome;
use crate::ops::preset::Preset;
use crate::ops::recover::Interrupted;
use crate::ops::sriov::SriovOptions;
use crate::os::holders::Holder;
use crate::os::lock::{DeviceLocks, DEFAULT_LOCK_TIMEOUT};
use crate::os::modprobe::{Modprobe, DEFAULT_MODPROBE_TIMEOUT};
use crate::os::sysfs::Sysfs;
use crate::policy::group::GroupMember;
use crate::policy::inuse::InUse;
use crate::tables::ModuleTables;
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::log::Logger;
use crate::types::name::{DriverName, ModuleName};
use crate::types::options::BindOptions;

mod views;

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
    // The context: its roots and settings (libkmod's `kmod_new` and setters).

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

    /// Drops what the context has cached (the module tables' indexes): the next call reads
    /// them afresh. After a caught panic, what it left half-built is not trusted.
    pub fn forget_caches(&self) {
        self.tables.forget();
    }

    // Names: the driver a name stands for, the best VFIO module for a device (SPEC 3.1, 3.2).

    /// The exact name of the registered PCI driver that `name` (a driver or module name, in
    /// either `-`/`_` spelling) stands for, loading its module when needed (SPEC 3.1).
    pub fn resolve_driver(&self, name: &str) -> Result<DriverName> {
        ops::resolve::resolve_driver(self, name)
    }

    /// Whether `name` (in either `-`/`_` spelling) is a registered PCI driver or a module the
    /// kernel has (loaded or built in) now. Nothing is loaded and nothing resolved: a question
    /// about the tree as it is, for telling a driver's name from another name (the tool: a
    /// network interface called like a driver). A malformed name names nothing.
    pub fn names_driver_or_module(&self, name: &str) -> bool {
        ops::resolve::names_driver_or_module(self, name)
    }

    /// The registered PCI drivers (`bus/pci/drivers/`), by their exact names, in name order.
    /// A question about the tree as it is (nothing is loaded), e.g. for offering driver names
    /// in the tool's shell completions.
    pub fn pci_drivers(&self) -> Result<Vec<DriverName>> {
        ops::resolve::pci_drivers(self)
    }

    /// The modules that the module tables (`modules.alias` and `modules.builtin.modinfo` of
    /// [`Context::set_modules_dir`]'s directory) give PCI aliases, host (`pci:`) or VFIO
    /// (`vfio_pci:`) ones: the modules that can register a PCI driver, loaded or not, each once
    /// in name order. Read-only (nothing is loaded), e.g. for offering driver names in the
    /// tool's shell completions. Missing or unreadable tables are not an error: a warning is
    /// logged and the list is empty.
    pub fn pci_modules(&self) -> Vec<ModuleName> {
        ops::resolve::pci_modules(self)
    }

    /// The module of the most specific VFIO driver for the device at `address` (SPEC 3.2):
    /// a variant such as `mlx5_vfio_pci` when one of its `vfio_pci:` aliases matches the
    /// device's modalias, else `vfio_pci`. Missing or unreadable alias tables are not an
    /// error: a warning is logged and the answer is `vfio_pci`.
    pub fn find_vfio_variant(&self, address: &str) -> Result<ModuleName> {
        ops::resolve::find_vfio_variant(self, address)
    }

    // Devices, for listings.

    /// Every PCI device in the tree, in address order.
    pub fn devices(&self) -> Result<Vec<PciAddress>> {
        ops::device::devices(self)
    }

    /// The state of the device at `address`.
    pub fn device_info(&self, address: &str) -> Result<DeviceInfo> {
        ops::device::device_info(self, address)
    }

    // Questions about one device: its driver, its IOMMU group, its use (SPEC 3.4, 3.14).

    /// The driver the device at `address` is bound to, or `None` when it is unbound.
    pub fn current_driver(&self, address: &str) -> Result<Option<DriverName>> {
        ops::query::current_driver(self, address)
    }

    /// True when the device is bound to a VFIO driver (`vfio-dev/` present, `vfio-pci`, or a
    /// variant), so callers stop comparing driver names with `"vfio-pci"`.
    pub fn is_vfio_bound(&self, address: &str) -> Result<bool> {
        ops::query::is_vfio_bound(self, address)
    }

    /// The members of the device's IOMMU group (itself included), with their drivers and what
    /// those mean for assigning the group.
    pub fn iommu_group(&self, address: &str) -> Result<Vec<GroupMember>> {
        ops::query::iommu_group(self, address)
    }

    /// `None` when the device's IOMMU group can be assigned (no blocking member), else why not.
    pub fn iommu_group_viability(&self, address: &str) -> Result<Option<String>> {
        ops::query::iommu_group_viability(self, address)
    }

    /// Whether the device at `address` is in use, and how: the question the in-use check of a
    /// move off its driver asks (SPEC 3.14), answered alone. A device on a host driver or on
    /// none is asked about the host's use of it; one on a VFIO driver about a VMM holding it;
    /// one on a stub is in use by nobody. `None` when it is not in use.
    pub fn in_use(&self, address: &str) -> Result<Option<InUse>> {
        ops::query::in_use(self, address)
    }

    /// The processes that hold each of `addresses` that is on a VFIO driver (its group node or
    /// its cdev open: a running VM), found with one look at every process's open files; devices
    /// on no VFIO driver are left out. For listings (`pcibind status`); a move off a VFIO driver
    /// asks for its own device.
    pub fn vmm_holders(&self, addresses: &[PciAddress]) -> Result<Vec<(PciAddress, Vec<Holder>)>> {
        ops::query::vmm_holders(self, addresses)
    }

    // The device nodes a VMM opens (SPEC 3.9).

    /// The device nodes that exist for the device at `address`, under the dev root: the
    /// container `vfio/vfio`, the group `vfio/GROUP` (or `vfio/noiommu-GROUP`), then `iommu`
    /// and `vfio/devices/vfioN` (its `vfio-dev/` entry), the last two only when both exist.
    /// A device not on a VFIO driver is [`Error::Unsupported`].
    pub fn vfio_device_nodes(&self, address: &str) -> Result<Vec<PathBuf>> {
        ops::nodes::vfio_device_nodes(self, address)
    }

    // Network interfaces where an address is expected.

    /// The PCI function behind network interface `name`: the device its `device` link names,
    /// or for virtio-net, whose link names the virtio device `virtioN`, the PCI function that
    /// device sits on (binding moves that function, and the interface goes with it, as
    /// dpdk-devbind does it). A malformed name, an interface that does not exist, has no
    /// device (a bridge, a bond, a VLAN) or whose device is on another bus (USB) is
    /// [`Error::InvalidArg`], saying which.
    pub fn net_interface_device(&self, name: &str) -> Result<PciAddress> {
        ops::ifname::net_interface_device(self, name)
    }

    /// The names of the network interfaces (`class/net/`) that stand for a PCI device, those
    /// [`Context::net_interface_device`] answers for, in name order; virtual interfaces and
    /// those of other buses are left out. E.g. for offering interface names in the tool's
    /// shell completions.
    pub fn pci_net_interfaces(&self) -> Result<Vec<String>> {
        ops::ifname::pci_net_interfaces(self)
    }

    /// True when a network interface of that name exists (whatever its device).
    pub fn is_net_interface(&self, name: &str) -> bool {
        ops::ifname::is_net_interface(self, name)
    }

    // Moves of one device (SPEC 3.3): bind, unbind, reattach, each with its plan (the dry run).

    /// Binds the device at `address` to the driver `name` (a driver or module name, SPEC
    /// 3.1), or with `None` to the best VFIO driver for it (SPEC 3.2), as a transaction
    /// (SPEC 3.3). Returns the driver the device is now bound to.
    pub fn bind(
        &self,
        address: &str,
        name: Option<&str>,
        options: BindOptions,
    ) -> Result<DriverName> {
        ops::bind::bind(self, address, name, options)
    }

    /// [`Context::bind`], also saying where the device started and whether anything was
    /// written (SPEC 3.14): read under the device's lock, after any interrupted transaction
    /// was rolled back, so no other caller's move can come between the start reported and
    /// the move made. A manager records the start to give the device back to exactly it.
    pub fn bind_start(
        &self,
        address: &str,
        name: Option<&str>,
        options: BindOptions,
    ) -> Result<BindOutcome> {
        ops::bind::bind_start(self, address, name, options)
    }

    /// What [`Context::bind`] with the same arguments would do, without doing any of it:
    /// nothing is written and no module is loaded, but every check that needs no module
    /// load runs and fails as the real call would. The plan comes from the same step list
    /// the real call executes.
    pub fn bind_plan(
        &self,
        address: &str,
        name: Option<&str>,
        options: BindOptions,
    ) -> Result<Plan> {
        ops::bind::bind_plan(self, address, name, options)
    }

    /// Detaches the device at `address` from its driver and leaves it unbound. Its
    /// `driver_override` is first set to `none` (a name no driver has), so no later probe
    /// grabs it. Nothing is written when it is unbound with that override already. Taking a
    /// device off a host driver runs bind's safety checks unless `options.force` (unbinding
    /// the host's NIC cuts the host off as surely as binding it elsewhere). On failure the
    /// device is put back as it was.
    pub fn unbind(&self, address: &str, options: BindOptions) -> Result<()> {
        ops::unbind::unbind(self, address, options)
    }

    /// What [`Context::unbind`] with the same arguments would do, without doing any of it:
    /// the checks run as the real call's, nothing is written. The plan comes from the step list
    /// the real call executes.
    pub fn unbind_plan(&self, address: &str, options: BindOptions) -> Result<Plan> {
        ops::unbind::unbind_plan(self, address, options)
    }

    /// Gives the device back to the host (SPEC 3.3 reattach), as a transaction. With no name:
    /// clears `driver_override`, unbinds and lets the kernel probe (loading first the host
    /// modules the alias tables name for the device); with a name, binds exactly that driver
    /// and then clears the override if the driver matches the device by its own ID table.
    /// Nothing is written when there is nothing to do: a device on a host driver with no
    /// override, asked back to the host or to the driver it is on; a device on a host driver
    /// whose override is set only has the override cleared (a host NIC must not flap). A
    /// named driver that is not the current one must claim the device, and a device taken off
    /// a host driver passes bind's safety checks, unless `options.force`. Returns the driver
    /// it ends on; `None` only when no name was given and the alias tables were read and name
    /// no host driver for the device. On failure the device is put back as it was.
    pub fn reattach(
        &self,
        address: &str,
        name: Option<&str>,
        options: BindOptions,
    ) -> Result<Option<DriverName>> {
        ops::reattach::reattach(self, address, name, options)
    }

    /// What [`Context::reattach`] with the same arguments would do, without doing any of it:
    /// nothing is written or loaded; the checks that need no module load run as the real
    /// call's. The plan comes from the step list the real call executes.
    pub fn reattach_plan(
        &self,
        address: &str,
        name: Option<&str>,
        options: BindOptions,
    ) -> Result<Plan> {
        ops::reattach::reattach_plan(self, address, name, options)
    }

    // IOMMU-group moves (SPEC 3.8): the whole unit as one transaction.

    /// Moves the whole unit of the device at `address` to VFIO drivers as one transaction
    /// (SPEC 3.8): its IOMMU group and the functions its members name as `consumer:pci:`
    /// device links, with their groups. Bridges never move, and a bridge on a host driver
    /// refuses the unit (forced or not); every other member not on a VFIO driver moves to its
    /// best VFIO driver. The safety checks run on every member before anything is written;
    /// every member's lock is held, taken in address order, for the whole transaction; a
    /// failure puts back the members already moved, in reverse order. With `dry_run` nothing
    /// is written or loaded and the outcome carries the plan.
    pub fn bind_group(
        &self,
        address: &str,
        options: BindOptions,
        dry_run: bool,
    ) -> Result<GroupOutcome> {
        ops::group::bind_group(self, address, options, dry_run)
    }

    /// Gives every VFIO-bound, non-bridge member of the unit of the device at `address` back to
    /// the host (each as [`Context::reattach`] with no name), as one transaction: a failure puts
    /// the members already moved back onto their VFIO drivers, in reverse order.
    pub fn reattach_group(
        &self,
        address: &str,
        options: BindOptions,
        dry_run: bool,
    ) -> Result<GroupOutcome> {
        ops::group::reattach_group(self, address, options, dry_run)
    }

    // Overrides written at boot, before any driver loads (SPEC 3.11).

    /// Writes `name` into the `driver_override` of the device at `address` if no driver is
    /// bound to it, and does nothing else: the next probe of the device, by whichever driver
    /// registers, binds only the driver of that name (or nothing, for `none` or a name no
    /// driver has). The name is written as given, after the checks of a driver name; it is
    /// not resolved (resolving may load modules, which is what this must precede).
    pub fn preset_override(&self, address: &str, name: &str) -> Result<Preset> {
        ops::preset::preset_override(self, address, name)
    }

    // SR-IOV (SPEC 3.10): VFs and their count.

    /// The VFs of the PF at `pf`, in `virtfnN` order. A device without `sriov_totalvfs` (no
    /// SR-IOV, or a VF) is `Unsupported`.
    pub fn sriov_vfs(&self, pf: &str) -> Result<Vec<PciAddress>> {
        ops::sriov::sriov_vfs(self, pf)
    }

    /// Sets the number of VFs of the PF at `pf` to `numvfs` (SPEC 3.10) and returns the VFs it
    /// then has. More than `sriov_totalvfs` is refused with nothing written; the current count
    /// writes nothing. Any other change removes the VFs there are first (the kernel refuses to
    /// go from one non-zero count to another), which is refused while one of them is on a
    /// VFIO driver unless `force`. Unless `autoprobe`, the new VFs are kept from host drivers:
    /// the PF's `sriov_drivers_autoprobe` is 0 while they are created, each gets
    /// `driver_override` `none`, then the setting is put back. The PF is locked meanwhile, and
    /// so are its VFs while they are removed and each new VF while it is parked.
    pub fn sriov_set_numvfs(
        &self,
        pf: &str,
        numvfs: u32,
        options: SriovOptions,
    ) -> Result<Vec<PciAddress>> {
        ops::sriov::sriov_set_numvfs(self, pf, numvfs, options)
    }

    /// What [`Context::sriov_set_numvfs`] with the same arguments would do, without doing any
    /// of it: its checks run and fail as the real call's, nothing is written and no lock is
    /// taken. The plan comes from the step list the real call executes.
    pub fn sriov_set_numvfs_plan(
        &self,
        pf: &str,
        numvfs: u32,
        options: SriovOptions,
    ) -> Result<Plan> {
        ops::sriov::sriov_set_numvfs_plan(self, pf, numvfs, options)
    }

    // Interrupted transactions (SPEC 3.12).

    /// Rolls back the interrupted transactions of the device at `address`, or with `None` of
    /// every device whose lock file holds a record (SPEC 3.12), each under its lock. Returns
    /// the devices rolled back, in address order. Any other operation on a device does the
    /// same first; this is for a manager's start-up and for an operator.
    pub fn recover(&self, address: Option<&str>) -> Result<Vec<PciAddress>> {
        ops::recover::recover(self, address)
    }

    /// The devices whose lock file holds a transaction record: interrupted ones, and those
    /// whose transaction is running now. Reads only; waits for nothing.
    pub fn interrupted(&self) -> Result<Vec<Interrupted>> {
        ops::recover::interrupted(self)
    }
}
