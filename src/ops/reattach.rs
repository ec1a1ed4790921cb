//! Reattach (SPEC 3.3 `reattach`): the device given back to the host, to the driver the kernel's
//! matching chooses or to a named one, as a transaction.

use crate::ops::bind::{checks_note, Plan, Prepared};
use crate::ops::{bind, recover};
use crate::policy::safety::Destination;
use crate::txn::{self, DeviceTxn, Expect, Load, LoadFor, Loads, Override, Step, Target};
use crate::types::address::PciAddress;
use crate::types::error::{Check, Result};
use crate::types::log::Priority;
use crate::types::name::DriverName;
use crate::types::options::BindOptions;
use crate::Context;

/// [`Context::reattach`].
pub(crate) fn reattach(
    ctx: &Context,
    address: &str,
    name: Option<&str>,
    options: BindOptions,
) -> Result<Option<DriverName>> {
    let address = PciAddress::parse(address)?;
    let name = name.map(DriverName::new).transpose()?;
    recover::on_locked_device(ctx, &address, |locked, _| {
        let start = ctx.state(&address)?;
        let (target, _) =
            bind::run_prepared(ctx, locked, address, start, "reattaching to", |loads| {
                prepare_reattach(ctx, loads, name.as_ref(), options)
            })?;
        match target {
            Some(t) => Ok(Some(t)),
            // The kernel chose; the transaction checked that it chose something, or nothing
            // because no host driver matches.
            None => ctx.sysfs.device_driver(&address),
        }
    })
}

/// [`Context::reattach_plan`].
pub(crate) fn reattach_plan(
    ctx: &Context,
    address: &str,
    name: Option<&str>,
    options: BindOptions,
) -> Result<Plan> {
    let address = PciAddress::parse(address)?;
    let name = name.map(DriverName::new).transpose()?;
    bind::plan_with(ctx, address, |loads| {
        prepare_reattach(ctx, loads, name.as_ref(), options)
    })
}

/// A reattach worked out: the module load of a named target through `loads`, then, on the
/// device as the load left it, what to write; with no name, the host modules are loads
/// among the steps (after the checks: they tell no target).
pub(super) fn prepare_reattach(
    ctx: &Context,
    loads: &mut Loads<'_>,
    name: Option<&DriverName>,
    options: BindOptions,
) -> Result<Prepared> {
    let address = &loads.address().to_owned();
    let mut notes = Vec::new();
    let target = name
        .map(|n| bind::resolve_target(ctx, n, None, loads, &mut notes))
        .transpose()?;
    // Where the load left it (a host module may have probed an unbound device), and where
    // a failure restores it to.
    let now = loads.now()?;
    let start = loads.start().clone();
    let nothing = |target: Option<DriverName>| {
        ctx.log.log(
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
        let on_host_driver = ctx
            .classifier()
            .on_host_driver(address, now.driver.as_ref());
        if on_host_driver && now.driver_override.is_none() {
            return nothing(None);
        }
        let home = on_host_driver
            && now.driver.as_ref().is_some_and(|d| {
                ctx.safety()
                    .claims_by_id_table(address, &Target::Driver(d.clone()), None)
                    == Some(true)
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
                    doing: "clearing driver_override (the device is on its host driver)".to_owned(),
                    start,
                }),
                notes: Vec::new(),
                checkpoint: Vec::new(),
            });
        }
        ctx.safety()
            .check_move(address, &now, Destination::Host, None, &options)?;
        return prepare_reattach_to_host(ctx, address, start, &options);
    };
    // `None` only in a dry run whose target's module is not loaded: the device cannot be on
    // a driver nobody registered yet.
    let driver = target.driver().cloned();
    // A driver that matches the device by its own IDs keeps it after a reprobe without
    // the override; an override-only (VFIO) driver, or one forced onto a device it does
    // not claim, needs the override to stay.
    let host = ctx
        .safety()
        .claims_by_id_table(address, &target, name)
        .unwrap_or_else(|| !ctx.classifier().is_vfio_target(&target));
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
            let passed = ctx.safety().check_move(
                address,
                &now,
                Destination::Driver(&target),
                name,
                &options,
            )?;
            checkpoint.push(checks_note(&options, &passed));
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
    ctx: &Context,
    address: &PciAddress,
    start: txn::DeviceState,
    options: &BindOptions,
) -> Result<Prepared> {
    let modules = ctx.safety().host_modules_for(address)?;
    let mut steps: Vec<Step> = modules
        .iter()
        .flatten()
        .filter(|m| !ctx.sysfs.module_exists(m) && !ctx.modprobe.is_disabled())
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
        ctx.log.log(
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
