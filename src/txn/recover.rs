//! Taking locks, and rolling back interrupted transactions (SPEC 3.12). Every operation takes
//! its devices' locks here, and whoever takes a lock first rolls back what a dead holder left
//! half done, before it reads the device's state for its own work: a new transaction never
//! records a wreck as its start.

use crate::os::lock::{Deadline, DeviceGuard, DeviceLocks};
use crate::os::record::{Record, Recorded};
use crate::txn::sriov::{recover_sriov, SriovState, SriovStep};
use crate::txn::{DeviceTxn, Engine, Locked, Restored};
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::log::Priority;

impl<'a> Engine<'a> {
    /// Locks one device for an operation, rolling back first an interrupted transaction found
    /// in its lock file.
    pub(crate) fn lock_device(
        &self,
        address: &PciAddress,
        deadline: &Deadline,
    ) -> Result<Locked<'a>> {
        self.lock_devices(std::slice::from_ref(address), deadline)
    }

    /// Locks devices in address order within `deadline` (SPEC 3.5) and rolls back the
    /// interrupted transactions their lock files record, each before anything else reads the
    /// device. A roll-back that fails fails the call (`Restore`), its record kept.
    pub(crate) fn lock_devices(
        &self,
        addresses: &[PciAddress],
        deadline: &Deadline,
    ) -> Result<Locked<'a>> {
        let locks: &'a DeviceLocks = self.locks;
        let guards = locks.lock_in_order(self.lock_dir, addresses, deadline)?;
        let mut recovered = Vec::new();
        for guard in &guards {
            if self.roll_back_interrupted(guard, deadline)? {
                recovered.push(*guard.address());
            }
        }
        let mut locked = Locked::new(guards);
        locked.recovered = recovered;
        Ok(locked)
    }

    /// What the holder of `guard` finds and does first: nothing when the lock file holds no
    /// record; else the device rolled back to the recorded start (true), or the record dropped
    /// with a warning when the device is gone or was moved by someone since (false).
    fn roll_back_interrupted(&self, guard: &DeviceGuard<'_>, deadline: &Deadline) -> Result<bool> {
        let text = guard.read_record()?;
        if text.is_empty() {
            return Ok(false);
        }
        let address = *guard.address();
        let record = Record::parse(&text).map_err(|why| Error::Malformed {
            path: guard.path().to_owned(),
            detail: format!(
                "the record of {address}'s last transaction cannot be read ({why}); nothing \
                 was done: once the device is where it should be, empty or remove the file"
            ),
        })?;
        let what = format!(
            "the last transaction on {address} (process {}: {}) was interrupted",
            record.pid, record.doing
        );
        if self.sysfs.require_device(&address).is_err() {
            self.log.log(
                Priority::Warning,
                format_args!("{what}, and the device is gone; its record is dropped"),
            );
            guard.write_record("")?;
            return Ok(false);
        }
        let rolled_back = match &record.what {
            Recorded::Move { start, .. } => {
                let now = self.state(&address)?;
                if !record.trusts(now.driver_override.as_deref()) {
                    self.log.log(
                        Priority::Warning,
                        format_args!(
                            "{what}, but the device was moved since ({now}); its record is \
                             dropped and the device left as it is"
                        ),
                    );
                    guard.write_record("")?;
                    return Ok(false);
                }
                if now == *start {
                    self.log.log(
                        Priority::Warning,
                        format_args!("{what}; the device is where it started ({now})"),
                    );
                } else {
                    let txn = DeviceTxn {
                        address,
                        forced: false,
                        start: start.clone(),
                        steps: Vec::new(),
                        doing: record.doing.clone(),
                    };
                    match self.restore(&txn) {
                        Restored::Back(now) => self.log.log(
                            Priority::Warning,
                            format_args!("{what}; rolled back to where it started ({now})"),
                        ),
                        Restored::Gone => self.log.log(
                            Priority::Warning,
                            format_args!("{what}, and the device disappeared meanwhile"),
                        ),
                        Restored::Failed(why) => {
                            let message = format!("{what}, and rolling it back failed: {why}");
                            self.log.log(Priority::Err, format_args!("{message}"));
                            return Err(Error::Restore {
                                address,
                                message,
                                errno: 0,
                            });
                        }
                    }
                }
                true
            }
            Recorded::Sriov { autoprobe, numvfs } => {
                self.roll_back_sriov(&address, *autoprobe, *numvfs, &what, deadline)?
            }
        };
        guard.write_record("")?;
        Ok(rolled_back)
    }

    /// A PF whose VF count change was interrupted: its VF count and `sriov_drivers_autoprobe`
    /// put back as recorded, by the steps `recover_sriov` gives. VFs made by the interrupted
    /// call are removed (with their locks held); a VF on a VFIO driver means someone has used
    /// them since, and they stay. The old VFs, when the count had gone through 0, come back as
    /// new devices.
    fn roll_back_sriov(
        &self,
        pf: &PciAddress,
        autoprobe: bool,
        numvfs: u32,
        what: &str,
        deadline: &Deadline,
    ) -> Result<bool> {
        let fail = |e: Error| {
            let message = format!("{what}, and putting its VFs back failed: {e}");
            self.log.log(Priority::Err, format_args!("{message}"));
            Error::Restore {
                address: *pf,
                message,
                errno: e.errno(),
            }
        };
        let now_numvfs = self.sysfs.sriov_numvfs(pf)?;
        let mut vf_locks = None;
        let mut keep_vfs = false;
        if now_numvfs != numvfs {
            let vfs = self.sysfs.sriov_virtfns(pf)?;
            vf_locks = Some(self.locks.lock_in_order(self.lock_dir, &vfs, deadline)?);
            for vf in &vfs {
                if let Some(driver) = self.classifier().vfio_driver_of(vf)? {
                    self.log.log(
                        Priority::Warning,
                        format_args!(
                            "{what}, but its VF {vf} is on {driver} since; the PF's {now_numvfs} \
                             VFs are left as they are"
                        ),
                    );
                    keep_vfs = true;
                    break;
                }
            }
        }
        let now = SriovState {
            numvfs: now_numvfs,
            autoprobe: self.sysfs.sriov_drivers_autoprobe(pf).map_err(fail)?,
        };
        let recorded = SriovState { numvfs, autoprobe };
        for step in recover_sriov(now, recorded, keep_vfs) {
            self.run_sriov_step(pf, &step, None, deadline)
                .map_err(fail)?;
            if matches!(step, SriovStep::RemoveVfs { .. }) {
                // The VFs are gone: the new ones are made as the kernel makes them.
                vf_locks = None;
            }
        }
        drop(vf_locks);
        if keep_vfs {
            return Ok(true);
        }
        self.log.log(
            Priority::Warning,
            format_args!(
                "{what}; rolled back to {numvfs} VFs{} with sriov_drivers_autoprobe {}",
                if now_numvfs != numvfs && numvfs > 0 {
                    " (made anew)"
                } else {
                    ""
                },
                u8::from(autoprobe)
            ),
        );
        Ok(true)
    }
}
