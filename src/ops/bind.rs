//! The operations that move a device between drivers (SPEC 3.3): bind, unbind and reattach.
//! Each works out its transaction as a step list (`txn.rs`) from the device's recorded state,
//! after the safety checks (`safety.rs`); a real call executes that list, a dry run renders the
//! same list as its plan. Nothing here writes to sysfs itself.

use std::fmt;

use crate::os::sysfs::NO_DRIVER_OVERRIDE;
use crate::policy::safety::Destination;
use crate::policy::unit::UnitMember;
use crate::tables::{ChoiceBasis, VfioChoice, VFIO_PCI_MODULE, VFIO_PREFIX};
use crate::txn::{self, DeviceTxn, Expect, Locked, Override, Step, Target};
use crate::types::address::PciAddress;
use crate::types::error::{Check, Error, Result};
use crate::types::log::Priority;
use crate::types::modalias::Modalias;
use crate::types::name::{DriverName, ModuleName};
pub use crate::types::options::BindOptions;
use crate::{Context, Modprobe};

/// What [`Context::bind`] (or another operation's `_plan` sibling's call) would do, found
/// without changing or loading anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The driver the device would end on; `None` when only loading its module would tell, and
    /// in the plan of a VF count change.
    pub target: Option<DriverName>,
    /// One action per line: the module loads, the checks, each sysfs write with its value
    /// and path, the check of the result, and what a failure would restore.
    pub lines: Vec<String>,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines.join("\n"))
    }
}

/// What a VFIO variant chosen for a device falls back to when it cannot be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fallback {
    /// vfio-pci, with a warning (SPEC 3.2).
    VfioPci,
    /// Nothing: the call fails (`strict_variant`, SPEC 3.14).
    Strict,
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

