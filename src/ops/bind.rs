//! The operations that move a device between drivers (SPEC 3.3): bind, unbind and reattach.
//! Each works out its transaction as a step list (`txn.rs`) from the device's recorded state,
//! after the safety checks (`safety.rs`); a real call executes that list, a dry run renders the
//! same list as its plan. Nothing here writes to sysfs itself.

use std::fmt;

use crate::os::sysfs::NO_DRIVER_OVERRIDE;
use crate::policy::resolve::{self, Resolved};
use crate::policy::safety::Destination;
use crate::policy::unit::UnitMember;
use crate::tables::VFIO_PCI_MODULE;
use crate::txn::{
    self, DeviceTxn, Expect, Fallback, Load, LoadFor, Loads, Locked, Override, Step, Target,
};
use crate::types::address::PciAddress;
use crate::types::error::{Check, Error, Result};
use crate::types::log::Priority;
use crate::types::name::{DriverName, ModuleName};
pub use crate::types::options::BindOptions;
use crate::Context;

/// What [`Context::bind`] would do, found without changing or loading anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The driver the device would end on; `None` when only loading its module would tell.
    pub target: Option<DriverName>,
    /// One action per line: the module loads, the checks, each sysfs write with its value
    /// and path, the check of the result, and what a failure would restore (never a module
    /// unload: other devices may already use a module loaded).
    pub lines: Vec<String>,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines.join("\n"))
    }
}

/// The plan's line about the safety checks a move to a driver runs.
fn checks_note(options: &BindOptions) -> String {
    checks_note_of(
        options,
        &[
            (Check::InUse, "not in use on the host"),
            (Check::Sriov, "no SR-IOV VFs in the way"),
            (Check::Claims, "the driver claims the device"),
        ],
    )
}

/// The plan's line about `checks`, each passed or skipped as `options` say.
fn checks_note_of(options: &BindOptions, checks: &[(Check, &str)]) -> String {
    if options.force {
        return "safety checks skipped (forced)".to_owned();
    }
    let (skipped, passed): (Vec<_>, Vec<_>) = checks.iter().partition(|(c, _)| options.skips(*c));
    let names = |v: &[&(Check, &str)]| v.iter().map(|(_, w)| *w).collect::<Vec<_>>().join(", ");
    match (passed.is_empty(), skipped.is_empty()) {
        (_, true) => format!("safety checks passed: {}", names(&passed)),
        (true, _) => "safety checks skipped (all allowed)".to_owned(),
        _ => format!(
            "safety checks passed: {}; skipped as allowed: {}",
            names(&passed),
            names(&skipped)
        ),
    }
}

/// Whether a group transaction locks its unit, runs its module loads and writes (a real call),
/// or only says what it would do (a dry run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Real,
    DryRun,
}

/// What [`Context::bind_start`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindOutcome {
    /// The driver the device is now bound to.
    pub driver: DriverName,
    /// The driver it was on when the call found it (under its lock), `None` for none.
    pub start_driver: Option<DriverName>,
    /// Its `driver_override` then, `None` for none.
    pub start_override: Option<String>,
    /// Whether anything was written (false: it was already where it was asked to be).
    pub moved: bool,
}

/// An operation worked out: the driver it ends on, its transaction's writes (`None`: nothing
/// to write; its module loads are with its [`Loads`]), and, for a dry run's plan, the lines
/// before the steps (`notes`) and those at the checkpoint, after the module loads and before
/// the writes (`checkpoint`: the checks, or why nothing is to be done).
struct Prepared {
    target: Option<DriverName>,
    txn: Option<DeviceTxn>,
    notes: Vec<String>,
    checkpoint: Vec<String>,
}

fn vfio_pci_name() -> DriverName {
    DriverName::new(VFIO_PCI_MODULE).expect("a valid name")
}

