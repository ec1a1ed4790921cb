//! IOMMU groups (SPEC 3.4, 3.8): a group's members, whether it can be assigned, and the group
//! moves to VFIO drivers and back.

use std::ffi::{c_char, c_int, c_uint};

use super::boundary::{
    self, address_arg, check_flags, int_out_init, malloc_string, null, out_init, with_ctx,
    with_plan_out,
};
use super::{log_plan, move_options, pcibind_ctx, BIND_GROUP_FLAGS, REATTACH_GROUP_FLAGS};
use crate::Context;

/// Lists the members of the IOMMU group of the device at `address` (the device included), in
/// address order, as `DDDD:BB:DD.F` strings.
///
/// On success `*addresses_out` receives a NULL-terminated array that the caller owns and
/// releases with `pcibind_strv_free()`. On failure it is NULL.
/// Returns 0, or PCIBIND_ERR_INVALID_ARG, PCIBIND_ERR_INVALID_ADDRESS, PCIBIND_ERR_NO_DEVICE,
/// PCIBIND_ERR_IO (errno ENOENT: the device has no IOMMU group).
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_iommu_group_members(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    addresses_out: *mut *mut *mut c_char,
) -> c_int {
    let out = out_init(addresses_out);
    with_ctx(ctx, |ctx| {
        let out = out.ok_or_else(|| null("addresses_out"))?;
        let members = ctx.iommu_group(address_arg(address)?)?;
        *out = boundary::malloc_strv(members.iter().map(|m| m.address))?;
        Ok(())
    })
}

/// Tells whether the IOMMU group of the device at `address` can be assigned to a guest: it
/// can when no member is *blocking*, i.e. every member is bound to a VFIO driver, to no
/// driver, to a stub (`pci-stub`, Xen's `pciback`; 0.3) or to `pcieport`. `flags` must be 0.
///
/// On success `*viable_out` is 1 or 0, and, when `reason_out` is not NULL, `*reason_out` is
/// NULL for a viable group, else a message naming each blocking member and its driver, which
/// the caller owns and releases with `pcibind_string_free()`. On failure `*viable_out` is 0
/// and `*reason_out` NULL.
/// Returns 0, or the codes of `pcibind_iommu_group_members()`.
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_iommu_group_viable(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    flags: c_uint,
    viable_out: *mut c_int,
    reason_out: *mut *mut c_char,
) -> c_int {
    let viable = int_out_init(viable_out);
    let reason = out_init(reason_out);
    with_ctx(ctx, |ctx| {
        let viable = viable.ok_or_else(|| null("viable_out"))?;
        check_flags(flags, 0)?;
        let why = ctx.iommu_group_viability(address_arg(address)?)?;
        if let (Some(reason), Some(why)) = (reason, &why) {
            *reason = malloc_string(why)?;
        }
        *viable = why.is_none() as c_int;
        Ok(())
    })
}

/// Moves the whole IOMMU group of the device at `address` to VFIO drivers as one transaction
/// (SPEC 3.8). The unit is the device's IOMMU group, plus every function a member to be moved
/// names through a `consumer:pci:` device link (a GPU's HDMI audio function), plus that
/// function's group, and so on. Bridges (PCI base class 0x06) never move; one bound to a host
/// driver other than `pcieport`, `pci-stub` or `pciback` (an LPC bridge on `lpc_ich`) refuses the unit
/// with PCIBIND_ERR_IN_USE, forced or not. Every other member not on a VFIO driver moves to its
/// best VFIO driver (as `pcibind_bind()` with a NULL name). The safety checks of
/// `pcibind_bind()` run on every member before anything is written (PCIBIND_BIND_FORCE skips
/// them, the ALLOW_* flags one each; PCIBIND_BIND_STRICT_VARIANT applies to every member); every member's lock is held, taken in address order, for the whole transaction; if
/// any member fails to move, the members moved before it are put back in reverse order
/// (PCIBIND_ERR_BIND, or PCIBIND_ERR_RESTORE naming each member's state).
/// With PCIBIND_BIND_DRY_RUN nothing is written or loaded and the plan for every member is
/// logged at LOG_NOTICE, one line per message.
///
/// `moved_out` may be NULL; otherwise on success it receives a NULL-terminated array of the
/// addresses moved (that would move, in a dry run), in the order moved, which the caller owns
/// and releases with `pcibind_strv_free()`.
/// Returns 0, or the codes of `pcibind_bind()`, or PCIBIND_ERR_UNSUPPORTED (the device has no
/// IOMMU group).
/// @since 0.2
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_bind_group(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    flags: c_uint,
    moved_out: *mut *mut *mut c_char,
) -> c_int {
    let out = out_init(moved_out);
    with_ctx(ctx, |ctx| {
        let (options, dry_run) = move_options(flags, BIND_GROUP_FLAGS)?;
        let outcome = ctx.bind_group(address_arg(address)?, options, dry_run)?;
        group_outcome(ctx, outcome, out)
    })
}

