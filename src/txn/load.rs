//! Module loads as steps of a transaction (SPEC 3.1 step 3, 3.3 step 2).
//!
//! A bind (or a named reattach) whose target driver is not registered yet knows its target
//! only once the target's module is loaded, and the checks and the writes depend on that
//! target. So such a transaction runs in two phases. First [`Loads`] runs the loads, each a
//! [`Step::Load`], after recording the device's start in its lock file: a load can probe the
//! device (a host module taking an unbound device), and a caller killed during or after it
//! must leave the next holder of the lock what it needs to roll the device back. Then, at the
//! checkpoint, the operation resolves the target (SPEC 3.1 steps 3-5 with the load's outcome),
//! asks whether the device is already there and runs the safety checks on the device as the
//! loads left it. A refusal there puts a device the loads moved back to its start
//! ([`Loads::abandon`]); otherwise the writes follow as the rest of the same step list, run by
//! [`Engine::execute_from`] and rolled back to the start recorded before the loads.
//!
//! A dry run goes through the same code with [`Loads::dry_run`]: it lists the loads instead of
//! running them, so its plan is the rendering of the same steps (`render.rs`).
//!
//! A restore never unloads a module: other devices may already use it.

use crate::os::modprobe::LoadError;
use crate::os::record::{Record, Recorded};
use crate::policy::resolve;
use crate::txn::Engine;
use crate::txn::{DeviceState, DeviceTxn, Locked, Restored, Step, Target};
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::log::Priority;
use crate::types::name::ModuleName;

/// What a VFIO variant chosen for a device (SPEC 3.2) falls back to when it cannot be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// vfio-pci, with a warning (SPEC 3.2).
    VfioPci,
    /// Nothing: the call fails (`strict_variant`, SPEC 3.14).
    Strict,
}

/// Why a module is loaded: what its load's outcome means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoadFor {
    /// The module of the driver a move aims at (SPEC 3.1 step 3): the driver is known once it
    /// is loaded, and a failed load fails the resolution. `Some`: a VFIO variant chosen for
    /// the device, and what happens when it cannot be had.
    Target(Option<Fallback>),
    /// A host module the alias tables name for a device going back to the host (reattach with
    /// no name): a failed load is a warning, and the kernel's matching decides.
    Host,
}

/// A module load (a [`Step::Load`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Load {
    pub module: ModuleName,
    pub purpose: LoadFor,
}

/// The first phase of one device's transaction: the module loads that tell its target. A real
/// call records the device's start in its lock file before the first load and runs each load
/// as it is asked for; a dry run only lists them. Ends with [`Loads::into_txn`] (the writes
/// follow) or [`Loads::abandon`] (the operation refused or failed at the checkpoint).
pub(crate) struct Loads<'a> {
    engine: Engine<'a>,
    address: PciAddress,
    /// Read under the device's lock before any load: what a restore goes back to.
    start: DeviceState,
    /// A real call: the locks (whose files carry the record) and what the transaction does, as
    /// its record says it ("binding to"). `None`: a dry run.
    real: Option<(&'a Locked<'a>, &'static str)>,
    /// The loads, in order: run (a real call) or to be run (a dry run).
    steps: Vec<Step>,
    /// What the record written before the first load says the transaction is doing.
    doing: Option<String>,
}