impl Context {
    /// Binds the device at `address` to the driver `name` (a driver or module name, SPEC
    /// 3.1), or with `None` to the best VFIO driver for it (SPEC 3.2), as a transaction
    /// (SPEC 3.3). Returns the driver the device is now bound to.
    pub fn bind(
        &self,
        address: &str,
        name: Option<&str>,
        options: BindOptions,
    ) -> Result<DriverName> {
        self.bind_start(address, name, options).map(|o| o.driver)
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
        let address = PciAddress::parse(address)?;
        let name = name.map(DriverName::new).transpose()?;
        self.on_locked_device(&address, |locked, _| {
            // Before the target is resolved: loading its module may already probe the device.
            let start = self.state(&address)?;
            let (target, executed) =
                self.run_prepared(locked, address, start.clone(), "binding to", |loads| {
                    self.prepare_bind(loads, name.as_ref(), options)
                })?;
            let driver =
                target.ok_or_else(|| Error::Internal("a bind without a resolved target".into()))?;
            let moved = if executed {
                self.warn_if_group_not_viable(&address, &driver);
                true
            } else {
                self.state(&address)? != start
            };
            Ok(BindOutcome {
                driver,
                moved,
                start_driver: start.driver,
                start_override: start.driver_override,
            })
        })
    }

    /// After one device of an IOMMU group moved to a VFIO driver: a warning naming the members
    /// that still keep the group from being assigned (SPEC 3.8).
    fn warn_if_group_not_viable(&self, address: &PciAddress, target: &DriverName) {
        if !self.sysfs.has_vfio_dev(address) && !self.is_vfio_driver(target) {
            return;
        }
        if let Ok(Some(why)) = self.iommu_group_viability(&address.to_string()) {
            self.log.log(
                Priority::Warning,
                format_args!(
                    "{address} is on {target}, but its IOMMU group cannot be assigned yet: {why} \
                     (a group bind moves them all)"
                ),
            );
        }
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
        let address = PciAddress::parse(address)?;
        let name = name.map(DriverName::new).transpose()?;
        self.plan_with(address, |loads| {
            self.prepare_bind(loads, name.as_ref(), options)
        })
    }

    /// What [`Context::unbind`] with the same arguments would do, without doing any of it:
    /// the checks run as the real call's, nothing is written. The plan comes from the step list
    /// the real call executes.
    pub fn unbind_plan(&self, address: &str, options: BindOptions) -> Result<Plan> {
        let address = PciAddress::parse(address)?;
        self.plan_with(address, |loads| {
            self.prepare_unbind(&address, loads.start().clone(), options)
        })
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
        let address = PciAddress::parse(address)?;
        let name = name.map(DriverName::new).transpose()?;
        self.plan_with(address, |loads| {
            self.prepare_reattach(loads, name.as_ref(), options)
        })
    }

