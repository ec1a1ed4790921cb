//! Binding as a transaction (SPEC 3.3): the device ends on exactly the requested driver, or it
//! is put back where it started (driver and `driver_override`) and the caller learns which and
//! why. Also unbind and reattach, and the VFIO queries built on the same facts.

use std::fmt::Write as _;

use crate::address::PciAddress;
use crate::alias::{self, AliasIndex, TablesUnavailable, VFIO_PCI_MODULE};
use crate::error::{Error, Result};
use crate::group::{self, GroupMember};
use crate::inuse;
use crate::lock::DEFAULT_LOCK_TIMEOUT;
use crate::log::Priority;
use crate::name::{DriverName, ModuleName};
use crate::sysfs::NO_DRIVER_OVERRIDE;
use crate::{Context, Modprobe};

/// Options of [`Context::bind`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BindOptions {
    /// Skip the safety checks (in use on the host, PF with VFs, driver does not claim device).
    pub force: bool,
    /// Change nothing: log the exact plan instead (see [`Context::bind_plan`]).
    pub dry_run: bool,
}

/// Where a device is: its driver and its `driver_override`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct DeviceState {
    driver: Option<DriverName>,
    driver_override: Option<String>,
}

impl std::fmt::Display for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.driver {
            Some(d) => write!(f, "bound to {d}")?,
            None => f.write_str("bound to no driver")?,
        }
        match &self.driver_override {
            Some(o) => write!(f, ", driver_override '{o}'"),
            None => f.write_str(", driver_override unset"),
        }
    }
}

/// A failed step of a transaction: what failed, and the kernel's errno.
struct Failure {
    what: String,
    errno: i32,
}

impl Failure {
    fn from_error(step: &str, e: &Error) -> Failure {
        Failure {
            what: format!("{step} failed: {e}"),
            errno: e.errno(),
        }
    }
}

fn vfio_pci_module() -> ModuleName {
    ModuleName::new(VFIO_PCI_MODULE).expect("a valid module name")
}

impl Context {
    fn state(&self, address: &PciAddress) -> Result<DeviceState> {
        Ok(DeviceState {
            driver: self.sysfs.device_driver(address)?,
            driver_override: self.sysfs.driver_override(address)?,
        })
    }

