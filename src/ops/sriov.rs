//! SR-IOV virtual functions (SPEC 3.10): listing a PF's VFs and changing their count so that no
//! host driver grabs the new ones.

use crate::os::lock::Deadline;
use crate::os::record::{Record, Recorded};
use crate::os::sysfs::NO_DRIVER_OVERRIDE;
use crate::policy::safety::Destination;
use crate::txn::Locked;
use crate::types::address::PciAddress;
use crate::types::error::{Check, Error, Result};
use crate::types::log::Priority;
use crate::types::options::BindOptions;
use crate::Context;

/// Options of [`Context::sriov_set_numvfs`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SriovOptions {
    /// Remove VFs even when one is on a VFIO driver (the kernel then blocks until the VFIO
    /// driver lets go of it, i.e. until the VM using it releases it).
    pub force: bool,
    /// Leave `sriov_drivers_autoprobe` alone and give the new VFs no `driver_override`: host
    /// drivers probe them as the kernel decides.
    pub autoprobe: bool,
}

impl Context {
    /// The VFs of the PF at `pf`, in `virtfnN` order. A device without `sriov_totalvfs` (no
    /// SR-IOV, or a VF) is `Unsupported`.
    pub fn sriov_vfs(&self, pf: &str) -> Result<Vec<PciAddress>> {
        let pf = PciAddress::parse(pf)?;
        self.sysfs.require_device(&pf)?;
        self.require_sriov(&pf)?;
        self.sysfs.sriov_virtfns(&pf)
    }

    /// `sriov_totalvfs`, or `Unsupported` when the device has none.
    fn require_sriov(&self, pf: &PciAddress) -> Result<u32> {
        self.sysfs
            .sriov_totalvfs(pf)?
            .ok_or_else(|| Error::Unsupported {
                address: *pf,
                detail: "not an SR-IOV physical function (it has no sriov_totalvfs)".into(),
            })
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
        let pf = PciAddress::parse(pf)?;
        self.on_locked_device(&pf, |locked, deadline| {
            let total = self.require_sriov(&pf)?;
            if numvfs > total {
                return Err(Error::InvalidArg(format!(
                    "{pf} supports at most {total} VFs (sriov_totalvfs), not {numvfs}"
                )));
            }
            let current = self.sysfs.sriov_numvfs(&pf)?;
            if numvfs == current {
                self.log.log(
                    Priority::Info,
                    format_args!("{pf} already has {current} VFs; nothing to do"),
                );
                return self.sysfs.sriov_virtfns(&pf);
            }
            // The PF's start, recorded before the first write (SPEC 3.12): should this call die,
            // the next holder of the PF's lock puts its VF count and autoprobe back.
            let autoprobe = self.sysfs.sriov_drivers_autoprobe(&pf)?;
            locked.record(
                &pf,
                &Record {
                    pid: std::process::id(),
                    doing: format!("changing the VF count from {current} to {numvfs}"),
                    what: Recorded::Sriov {
                        autoprobe,
                        numvfs: current,
                    },
                },
            )?;
            let result = self.change_numvfs(&pf, current, numvfs, options, deadline, locked);
            // A failure leaves the count as the error says and autoprobe as it was; only when
            // autoprobe could not be put back does the record stay, for the next holder.
            if result.is_ok() || self.sysfs.sriov_drivers_autoprobe(&pf).ok() == Some(autoprobe) {
                locked.clear(&pf)?;
            }
            result
        })
    }