    /// A real call's transaction on one locked device, in its two phases: `prepare` works the
    /// operation out from `start` (the module loads it needs, each run as a step of the
    /// transaction, then the checkpoint: the target, the checks, the writes to make), then the
    /// executor runs the writes. A refusal at the checkpoint puts back a device the loads
    /// moved. Returns the target and whether the executor ran a transaction.
    fn run_prepared(
        &self,
        locked: &Locked<'_>,
        address: PciAddress,
        start: txn::DeviceState,
        verb: &'static str,
        prepare: impl FnOnce(&mut Loads<'_>) -> Result<Prepared>,
    ) -> Result<(Option<DriverName>, bool)> {
        let mut loads = Loads::real(self, locked, address, start, verb);
        let prepared = match prepare(&mut loads) {
            Ok(prepared) => prepared,
            Err(e) => return Err(loads.abandon(e)),
        };
        match loads.into_txn(prepared.txn)? {
            Some((txn, done)) => {
                self.execute_from(std::slice::from_ref(&txn), &[done], locked)?;
                Ok((prepared.target, true))
            }
            None => Ok((prepared.target, false)),
        }
    }

    /// A dry run on the device at `address`: `prepare` works the operation out as the real
    /// call does, with its module loads listed rather than run, and the plan renders its steps.
    fn plan_with(
        &self,
        address: PciAddress,
        prepare: impl FnOnce(&mut Loads<'_>) -> Result<Prepared>,
    ) -> Result<Plan> {
        self.sysfs.require_device(&address)?;
        let mut loads = Loads::dry_run(self, address, self.state(&address)?);
        let mut prepared = prepare(&mut loads)?;
        prepared.txn = loads.into_txn(prepared.txn.take())?.map(|(txn, _)| txn);
        Ok(self.plan_of(&address, prepared))
    }

    /// A worked-out operation as a plan: a note on an interrupted transaction the real call
    /// would roll back first, the notes, then the rendered steps with the checkpoint's lines
    /// after the module loads.
    fn plan_of(&self, address: &PciAddress, prepared: Prepared) -> Plan {
        let mut lines = Vec::new();
        // A dry run takes no lock, so it rolls nothing back; the real call would, first.
        if let Some(i) = self.interrupted().ok().and_then(|found| {
            found
                .into_iter()
                .find(|i| i.address == *address && !i.running)
        }) {
            lines.push(format!(
                "first roll back the interrupted transaction of {address} ({}); the plan below \
                 starts from the device as it is now",
                i.description
            ));
        }
        lines.extend(prepared.notes);
        match &prepared.txn {
            Some(txn) => self.render(txn, &prepared.checkpoint, &mut lines),
            None => {
                lines.extend(prepared.checkpoint);
                if lines.is_empty() {
                    lines.push(format!("{address}: nothing to do"));
                }
            }
        }
        Plan {
            target: prepared.target,
            lines,
        }
    }

    /// SPEC 3.3 steps 2-5, and the steps 6-7 to run: the one description of a bind that the
    /// real call executes and the dry run prints. The module loads of step 2 go through
    /// `loads` (run, or listed by a dry run); steps 3-5 look at the device as they left it.
    fn prepare_bind(
        &self,
        loads: &mut Loads<'_>,
        name: Option<&DriverName>,
        options: BindOptions,
    ) -> Result<Prepared> {
        let address = &loads.address().to_owned();
        let mut notes = Vec::new();
        let target = match name {
            Some(name) => self.resolve_target(name, None, loads, &mut notes)?,
            None => {
                let modalias = self.sysfs.modalias(address)?;
                let module = self.vfio_variant_for(address, &modalias);
                if loads.is_dry_run() {
                    notes.push(format!(
                        "choose {module} for {address} ({modalias}) from the vfio_pci: aliases"
                    ));
                }
                let fallback = if options.strict_variant {
                    Fallback::Strict
                } else {
                    Fallback::VfioPci
                };
                self.resolve_target(
                    &DriverName::from(&module),
                    Some(fallback),
                    loads,
                    &mut notes,
                )?
            }
        };
        if options.require_vfio && !self.is_vfio_target(&target) {
            return Err(Error::NotClaimed {
                address: *address,
                driver: match &target {
                    Target::Driver(d) => d.clone(),
                    Target::Unloaded(m) => DriverName::from(m),
                },
                detail: "it is not a VFIO driver, and a VFIO driver was required".to_owned(),
                check: Check::RequireVfio,
            });
        }
        // Where the loads left it: a host module may have probed an unbound device.
        let now = loads.now()?;
        let start = loads.start().clone();
        if let Target::Driver(t) = &target {
            if now.driver.as_ref() == Some(t) {
                return Ok(self.already_bound(address, t, start, &now, notes));
            }
        }
        self.check_move(address, &now, Destination::Driver(&target), name, &options)?;
        Ok(Prepared {
            target: match &target {
                Target::Driver(d) => Some(d.clone()),
                Target::Unloaded(_) => None,
            },
            txn: Some(DeviceTxn {
                forced: options.skips(Check::InUse),
                address: *address,
                steps: txn::move_to(&target),
                doing: format!("binding to {target}"),
                start,
            }),
            notes,
            checkpoint: vec![checks_note(&options)],
        })
    }

    /// A device already on its target (SPEC 3.3 step 3): no unbind and no probe. On an
    /// override-only (VFIO) driver whose name is not in `driver_override` yet (bound through
    /// `new_id`, or so left by someone else), the override is written, so that a reprobe keeps
    /// the device there; otherwise nothing is written.
    fn already_bound(
        &self,
        address: &PciAddress,
        driver: &DriverName,
        start: txn::DeviceState,
        now: &txn::DeviceState,
        notes: Vec<String>,
    ) -> Prepared {
        let keeps = now.driver_override.as_deref() == Some(driver.as_str());
        if keeps || !self.is_vfio_driver(driver) {
            let nothing = format!("{address} is already bound to {driver}; nothing to do");
            self.log.log(Priority::Info, format_args!("{nothing}"));
            return Prepared {
                target: Some(driver.clone()),
                txn: None,
                notes,
                checkpoint: vec![nothing],
            };
        }
        let checkpoint = vec![format!(
            "{address} is already bound to {driver}; its name goes into driver_override so that \
             a reprobe keeps it there"
        )];
        Prepared {
            target: Some(driver.clone()),
            txn: Some(DeviceTxn {
                forced: false,
                address: *address,
                start,
                steps: vec![Step::SetOverride(Override::Driver(Target::Driver(
                    driver.clone(),
                )))],
                doing: format!("keeping {driver} through a reprobe"),
            }),
            notes,
            checkpoint,
        }
    }

    /// The registered driver `name` stands for (SPEC 3.1). When only loading its module tells,
    /// the load is the transaction's next step, through `loads`: a real call runs it, a dry run
    /// lists it and names the driver by its module ([`Target::Unloaded`]). `variant`: `name`
    /// is the module variant detection chose, which falls back to vfio-pci when it cannot be
    /// had (SPEC 3.2), unless strictly asked for (SPEC 3.14).
    fn resolve_target(
        &self,
        name: &DriverName,
        variant: Option<Fallback>,
        loads: &mut Loads<'_>,
        notes: &mut Vec<String>,
    ) -> Result<Target> {
        let module = ModuleName::from(name);
        let resolved = match resolve::before_load(
            &self.sysfs,
            &self.log,
            name,
            !self.modprobe.is_disabled(),
        ) {
            Ok(Resolved::Driver(driver)) => Ok(driver),
            Ok(Resolved::NeedsLoad(module)) => {
                let load = Load {
                    module: module.clone(),
                    purpose: LoadFor::Target(variant),
                };
                match loads.load(load)? {
                    Some(loaded) => resolve::after_load(&self.sysfs, &self.log, name, Some(loaded)),
                    // A dry run: what is there without the load (a built-in, a load in flight
                    // that ended), else the driver the module registers once loaded.
                    None => match resolve::after_load(&self.sysfs, &self.log, name, None) {
                        Ok(driver) => Ok(driver),
                        Err(_) => return Ok(Target::Unloaded(module)),
                    },
                }
            }
            Err(e) => Err(e),
        };
        let e = match resolved {
            Ok(driver) => return Ok(Target::Driver(driver)),
            Err(e) => e,
        };
        if variant != Some(Fallback::VfioPci) || module.as_str() == VFIO_PCI_MODULE {
            return match (variant, e) {
                // Strict: the variant or nothing, and "nothing" says it was the variant.
                (Some(Fallback::Strict), e @ (Error::NoDriver(_) | Error::Io { .. })) => {
                    Err(Error::ModuleLoad {
                        module: module.to_string(),
                        detail: format!("the VFIO variant driver is required: {e}"),
                    })
                }
                (_, e) => Err(e),
            };
        }
        self.log.log(
            Priority::Warning,
            format_args!("VFIO variant '{module}' is unavailable ({e}); falling back to vfio-pci"),
        );
        notes.push(format!("{module} is unavailable: vfio-pci instead"));
        self.resolve_target(&vfio_pci_name(), None, loads, notes)
    }

    /// Detaches the device at `address` from its driver and leaves it unbound. Its
    /// `driver_override` is first set to `none` (a name no driver has), so no later probe
    /// grabs it. Nothing is written when it is unbound with that override already. Taking a
    /// device off a host driver runs bind's safety checks unless `options.force` (unbinding
    /// the host's NIC cuts the host off as surely as binding it elsewhere). On failure the
    /// device is put back as it was.
    pub fn unbind(&self, address: &str, options: BindOptions) -> Result<()> {
        let address = PciAddress::parse(address)?;
        self.on_locked_device(&address, |locked, _| {
            let start = self.state(&address)?;
            match self.prepare_unbind(&address, start, options)?.txn {
                Some(txn) => self.execute(&[txn], locked),
                None => Ok(()),
            }
        })
    }

    /// An unbind worked out from the device's `start`: nothing for a device unbound with the
    /// no-driver override already; else the checks, then override `none`, unbind, check.
    fn prepare_unbind(
        &self,
        address: &PciAddress,
        start: txn::DeviceState,
        options: BindOptions,
    ) -> Result<Prepared> {
        if start.driver.is_none() && start.driver_override.as_deref() == Some(NO_DRIVER_OVERRIDE) {
            let nothing = format!("{address} is unbound and kept so; nothing to do");
            self.log.log(Priority::Info, format_args!("{nothing}"));
            return Ok(Prepared {
                target: None,
                txn: None,
                notes: vec![nothing],
                checkpoint: Vec::new(),
            });
        }
        self.check_move(address, &start, Destination::Unbound, None, &options)?;
        Ok(Prepared {
            target: None,
            txn: Some(DeviceTxn {
                forced: options.skips(Check::InUse),
                address: *address,
                start,
                steps: vec![
                    Step::SetOverride(Override::Value(NO_DRIVER_OVERRIDE.to_owned())),
                    Step::Unbind { keep: None },
                    Step::Expect(Expect::Unbound),
                ],
                doing: "unbinding".to_owned(),
            }),
            notes: vec![checks_note_of(
                &options,
                &[
                    (Check::InUse, "not in use on the host"),
                    (Check::Sriov, "not a PF whose VFs are on VFIO drivers"),
                ],
            )],
            checkpoint: Vec::new(),
        })
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
        let address = PciAddress::parse(address)?;
        let name = name.map(DriverName::new).transpose()?;
        self.on_locked_device(&address, |locked, _| {
            let start = self.state(&address)?;
            let (target, _) =
                self.run_prepared(locked, address, start, "reattaching to", |loads| {
                    self.prepare_reattach(loads, name.as_ref(), options)
                })?;
            match target {
                Some(t) => Ok(Some(t)),
                // The kernel chose; the transaction checked that it chose something, or nothing
                // because no host driver matches.
                None => self.sysfs.device_driver(&address),
            }
        })
    }

    /// A reattach worked out: the module load of a named target through `loads`, then, on the
    /// device as the load left it, what to write; with no name, the host modules are loads
    /// among the steps (after the checks: they tell no target).
    fn prepare_reattach(
        &self,
        loads: &mut Loads<'_>,
        name: Option<&DriverName>,
        options: BindOptions,
    ) -> Result<Prepared> {
        let address = &loads.address().to_owned();
        let mut notes = Vec::new();
        let target = name
            .map(|n| self.resolve_target(n, None, loads, &mut notes))
            .transpose()?;
        // Where the load left it (a host module may have probed an unbound device), and where
        // a failure restores it to.
        let now = loads.now()?;
        let start = loads.start().clone();
        let nothing = |target: Option<DriverName>| {
            self.log.log(
                Priority::Info,
                format_args!("{address} is already where it should be ({now}); nothing to do"),
            );
            Ok(Prepared {
                target,
                txn: None,
                notes: Vec::new(),
                checkpoint: Vec::new(),
            })
        };
        let Some(target) = target else {
            let on_host_driver = self.on_host_driver(address, now.driver.as_ref());
            if on_host_driver && now.driver_override.is_none() {
                return nothing(None);
            }
            let home = on_host_driver
                && now.driver.as_ref().is_some_and(|d| {
                    self.claims_by_id_table(address, &Target::Driver(d.clone()), None) == Some(true)
                });
            if home {
                // On a driver that claims it by its own ID table: only the override goes, with
                // no unbind and no probe. (A driver forced onto a device it does not claim is
                // no home: the device is reprobed below.)
                return Ok(Prepared {
                    target: now.driver.clone(),
                    txn: Some(DeviceTxn {
                        forced: false,
                        address: *address,
                        steps: vec![Step::SetOverride(Override::Clear)],
                        doing: "clearing driver_override (the device is on its host driver)"
                            .to_owned(),
                        start,
                    }),
                    notes: Vec::new(),
                    checkpoint: Vec::new(),
                });
            }
            self.check_move(address, &now, Destination::Host, None, &options)?;
            return self.prepare_reattach_to_host(address, start, &options);
        };
        // `None` only in a dry run whose target's module is not loaded: the device cannot be on
        // a driver nobody registered yet.
        let driver = target.driver().cloned();
        // A driver that matches the device by its own IDs keeps it after a reprobe without
        // the override; an override-only (VFIO) driver, or one forced onto a device it does
        // not claim, needs the override to stay.
        let host = self
            .claims_by_id_table(address, &target, name)
            .unwrap_or_else(|| !self.is_vfio_target(&target));
        let mut checkpoint = Vec::new();
        let steps = match &driver {
            Some(d) if now.driver.as_ref() == Some(d) => {
                let wanted_override = if host { None } else { Some(d.as_str()) };
                if now.driver_override.as_deref() == wanted_override {
                    return nothing(Some(d.clone()));
                }
                vec![Step::SetOverride(match wanted_override {
                    None => Override::Clear,
                    Some(_) => Override::Driver(target.clone()),
                })]
            }
            _ => {
                // `reattach(host NIC, "vfio-pci")` must not take what `bind` refuses.
                self.check_move(address, &now, Destination::Driver(&target), name, &options)?;
                checkpoint.push(checks_note(&options));
                let mut steps = txn::move_to(&target);
                if host {
                    steps.push(Step::SetOverride(Override::Clear));
                }
                steps
            }
        };
        Ok(Prepared {
            target: driver,
            txn: Some(DeviceTxn {
                forced: options.skips(Check::InUse),
                address: *address,
                start,
                steps,
                doing: format!("reattaching to {target}"),
            }),
            notes,
            checkpoint,
        })
    }

    /// Reattach with no name: the host modules the tables name for the device are loaded
    /// first (when not loaded yet: loads are the first steps), then the override is cleared
    /// and the kernel's matching chooses. The device may stay unbound only when no host
    /// driver matches it.
    fn prepare_reattach_to_host(
        &self,
        address: &PciAddress,
        start: txn::DeviceState,
        options: &BindOptions,
    ) -> Result<Prepared> {
        let modules = self.host_modules_for(address)?;
        let mut steps: Vec<Step> = modules
            .iter()
            .flatten()
            .filter(|m| !self.sysfs.module_exists(m) && !self.modprobe.is_disabled())
            .map(|m| {
                Step::Load(Load {
                    module: m.clone(),
                    purpose: LoadFor::Host,
                })
            })
            .collect();
        // Unreadable tables cannot say that no host driver matches: left unbound then, the
        // device is restored and the call fails.
        let may_stay_unbound = modules.as_ref().is_some_and(Vec::is_empty);
        if may_stay_unbound {
            self.log.log(
                Priority::Info,
                format_args!("no host driver matches {address}; it may stay unbound"),
            );
        }
        steps.extend([
            Step::SetOverride(Override::Clear),
            Step::Unbind { keep: None },
            Step::Probe,
            Step::Expect(Expect::AnyDriver { may_stay_unbound }),
        ]);
        Ok(Prepared {
            target: None,
            txn: Some(DeviceTxn {
                forced: options.skips(Check::InUse),
                address: *address,
                start,
                steps,
                doing: "reattaching to the host driver".to_owned(),
            }),
            notes: Vec::new(),
            checkpoint: Vec::new(),
        })
    }
}

/// What a group transaction did (or, in a dry run, would do): the members moved, in the order
/// moved, and the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupOutcome {
    pub moved: Vec<PciAddress>,
    /// Every member of the unit, in address order: the moved ones, those already on VFIO
    /// drivers and the bridges that stay.
    pub members: Vec<PciAddress>,
    /// The plan's lines (a dry run), or empty.
    pub plan: Vec<String>,
}

impl Context {
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
        let address = PciAddress::parse(address)?;
        self.sysfs.require_device(&address)?;
        let _deferral = self.log.defer();
        let mode = if dry_run { Mode::DryRun } else { Mode::Real };
        let movers = |m: &UnitMember| !m.bridge && !m.vfio;
        let no_host_bridge = |unit: &[UnitMember]| match unit.iter().find(|m| m.is_host_bridge()) {
            None => Ok(()),
            Some(bridge) => Err(Error::InUse {
                check: Check::GroupBridge,
                address: bridge.address,
                reason: format!(
                    "it is a bridge in the IOMMU group of {address}, bound to host driver {}: \
                     the group cannot be assigned safely (forcing does not change this)",
                    bridge.driver.as_ref().map_or("?", |d| d.as_str())
                ),
            }),
        };
        self.group_transaction(
            &address,
            mode,
            "binding to",
            movers,
            no_host_bridge,
            |loads| self.prepare_bind(loads, None, options),
        )
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
        let address = PciAddress::parse(address)?;
        self.sysfs.require_device(&address)?;
        let _deferral = self.log.defer();
        let mode = if dry_run { Mode::DryRun } else { Mode::Real };
        let movers = |m: &UnitMember| !m.bridge && m.vfio;
        self.group_transaction(
            &address,
            mode,
            "reattaching to",
            movers,
            |_| Ok(()),
            |loads| self.prepare_reattach(loads, None, options),
        )
    }