    /// The modules a driver may belong to, most likely first: its `module` link, the module
    /// name the user gave, the driver name in `_` spelling.
    fn module_candidates(
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

    /// True when `driver` is a VFIO driver: `vfio-pci`, or a driver whose module declares
    /// `vfio_pci:` aliases.
    pub(crate) fn is_vfio_driver(&self, driver: &DriverName) -> bool {
        self.is_vfio_driver_in(driver, self.alias_index().ok().as_deref())
    }

    fn is_vfio_driver_in(&self, driver: &DriverName, index: Option<&AliasIndex>) -> bool {
        if driver.as_str() == "vfio-pci" {
            return true;
        }
        let Ok(candidates) = self.module_candidates(driver, None) else {
            return false;
        };
        candidates.contains(&vfio_pci_module())
            || index.is_some_and(|index| candidates.iter().any(|m| index.is_vfio_module(m)))
    }

    /// The driver a bind should target: the named one (SPEC 3.1), or the best VFIO driver for
    /// the device (SPEC 3.2), falling back to vfio-pci when the variant cannot be had.
    fn choose_target(&self, address: &PciAddress, name: Option<&DriverName>) -> Result<DriverName> {
        if let Some(name) = name {
            return self.resolve(name);
        }
        let modalias = self.sysfs.modalias(address)?;
        let module = self.vfio_variant_for(address, &modalias);
        let as_name = DriverName::new(module.as_str())?;
        match self.resolve(&as_name) {
            Ok(driver) => Ok(driver),
            Err(e) if module != vfio_pci_module() => {
                self.log.log(
                    Priority::Warning,
                    format_args!(
                        "VFIO variant '{module}' for {address} is unavailable ({e}); falling back \
                         to vfio-pci"
                    ),
                );
                self.resolve(&DriverName::new(VFIO_PCI_MODULE)?)
            }
            Err(e) => Err(e),
        }
    }

    fn resolve(&self, name: &DriverName) -> Result<DriverName> {
        crate::resolve::resolve_driver(&self.sysfs, &self.modprobe, &self.log, name)
    }

    /// The safety checks of SPEC 3.3 step 5.
    fn check_safe(
        &self,
        address: &PciAddress,
        target: &DriverName,
        given: Option<&DriverName>,
    ) -> Result<()> {
        if let Some(reason) =
            inuse::in_use_reason(&self.sysfs, &self.proc_root, &self.log, address)?
        {
            return Err(Error::InUse {
                address: *address,
                reason,
            });
        }
        // Fetched once for both checks below.
        let index = self.alias_index();
        let target_is_vfio = self.is_vfio_driver_in(target, index.as_deref().ok());
        if target_is_vfio {
            let vfs = self.sysfs.sriov_numvfs(address)?;
            if vfs > 0 {
                return Err(Error::InUse {
                    address: *address,
                    reason: format!(
                        "it is an SR-IOV PF with {vfs} VFs enabled; a VFIO driver would \
                         orphan them (set sriov_numvfs to 0 first)"
                    ),
                });
            }
        }
        self.check_claims(address, target, given, target_is_vfio, index)
    }

    /// Refuses a target whose module's aliases do not match the device (SPEC 3.3 step 5):
    /// `driver_override` makes the kernel probe a driver whatever its ID table says, and some
    /// probes accept foreign hardware.
    fn check_claims(
        &self,
        address: &PciAddress,
        target: &DriverName,
        given: Option<&DriverName>,
        target_is_vfio: bool,
        index: std::result::Result<std::sync::Arc<AliasIndex>, TablesUnavailable>,
    ) -> Result<()> {
        let modalias = self.sysfs.modalias(address)?;
        let candidates = self.module_candidates(target, given)?;
        let allow = |why: String| {
            self.log.log(
                Priority::Warning,
                format_args!(
                    "cannot tell whether '{target}' claims {address} ({why}); allowing it"
                ),
            );
            Ok(())
        };
        if target_is_vfio {
            let index = match index {
                Ok(index) => index,
                Err(why) => return allow(why.to_string()),
            };
            let Some(module) = candidates.iter().find(|m| index.is_vfio_module(m)) else {
                return allow("its module declares no vfio_pci: aliases".into());
            };
            if index.vfio_module_matches(module, &modalias) {
                return Ok(());
            }
            return Err(Error::NotClaimed {
                address: *address,
                driver: target.clone(),
                detail: format!("no vfio_pci: alias of module {module} matches {modalias}"),
            });
        }
        let dir = match self.modules_dir_in_use() {
            Ok(dir) => dir,
            Err(why) => return allow(why.to_string()),
        };
        let aliases = match alias::pci_aliases(&dir) {
            Ok(aliases) => aliases,
            Err(why) => return allow(why.to_string()),
        };
        let Some(module) = candidates
            .iter()
            .find(|m| aliases.iter().any(|(am, _)| am == *m))
        else {
            return allow(format!(
                "no pci: aliases for module {} in the tables",
                candidates
                    .iter()
                    .map(ModuleName::as_str)
                    .collect::<Vec<_>>()
                    .join(" or ")
            ));
        };
        let body = modalias.body().as_bytes();
        if aliases
            .iter()
            .any(|(m, p)| m == module && crate::glob::glob_match(p.as_bytes(), body))
        {
            return Ok(());
        }
        Err(Error::NotClaimed {
            address: *address,
            driver: target.clone(),
            detail: format!("no pci: alias of module {module} matches {modalias}"),
        })
    }

    /// Binds the device at `address` to the driver `name` (a driver or module name, SPEC
    /// 3.1), or with `None` to the best VFIO driver for it (SPEC 3.2), as a transaction
    /// (SPEC 3.3). Returns the driver the device is now bound to.
    pub fn bind(
        &self,
        address: &str,
        name: Option<&str>,
        options: BindOptions,
    ) -> Result<DriverName> {
        let address = PciAddress::parse(address)?;
        let name = name.map(DriverName::new).transpose()?;
        self.sysfs.require_device(&address)?;
        if options.dry_run {
            let (target, plan) = self.plan(&address, name.as_ref(), options)?;
            self.log.log(
                Priority::Notice,
                format_args!("dry run, nothing changed:\n{plan}"),
            );
            return target.ok_or_else(|| {
                Error::NoDriver(format!(
                    "dry run: the driver is not known until the module is loaded:\n{plan}"
                ))
            });
        }
        let _lock = self
            .locks
            .lock(&self.lock_dir, &address, DEFAULT_LOCK_TIMEOUT)?;
        let target = self.choose_target(&address, name.as_ref())?;
        let start = self.state(&address)?;
        if start.driver.as_ref() == Some(&target) {
            self.log.log(
                Priority::Info,
                format_args!("{address} is already bound to {target}; nothing to do"),
            );
            return Ok(target);
        }
        if !options.force {
            self.check_safe(&address, &target, name.as_ref())?;
        }
        self.log.log(
            Priority::Info,
            format_args!("binding {address} ({start}) to {target}"),
        );
        match self.switch_to(&address, &target, &start) {
            Ok(()) => Ok(target),
            Err(failure) => {
                Err(self.restore(&address, &start, failure, &format!("binding to {target}")))
            }
        }
    }

    /// Steps 6-7: override, unbind, probe, verify.
    fn switch_to(
        &self,
        address: &PciAddress,
        target: &DriverName,
        start: &DeviceState,
    ) -> std::result::Result<(), Failure> {
        self.sysfs
            .set_driver_override(address, Some(target.as_str()))
            .map_err(|e| Failure::from_error("writing driver_override", &e))?;
        if let Some(current) = &start.driver {
            self.sysfs
                .unbind(current, address)
                .map_err(|e| Failure::from_error(&format!("unbinding from {current}"), &e))?;
        }
        self.sysfs
            .probe(address)
            .map_err(|e| Failure::from_error("drivers_probe", &e))?;
        match self.sysfs.device_driver(address) {
            Ok(Some(d)) if d == *target => Ok(()),
            Ok(other) => Err(Failure {
                what: format!(
                    "the kernel did not bind {target} (the device is {} after drivers_probe; \
                     the driver's probe may have refused it)",
                    other.map_or("unbound".to_owned(), |d| format!("on {d}"))
                ),
                errno: 0,
            }),
            Err(e) => Err(Failure::from_error("checking the result", &e)),
        }
    }

    /// Step 8: puts the device back to `start` and says what happened. The kernel refuses
    /// `drivers/ORIG/bind` while `driver_override` names another driver, so: clear the
    /// override, detach whatever bound instead, bind the original driver, write the original
    /// override back, and verify both.
    fn restore(
        &self,
        address: &PciAddress,
        start: &DeviceState,
        failure: Failure,
        doing: &str,
    ) -> Error {
        let mut problems = Vec::new();
        let gone = |what: &str| Error::Restore {
            address: *address,
            message: format!(
                "{doing}: {}; then the device disappeared ({what}), so it could not be restored",
                failure.what
            ),
            errno: failure.errno,
        };
        if self.sysfs.require_device(address).is_err() {
            return gone("it no longer exists");
        }
        if let Err(e) = self.sysfs.set_driver_override(address, None) {
            problems.push(format!("clearing driver_override: {e}"));
        }
        match self.sysfs.device_driver(address) {
            Ok(Some(now)) if Some(&now) != start.driver.as_ref() => {
                if let Err(e) = self.sysfs.unbind(&now, address) {
                    problems.push(format!("unbinding from {now}: {e}"));
                }
            }
            Ok(_) => {}
            Err(Error::NoDevice { .. }) => return gone("it no longer exists"),
            Err(e) => problems.push(format!("reading the driver: {e}")),
        }
        if let Some(original) = &start.driver {
            if self.sysfs.device_driver(address).ok().flatten().as_ref() != Some(original) {
                if let Err(e) = self.sysfs.bind(original, address) {
                    problems.push(format!("rebinding {original}: {e}"));
                }
            }
        }
        if let Some(value) = &start.driver_override {
            if let Err(e) = self.sysfs.set_driver_override(address, Some(value)) {
                problems.push(format!("restoring driver_override '{value}': {e}"));
            }
        }
        match self.state(address) {
            Ok(now) if now == *start => {
                self.log.log(
                    Priority::Warning,
                    format_args!(
                        "{address}: {doing} failed ({}); restored ({now})",
                        failure.what
                    ),
                );
                Error::Bind {
                    address: *address,
                    message: format!("{doing}: {}; the device was restored ({now})", failure.what),
                    errno: failure.errno,
                }
            }
            Ok(now) => {
                let message = format!(
                    "{doing}: {}; restoring failed{}{}; the device is now {now} (it was {start})",
                    failure.what,
                    if problems.is_empty() { "" } else { ": " },
                    problems.join("; ")
                );
                self.log
                    .log(Priority::Err, format_args!("{address}: {message}"));
                Error::Restore {
                    address: *address,
                    message,
                    errno: failure.errno,
                }
            }
            Err(Error::NoDevice { .. }) => gone("it no longer exists"),
            Err(e) => Error::Restore {
                address: *address,
                message: format!(
                    "{doing}: {}; restoring left the device in an unknown state ({e})",
                    failure.what
                ),
                errno: failure.errno,
            },
        }
    }

    /// What `bind` would do, step by step, without doing any of it: the target driver (when it
    /// can be known without loading a module) and the plan as text, one action per line.
    pub fn bind_plan(
        &self,
        address: &str,
        name: Option<&str>,
        options: BindOptions,
    ) -> Result<String> {
        let address = PciAddress::parse(address)?;
        let name = name.map(DriverName::new).transpose()?;
        self.sysfs.require_device(&address)?;
        Ok(self.plan(&address, name.as_ref(), options)?.1)
    }

    fn plan(
        &self,
        address: &PciAddress,
        name: Option<&DriverName>,
        options: BindOptions,
    ) -> Result<(Option<DriverName>, String)> {
        let mut plan = String::new();
        let wanted = match name {
            Some(n) => n.clone(),
            None => {
                let modalias = self.sysfs.modalias(address)?;
                let module = self.vfio_variant_for(address, &modalias);
                let _ = writeln!(
                    plan,
                    "choose {module} for {address} ({modalias}) from the vfio_pci: aliases"
                );
                DriverName::new(module.as_str())?
            }
        };
        // Resolve without loading anything; say what would be loaded instead.
        let target = match crate::resolve::resolve_driver(
            &self.sysfs,
            &Modprobe::Disabled,
            &self.log,
            &wanted,
        ) {
            Ok(driver) => Some(driver),
            Err(_) => {
                let module = ModuleName::from(&wanted);
                match &self.modprobe {
                    Modprobe::Disabled => {
                        return Err(Error::NoDriver(format!(
                            "'{wanted}' resolves to no registered PCI driver and module loading is disabled"
                        )))
                    }
                    Modprobe::Program(p) => {
                        let _ = writeln!(plan, "run {} -b {module}", p.display());
                    }
                    Modprobe::Default => {
                        let _ = writeln!(plan, "run modprobe -b {module}");
                    }
                }
                None
            }
        };
        let shown = target.as_ref().map_or_else(
            || format!("<the PCI driver {wanted} registers>"),
            |t| t.to_string(),
        );
        let start = self.state(address)?;
        if start.driver.is_some() && start.driver == target {
            let _ = writeln!(plan, "nothing: {address} is already bound to {shown}");
            return Ok((target, plan));
        }
        if let (Some(t), false) = (&target, options.force) {
            self.check_safe(address, t, name)?;
            let _ = writeln!(
                plan,
                "safety checks passed (in use, SR-IOV, driver claims device)"
            );
        }
        let dev = self.sysfs.device_dir(address);
        let _ = writeln!(
            plan,
            "write '{shown}' to {}",
            dev.join("driver_override").display()
        );
        if let Some(current) = &start.driver {
            let _ = writeln!(
                plan,
                "write '{address}' to {}",
                self.sysfs.driver_dir(current).join("unbind").display()
            );
        }
        let _ = writeln!(
            plan,
            "write '{address}' to {}",
            self.sysfs.root().join("bus/pci/drivers_probe").display()
        );
        let _ = writeln!(
            plan,
            "check that {} points at {shown}",
            dev.join("driver").display()
        );
        let _ = write!(plan, "on failure, restore: {start}");
        Ok((target, plan))
    }

    /// Detaches the device at `address` from its driver and leaves it unbound. Its
    /// `driver_override` is first set to `none` (a name no driver has), so no later probe
    /// grabs it. On failure the device is put back as it was.
    pub fn unbind(&self, address: &str) -> Result<()> {
        let address = PciAddress::parse(address)?;
        self.sysfs.require_device(&address)?;
        let _lock = self
            .locks
            .lock(&self.lock_dir, &address, DEFAULT_LOCK_TIMEOUT)?;
        let start = self.state(&address)?;
        let attempt = (|| {
            self.sysfs
                .set_driver_override(&address, Some(NO_DRIVER_OVERRIDE))
                .map_err(|e| Failure::from_error("writing driver_override", &e))?;
            if let Some(current) = &start.driver {
                self.sysfs
                    .unbind(current, &address)
                    .map_err(|e| Failure::from_error(&format!("unbinding from {current}"), &e))?;
            }
            match self.sysfs.device_driver(&address) {
                Ok(None) => Ok(()),
                Ok(Some(d)) => Err(Failure {
                    what: format!("the device is still bound to {d}"),
                    errno: 0,
                }),
                Err(e) => Err(Failure::from_error("checking the result", &e)),
            }
        })();
        attempt.map_err(|failure| self.restore(&address, &start, failure, "unbinding"))
    }

    /// Gives the device back to the host: clears `driver_override`, unbinds, and lets the
    /// kernel probe (loading the host module the alias tables name, when none binds). With a
    /// name, binds exactly that driver instead. Returns the driver it ends on; `None` only
    /// when no name was given and no host driver matches the device. On failure the device
    /// is put back as it was.
    pub fn reattach(&self, address: &str, name: Option<&str>) -> Result<Option<DriverName>> {
        let address = PciAddress::parse(address)?;
        let name = name.map(DriverName::new).transpose()?;
        self.sysfs.require_device(&address)?;
        let _lock = self
            .locks
            .lock(&self.lock_dir, &address, DEFAULT_LOCK_TIMEOUT)?;
        let target = name.as_ref().map(|n| self.resolve(n)).transpose()?;
        let start = self.state(&address)?;
        if target.is_some() && start.driver == target && start.driver_override.is_none() {
            return Ok(target);
        }
        let attempt = (|| {
            self.sysfs
                .set_driver_override(&address, None)
                .map_err(|e| Failure::from_error("clearing driver_override", &e))?;
            if let Some(current) = &start.driver {
                self.sysfs
                    .unbind(current, &address)
                    .map_err(|e| Failure::from_error(&format!("unbinding from {current}"), &e))?;
            }
            match &target {
                Some(t) => {
                    self.sysfs
                        .bind(t, &address)
                        .map_err(|e| Failure::from_error(&format!("binding {t}"), &e))?;
                }
                None => {
                    self.sysfs
                        .probe(&address)
                        .map_err(|e| Failure::from_error("drivers_probe", &e))?;
                    if self.sysfs.device_driver(&address).ok().flatten().is_none() {
                        self.load_host_module_and_probe(&address)?;
                    }
                }
            }
            let now = self
                .sysfs
                .device_driver(&address)
                .map_err(|e| Failure::from_error("checking the result", &e))?;
            match (&target, &now) {
                (Some(t), Some(d)) if t == d => Ok(now),
                (Some(t), _) => Err(Failure {
                    what: format!("the kernel did not bind {t}"),
                    errno: 0,
                }),
                (None, _) => Ok(now),
            }
        })();
        attempt.map_err(|failure| self.restore(&address, &start, failure, "reattaching"))
    }

    /// After a probe that bound nothing: if the alias tables name host modules for the device,
    /// load them (when loading is enabled) and probe again; fail if one is named but none
    /// binds. No tables, or no module named: the device may stay unbound.
    fn load_host_module_and_probe(&self, address: &PciAddress) -> std::result::Result<(), Failure> {
        let modalias = self
            .sysfs
            .modalias(address)
            .map_err(|e| Failure::from_error("reading modalias", &e))?;
        let Ok(dir) = self.modules_dir_in_use() else {
            return Ok(());
        };
        let Ok(aliases) = alias::pci_aliases(&dir) else {
            return Ok(());
        };
        let body = modalias.body().as_bytes();
        let mut modules: Vec<ModuleName> = Vec::new();
        for (m, p) in &aliases {
            if !modules.contains(m) && crate::glob::glob_match(p.as_bytes(), body) {
                modules.push(m.clone());
            }
        }
        if modules.is_empty() {
            self.log.log(
                Priority::Info,
                format_args!("no host driver matches {address} ({modalias}); leaving it unbound"),
            );
            return Ok(());
        }
        for module in &modules {
            if !self.sysfs.module_exists(module) && !self.modprobe.is_disabled() {
                if let Err(e) = self.modprobe.load(module) {
                    self.log.log(Priority::Warning, format_args!("{e}"));
                }
            }
        }
        self.sysfs
            .probe(address)
            .map_err(|e| Failure::from_error("drivers_probe", &e))?;
        if self.sysfs.device_driver(address).ok().flatten().is_some() {
            return Ok(());
        }
        Err(Failure {
            what: format!(
                "no driver took the device, though the alias tables say {} should",
                modules
                    .iter()
                    .map(ModuleName::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            errno: 0,
        })
    }

    /// True when the device is bound to a VFIO driver (`vfio-dev/` present, `vfio-pci`, or a
    /// variant), so callers stop comparing driver names with `"vfio-pci"`.
    pub fn is_vfio_bound(&self, address: &str) -> Result<bool> {
        let address = PciAddress::parse(address)?;
        Ok(match self.sysfs.device_driver(&address)? {
            None => false,
            Some(d) => self.sysfs.has_vfio_dev(&address) || self.is_vfio_driver(&d),
        })
    }

    /// The members of the device's IOMMU group (itself included), with their drivers and what
    /// those mean for assigning the group.
    pub fn iommu_group(&self, address: &str) -> Result<Vec<GroupMember>> {
        let address = PciAddress::parse(address)?;
        let group = self.sysfs.iommu_group(&address)?.ok_or_else(|| {
            Error::io(
                "the device has no IOMMU group (is the IOMMU enabled?)",
                self.sysfs.device_dir(&address).join("iommu_group"),
                std::io::Error::from_raw_os_error(libc::ENOENT),
            )
        })?;
        let mut members = Vec::new();
        for member in self.sysfs.iommu_group_devices(group)? {
            let driver = self.sysfs.device_driver(&member)?;
            let is_vfio = driver
                .as_ref()
                .is_some_and(|d| self.sysfs.has_vfio_dev(&member) || self.is_vfio_driver(d));
            members.push(GroupMember {
                address: member,
                class: group::classify(driver.as_ref(), is_vfio),
                driver,
            });
        }
        Ok(members)
    }

    /// `None` when the device's IOMMU group can be assigned (no blocking member), else why not.
    pub fn iommu_group_viability(&self, address: &str) -> Result<Option<String>> {
        Ok(group::viability(&self.iommu_group(address)?))
    }
}