    /// `sriov_set_numvfs` under the PF's lock, its start recorded.
    fn change_numvfs(
        &self,
        pf: &PciAddress,
        current: u32,
        numvfs: u32,
        options: SriovOptions,
        deadline: &Deadline,
        pf_locked: &Locked<'_>,
    ) -> Result<Vec<PciAddress>> {
        let pf = *pf;
        if current > 0 {
            // The VFs' locks too (after the PF's, whose address precedes theirs): a bind of
            // one of them cannot slip in between the check and the removal.
            let vfs = self.sysfs.sriov_virtfns(&pf)?;
            let vf_locks = self.lock_devices(&vfs, deadline)?;
            self.check_vfs_removable(&vfs, &pf, options.force)?;
            self.log.log(
                Priority::Info,
                format_args!("{pf}: removing its {current} VFs"),
            );
            let held_by_a_vmm = options.force
                && vfs
                    .iter()
                    .any(|vf| self.vfio_driver_of(vf).ok().flatten().is_some());
            if held_by_a_vmm {
                self.remove_vfs_within(&pf, pf_locked, &vf_locks)?;
            } else {
                self.sysfs
                    .set_sriov_numvfs(&pf, 0)
                    .map_err(|e| self.numvfs_error(&pf, e))?;
            }
            if numvfs == 0 {
                return Ok(Vec::new());
            }
        }
        let now_zero = |e: Error| {
            if current > 0 {
                count_now_zero(e, current)
            } else {
                e
            }
        };
        let restore_autoprobe = if options.autoprobe {
            false
        } else {
            let on = self.sysfs.sriov_drivers_autoprobe(&pf).map_err(now_zero)?;
            if on {
                self.sysfs
                    .set_sriov_drivers_autoprobe(&pf, false)
                    .map_err(now_zero)?;
            }
            on
        };
        self.log.log(
            Priority::Info,
            format_args!(
                "{pf}: creating {numvfs} VFs{}",
                if options.autoprobe {
                    " (host drivers may probe them)"
                } else {
                    ""
                }
            ),
        );
        let created = self
            .sysfs
            .set_sriov_numvfs(&pf, numvfs)
            .map_err(|e| self.numvfs_error(&pf, e))
            .map_err(now_zero);
        // VFs exist from here on: should parking one fail, autoprobe stays off below, so no
        // host driver grabs the unparked ones.
        let vfs_exist = created.is_ok();
        let result = created.and_then(|()| {
            let vfs = self.sysfs.sriov_virtfns(&pf)?;
            if !options.autoprobe {
                for vf in &vfs {
                    self.park_new_vf(vf, deadline)?;
                }
            }
            Ok(vfs)
        });
        let result = match result {
            // A VF that could not be parked would go to a host driver once autoprobe is back
            // on: the new VFs go, and autoprobe is put back below (never left at 0).
            Err(e) if restore_autoprobe && vfs_exist => {
                let removed = self.sysfs.set_sriov_numvfs(&pf, 0);
                self.log.log(
                    Priority::Warning,
                    format_args!(
                        "{pf}: a new VF could not be kept from host drivers ({e}); {}",
                        match &removed {
                            Ok(()) => "the new VFs were removed".to_owned(),
                            Err(r) => format!("removing the new VFs failed too: {r}"),
                        }
                    ),
                );
                if removed.is_err() {
                    // Autoprobe stays 0: no host driver takes an unparked VF. The record
                    // stays too, and the next holder of the PF's lock tries again.
                    return Err(e);
                }
                Err(if current > 0 {
                    count_now_zero(e, current)
                } else {
                    e
                })
            }
            other => other,
        };
        if restore_autoprobe {
            if let Err(e) = self.sysfs.set_sriov_drivers_autoprobe(&pf, true) {
                if result.is_ok() {
                    return Err(e);
                }
                self.log.log(
                    Priority::Err,
                    format_args!("{pf}: putting sriov_drivers_autoprobe back to 1 failed: {e}"),
                );
            }
        }
        result
    }

    /// Removes the VFs, one of which is on a VFIO driver (forced): a VMM may hold it, and the
    /// kernel then waits for it to let go, forever if its guest does not answer. The write is
    /// made by a child process that keeps the PF's and the VFs' locks until the kernel is
    /// done; the call waits at most the lock timeout (10 s when that is 0), then fails saying
    /// the removal is pending.
    fn remove_vfs_within(
        &self,
        pf: &PciAddress,
        pf_locked: &Locked<'_>,
        vf_locks: &Locked<'_>,
    ) -> Result<()> {
        let mut kept = pf_locked.keep_alive_all()?;
        kept.extend(vf_locks.keep_alive_all()?);
        let keep: Vec<&std::fs::File> = kept.iter().collect();
        let done = self
            .sysfs
            .set_sriov_numvfs_within(pf, 0, self.vmm_wait(), &keep)
            .map_err(|e| self.numvfs_error(pf, e))?;
        if done {
            return Ok(());
        }
        Err(Error::HeldByVmm {
            address: *pf,
            reason: format!(
                "removing its VFs: the kernel is waiting for the process that holds one of \
                 them (a VMM) to let go of it, and this call stopped waiting after {:?}. The \
                 removal completes when that process lets go (the PF then has 0 VFs), and \
                 the PF and its VFs stay locked until then",
                self.vmm_wait()
            ),
        })
    }