    /// The unit of `address` with its locks taken (a real call). The unit is worked out again
    /// once the locks are held, since taking them rolls back interrupted transactions, which
    /// may move members (one left on vfio-pci by a killed group bind is a mover again); should
    /// that bring in a member not locked yet, the locks are let go and taken again.
    fn locked_unit(
        &self,
        address: &PciAddress,
        mode: Mode,
        movers: &impl Fn(&UnitMember) -> bool,
    ) -> Result<(Vec<UnitMember>, Locked<'_>)> {
        let deadline = self.deadline();
        let mut unit = self.unit(address, movers)?;
        if mode == Mode::DryRun {
            return Ok((unit, Locked::none()));
        }
        for _ in 0..3 {
            let addresses: Vec<PciAddress> = unit.iter().map(|m| m.address).collect();
            let locked = self.lock_devices(&addresses, &deadline)?;
            let now = self.unit(address, movers)?;
            if now.iter().all(|m| addresses.contains(&m.address)) {
                return Ok((now, locked));
            }
            unit = now;
        }
        Err(Error::Busy(format!(
            "the IOMMU-group unit of {address} kept changing while its locks were taken"
        )))
    }

    /// Takes the unit's locks (a real call), checks it, prepares every mover before anything is
    /// written (the first phase: each mover's module loads, then its checks), then executes
    /// the list of lists (or renders it). A mover refused at its checkpoint puts back the
    /// members the loads moved so far, in reverse order.
    fn group_transaction(
        &self,
        address: &PciAddress,
        mode: Mode,
        verb: &'static str,
        movers: impl Fn(&UnitMember) -> bool,
        check: impl Fn(&[UnitMember]) -> Result<()>,
        prepare: impl Fn(&mut Loads<'_>) -> Result<Prepared>,
    ) -> Result<GroupOutcome> {
        let (unit, locked) = self.locked_unit(address, mode, &movers)?;
        check(&unit)?;
        let mut prepared: Vec<(Loads<'_>, Prepared)> = Vec::new();
        let abandon = |prepared: Vec<(Loads<'_>, Prepared)>, mut e: Error| {
            for (loads, _) in prepared.into_iter().rev() {
                e = loads.abandon(e);
            }
            e
        };
        for member in unit.iter().filter(|m| movers(m)).map(|m| m.address) {
            let start = match self.state(&member) {
                Ok(start) => start,
                Err(e) => return Err(abandon(prepared, e)),
            };
            let mut loads = match mode {
                Mode::Real => Loads::real(self, &locked, member, start, verb),
                Mode::DryRun => Loads::dry_run(self, member, start),
            };
            match prepare(&mut loads) {
                Ok(p) => prepared.push((loads, p)),
                Err(e) => {
                    let e = loads.abandon(e);
                    return Err(abandon(prepared, e));
                }
            }
        }
        let mut txns = Vec::new();
        let mut done = Vec::new();
        let mut plan = Vec::new();
        let mut checkpoints = Vec::new();
        for (loads, prepared) in prepared {
            let member = *loads.address();
            if mode == Mode::DryRun {
                plan.push(format!("{member}:"));
                plan.extend(prepared.notes.iter().map(|n| format!("  {n}")));
                if prepared.txn.is_none() {
                    plan.extend(prepared.checkpoint.iter().map(|n| format!("  {n}")));
                }
            }
            if let Some((txn, ran)) = loads.into_txn(prepared.txn)? {
                txns.push(txn);
                done.push(ran);
                checkpoints.push(prepared.checkpoint);
            }
        }
        if mode == Mode::DryRun {
            for (txn, checkpoint) in txns.iter().zip(&checkpoints) {
                plan.push(format!("{}:", txn.address));
                let mut lines = Vec::new();
                self.render(txn, checkpoint, &mut lines);
                plan.extend(lines.iter().map(|l| format!("  {l}")));
            }
            plan.push(
                "on failure of any member: the members moved before it are restored in reverse \
                 order"
                    .to_owned(),
            );
        } else {
            self.execute_from(&txns, &done, &locked)?;
        }
        Ok(GroupOutcome {
            moved: txns.iter().map(|t| t.address).collect(),
            members: unit.iter().map(|m| m.address).collect(),
            plan,
        })
    }
}
