//! The safety checks of SPEC 3.3 step 5, run before anything is written (and by a dry run):
//! the device is not in use on the host, an SR-IOV PF with VFs is not handed to a VFIO driver,
//! and the target driver claims the device. Also which drivers are VFIO drivers.

use crate::address::PciAddress;
use crate::error::{Error, Result};
use crate::inuse;
use crate::log::Priority;
use crate::name::{DriverName, ModuleName};
use crate::tables::Side;
use crate::txn::Target;
use crate::Context;

impl Context {
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

    /// The modules a target may belong to: a registered driver's candidates, or the module a
    /// dry run would load.
    fn target_modules(
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
    pub(crate) fn is_vfio_driver(&self, driver: &DriverName) -> bool {
        self.is_vfio_target(&Target::Driver(driver.clone()))
    }

    fn is_vfio_target(&self, target: &Target) -> bool {
        if matches!(target, Target::Driver(d) if d.as_str() == "vfio-pci") {
            return true;
        }
        let Ok(candidates) = self.target_modules(target, None) else {
            return false;
        };
        candidates
            .iter()
            .any(|m| self.tables.is_vfio_module(m, &self.log))
    }

    /// The checks of SPEC 3.3 step 5 for moving the device at `address` to `target` (`given`:
    /// the name the caller used). The in-use check comes first: it needs no tables.
    pub(crate) fn check_safe(
        &self,
        address: &PciAddress,
        target: &Target,
        given: Option<&DriverName>,
    ) -> Result<()> {
        if let Some(reason) = inuse::in_use_reason(
            &self.sysfs,
            &self.proc_root,
            &self.dev_root,
            &self.log,
            address,
        )? {
            return Err(Error::InUse {
                address: *address,
                reason,
            });
        }
        let target_is_vfio = self.is_vfio_target(target);
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
        let side = if target_is_vfio {
            Side::Vfio
        } else {
            Side::Host
        };
        self.check_claims(address, target, given, side)
    }

    /// Refuses a target whose module's aliases do not match the device (SPEC 3.3 step 5):
    /// `driver_override` makes the kernel probe a driver whatever its ID table says, and some
    /// probes accept foreign hardware.
    fn check_claims(
        &self,
        address: &PciAddress,
        target: &Target,
        given: Option<&DriverName>,
        side: Side,
    ) -> Result<()> {
        let modalias = self.sysfs.modalias(address)?;
        let candidates = self.target_modules(target, given)?;
        let allow = |why: String| {
            self.log.log(
                Priority::Warning,
                format_args!(
                    "cannot tell whether '{target}' claims {address} ({why}); allowing it"
                ),
            );
            Ok(())
        };
        // The first candidate the tables know decides.
        for module in &candidates {
            match self.tables.claims(module, &modalias, side, &self.log) {
                Err(why) => return allow(why.to_string()),
                Ok(None) => continue,
                Ok(Some(true)) => return Ok(()),
                Ok(Some(false)) => {
                    return Err(Error::NotClaimed {
                        address: *address,
                        driver: match target {
                            Target::Driver(d) => d.clone(),
                            Target::Unloaded(m) => DriverName::from(m),
                        },
                        detail: format!(
                            "no {} alias of module {module} matches {modalias}",
                            side.prefix()
                        ),
                    })
                }
            }
        }
        allow(format!(
            "no {} aliases for module {} in the tables",
            side.prefix(),
            candidates
                .iter()
                .map(ModuleName::as_str)
                .collect::<Vec<_>>()
                .join(" or ")
        ))
    }

    /// Whether `target` matches the device by its own ID table (its module has a `pci:` alias
    /// for it): a reprobe with the override cleared would keep the device there. `None` when
    /// the tables cannot tell.
    pub(crate) fn claims_by_id_table(
        &self,
        address: &PciAddress,
        target: &Target,
        given: Option<&DriverName>,
    ) -> Option<bool> {
        let modalias = self.sysfs.modalias(address).ok()?;
        let candidates = self.target_modules(target, given).ok()?;
        let mut claims = candidates
            .iter()
            .map(|m| self.tables.claims(m, &modalias, Side::Host, &self.log));
        // Unreadable tables cannot tell; a module they hold no alias of has no ID table.
        claims.try_fold(false, |any, c| Some(any || c.ok()?.unwrap_or(false)))
    }

    /// The host modules (`pci:` aliases) the tables name for the device, in table order;
    /// `None` when no tables can be read.
    pub(crate) fn host_modules_for(&self, address: &PciAddress) -> Result<Option<Vec<ModuleName>>> {
        let modalias = self.sysfs.modalias(address)?;
        Ok(self.tables.host_modules(&modalias, &self.log).ok())
    }
}