    /// Removing the PF's VFs is refused while one is on a VFIO driver, unless forced.
    /// VFs on host drivers pass the checks of every move off a host driver (a VF's interface
    /// may carry the host's traffic).
    fn check_vfs_removable(&self, vfs: &[PciAddress], pf: &PciAddress, force: bool) -> Result<()> {
        for vf in vfs {
            let Some(driver) = self.vfio_driver_of(vf)? else {
                let start = self.state(vf)?;
                let options = BindOptions {
                    force,
                    ..BindOptions::default()
                };
                self.check_move(vf, &start, Destination::Unbound, None, &options)
                    .map_err(|e| match e {
                        Error::InUse {
                            address,
                            reason,
                            check,
                        } => Error::InUse {
                            address: *pf,
                            reason: format!(
                                "removing its VFs would take VF {address} from the host: {reason}"
                            ),
                            check,
                        },
                        e => e,
                    })?;
                continue;
            };
            if !force {
                return Err(Error::InUse {
                    check: Check::InUse,
                    address: *pf,
                    reason: format!(
                        "its VF {vf} is on {driver}, probably assigned to a VM; removing the \
                         VFs would take it away"
                    ),
                });
            }
            self.log.log(
                Priority::Warning,
                format_args!(
                    "{pf}: removing VF {vf} although it is on {driver} (forced); the kernel \
                     waits until its user lets go of it"
                ),
            );
        }
        Ok(())
    }

    /// Gives a new VF the no-driver override, under its lock. With autoprobe off nothing but
    /// an override binds a VF, so one found on a driver was bound meanwhile by a caller that
    /// held its lock (`pcibind bind` of the new VF as soon as it appeared): it is left there.
    fn park_new_vf(&self, vf: &PciAddress, deadline: &Deadline) -> Result<()> {
        let _lock = self.lock_device(vf, deadline)?;
        if let Some(driver) = self.sysfs.device_driver(vf)? {
            self.log.log(
                Priority::Info,
                format_args!("{vf}: already bound to {driver} by another caller; left there"),
            );
            return Ok(());
        }
        self.sysfs.set_driver_override(vf, Some(NO_DRIVER_OVERRIDE))
    }

    /// A failed write of `sriov_numvfs`: the kernel's ENOENT/EOPNOTSUPP mean the PF's driver
    /// cannot create VFs.
    fn numvfs_error(&self, pf: &PciAddress, e: Error) -> Error {
        match e.errno() {
            libc::ENOENT | libc::EOPNOTSUPP if matches!(e, Error::Io { .. }) => {
                let driver = match self.sysfs.device_driver(pf) {
                    Ok(Some(d)) => format!("its driver {d} cannot create VFs"),
                    Ok(None) => {
                        "it is bound to no driver, and only a PF's driver creates VFs".to_owned()
                    }
                    Err(_) => "its driver cannot create VFs".to_owned(),
                };
                Error::Unsupported {
                    address: *pf,
                    detail: format!("{driver} (the kernel refused sriov_numvfs: {e})"),
                }
            }
            _ => e,
        }
    }
}

/// An error after the VFs were removed: the old ones cannot come back, and the error says so.
fn count_now_zero(e: Error, had: u32) -> Error {
    match e {
        Error::Io { path, source, .. } => Error::Io {
            step: "creating the new VFs after removing the old ones (the PF now has 0 VFs)",
            path,
            source,
        },
        Error::Unsupported { address, detail } => Error::Unsupported {
            address,
            detail: format!("{detail}; the PF now has 0 VFs (it had {had})"),
        },
        Error::InvalidArg(m) => {
            Error::InvalidArg(format!("{m}; the PF now has 0 VFs (it had {had})"))
        }
        Error::Malformed { path, detail } => Error::Malformed {
            path,
            detail: format!("{detail}; the PF now has 0 VFs (it had {had})"),
        },
        other => other,
    }
}
