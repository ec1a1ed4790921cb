//! Unbind (SPEC 3.3 `unbind`): the device detached and kept on no driver, as a transaction.

use crate::ops::bind::{checks_note_of, Plan, Prepared};
use crate::ops::{bind, recover};
use crate::os::sysfs::NO_DRIVER_OVERRIDE;
use crate::policy::safety::Destination;
use crate::txn::{self, DeviceTxn, Expect, Override, Step};
use crate::types::address::PciAddress;
use crate::types::error::{Check, Result};
use crate::types::log::Priority;
use crate::types::options::BindOptions;
use crate::Context;

/// [`Context::unbind`].
pub(crate) fn unbind(ctx: &Context, address: &str, options: BindOptions) -> Result<()> {
    let address = PciAddress::parse(address)?;
    recover::on_locked_device(ctx, &address, |locked, _| {
        let start = ctx.state(&address)?;
        match prepare_unbind(ctx, &address, start, options)?.txn {
            Some(txn) => ctx.engine().execute(&[txn], locked),
            None => Ok(()),
        }
    })
}

/// [`Context::unbind_plan`].
pub(crate) fn unbind_plan(ctx: &Context, address: &str, options: BindOptions) -> Result<Plan> {
    let address = PciAddress::parse(address)?;
    bind::plan_with(ctx, address, |loads| {
        prepare_unbind(ctx, &address, loads.start().clone(), options)
    })
}

/// An unbind worked out from the device's `start`: nothing for a device unbound with the
/// no-driver override already; else the checks, then override `none`, unbind, check.
fn prepare_unbind(
    ctx: &Context,
    address: &PciAddress,
    start: txn::DeviceState,
    options: BindOptions,
) -> Result<Prepared> {
    if start.driver.is_none() && start.driver_override.as_deref() == Some(NO_DRIVER_OVERRIDE) {
        let nothing = format!("{address} is unbound and kept so; nothing to do");
        ctx.log.log(Priority::Info, format_args!("{nothing}"));
        return Ok(Prepared {
            target: None,
            txn: None,
            notes: vec![nothing],
            checkpoint: Vec::new(),
        });
    }
    ctx.safety()
        .check_move(address, &start, Destination::Unbound, None, &options)?;
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
