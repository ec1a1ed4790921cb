//! The one executor (SPEC 3.3 steps 6-8): runs a transaction's steps, records each device's
//! start before the first write (SPEC 3.12), and on a failure restores every device already
//! touched, in reverse order, and verifies it. A PF's VF count change runs on the same record,
//! run, restore and verify in `executor/sriov.rs`.

use crate::os::lock::DeviceGuard;
use crate::os::record::Record;
use crate::txn::Engine;
use crate::txn::{record_of, restore_to, DeviceTxn, Expect, Known, Override, Step};
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::log::Priority;
use crate::types::name::DriverName;
use crate::types::state::{DeviceState, Target};

mod sriov;

/// How a restore ended.
pub(crate) enum Restored {
    /// Back at its start, verified: the state read then.
    Back(DeviceState),
    /// The device is gone (hot removal): nothing to restore.
    Gone,
    /// Not back: what went wrong and where it is.
    Failed(String),
}

/// The locks an operation holds: each device's guard, whose lock file carries the device's
/// transaction record.
pub(crate) struct Locked<'a> {
    guards: Vec<DeviceGuard<'a>>,
    /// The devices whose interrupted transaction was rolled back when they were locked.
    pub recovered: Vec<PciAddress>,
}

impl<'a> Locked<'a> {
    pub fn new(guards: Vec<DeviceGuard<'a>>) -> Locked<'a> {
        Locked {
            guards,
            recovered: Vec::new(),
        }
    }

    /// No locks: a dry run, which writes nothing.
    pub fn none() -> Locked<'a> {
        Locked::new(Vec::new())
    }

    fn guard(&self, address: &PciAddress) -> Result<&DeviceGuard<'a>> {
        self.guards
            .iter()
            .find(|g| g.address() == address)
            .ok_or_else(|| Error::Internal(format!("a transaction on {address} without its lock")))
    }

    /// Another descriptor of every lock file held, keeping the locks taken while open.
    pub fn keep_alive_all(&self) -> Result<Vec<std::fs::File>> {
        self.guards.iter().map(DeviceGuard::keep_alive).collect()
    }

    pub fn record(&self, address: &PciAddress, record: &Record) -> Result<()> {
        self.guard(address)?.write_record(&record.to_text())
    }

    pub fn clear(&self, address: &PciAddress) -> Result<()> {
        self.guard(address)?.write_record("")
    }
}

/// A failed step: what failed, and the kernel's errno (0 when the kernel did not complain).
pub(crate) struct Failure {
    pub what: String,
    pub errno: i32,
    /// An unbind still waiting in the kernel for a VMM to let go of the device: nothing more
    /// can be written for it (a write would wait as well), and its lock stays taken until the
    /// kernel is done.
    pub pending: bool,
}

impl Failure {
    fn from_error(step: &str, e: &Error) -> Failure {
        Failure {
            what: format!("{step} failed: {e}"),
            errno: e.errno(),
            pending: false,
        }
    }
}

