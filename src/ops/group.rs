//! The group transactions (SPEC 3.8): every member of a device's unit moved to VFIO drivers,
//! or given back to the host, as one transaction.

use crate::ops::bind::Prepared;
use crate::ops::{bind, reattach, recover};
use crate::policy::unit::{self, UnitMember};
use crate::txn::{Loads, Locked};
use crate::types::address::PciAddress;
use crate::types::error::{Check, Error, Result};
use crate::types::options::BindOptions;
use crate::Context;

/// Whether a group transaction locks its unit, runs its module loads and writes (a real call),
/// or only says what it would do (a dry run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Real,
    DryRun,
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

/// [`Context::bind_group`].
pub(crate) fn bind_group(
    ctx: &Context,
    address: &str,
    options: BindOptions,
    dry_run: bool,
) -> Result<GroupOutcome> {
    let address = PciAddress::parse(address)?;
    ctx.sysfs.require_device(&address)?;
    let _deferral = ctx.log.defer();
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
    group_transaction(
        ctx,
        &address,
        mode,
        "binding to",
        movers,
        no_host_bridge,
        |loads| bind::prepare_bind(ctx, loads, None, options),
    )
}

/// [`Context::reattach_group`].
pub(crate) fn reattach_group(
    ctx: &Context,
    address: &str,
    options: BindOptions,
    dry_run: bool,
) -> Result<GroupOutcome> {
    let address = PciAddress::parse(address)?;
    ctx.sysfs.require_device(&address)?;
    let _deferral = ctx.log.defer();
    let mode = if dry_run { Mode::DryRun } else { Mode::Real };
    let movers = |m: &UnitMember| !m.bridge && m.vfio;
    group_transaction(
        ctx,
        &address,
        mode,
        "reattaching to",
        movers,
        |_| Ok(()),
        |loads| reattach::prepare_reattach(ctx, loads, None, options),
    )
}

/// The unit of `address` with its locks taken (a real call). The unit is worked out again
/// once the locks are held, since taking them rolls back interrupted transactions, which
/// may move members (one left on vfio-pci by a killed group bind is a mover again); should
/// that bring in a member not locked yet, the locks are let go and taken again.
fn locked_unit<'a>(
    ctx: &'a Context,
    address: &PciAddress,
    mode: Mode,
    movers: &impl Fn(&UnitMember) -> bool,
) -> Result<(Vec<UnitMember>, Locked<'a>)> {
    let deadline = recover::deadline(ctx);
    let mut unit = unit::unit(&ctx.classifier(), address, movers)?;
    if mode == Mode::DryRun {
        return Ok((unit, Locked::none()));
    }
    for _ in 0..3 {
        let addresses: Vec<PciAddress> = unit.iter().map(|m| m.address).collect();
        let locked = ctx.engine().lock_devices(&addresses, &deadline)?;
        let now = unit::unit(&ctx.classifier(), address, movers)?;
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
    ctx: &Context,
    address: &PciAddress,
    mode: Mode,
    verb: &'static str,
    movers: impl Fn(&UnitMember) -> bool,
    check: impl Fn(&[UnitMember]) -> Result<()>,
    prepare: impl Fn(&mut Loads<'_>) -> Result<Prepared>,
) -> Result<GroupOutcome> {
    let (unit, locked) = locked_unit(ctx, address, mode, &movers)?;
    check(&unit)?;
    let mut prepared: Vec<(Loads<'_>, Prepared)> = Vec::new();
    let abandon = |prepared: Vec<(Loads<'_>, Prepared)>, mut e: Error| {
        for (loads, _) in prepared.into_iter().rev() {
            e = loads.abandon(e);
        }
        e
    };
    for member in unit.iter().filter(|m| movers(m)).map(|m| m.address) {
        let start = match ctx.state(&member) {
            Ok(start) => start,
            Err(e) => return Err(abandon(prepared, e)),
        };
        let mut loads = match mode {
            Mode::Real => Loads::real(ctx.engine(), &locked, member, start, verb),
            Mode::DryRun => Loads::dry_run(ctx.engine(), member, start),
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
            ctx.engine().render(txn, checkpoint, &mut lines);
            plan.extend(lines.iter().map(|l| format!("  {l}")));
        }
        plan.push(
            "on failure of any member: the members moved before it are restored in reverse \
             order"
                .to_owned(),
        );
    } else {
        ctx.engine().execute_from(&txns, &done, &locked)?;
    }
    Ok(GroupOutcome {
        moved: txns.iter().map(|t| t.address).collect(),
        members: unit.iter().map(|m| m.address).collect(),
        plan,
    })
}
