//! The executor of a PF's VF count change (`txn/sriov.rs`): the same record, run, restore and
//! verify as a move's, with the restore a VF count allows.

use crate::os::lock::Deadline;
use crate::os::sysfs::NO_DRIVER_OVERRIDE;
use crate::txn::sriov::{count_now_zero, record_of_sriov, restore_sriov, SriovStep, SriovTxn};
use crate::txn::Engine;
use crate::txn::Locked;
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::log::Priority;

impl Engine<'_> {
    /// Runs a PF's VF count change under the PF's lock (`locked`): records its start in the
    /// PF's lock file, then runs each step, holding `vf_locks` (the old VFs', taken before they
    /// were checked) until they are removed. A failed step runs `restore_sriov`'s steps, each
    /// only once the one before it succeeded (no autoprobe back on while an unparked VF is
    /// there), and the record goes once autoprobe is verified back at its start; otherwise it
    /// stays for the next holder of the PF's lock. The error is the failed step's, saying when
    /// the PF is left with 0 VFs where it had some.
    pub(crate) fn execute_sriov(
        &self,
        txn: &SriovTxn,
        locked: &Locked<'_>,
        vf_locks: Locked<'_>,
        deadline: &Deadline,
    ) -> Result<()> {
        locked.record(&txn.pf, &record_of_sriov(txn))?;
        let pf = &txn.pf;
        let mut vf_locks = Some(vf_locks);
        for (i, step) in txn.steps.iter().enumerate() {
            match step {
                SriovStep::RemoveVfs { count, .. } => self.log.log(
                    Priority::Info,
                    format_args!("{pf}: removing its {count} VFs"),
                ),
                SriovStep::CreateVfs(count) => self.log.log(
                    Priority::Info,
                    format_args!(
                        "{pf}: creating {count} VFs{}",
                        if txn
                            .steps
                            .iter()
                            .any(|s| matches!(s, SriovStep::ParkNewVfs(_)))
                        {
                            ""
                        } else {
                            " (host drivers may probe them)"
                        }
                    ),
                ),
                _ => {}
            }
            let held = vf_locks.as_ref().map(|vfs| (locked, vfs));
            let ran = self.run_sriov_step(pf, step, held, deadline);
            if matches!(step, SriovStep::RemoveVfs { .. }) {
                // The VFs are gone (or going, a child process keeping their locks).
                vf_locks = None;
            }
            if let Err(e) = ran {
                let e = match step {
                    SriovStep::RemoveVfs { .. } | SriovStep::CreateVfs(_) => {
                        self.numvfs_error(pf, e)
                    }
                    _ => e,
                };
                let e = self.roll_back_sriov_change(txn, i, e, deadline);
                if self.sysfs.sriov_drivers_autoprobe(pf).ok() == Some(txn.start.autoprobe) {
                    locked.clear(pf)?;
                }
                return Err(e);
            }
        }
        locked.clear(pf)
    }

    /// Restores after `txn.steps[failed]` failed with `e`, and logs how. Returns the error to
    /// report: `e`, saying so when the PF now has 0 VFs where it had some.
    fn roll_back_sriov_change(
        &self,
        txn: &SriovTxn,
        failed: usize,
        e: Error,
        deadline: &Deadline,
    ) -> Error {
        let pf = &txn.pf;
        let done = &txn.steps[..failed];
        let removed = done
            .iter()
            .any(|s| matches!(s, SriovStep::RemoveVfs { .. }));
        let mut created = done.iter().any(|s| matches!(s, SriovStep::CreateVfs(_)));
        let undo = restore_sriov(&txn.steps, failed);
        let mut outcomes = Vec::new();
        let mut all_done = true;
        for step in &undo {
            let ran = self.run_sriov_step(pf, step, None, deadline);
            let ok = ran.is_ok();
            outcomes.push(match (step, ran) {
                (SriovStep::RemoveVfs { .. }, Ok(())) => "the new VFs were removed".to_owned(),
                (SriovStep::RemoveVfs { .. }, Err(r)) => format!(
                    "removing the new VFs failed too: {r}; sriov_drivers_autoprobe stays 0, so \
                     no host driver takes them"
                ),
                (SriovStep::SetAutoprobe(on), Ok(())) => {
                    format!("sriov_drivers_autoprobe was put back to {}", u8::from(*on))
                }
                (SriovStep::SetAutoprobe(on), Err(r)) => format!(
                    "putting sriov_drivers_autoprobe back to {} failed: {r}",
                    u8::from(*on)
                ),
                (step, Ok(())) => format!("done: {}", self.describe_sriov(pf, step).join("; ")),
                (step, Err(r)) => {
                    format!("{} failed: {r}", self.describe_sriov(pf, step).join("; "))
                }
            });
            if !ok {
                all_done = false;
                break;
            }
            if matches!(step, SriovStep::RemoveVfs { .. }) {
                created = false;
            }
        }
        if !undo.is_empty() {
            let what = if matches!(txn.steps[failed], SriovStep::ParkNewVfs(_)) {
                format!("a new VF could not be kept from host drivers ({e})")
            } else {
                format!("{} failed ({e})", txn.doing)
            };
            self.log.log(
                if all_done {
                    Priority::Warning
                } else {
                    Priority::Err
                },
                format_args!("{pf}: {what}; {}", outcomes.join("; ")),
            );
        }
        if removed && !created {
            count_now_zero(e, txn.start.numvfs)
        } else {
            e
        }
    }

    /// Runs one SR-IOV step on the PF at `pf`. `held`: the PF's and its VFs' locks, which a
    /// removal waiting for a VMM keeps taken until the kernel is done.
    pub(crate) fn run_sriov_step(
        &self,
        pf: &PciAddress,
        step: &SriovStep,
        held: Option<(&Locked<'_>, &Locked<'_>)>,
        deadline: &Deadline,
    ) -> Result<()> {
        match *step {
            SriovStep::RemoveVfs {
                wait_for_vmm: true, ..
            } => {
                let (pf_locked, vf_locks) = held.ok_or_else(|| {
                    Error::Internal(format!("removing the VFs of {pf} without their locks"))
                })?;
                self.remove_vfs_within(pf, pf_locked, vf_locks)
            }
            SriovStep::RemoveVfs { .. } => self.sysfs.set_sriov_numvfs(pf, 0),
            SriovStep::SetAutoprobe(on) => self.sysfs.set_sriov_drivers_autoprobe(pf, on),
            SriovStep::CreateVfs(count) => self.sysfs.set_sriov_numvfs(pf, count),
            SriovStep::ParkNewVfs(_) => {
                for vf in self.sysfs.sriov_virtfns(pf)? {
                    self.park_new_vf(&vf, deadline)?;
                }
                Ok(())
            }
        }
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
            .set_sriov_numvfs_within(pf, 0, self.vmm_wait, &keep)
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
                self.vmm_wait
            ),
        })
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