impl<'a> Loads<'a> {
    /// A real call's first phase on the device at `address`, locked in `locked`, which
    /// started at `start`. `verb` says what it does, followed by its target ("binding to").
    pub fn real(
        engine: Engine<'a>,
        locked: &'a Locked<'a>,
        address: PciAddress,
        start: DeviceState,
        verb: &'static str,
    ) -> Loads<'a> {
        Loads {
            engine,
            address,
            start,
            real: Some((locked, verb)),
            steps: Vec::new(),
            doing: None,
        }
    }

    /// A dry run's: the loads are listed, never run.
    pub fn dry_run(engine: Engine<'a>, address: PciAddress, start: DeviceState) -> Loads<'a> {
        Loads {
            engine,
            address,
            start,
            real: None,
            steps: Vec::new(),
            doing: None,
        }
    }

    pub fn address(&self) -> &PciAddress {
        &self.address
    }

    /// The device's start, read before any load.
    pub fn start(&self) -> &DeviceState {
        &self.start
    }

    pub fn is_dry_run(&self) -> bool {
        self.real.is_none()
    }

    /// The next step of the transaction: a real call records the start first (once), then
    /// runs the load and returns its outcome; a dry run lists it and returns `None` (nothing
    /// was loaded).
    pub fn load(&mut self, load: Load) -> Result<Option<std::result::Result<(), LoadError>>> {
        let Some((locked, verb)) = self.real else {
            self.steps.push(Step::Load(load));
            return Ok(None);
        };
        if self.doing.is_none() {
            let doing = format!("{verb} {}", Target::Unloaded(load.module.clone()));
            // Before the load: a caller killed during it or after it leaves the next holder of
            // the lock the start to roll back to. The loads write no override, so the record
            // is trusted (SPEC 3.12) as long as the override is the start's.
            locked.record(
                &self.address,
                &Record {
                    pid: std::process::id(),
                    doing: doing.clone(),
                    what: Recorded::Move {
                        start: self.start.clone(),
                        may_leave: Vec::new(),
                    },
                },
            )?;
            self.doing = Some(doing);
        }
        let outcome = self.engine.run_load(&self.address, &load);
        self.steps.push(Step::Load(load));
        Ok(Some(outcome))
    }

    /// Where the device is now: its start, unless a load ran (which may have probed it).
    pub fn now(&self) -> Result<DeviceState> {
        if self.is_dry_run() || self.steps.is_empty() {
            return Ok(self.start.clone());
        }
        self.engine.state(&self.address)
    }

    /// The checkpoint passed: the whole transaction, the loads followed by `writes`' steps,
    /// and how many of its steps already ran (the executor runs the rest). With no writes, a
    /// device no load moved has nothing left to do (its record goes), and one a load moved
    /// (a host module probing it) is a transaction of loads only, so that a failure of
    /// another device of a group puts it back too. A dry run returns the list to render.
    pub fn into_txn(self, writes: Option<DeviceTxn>) -> Result<Option<(DeviceTxn, usize)>> {
        let done = if self.is_dry_run() {
            0
        } else {
            self.steps.len()
        };
        match writes {
            Some(mut txn) => {
                debug_assert_eq!(txn.start, self.start, "a transaction's start is its first");
                let mut steps = self.steps;
                steps.append(&mut txn.steps);
                txn.steps = steps;
                Ok(Some((txn, done)))
            }
            None if self.steps.is_empty() => Ok(None),
            None => {
                if let Some((locked, _)) = self.real {
                    if self.engine.state(&self.address)? == self.start {
                        locked.clear(&self.address)?;
                        return Ok(None);
                    }
                }
                let doing = self
                    .doing
                    .clone()
                    .unwrap_or_else(|| "loading modules".to_owned());
                Ok(Some((
                    DeviceTxn {
                        address: self.address,
                        start: self.start,
                        steps: self.steps,
                        doing,
                        forced: false,
                    },
                    done,
                )))
            }
        }
    }

    /// The operation stopped at the checkpoint with `error` (a refusal, a name that resolves
    /// to nothing, a failed read): a device the loads moved is put back to its start and
    /// verified, the record goes, and `error` is returned as it is; a failed restore is
    /// `Error::Restore` instead, its record kept for the next holder of the lock, and a device
    /// that disappeared `Error::Vanished`.
    pub fn abandon(self, error: Error) -> Error {
        let (Some((locked, _)), Some(doing)) = (self.real, self.doing) else {
            return error;
        };
        let address = self.address;
        if matches!(self.engine.state(&address), Ok(now) if now == self.start) {
            let _ = locked.clear(&address);
            return error;
        }
        let txn = DeviceTxn {
            address,
            start: self.start,
            steps: self.steps,
            doing,
            forced: false,
        };
        match self.engine.restore(&txn) {
            Restored::Back(now) => {
                let _ = locked.clear(&address);
                self.engine.log.log(
                    Priority::Warning,
                    format_args!(
                        "{address}: {}: {error}; the device, moved by the module load, was \
                         restored ({now})",
                        txn.doing
                    ),
                );
                error
            }
            // Hot removal (SPEC 3.13): whatever stopped the operation, the device is gone.
            Restored::Gone => {
                let _ = locked.clear(&address);
                let detail = format!(" ({}; nothing more was written for it)", txn.doing);
                self.engine.log.log(
                    Priority::Warning,
                    format_args!("{address} disappeared during the operation{detail}"),
                );
                Error::Vanished { address, detail }
            }
            Restored::Failed(why) => {
                let message = format!("{}: {error}; {why}", txn.doing);
                self.engine
                    .log
                    .log(Priority::Err, format_args!("{address}: {message}"));
                Error::Restore {
                    address,
                    errno: error.errno(),
                    message,
                }
            }
        }
    }
}