impl Engine<'_> {
    /// Runs a transaction: each device's steps in order, stopping at the first failure. Then
    /// the failed device and every device before it are restored, in reverse order, and
    /// verified; the error says what failed and where each device is. Before the first write,
    /// each device's start is recorded in its lock file (SPEC 3.12); a record is removed when
    /// its device ends where it should (moved, or restored and verified) or is gone, so a
    /// caller that dies anywhere in between leaves the next holder of the lock what it needs
    /// to roll the device back. A device that disappears (SPEC 3.13) fails the transaction
    /// with `Vanished`, never a failed restore.
    pub(crate) fn execute(&self, txns: &[DeviceTxn], locked: &Locked<'_>) -> Result<()> {
        self.execute_from(txns, &vec![0; txns.len()], locked)
    }

    /// [`Engine::execute`] for transactions whose first `done[i]` steps already ran: their
    /// module loads, run by [`crate::txn::Loads`] before the checkpoint, with the start
    /// already recorded. The record is written again with every override the rest writes;
    /// a failure restores to the start recorded before the loads.
    pub(crate) fn execute_from(
        &self,
        txns: &[DeviceTxn],
        done: &[usize],
        locked: &Locked<'_>,
    ) -> Result<()> {
        debug_assert_eq!(txns.len(), done.len());
        for (i, txn) in txns.iter().enumerate() {
            if let Err(e) = locked.record(&txn.address, &record_of(txn)) {
                // A device whose loads ran keeps its record: a load may have moved it, and the
                // next holder of its lock puts it back.
                for (earlier, _) in txns[..i].iter().zip(done).filter(|(_, &d)| d == 0) {
                    let _ = locked.clear(&earlier.address);
                }
                return Err(e);
            }
        }
        for (i, txn) in txns.iter().enumerate() {
            self.log.log(
                Priority::Info,
                format_args!("{}: {} ({})", txn.address, txn.doing, txn.start),
            );
            let (before, rest) = txn.steps.split_at(done[i].min(txn.steps.len()));
            let mut known = Known::Driver(txn.start.driver.clone());
            for step in before {
                known.after(step);
            }
            // Only a forced move may meet a VMM (the checks refuse a held device): only then is
            // an unbind off a VFIO driver made with a bounded wait.
            let guard = locked.guard(&txn.address).ok().filter(|_| txn.forced);
            if let Err(failure) = self.run_steps(&txn.address, rest, &mut known, guard) {
                // The devices after the failed one were never touched.
                for later in &txns[i + 1..] {
                    let _ = locked.clear(&later.address);
                }
                return Err(self.roll_back(&txns[..=i], failure, locked));
            }
        }
        for txn in txns {
            locked.clear(&txn.address)?;
        }
        Ok(())
    }

    fn run_steps(
        &self,
        address: &PciAddress,
        steps: &[Step],
        known: &mut Known,
        guard: Option<&DeviceGuard<'_>>,
    ) -> std::result::Result<(), Failure> {
        for step in steps {
            self.run_step(address, step, known, guard)?;
            known.after(step);
        }
        Ok(())
    }

    fn current_driver_known(
        &self,
        address: &PciAddress,
        known: &Known,
    ) -> std::result::Result<Option<DriverName>, Failure> {
        match known {
            Known::Driver(d) => Ok(d.clone()),
            Known::Unknown => self
                .sysfs
                .device_driver(address)
                .map_err(|e| Failure::from_error("reading the driver", &e)),
        }
    }

    fn run_step(
        &self,
        address: &PciAddress,
        step: &Step,
        known: &Known,
        guard: Option<&DeviceGuard<'_>>,
    ) -> std::result::Result<(), Failure> {
        match step {
            Step::SetOverride(value) => {
                let value = match value {
                    Override::Clear => None,
                    Override::Driver(t) => Some(Self::registered(t)?.as_str()),
                    Override::Value(v) => Some(v.as_str()),
                };
                self.sysfs
                    .set_driver_override(address, value)
                    .map_err(|e| Failure::from_error("writing driver_override", &e))
            }
            Step::Unbind { keep } => match self.current_driver_known(address, known)? {
                Some(current) if keep.as_ref().and_then(Target::driver) != Some(&current) => {
                    if let Some(guard) =
                        guard.filter(|_| self.classifier().on_vfio_driver(address, Some(&current)))
                    {
                        return self.unbind_from_vfio(address, &current, guard);
                    }
                    self.sysfs
                        .unbind(&current, address)
                        .map_err(|e| Failure::from_error(&format!("unbinding from {current}"), &e))
                }
                _ => Ok(()),
            },
            Step::Probe => self
                .sysfs
                .probe(address)
                .map_err(|e| Failure::from_error("drivers_probe", &e)),
            Step::Expect(expect) => {
                let now = self
                    .sysfs
                    .device_driver(address)
                    .map_err(|e| Failure::from_error("checking the result", &e))?;
                let ok = match (expect, &now) {
                    (Expect::Driver(t), Some(d)) => Some(d) == t.driver(),
                    (Expect::Driver(_), None) => false,
                    (Expect::Unbound, now) => now.is_none(),
                    (Expect::AnyDriver { .. }, Some(_)) => true,
                    (Expect::AnyDriver { may_stay_unbound }, None) => *may_stay_unbound,
                };
                if ok {
                    return Ok(());
                }
                let is = now.map_or("unbound".to_owned(), |d| format!("on {d}"));
                Err(Failure {
                    pending: false,
                    what: match expect {
                        Expect::Driver(t) => format!(
                            "the kernel did not bind {t} (the device is {is} after \
                             drivers_probe; the driver's probe may have refused it)"
                        ),
                        Expect::Unbound => format!("the device is still {is}"),
                        Expect::AnyDriver { .. } => "no driver took the device, though the \
                                                     alias tables name a host driver for it"
                            .to_owned(),
                    },
                    errno: 0,
                })
            }
            Step::Load(load) => {
                // Its outcome is for what needed the module: a step run here is a host module
                // (reattach), whose failure `run_load` logged as a warning.
                let _ = self.run_load(address, load);
                Ok(())
            }
        }
    }

    /// Unbinds a device from its VFIO driver with a bounded wait: a process holding the device
    /// (a VMM: the checks refuse that unless forced) makes the kernel wait until it lets go,
    /// forever if its guest does not answer. The write is made by a child process, which also
    /// keeps the device's lock file open, so the lock stays taken until the kernel is done;
    /// after the lock timeout the call stops waiting and fails with a pending unbind.
    fn unbind_from_vfio(
        &self,
        address: &PciAddress,
        driver: &DriverName,
        guard: &DeviceGuard<'_>,
    ) -> std::result::Result<(), Failure> {
        let step = format!("unbinding from {driver}");
        let keep_lock = guard
            .keep_alive()
            .map_err(|e| Failure::from_error(&step, &e))?;
        match self
            .sysfs
            .unbind_within(driver, address, self.vmm_wait, &[&keep_lock])
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure {
                what: format!(
                    "{step}: the kernel is waiting for the process that holds the device (a \
                     VMM) to let go of it, and this call stopped waiting after {:?}. The \
                     unbind completes when that process lets go, and the device's lock stays \
                     taken until then; the next call on the device then puts it back where \
                     it started",
                    self.vmm_wait
                ),
                errno: libc::EBUSY,
                pending: true,
            }),
            Err(e) => Err(Failure::from_error(&step, &e)),
        }
    }

    /// A step names a driver the plan could only describe: never reached by a real run, which
    /// resolves its target (loading the module) before building its steps.
    fn registered(target: &Target) -> std::result::Result<&DriverName, Failure> {
        target.driver().ok_or_else(|| Failure {
            pending: false,
            what: format!("internal error: {target} was never resolved"),
            errno: 0,
        })
    }

    /// Restores `done` (the last one failed with `failure`) in reverse order, removing the
    /// record of each device restored or gone. A failed device that is gone makes the error
    /// `Vanished`: nothing is left to restore of it, and that is no failed restore.
    fn roll_back(&self, done: &[DeviceTxn], failure: Failure, locked: &Locked<'_>) -> Error {
        let failed = done.last().expect("the failed device");
        if failure.pending {
            return self.roll_back_around_a_pending_unbind(done, failure, locked);
        }
        let failed_gone = self.sysfs.require_device(&failed.address).is_err();
        let mut outcomes: Vec<(PciAddress, Restored)> = Vec::new();
        for txn in done.iter().rev() {
            let outcome = if failed_gone && txn.address == failed.address {
                Restored::Gone
            } else {
                self.restore(txn)
            };
            if !matches!(outcome, Restored::Failed(_)) {
                // A record that cannot be removed leaves a device that is where it started
                // to be rolled back again by the next holder: harmless.
                let _ = locked.clear(&txn.address);
            }
            outcomes.push((txn.address, outcome));
        }
        let all_restored = outcomes
            .iter()
            .all(|(_, r)| !matches!(r, Restored::Failed(_)));
        let mut message = if failed_gone {
            String::new()
        } else {
            format!("{}: {}", failed.doing, failure.what)
        };
        for (address, outcome) in &outcomes {
            if failed_gone && *address == failed.address {
                continue;
            }
            let prefix = if done.len() > 1 {
                format!("; {address}")
            } else {
                ";".to_owned()
            };
            match outcome {
                Restored::Back(now) => {
                    message.push_str(&format!("{prefix} the device was restored ({now})"))
                }
                Restored::Gone => message.push_str(&format!("{prefix} the device disappeared")),
                Restored::Failed(why) => message.push_str(&format!("{prefix} {why}")),
            }
        }
        let address = failed.address;
        let errno = failure.errno;
        if failed_gone {
            let detail = format!(
                " ({}; nothing more was written for it{message})",
                failed.doing
            );
            let priority = if all_restored {
                Priority::Warning
            } else {
                Priority::Err
            };
            self.log.log(
                priority,
                format_args!("{address} disappeared during the operation{detail}"),
            );
            if all_restored {
                return Error::Vanished { address, detail };
            }
            return Error::Restore {
                address,
                message: format!("disappeared during the operation{detail}"),
                errno: libc::ENODEV,
            };
        }
        if all_restored {
            self.log
                .log(Priority::Warning, format_args!("{address}: {message}"));
            Error::Bind {
                address,
                message,
                errno,
            }
        } else {
            self.log
                .log(Priority::Err, format_args!("{address}: {message}"));
            Error::Restore {
                address,
                message,
                errno,
            }
        }
    }

    /// The failed device's unbind still waits in the kernel for a VMM: it is left to the
    /// kernel, its record kept (the next holder of its lock, which it keeps until the kernel is
    /// done, puts it back), and the devices moved before it are restored.
    fn roll_back_around_a_pending_unbind(
        &self,
        done: &[DeviceTxn],
        failure: Failure,
        locked: &Locked<'_>,
    ) -> Error {
        let failed = done.last().expect("the failed device");
        let mut reason = format!("{}: {}", failed.doing, failure.what);
        for txn in done[..done.len() - 1].iter().rev() {
            match self.restore(txn) {
                Restored::Back(now) => {
                    let _ = locked.clear(&txn.address);
                    reason.push_str(&format!("; {} was restored ({now})", txn.address));
                }
                Restored::Gone => {
                    let _ = locked.clear(&txn.address);
                    reason.push_str(&format!("; {} disappeared", txn.address));
                }
                Restored::Failed(why) => reason.push_str(&format!("; {}: {why}", txn.address)),
            }
        }
        self.log
            .log(Priority::Err, format_args!("{}: {reason}", failed.address));
        Error::HeldByVmm {
            address: failed.address,
            reason,
        }
    }

    /// Puts one device back to its recorded start and verifies it. Every restore step is
    /// tried even when one fails.
    pub(crate) fn restore(&self, txn: &DeviceTxn) -> Restored {
        let address = &txn.address;
        let start = &txn.start;
        if self.sysfs.require_device(address).is_err() {
            return Restored::Gone;
        }
        let mut problems = Vec::new();
        let mut known = Known::Unknown;
        for step in restore_to(start) {
            if let Err(f) = self.run_step(address, &step, &known, None) {
                problems.push(f.what);
                known = Known::Unknown;
            } else {
                known.after(&step);
            }
        }
        match self.state(address) {
            Ok(now) if now == *start => Restored::Back(now),
            Ok(now) => Restored::Failed(format!(
                "restoring failed{}{}; the device is now {now} (it was {start})",
                if problems.is_empty() { "" } else { ": " },
                problems.join("; ")
            )),
            Err(_) if self.sysfs.require_device(address).is_err() => Restored::Gone,
            Err(e) => Restored::Failed(format!(
                "restoring left the device in an unknown state ({e}); it was {start}"
            )),
        }
    }
}
