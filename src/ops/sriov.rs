//! SR-IOV virtual functions (SPEC 3.10): listing a PF's VFs and changing their count so that no
//! host driver grabs the new ones.

use crate::ops::bind::Plan;
use crate::ops::recover;
use crate::os::lock::Deadline;
use crate::policy::safety::Destination;
use crate::txn::sriov::{SriovState, SriovTxn};
use crate::txn::{self, Locked};
use crate::types::address::PciAddress;
use crate::types::error::{Check, Error, Result};
use crate::types::log::Priority;
use crate::types::options::BindOptions;
use crate::Context;

/// Options of [`Context::sriov_set_numvfs`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SriovOptions {
    /// Remove VFs even when one is on a VFIO driver (the kernel then blocks until the VFIO
    /// driver lets go of it, i.e. until the VM using it releases it).
    pub force: bool,
    /// Leave `sriov_drivers_autoprobe` alone and give the new VFs no `driver_override`: host
    /// drivers probe them as the kernel decides.
    pub autoprobe: bool,
}

/// [`Context::sriov_vfs`].
pub(crate) fn sriov_vfs(ctx: &Context, pf: &str) -> Result<Vec<PciAddress>> {
    let pf = PciAddress::parse(pf)?;
    ctx.sysfs.require_device(&pf)?;
    require_sriov(ctx, &pf)?;
    ctx.sysfs.sriov_virtfns(&pf)
}

/// `sriov_totalvfs`, or `Unsupported` when the device has none.
fn require_sriov(ctx: &Context, pf: &PciAddress) -> Result<u32> {
    ctx.sysfs
        .sriov_totalvfs(pf)?
        .ok_or_else(|| Error::Unsupported {
            address: *pf,
            detail: "not an SR-IOV physical function (it has no sriov_totalvfs)".into(),
        })
}

/// [`Context::sriov_set_numvfs`].
pub(crate) fn sriov_set_numvfs(
    ctx: &Context,
    pf: &str,
    numvfs: u32,
    options: SriovOptions,
) -> Result<Vec<PciAddress>> {
    let pf = PciAddress::parse(pf)?;
    recover::on_locked_device(ctx, &pf, |locked, deadline| {
        let Some((txn, vf_locks)) = prepare_sriov(ctx, &pf, numvfs, options, Some(deadline))?
        else {
            ctx.log.log(
                Priority::Info,
                format_args!("{pf} already has {numvfs} VFs; nothing to do"),
            );
            return ctx.sysfs.sriov_virtfns(&pf);
        };
        ctx.engine()
            .execute_sriov(&txn, locked, vf_locks, deadline)?;
        if numvfs == 0 {
            return Ok(Vec::new());
        }
        ctx.sysfs.sriov_virtfns(&pf)
    })
}

/// [`Context::sriov_set_numvfs_plan`].
pub(crate) fn sriov_set_numvfs_plan(
    ctx: &Context,
    pf: &str,
    numvfs: u32,
    options: SriovOptions,
) -> Result<Plan> {
    let pf = PciAddress::parse(pf)?;
    ctx.sysfs.require_device(&pf)?;
    let mut lines: Vec<String> = recover::interrupted_note(ctx, &pf).into_iter().collect();
    match prepare_sriov(ctx, &pf, numvfs, options, None)? {
        None => lines.push(format!("{pf} already has {numvfs} VFs; nothing to do")),
        Some((txn, _)) => {
            if txn.start.numvfs > 0 {
                lines.push(if options.force {
                    "safety checks skipped (forced)".to_owned()
                } else {
                    "safety checks passed: no VF to remove is on a VFIO driver or in use \
                     on the host"
                        .to_owned()
                });
            }
            ctx.engine().render_sriov(&txn, &mut lines);
        }
    }
    Ok(Plan {
        target: None,
        lines,
    })
}

/// SPEC 3.10's checks and the steps to run: the one description of a VF count change that
/// the real call executes and the dry run renders; `None` when the PF has `numvfs` VFs
/// already. With a `deadline` (a real call, under the PF's lock) the VFs are locked before
/// they are checked, so that no bind of one slips in between the check and their removal,
/// and their locks are returned with the transaction.
fn prepare_sriov<'a>(
    ctx: &'a Context,
    pf: &PciAddress,
    numvfs: u32,
    options: SriovOptions,
    deadline: Option<&Deadline>,
) -> Result<Option<(SriovTxn, Locked<'a>)>> {
    let total = require_sriov(ctx, pf)?;
    if numvfs > total {
        return Err(Error::InvalidArg(format!(
            "{pf} supports at most {total} VFs (sriov_totalvfs), not {numvfs}"
        )));
    }
    let current = ctx.sysfs.sriov_numvfs(pf)?;
    if numvfs == current {
        return Ok(None);
    }
    let start = SriovState {
        numvfs: current,
        autoprobe: ctx.sysfs.sriov_drivers_autoprobe(pf)?,
    };
    let mut vf_locks = Locked::none();
    let mut wait_for_vmm = false;
    if current > 0 {
        let vfs = ctx.sysfs.sriov_virtfns(pf)?;
        if let Some(deadline) = deadline {
            // After the PF's lock, whose address precedes theirs.
            vf_locks = ctx.engine().lock_devices(&vfs, deadline)?;
        }
        check_vfs_removable(ctx, &vfs, pf, options.force)?;
        wait_for_vmm = options.force
            && vfs
                .iter()
                .any(|vf| ctx.classifier().vfio_driver_of(vf).ok().flatten().is_some());
    }
    Ok(Some((
        SriovTxn {
            pf: *pf,
            start,
            steps: txn::sriov::change_numvfs(start, numvfs, !options.autoprobe, wait_for_vmm),
            doing: format!("changing the VF count from {current} to {numvfs}"),
        },
        vf_locks,
    )))
}

/// Removing the PF's VFs is refused while one is on a VFIO driver, unless forced.
/// VFs on host drivers pass the checks of every move off a host driver (a VF's interface
/// may carry the host's traffic).
fn check_vfs_removable(
    ctx: &Context,
    vfs: &[PciAddress],
    pf: &PciAddress,
    force: bool,
) -> Result<()> {
    for vf in vfs {
        let Some(driver) = ctx.classifier().vfio_driver_of(vf)? else {
            let start = ctx.state(vf)?;
            let options = BindOptions {
                force,
                ..BindOptions::default()
            };
            ctx.safety()
                .check_move(vf, &start, Destination::Unbound, None, &options)
                .map_err(|e| match e {
                    Error::InUse {
                        address,
                        reason,
                        check,
                    } => Error::InUse {
                        address: *pf,
                        reason: format!(
                            "removing its VFs would take VF {address} from the host: {reason}"
                        ),
                        check,
                    },
                    e => e,
                })?;
            continue;
        };
        if !force {
            return Err(Error::InUse {
                check: Check::InUse,
                address: *pf,
                reason: format!(
                    "its VF {vf} is on {driver}, probably assigned to a VM; removing the \
                     VFs would take it away"
                ),
            });
        }
        ctx.log.log(
            Priority::Warning,
            format_args!(
                "{pf}: removing VF {vf} although it is on {driver} (forced); the kernel \
                 waits until its user lets go of it"
            ),
        );
    }
    Ok(())
}