/// The plan's line about the VFIO driver chosen for a device: it says what the choice rests
/// on, an alias of the tables, no alias matching, or no tables read at all (then no variant
/// was looked for, and the plan must not claim the aliases were).
fn choice_note(address: &PciAddress, modalias: &Modalias, choice: &VfioChoice) -> String {
    let module = &choice.module;
    match &choice.basis {
        ChoiceBasis::Alias(pattern) => {
            format!(
                "choose {module} for {address} ({modalias}) by its alias {VFIO_PREFIX}{pattern}"
            )
        }
        ChoiceBasis::NoAliasMatches => {
            format!("choose {module} for {address} ({modalias}): no {VFIO_PREFIX} alias matches it")
        }
        ChoiceBasis::NoTables(why) => format!(
            "choose {module} for {address} ({modalias}) without looking for a variant: {why}"
        ),
    }
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

/// Whether working out an operation may load modules (a real call) or only says what it
/// would load (a dry run).
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

/// An operation worked out: the driver it ends on, its transaction (`None`: nothing to do),
/// and, in a dry run, the plan lines that precede the steps.
struct Prepared {
    target: Option<DriverName>,
    txn: Option<DeviceTxn>,
    notes: Vec<String>,
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
            let prepared = self.prepare_bind(&address, name.as_ref(), options, Mode::Real)?;
            let driver = prepared
                .target
                .ok_or_else(|| Error::Internal("a bind without a resolved target".into()))?;
            let moved = match &prepared.txn {
                Some(txn) => {
                    self.execute(std::slice::from_ref(txn), locked)?;
                    self.warn_if_group_not_viable(&address, &driver);
                    true
                }
                // A module load can move a device on its own (a host driver probing an unbound
                // device): then the call did move it, though it wrote nothing itself.
                None => self.state(&address)? != start,
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
        self.sysfs.require_device(&address)?;
        let prepared = self.prepare_bind(&address, name.as_ref(), options, Mode::DryRun)?;
        Ok(self.plan_of(&address, prepared))
    }

    /// What [`Context::unbind`] with the same arguments would do, without doing any of it:
    /// the checks run as the real call's, nothing is written. The plan comes from the step list
    /// the real call executes.
    pub fn unbind_plan(&self, address: &str, options: BindOptions) -> Result<Plan> {
        let address = PciAddress::parse(address)?;
        self.sysfs.require_device(&address)?;
        let start = self.state(&address)?;
        let prepared = self.prepare_unbind(&address, start, options)?;
        Ok(self.plan_of(&address, prepared))
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
        self.sysfs.require_device(&address)?;
        let prepared = self.prepare_reattach(&address, name.as_ref(), options, Mode::DryRun)?;
        Ok(self.plan_of(&address, prepared))
    }

    /// A worked-out operation as a plan: a note on an interrupted transaction the real call
    /// would roll back first, the notes, then the rendered steps.
    fn plan_of(&self, address: &PciAddress, prepared: Prepared) -> Plan {
        let mut lines: Vec<String> = self.interrupted_note(address).into_iter().collect();
        lines.extend(prepared.notes);
        match &prepared.txn {
            Some(txn) => self.render(txn, &mut lines),
            None if lines.is_empty() => lines.push(format!("{address}: nothing to do")),
            None => {}
        }
        Plan {
            target: prepared.target,
            lines,
        }
    }

    /// SPEC 3.3 steps 2-5, and the steps 6-7 to run: the one description of a bind that the
    /// real call executes and the dry run prints.
    fn prepare_bind(
        &self,
        address: &PciAddress,
        name: Option<&DriverName>,
        options: BindOptions,
        mode: Mode,
    ) -> Result<Prepared> {
        let mut notes = Vec::new();
        let target = match name {
            Some(name) => self.resolve_target(name, None, mode, &mut notes)?,
            None => {
                let modalias = self.sysfs.modalias(address)?;
                let choice = self.vfio_choice_for(address, &modalias);
                if mode == Mode::DryRun {
                    notes.push(choice_note(address, &modalias, &choice));
                }
                let module = choice.module;
                let fallback = if options.strict_variant {
                    Fallback::Strict
                } else {
                    Fallback::VfioPci
                };
                self.resolve_target(&DriverName::from(&module), Some(fallback), mode, &mut notes)?
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
        let start = self.state(address)?;
        if let Target::Driver(t) = &target {
            if start.driver.as_ref() == Some(t) {
                return Ok(self.already_bound(address, t, start, notes));
            }
        }
        self.check_move(
            address,
            &start,
            Destination::Driver(&target),
            name,
            &options,
        )?;
        notes.push(checks_note(&options));
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
        mut notes: Vec<String>,
    ) -> Prepared {
        let keeps = start.driver_override.as_deref() == Some(driver.as_str());
        if keeps || !self.is_vfio_driver(driver) {
            let nothing = format!("{address} is already bound to {driver}; nothing to do");
            self.log.log(Priority::Info, format_args!("{nothing}"));
            notes.push(nothing);
            return Prepared {
                target: Some(driver.clone()),
                txn: None,
                notes,
            };
        }
        notes.push(format!(
            "{address} is already bound to {driver}; its name goes into driver_override so that \
             a reprobe keeps it there"
        ));
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
        }
    }

    /// The registered driver `name` stands for (SPEC 3.1). A real call loads its module when
    /// needed; a dry run does not, and names the module instead when the driver is not
    /// registered yet (the note says what would be run). `variant`: `name` is the module
    /// variant detection chose, which falls back to vfio-pci when it cannot be had (SPEC 3.2),
    /// unless strictly asked for (SPEC 3.14).
    fn resolve_target(
        &self,
        name: &DriverName,
        variant: Option<Fallback>,
        mode: Mode,
        notes: &mut Vec<String>,
    ) -> Result<Target> {
        let modprobe = match mode {
            Mode::Real => &self.modprobe,
            Mode::DryRun => &Modprobe::Disabled,
        };
        let e = match crate::policy::resolve::resolve_driver(
            &self.sysfs,
            modprobe,
            self.modprobe_timeout,
            &self.log,
            name,
        ) {
            Ok(driver) => return Ok(Target::Driver(driver)),
            Err(e) => e,
        };
        let module = ModuleName::from(name);
        if mode == Mode::DryRun && !self.modprobe.is_disabled() {
            let loader = self.modprobe.describe_load(&module);
            notes.push(format!(
                "{loader}; its PCI driver is known once it is loaded{}",
                match variant {
                    _ if module.as_str() == VFIO_PCI_MODULE => "",
                    Some(Fallback::VfioPci) => " (should it fail to load: vfio-pci instead)",
                    Some(Fallback::Strict) => " (should it fail to load: an error, no fallback)",
                    None => "",
                }
            ));
            return Ok(Target::Unloaded(module));
        }
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
        self.resolve_target(&vfio_pci_name(), None, mode, notes)
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
            let prepared = self.prepare_reattach(&address, name.as_ref(), options, Mode::Real)?;
            if let Some(txn) = &prepared.txn {
                self.execute(std::slice::from_ref(txn), locked)?;
            }
            match prepared.target {
                Some(t) => Ok(Some(t)),
                // The kernel chose; the transaction checked that it chose something, or nothing
                // because no host driver matches.
                None => self.sysfs.device_driver(&address),
            }
        })
    }

    fn prepare_reattach(
        &self,
        address: &PciAddress,
        name: Option<&DriverName>,
        options: BindOptions,
        mode: Mode,
    ) -> Result<Prepared> {
        let mut notes = Vec::new();
        let target = name
            .map(|n| self.resolve_target(n, None, mode, &mut notes))
            .transpose()?;
        let start = self.state(address)?;
        let nothing = |target: Option<DriverName>| {
            self.log.log(
                Priority::Info,
                format_args!("{address} is already where it should be ({start}); nothing to do"),
            );
            Ok(Prepared {
                target,
                txn: None,
                notes: Vec::new(),
            })
        };
        let Some(target) = target else {
            let on_host_driver = self.on_host_driver(address, start.driver.as_ref());
            if on_host_driver && start.driver_override.is_none() {
                return nothing(None);
            }
            let home = on_host_driver
                && start.driver.as_ref().is_some_and(|d| {
                    self.claims_by_id_table(address, &Target::Driver(d.clone()), None) == Some(true)
                });
            if home {
                // On a driver that claims it by its own ID table: only the override goes, with
                // no unbind and no probe. (A driver forced onto a device it does not claim is
                // no home: the device is reprobed below.)
                return Ok(Prepared {
                    target: start.driver.clone(),
                    txn: Some(DeviceTxn {
                        forced: false,
                        address: *address,
                        steps: vec![Step::SetOverride(Override::Clear)],
                        doing: "clearing driver_override (the device is on its host driver)"
                            .to_owned(),
                        start,
                    }),
                    notes: Vec::new(),
                });
            }
            self.check_move(address, &start, Destination::Host, None, &options)?;
            return self.prepare_reattach_to_host(address, start, &options, mode);
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
        let steps = match &driver {
            Some(d) if start.driver.as_ref() == Some(d) => {
                let wanted_override = if host { None } else { Some(d.as_str()) };
                if start.driver_override.as_deref() == wanted_override {
                    return nothing(Some(d.clone()));
                }
                vec![Step::SetOverride(match wanted_override {
                    None => Override::Clear,
                    Some(_) => Override::Driver(target.clone()),
                })]
            }
            _ => {
                // `reattach(host NIC, "vfio-pci")` must not take what `bind` refuses.
                self.check_move(
                    address,
                    &start,
                    Destination::Driver(&target),
                    name,
                    &options,
                )?;
                notes.push(checks_note(&options));
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
        })
    }

    /// Reattach with no name: the host modules the tables name for the device are loaded
    /// first (when not loaded yet), then the override is cleared and the kernel's matching
    /// chooses. The device may stay unbound only when no host driver matches it.
    fn prepare_reattach_to_host(
        &self,
        address: &PciAddress,
        start: txn::DeviceState,
        options: &BindOptions,
        mode: Mode,
    ) -> Result<Prepared> {
        let modules = self.host_modules_for(address)?;
        let mut notes = Vec::new();
        for module in modules.iter().flatten() {
            if !self.sysfs.module_exists(module) && !self.modprobe.is_disabled() {
                if mode == Mode::DryRun {
                    notes.push(format!(
                        "load host module {module}: {}",
                        self.modprobe.describe_load(module)
                    ));
                    continue;
                }
                self.log.log(
                    Priority::Info,
                    format_args!("loading host module '{module}' for {address}"),
                );
                if let Err(e) = self.modprobe.load(module, self.modprobe_timeout) {
                    self.log.log(Priority::Warning, format_args!("{e}"));
                }
            }
        }
        // Unreadable tables cannot say that no host driver matches: left unbound then, the
        // device is restored and the call fails.
        let may_stay_unbound = modules.as_ref().is_some_and(Vec::is_empty);
        if may_stay_unbound {
            self.log.log(
                Priority::Info,
                format_args!("no host driver matches {address}; it may stay unbound"),
            );
        }
        Ok(Prepared {
            target: None,
            txn: Some(DeviceTxn {
                forced: options.skips(Check::InUse),
                address: *address,
                start,
                steps: vec![
                    Step::SetOverride(Override::Clear),
                    Step::Unbind { keep: None },
                    Step::Probe,
                    Step::Expect(Expect::AnyDriver { may_stay_unbound }),
                ],
                doing: "reattaching to the host driver".to_owned(),
            }),
            notes,
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
        self.group_transaction(&address, mode, movers, no_host_bridge, |member| {
            self.prepare_bind(member, None, options, mode)
        })
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
            movers,
            |_| Ok(()),
            |member| self.prepare_reattach(member, None, options, mode),
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
    /// written, then executes the list of lists (or renders it).
    fn group_transaction(
        &self,
        address: &PciAddress,
        mode: Mode,
        movers: impl Fn(&UnitMember) -> bool,
        check: impl Fn(&[UnitMember]) -> Result<()>,
        prepare: impl Fn(&PciAddress) -> Result<Prepared>,
    ) -> Result<GroupOutcome> {
        let (unit, locked) = self.locked_unit(address, mode, &movers)?;
        check(&unit)?;
        let mut txns = Vec::new();
        let mut plan = Vec::new();
        for member in unit.iter().filter(|m| movers(m)).map(|m| m.address) {
            let prepared = prepare(&member)?;
            if mode == Mode::DryRun {
                plan.push(format!("{member}:"));
                plan.extend(prepared.notes.iter().map(|n| format!("  {n}")));
            }
            txns.extend(prepared.txn);
        }
        if mode == Mode::DryRun {
            for txn in &txns {
                plan.push(format!("{}:", txn.address));
                let mut lines = Vec::new();
                self.render(txn, &mut lines);
                plan.extend(lines.iter().map(|l| format!("  {l}")));
            }
            plan.push(
                "on failure of any member: the members moved before it are restored in reverse \
                 order"
                    .to_owned(),
            );
        } else {
            self.execute(&txns, &locked)?;
        }
        Ok(GroupOutcome {
            moved: txns.iter().map(|t| t.address).collect(),
            members: unit.iter().map(|m| m.address).collect(),
            plan,
        })
    }
}
