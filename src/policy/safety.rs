//! The safety checks of SPEC 3.3 step 5, run before anything is written (and by a dry run):
//! the device is not in use on the host, an SR-IOV PF with VFs is not handed to a VFIO driver,
//! and the target driver claims the device. Which drivers are VFIO drivers is `classify.rs`'s
//! to say; how a device is in use, `inuse/` (a VMM holding it, `inuse/vmm.rs`).

use std::path::Path;

use crate::os::sysfs::Sysfs;
use crate::policy::classify::Classifier;
use crate::policy::inuse::vmm;
use crate::policy::inuse::{self, InUse, InUseKinds};
use crate::tables::ModuleTables;
use crate::tables::Side;
use crate::types::address::PciAddress;
use crate::types::error::{Check, Error, Result};
use crate::types::log::Logger;
use crate::types::log::Priority;
use crate::types::name::{DriverName, ModuleName};
use crate::types::options::BindOptions;
use crate::types::state::{DeviceState, Target};

/// Where a move takes a device, for [`Safety::check_move`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Destination<'a> {
    Driver(&'a Target),
    /// Unbound (`unbind`; a VF that is removed).
    Unbound,
    /// Whichever host driver the kernel chooses (`reattach` with no name).
    Host,
}

/// What the checks read: the tree, the module tables (claims, which drivers are VFIO ones),
/// the roots of `/proc` and `/dev` (the in-use checks), and the log. Made from the context by
/// `Context::safety`, as the [`Classifier`] is.
#[derive(Clone, Copy)]
pub(crate) struct Safety<'a> {
    pub sysfs: &'a Sysfs,
    pub tables: &'a ModuleTables,
    pub log: &'a Logger,
    pub proc_root: &'a Path,
    pub dev_root: &'a Path,
}