/// Gives every VFIO-bound, non-bridge member of the unit of the device at `address` (as
/// `pcibind_bind_group()` works it out) back to the host, each as `pcibind_reattach()` with a
/// NULL name, as one transaction: a failure puts the members already moved back onto their
/// VFIO drivers, in reverse order. `flags`: PCIBIND_BIND_DRY_RUN logs the plan instead;
/// PCIBIND_BIND_FORCE skips the safety checks of `pcibind_reattach()` (before 0.3 it was
/// accepted and changed nothing), the ALLOW_* flags one each (0.3).
///
/// `moved_out` may be NULL; otherwise on success it receives a NULL-terminated array of the
/// addresses given back, in order, which the caller owns and releases with
/// `pcibind_strv_free()`.
/// Returns 0, or the codes of `pcibind_reattach()`, or PCIBIND_ERR_UNSUPPORTED (no IOMMU
/// group).
/// @since 0.2
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_reattach_group(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    flags: c_uint,
    moved_out: *mut *mut *mut c_char,
) -> c_int {
    let out = out_init(moved_out);
    with_ctx(ctx, |ctx| {
        let (options, dry_run) = move_options(flags, REATTACH_GROUP_FLAGS)?;
        let outcome = ctx.reattach_group(address_arg(address)?, options, dry_run)?;
        group_outcome(ctx, outcome, out)
    })
}

/// What `pcibind_bind_group()` with the same arguments would do, without doing any of it: the
/// plan of every member that would move, each member's lines as `pcibind_bind_plan()` gives
/// them (module loads, checks, each sysfs write with its value and path, the check of the
/// result, what a failure would restore), or a line saying nothing would move. Nothing is
/// written or loaded and no lock is taken; the checks of every member run (and fail the call)
/// as the real call's. PCIBIND_BIND_DRY_RUN is implied; `flags` are otherwise those of
/// `pcibind_bind_group()`.
///
/// On success `*plan_out` receives the plan, which the caller owns and releases with
/// `pcibind_string_free()`. On failure it is NULL. Returns 0 or the codes of
/// `pcibind_bind_group()` that can occur before anything is written.
/// @since 0.3
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_bind_group_plan(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    flags: c_uint,
    plan_out: *mut *mut c_char,
) -> c_int {
    group_plan(
        ctx,
        address,
        flags,
        BIND_GROUP_FLAGS,
        plan_out,
        Context::bind_group,
    )
}

/// What `pcibind_reattach_group()` with the same arguments would do, without doing any of it,
/// as `pcibind_bind_group_plan()` says it: the plan of every member that would go back to the
/// host. PCIBIND_BIND_DRY_RUN is implied; `flags` are otherwise those of
/// `pcibind_reattach_group()`.
///
/// On success `*plan_out` receives the plan, which the caller owns and releases with
/// `pcibind_string_free()`. On failure it is NULL. Returns 0 or the codes of
/// `pcibind_reattach_group()` that can occur before anything is written.
/// @since 0.3
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_reattach_group_plan(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    flags: c_uint,
    plan_out: *mut *mut c_char,
) -> c_int {
    group_plan(
        ctx,
        address,
        flags,
        REATTACH_GROUP_FLAGS,
        plan_out,
        Context::reattach_group,
    )
}

/// The plan of a group move (`moves`, as a dry run) into `*plan_out`, a line each.
unsafe fn group_plan(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    flags: c_uint,
    allowed: c_uint,
    plan_out: *mut *mut c_char,
    moves: fn(&Context, &str, crate::BindOptions, bool) -> crate::Result<crate::GroupOutcome>,
) -> c_int {
    with_plan_out(ctx, plan_out, |ctx| {
        let (options, _) = move_options(flags, allowed)?;
        let outcome = moves(ctx, address_arg(address)?, options, true)?;
        Ok(crate::Plan {
            target: None,
            lines: outcome.plan,
        })
    })
}

/// Logs a group dry run's plan and hands the moved addresses to the caller.
fn group_outcome(
    ctx: &Context,
    outcome: crate::GroupOutcome,
    out: Option<&mut *mut *mut c_char>,
) -> crate::Result<()> {
    log_plan(ctx, &outcome.plan);
    if let Some(out) = out {
        *out = boundary::malloc_strv(&outcome.moved)?;
    }
    Ok(())
}