impl Engine<'_> {
    /// Runs one [`Step::Load`], saying so in the log; its outcome is for what needed the
    /// module to judge. A host module's failed load is a warning here.
    pub(crate) fn run_load(
        &self,
        address: &PciAddress,
        load: &Load,
    ) -> std::result::Result<(), LoadError> {
        match load.purpose {
            LoadFor::Target(_) => resolve::load_module(
                self.sysfs,
                self.modprobe,
                self.modprobe_timeout,
                self.log,
                &load.module,
            ),
            LoadFor::Host => {
                let module = &load.module;
                self.log.log(
                    Priority::Info,
                    format_args!("loading host module '{module}' for {address}"),
                );
                self.modprobe
                    .try_load(module, self.modprobe_timeout)
                    .map_err(|e| {
                        let e = Error::from(e);
                        self.log.log(Priority::Warning, format_args!("{e}"));
                        LoadError::Failed(e)
                    })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::{move_to, Expect, Override};
    use crate::types::name::DriverName;
    use crate::Context;

    #[test]
    fn a_dry_run_lists_its_loads_first_and_loads_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut ctx = Context::new(dir.path()).unwrap();
        // Were it run, the load would fail: "cannot run ...".
        ctx.set_modprobe(crate::Modprobe::Program(dir.path().join("must-not-run")))
            .unwrap();
        let address = PciAddress::parse("0000:3b:00.2").unwrap();
        let start = DeviceState {
            driver: Some(DriverName::new("mlx5_core").unwrap()),
            driver_override: None,
        };
        let mut loads = Loads::dry_run(ctx.engine(), address, start.clone());
        let module = ModuleName::new("mlx5_vfio_pci").unwrap();
        let load = Load {
            module: module.clone(),
            purpose: LoadFor::Target(Some(Fallback::VfioPci)),
        };
        assert!(loads.load(load.clone()).unwrap().is_none());
        assert_eq!(loads.now().unwrap(), start);
        let target = Target::Unloaded(module);
        let writes = DeviceTxn {
            address,
            start: start.clone(),
            steps: move_to(&target),
            doing: format!("binding to {target}"),
            forced: false,
        };
        let (txn, done) = loads.into_txn(Some(writes)).unwrap().unwrap();
        assert_eq!(done, 0, "a dry run runs nothing");
        assert_eq!(txn.steps[0], Step::Load(load));
        assert_eq!(
            txn.steps[1],
            Step::SetOverride(Override::Driver(target.clone()))
        );
        assert_eq!(
            txn.steps.last(),
            Some(&Step::Expect(Expect::Driver(target)))
        );
        // Stopped at the checkpoint, a dry run has nothing to put back.
        let loads = Loads::dry_run(ctx.engine(), address, start);
        assert!(matches!(
            loads.abandon(Error::NoDriver("x".into())),
            Error::NoDriver(m) if m == "x"
        ));
    }
}