impl<'a> Safety<'a> {
    /// The classifier on the same tree and tables.
    pub fn classifier(&self) -> Classifier<'a> {
        Classifier {
            sysfs: self.sysfs,
            tables: self.tables,
            log: self.log,
        }
    }

    /// The one decision (SPEC 3.3 step 5) for every path that moves the device at `address`
    /// from `start` to `to`: bind, unbind, reattach, the members of a group transaction, the
    /// tool's `bind ADDR none` and `apply` (which are those), and the VFs an SR-IOV count
    /// change removes. `given`: the name the caller used for the target. Three checks, each
    /// skipped when `options` says so ([`BindOptions::skips`]; forced, none runs):
    /// - in use: a device taken off a host driver, or an unbound one going to a VFIO driver,
    ///   must not be in use on the host; one taken off a VFIO driver must not be held by a VMM
    ///   (one on a VFIO or stub driver is no host's: SPEC 3.3);
    /// - SR-IOV: one taken off its driver must not be a PF one of whose VFs is on a VFIO
    ///   driver (unloading a PF driver pulls its VFs out of running guests), and a PF with VFs
    ///   never goes to a VFIO driver;
    /// - claims: a target driver must claim the device.
    ///
    /// The in-use check comes first: it needs no tables.
    pub fn check_move(
        &self,
        address: &PciAddress,
        start: &DeviceState,
        to: Destination<'_>,
        given: Option<&DriverName>,
        options: &BindOptions,
    ) -> Result<Passed> {
        let target = match to {
            Destination::Driver(t) => Some(t),
            Destination::Unbound | Destination::Host => None,
        };
        let leaves =
            start.driver.is_some() && target.map_or(true, |t| t.driver() != start.driver.as_ref());
        // A device on no driver can still be the host's: efifb, vesafb or simpledrm draw the
        // console on the firmware's framebuffer in an unbound GPU's BAR, which a VFIO driver
        // takes (SPEC 1, "Display"). Asked only on the way to VFIO: a host GPU driver takes
        // the console over from them.
        let unbound_to_vfio = start.driver.is_none()
            && !options.skips(Check::InUse)
            && target.is_some_and(|t| self.classifier().is_vfio_target(t));
        // The host uses a device through its host driver (SPEC 3.3): one on a VFIO or stub
        // driver is no host's, and only a VMM holding it can stand in the way of its leaving.
        let off_a_host_driver = leaves
            && self
                .classifier()
                .on_host_driver(address, start.driver.as_ref());
        if (leaves || unbound_to_vfio) && !options.skips(Check::InUse) {
            let found = self.in_use_now(
                address,
                start.driver.as_ref(),
                off_a_host_driver || unbound_to_vfio,
            )?;
            if let Some(found) = found {
                return Err(Error::InUse {
                    address: *address,
                    reason: found.reason,
                    check: Check::InUse,
                });
            }
        }
        if leaves && !options.skips(Check::Sriov) {
            self.check_no_vfio_vfs(address)?;
        }
        let Some(target) = target else {
            return Ok(Passed::default());
        };
        if options.skips(Check::Sriov) && options.skips(Check::Claims) {
            return Ok(Passed::default());
        }
        let target_is_vfio = self.classifier().is_vfio_target(target);
        if target_is_vfio && !options.skips(Check::Sriov) {
            let vfs = self.sysfs.sriov_numvfs(address)?;
            if vfs > 0 {
                return Err(Error::InUse {
                    address: *address,
                    reason: format!(
                        "it is an SR-IOV PF with {vfs} VFs enabled; a VFIO driver would \
                         orphan them (set sriov_numvfs to 0 first)"
                    ),
                    check: Check::Sriov,
                });
            }
        }
        if target.driver() == start.driver.as_ref() || options.skips(Check::Claims) {
            return Ok(Passed::default());
        }
        let side = if target_is_vfio {
            Side::Vfio
        } else {
            Side::Host
        };
        Ok(Passed {
            claim_unknown: self.check_claims(address, target, given, side)?,
        })
    }

    /// Whether the device at `address`, on `driver`, is in use, and how (SPEC 1): with `host`,
    /// what is below it (the host's use); always, a VMM holding it when it is on a VFIO driver.
    pub fn in_use_now(
        &self,
        address: &PciAddress,
        driver: Option<&DriverName>,
        host: bool,
    ) -> Result<Option<InUse>> {
        let mut found = if host {
            inuse::in_use(self.sysfs, self.proc_root, self.dev_root, self.log, address)?
        } else {
            None
        };
        if let Some(reason) = vmm::vmm_holding(
            &self.classifier(),
            self.proc_root,
            self.dev_root,
            address,
            driver,
        )? {
            found = Some(match found {
                None => InUse {
                    kinds: InUseKinds::VMM,
                    reason,
                },
                Some(f) => InUse {
                    kinds: f.kinds | InUseKinds::VMM,
                    reason: format!("{}; {reason}", f.reason),
                },
            });
        }
        Ok(found)
    }

    /// A PF any of whose VFs is on a VFIO driver stays on its driver: unbinding it (mlx5_core,
    /// ice, i40e, ixgbe) disables SR-IOV and pulls the VFs out of the guests using them.
    fn check_no_vfio_vfs(&self, address: &PciAddress) -> Result<()> {
        if self.sysfs.sriov_numvfs(address)? == 0 {
            return Ok(());
        }
        for vf in self.sysfs.sriov_virtfns(address)? {
            if let Some(driver) = self.classifier().vfio_driver_of(&vf)? {
                return Err(Error::InUse {
                    check: Check::Sriov,
                    address: *address,
                    reason: format!(
                        "it is an SR-IOV PF whose VF {vf} is on {driver}, probably assigned to \
                         a VM; taking the PF off its driver would remove the VF"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Refuses a target whose module's aliases do not match the device (SPEC 3.3 step 5):
    /// `driver_override` makes the kernel probe a driver whatever its ID table says, and some
    /// probes accept foreign hardware. `Some(why)`: the tables cannot tell, and the target is
    /// allowed with a warning.
    fn check_claims(
        &self,
        address: &PciAddress,
        target: &Target,
        given: Option<&DriverName>,
        side: Side,
    ) -> Result<Option<String>> {
        let modalias = self.sysfs.modalias(address)?;
        let candidates = self.classifier().target_modules(target, given)?;
        let allow = |why: String| {
            self.log.log(
                Priority::Warning,
                format_args!(
                    "cannot tell whether '{target}' claims {address} ({why}); allowing it"
                ),
            );
            Ok(Some(why))
        };
        // The first candidate the tables know decides.
        for module in &candidates {
            match self.tables.claims(module, &modalias, side, self.log) {
                Err(why) => return allow(why.to_string()),
                Ok(None) => continue,
                Ok(Some(true)) => return Ok(None),
                Ok(Some(false)) => {
                    return Err(Error::NotClaimed {
                        check: Check::Claims,
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
    pub fn claims_by_id_table(
        &self,
        address: &PciAddress,
        target: &Target,
        given: Option<&DriverName>,
    ) -> Option<bool> {
        let modalias = self.sysfs.modalias(address).ok()?;
        let candidates = self.classifier().target_modules(target, given).ok()?;
        let mut claims = candidates
            .iter()
            .map(|m| self.tables.claims(m, &modalias, Side::Host, self.log));
        // Unreadable tables cannot tell; a module they hold no alias of has no ID table.
        claims.try_fold(false, |any, c| Some(any || c.ok()?.unwrap_or(false)))
    }

    /// The host modules (`pci:` aliases) the tables name for the device, in table order;
    /// `None` when no tables can be read.
    pub fn host_modules_for(&self, address: &PciAddress) -> Result<Option<Vec<ModuleName>>> {
        let modalias = self.sysfs.modalias(address)?;
        Ok(self.tables.host_modules(&modalias, self.log).ok())
    }
}

/// What [`Safety::check_move`] passed without being able to tell: a plan says so rather than
/// claim the check passed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Passed {
    /// Why the tables could not tell whether the target claims the device (no readable
    /// tables, no aliases of its module): the move is allowed, with a warning (SPEC 3.3).
    pub claim_unknown: Option<String>,
}
