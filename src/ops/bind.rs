//! Bind (SPEC 3.3), and what every move shares: the worked-out operation ([`Prepared`]), its
//! two phases in a real call (`run_prepared`) and its plan in a dry run (`plan_with`). Each
//! operation works out its transaction as a step list (`txn`) from the device's recorded
//! state, after the safety checks (`policy/safety.rs`); a real call executes that list, a dry
//! run renders the same list as its plan. Nothing here writes to sysfs itself. Unbind,
//! reattach and the group moves are in the files beside this one.

use std::fmt;

use crate::ops::{query, recover};
use crate::policy::resolve::{self, Resolved};
use crate::policy::safety::{Destination, Passed};
use crate::tables::{ChoiceBasis, VfioChoice, VFIO_PCI_MODULE, VFIO_PREFIX};
use crate::txn::{self, DeviceTxn, Fallback, Load, LoadFor, Loads, Locked, Override, Step, Target};
use crate::types::address::PciAddress;
use crate::types::error::{Check, Error, Result};
use crate::types::log::Priority;
use crate::types::modalias::Modalias;
use crate::types::name::{DriverName, ModuleName};
pub use crate::types::options::BindOptions;
use crate::Context;

/// What [`Context::bind`] (or another operation's `_plan` sibling's call) would do, found
/// without changing or loading anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The driver the device would end on; `None` when only loading its module would tell, and
    /// in the plan of a VF count change.
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
pub(super) fn checks_note(options: &BindOptions, passed: &Passed) -> String {
    let claims = match &passed.claim_unknown {
        None => "the driver claims the device".to_owned(),
        Some(why) => format!("whether the driver claims the device is not known ({why}): allowed"),
    };
    checks_note_of(
        options,
        &[
            (Check::InUse, "not in use on the host"),
            (Check::Sriov, "no SR-IOV VFs in the way"),
            (Check::Claims, &claims),
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
pub(super) fn checks_note_of(options: &BindOptions, checks: &[(Check, &str)]) -> String {
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
pub(super) struct Prepared {
    pub target: Option<DriverName>,
    pub txn: Option<DeviceTxn>,
    pub notes: Vec<String>,
    pub checkpoint: Vec<String>,
}

fn vfio_pci_name() -> DriverName {
    DriverName::new(VFIO_PCI_MODULE).expect("a valid name")
}

/// [`Context::bind`].
pub(crate) fn bind(
    ctx: &Context,
    address: &str,
    name: Option<&str>,
    options: BindOptions,
) -> Result<DriverName> {
    bind_start(ctx, address, name, options).map(|o| o.driver)
}

/// [`Context::bind_start`].
pub(crate) fn bind_start(
    ctx: &Context,
    address: &str,
    name: Option<&str>,
    options: BindOptions,
) -> Result<BindOutcome> {
    let address = PciAddress::parse(address)?;
    let name = name.map(DriverName::new).transpose()?;
    recover::on_locked_device(ctx, &address, |locked, _| {
        // Before the target is resolved: loading its module may already probe the device.
        let start = ctx.state(&address)?;
        let (target, executed) =
            run_prepared(ctx, locked, address, start.clone(), "binding to", |loads| {
                prepare_bind(ctx, loads, name.as_ref(), options)
            })?;
        let driver =
            target.ok_or_else(|| Error::Internal("a bind without a resolved target".into()))?;
        let moved = if executed {
            warn_if_group_not_viable(ctx, &address, &driver);
            true
        } else {
            ctx.state(&address)? != start
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
fn warn_if_group_not_viable(ctx: &Context, address: &PciAddress, target: &DriverName) {
    if !ctx.sysfs.has_vfio_dev(address) && !ctx.classifier().is_vfio_driver(target) {
        return;
    }
    if let Ok(Some(why)) = query::iommu_group_viability(ctx, &address.to_string()) {
        ctx.log.log(
            Priority::Warning,
            format_args!(
                "{address} is on {target}, but its IOMMU group cannot be assigned yet: {why} \
                 (a group bind moves them all)"
            ),
        );
    }
}

/// [`Context::bind_plan`].
pub(crate) fn bind_plan(
    ctx: &Context,
    address: &str,
    name: Option<&str>,
    options: BindOptions,
) -> Result<Plan> {
    let address = PciAddress::parse(address)?;
    let name = name.map(DriverName::new).transpose()?;
    plan_with(ctx, address, |loads| {
        prepare_bind(ctx, loads, name.as_ref(), options)
    })
}

/// A real call's transaction on one locked device, in its two phases: `prepare` works the
/// operation out from `start` (the module loads it needs, each run as a step of the
/// transaction, then the checkpoint: the target, the checks, the writes to make), then the
/// executor runs the writes. A refusal at the checkpoint puts back a device the loads
/// moved. Returns the target and whether the executor ran a transaction.
pub(super) fn run_prepared(
    ctx: &Context,
    locked: &Locked<'_>,
    address: PciAddress,
    start: txn::DeviceState,
    verb: &'static str,
    prepare: impl FnOnce(&mut Loads<'_>) -> Result<Prepared>,
) -> Result<(Option<DriverName>, bool)> {
    let mut loads = Loads::real(ctx.engine(), locked, address, start, verb);
    let prepared = match prepare(&mut loads) {
        Ok(prepared) => prepared,
        Err(e) => return Err(loads.abandon(e)),
    };
    match loads.into_txn(prepared.txn)? {
        Some((txn, done)) => {
            ctx.engine()
                .execute_from(std::slice::from_ref(&txn), &[done], locked)?;
            Ok((prepared.target, true))
        }
        None => Ok((prepared.target, false)),
    }
}

/// A dry run on the device at `address`: `prepare` works the operation out as the real
/// call does, with its module loads listed rather than run, and the plan renders its steps.
pub(super) fn plan_with(
    ctx: &Context,
    address: PciAddress,
    prepare: impl FnOnce(&mut Loads<'_>) -> Result<Prepared>,
) -> Result<Plan> {
    ctx.sysfs.require_device(&address)?;
    let mut loads = Loads::dry_run(ctx.engine(), address, ctx.state(&address)?);
    let mut prepared = prepare(&mut loads)?;
    prepared.txn = loads.into_txn(prepared.txn.take())?.map(|(txn, _)| txn);
    Ok(plan_of(ctx, &address, prepared))
}

/// A worked-out operation as a plan: a note on an interrupted transaction the real call
/// would roll back first, the notes, then the rendered steps with the checkpoint's lines
/// after the module loads.
fn plan_of(ctx: &Context, address: &PciAddress, prepared: Prepared) -> Plan {
    let mut lines: Vec<String> = recover::interrupted_note(ctx, address)
        .into_iter()
        .collect();
    lines.extend(prepared.notes);
    match &prepared.txn {
        Some(txn) => ctx.engine().render(txn, &prepared.checkpoint, &mut lines),
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
pub(super) fn prepare_bind(
    ctx: &Context,
    loads: &mut Loads<'_>,
    name: Option<&DriverName>,
    options: BindOptions,
) -> Result<Prepared> {
    let address = &loads.address().to_owned();
    let mut notes = Vec::new();
    let target = match name {
        Some(name) => resolve_target(ctx, name, None, loads, &mut notes)?,
        None => {
            let modalias = ctx.sysfs.modalias(address)?;
            let choice = ctx.vfio_choice_for(address, &modalias);
            if loads.is_dry_run() {
                notes.push(choice_note(address, &modalias, &choice));
            }
            let module = choice.module;
            let fallback = if options.strict_variant {
                Fallback::Strict
            } else {
                Fallback::VfioPci
            };
            resolve_target(
                ctx,
                &DriverName::from(&module),
                Some(fallback),
                loads,
                &mut notes,
            )?
        }
    };
    if options.require_vfio && !ctx.classifier().is_vfio_target(&target) {
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
            return Ok(already_bound(ctx, address, t, start, &now, notes));
        }
    }
    let passed =
        ctx.safety()
            .check_move(address, &now, Destination::Driver(&target), name, &options)?;
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
        checkpoint: vec![checks_note(&options, &passed)],
    })
}

/// A device already on its target (SPEC 3.3 step 3): no unbind and no probe. On an
/// override-only (VFIO) driver whose name is not in `driver_override` yet (bound through
/// `new_id`, or so left by someone else), the override is written, so that a reprobe keeps
/// the device there; otherwise nothing is written.
fn already_bound(
    ctx: &Context,
    address: &PciAddress,
    driver: &DriverName,
    start: txn::DeviceState,
    now: &txn::DeviceState,
    notes: Vec<String>,
) -> Prepared {
    let keeps = now.driver_override.as_deref() == Some(driver.as_str());
    if keeps || !ctx.classifier().is_vfio_driver(driver) {
        let nothing = format!("{address} is already bound to {driver}; nothing to do");
        ctx.log.log(Priority::Info, format_args!("{nothing}"));
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
pub(super) fn resolve_target(
    ctx: &Context,
    name: &DriverName,
    variant: Option<Fallback>,
    loads: &mut Loads<'_>,
    notes: &mut Vec<String>,
) -> Result<Target> {
    let module = ModuleName::from(name);
    let resolved =
        match resolve::before_load(&ctx.sysfs, &ctx.log, name, !ctx.modprobe.is_disabled()) {
            Ok(Resolved::Driver(driver)) => Ok(driver),
            Ok(Resolved::NeedsLoad(module)) => {
                let load = Load {
                    module: module.clone(),
                    purpose: LoadFor::Target(variant),
                };
                match loads.load(load)? {
                    Some(loaded) => resolve::after_load(&ctx.sysfs, &ctx.log, name, Some(loaded)),
                    // A dry run: what is there without the load (a built-in, a load in flight
                    // that ended), else the driver the module registers once loaded.
                    None => match resolve::after_load(&ctx.sysfs, &ctx.log, name, None) {
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
    ctx.log.log(
        Priority::Warning,
        format_args!("VFIO variant '{module}' is unavailable ({e}); falling back to vfio-pci"),
    );
    notes.push(format!("{module} is unavailable: vfio-pci instead"));
    resolve_target(ctx, &vfio_pci_name(), None, loads, notes)
}
