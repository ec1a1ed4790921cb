//! Moving one device (SPEC 3.3): bind, the plans of bind, unbind and reattach, unbind, reattach,
//! and whether a device is on a VFIO driver. `pcibind_bind_start()`, bind reporting the start,
//! is in `manager.rs` with the other calls of SPEC 3.14, where the header has it.

use std::ffi::{c_char, c_int, c_uint};

use super::boundary::{
    address_arg, int_out_init, malloc_string, null, opt_str_arg, out_init, with_ctx, with_plan_out,
};
use super::{log_plan, move_options, pcibind_ctx, BIND_FLAGS, CHECK_FLAGS};

/// Binds the device at `address` to the driver `name` (a PCI driver or module name in either
/// `-`/`_` spelling, resolved as `pcibind_resolve_driver()` does, loading its module when
/// needed), or, with NULL `name`, to the best VFIO driver for it (`pcibind_find_vfio_variant()`,
/// falling back to `vfio-pci` with a warning when the variant's module cannot be loaded, unless
/// PCIBIND_BIND_STRICT_VARIANT).
///
/// A transaction: the device ends on exactly that driver, or it is put back where it started
/// (its driver and its `driver_override`) and the call fails. Steps: resolve the target;
/// with PCIBIND_BIND_REQUIRE_VFIO, refuse a target that is not a VFIO driver; return at once
/// if the device is already bound to it (nothing is written); run the three safety checks,
/// each skipped by its flag (all by PCIBIND_BIND_FORCE): refuse a device in use on the host
/// (PCIBIND_BIND_ALLOW_IN_USE; see `pcibind_in_use()`), an SR-IOV PF with VFs enabled going
/// to a VFIO driver (PCIBIND_BIND_ALLOW_SRIOV), and a target whose module's aliases do not
/// match the device (PCIBIND_BIND_ALLOW_UNCLAIMED); write
/// `driver_override`, unbind from the current driver, write `drivers_probe`, and check that the
/// device is now bound to exactly the target. (An NVMe controller that is one of several live
/// paths to an in-use multipath namespace is not refused; a LOG_WARNING names the namespace.)
/// The override stays set afterwards, so a later reprobe keeps the device where it is.
/// Operations on one device are serialized, in this process and across processes (a lock file
/// per device in the lock directory).
/// With PCIBIND_BIND_DRY_RUN nothing is changed or loaded, but the safety checks run (those
/// not skipped) and the call fails as the real one would; the plan, made from the same
/// step list the real call executes, is logged at LOG_NOTICE, one message per line
/// (`pcibind_bind_plan()` returns it as text). On success `*driver_out` names the target, or
/// is NULL when the target's module is not loaded yet (the plan says which module would be
/// loaded; a driver claim check that the alias tables can answer has run all the same).
///
/// `driver_out` may be NULL; otherwise on success it receives the driver the device is bound
/// to, which the caller owns and releases with `pcibind_string_free()`. On failure it is NULL.
/// Returns 0, or PCIBIND_ERR_INVALID_ARG, PCIBIND_ERR_INVALID_ADDRESS, PCIBIND_ERR_NO_DEVICE,
/// PCIBIND_ERR_NO_DRIVER, PCIBIND_ERR_MODULE_LOAD, PCIBIND_ERR_IN_USE,
/// PCIBIND_ERR_NOT_CLAIMED (nothing was written for any of these), PCIBIND_ERR_BIND (the kernel
/// did not bind; the device was restored, the message says what failed and
/// `pcibind_last_error_errno()` the kernel's answer), PCIBIND_ERR_RESTORE (binding and
/// restoring failed; the message says where the device is now), PCIBIND_ERR_BUSY,
/// PCIBIND_ERR_IO.
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_bind(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    name: *const c_char,
    flags: c_uint,
    driver_out: *mut *mut c_char,
) -> c_int {
    let out = out_init(driver_out);
    with_ctx(ctx, |ctx| {
        let (options, dry_run) = move_options(flags, BIND_FLAGS)?;
        let address = address_arg(address)?;
        let name = opt_str_arg(name, "name")?;
        let driver = if dry_run {
            let plan = ctx.bind_plan(address, name, options)?;
            log_plan(ctx, &plan.lines);
            plan.target
        } else {
            Some(ctx.bind(address, name, options)?)
        };
        if let (Some(out), Some(driver)) = (out, driver) {
            *out = malloc_string(driver.as_str())?;
        }
        Ok(())
    })
}

/// What `pcibind_bind()` with the same arguments would do, without doing any of it: one
/// action per line (modprobe runs, each sysfs write with its value and path, the check, and
/// the state a failure would restore). Nothing is written or loaded; the safety checks run
/// (and fail the call) unless skipped by their flags. PCIBIND_BIND_DRY_RUN is implied.
///
/// On success `*plan_out` receives the plan, which the caller owns and releases with
/// `pcibind_string_free()`. On failure it is NULL. Returns 0 or the codes of `pcibind_bind()`
/// that can occur before anything is written.
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_bind_plan(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    name: *const c_char,
    flags: c_uint,
    plan_out: *mut *mut c_char,
) -> c_int {
    with_plan_out(ctx, plan_out, |ctx| {
        let (options, _) = move_options(flags, BIND_FLAGS)?;
        ctx.bind_plan(address_arg(address)?, opt_str_arg(name, "name")?, options)
    })
}

/// What `pcibind_unbind()` with the same arguments would do, without doing any of it: one
/// action per line (each sysfs write with its value and path, the check, and the state a
/// failure would restore), or a line saying there is nothing to do. Nothing is written; the
/// safety checks run (and fail the call) unless skipped by `flags`, which are those of
/// `pcibind_unbind()`.
///
/// On success `*plan_out` receives the plan, which the caller owns and releases with
/// `pcibind_string_free()`. On failure it is NULL. Returns 0 or the codes of
/// `pcibind_unbind()` that can occur before anything is written.
/// @since 0.3
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_unbind_plan(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    flags: c_uint,
    plan_out: *mut *mut c_char,
) -> c_int {
    with_plan_out(ctx, plan_out, |ctx| {
        let (options, _) = move_options(flags, CHECK_FLAGS)?;
        ctx.unbind_plan(address_arg(address)?, options)
    })
}

/// What `pcibind_reattach()` with the same arguments would do, without doing any of it, as
/// `pcibind_unbind_plan()` says it: nothing is written and no module is loaded (the plan names
/// the host modules that would be); the checks that need no module load run. `flags` are those
/// of `pcibind_reattach()`.
///
/// On success `*plan_out` receives the plan, which the caller owns and releases with
/// `pcibind_string_free()`. On failure it is NULL. Returns 0 or the codes of
/// `pcibind_reattach()` that can occur before anything is written.
/// @since 0.3
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_reattach_plan(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    name: *const c_char,
    flags: c_uint,
    plan_out: *mut *mut c_char,
) -> c_int {
    with_plan_out(ctx, plan_out, |ctx| {
        let (options, _) = move_options(flags, CHECK_FLAGS)?;
        ctx.reattach_plan(address_arg(address)?, opt_str_arg(name, "name")?, options)
    })
}

/// Detaches the device at `address` from its driver and leaves it unbound. Its
/// `driver_override` is first set to `"none"`, a name no driver has, so that no later probe
/// (a `drivers_probe`, a module load) grabs the device; `pcibind_reattach()` clears it. An
/// unbound device gets the override too. On failure the device is put back as it was.
///
/// Taking a device off its driver runs the safety checks of `pcibind_bind()` that apply
/// (since 0.3): a device in use on the host (the host's NIC, a disk with a mounted file
/// system, ...), a device on a VFIO driver that a process holds (a running VM) and an SR-IOV
/// PF one of whose VFs is on a VFIO driver are refused with PCIBIND_ERR_IN_USE, nothing
/// written. `flags`: PCIBIND_BIND_FORCE skips them (0.3), with the bounded wait for a VMM that
/// `pcibind_reattach()` describes; PCIBIND_BIND_ALLOW_IN_USE and PCIBIND_BIND_ALLOW_SRIOV skip
/// one each, PCIBIND_BIND_ALLOW_UNCLAIMED is accepted and changes nothing here (0.3); other
/// bits are refused.
/// Returns 0, or PCIBIND_ERR_INVALID_ARG, PCIBIND_ERR_INVALID_ADDRESS, PCIBIND_ERR_NO_DEVICE
/// (also when the device disappears during the call), PCIBIND_ERR_IN_USE, PCIBIND_ERR_BIND
/// (restored), PCIBIND_ERR_RESTORE, PCIBIND_ERR_BUSY, PCIBIND_ERR_IO.
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_unbind(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    flags: c_uint,
) -> c_int {
    with_ctx(ctx, |ctx| {
        let (options, _) = move_options(flags, CHECK_FLAGS)?;
        ctx.unbind(address_arg(address)?, options)
    })
}

/// Gives the device at `address` back to the host, as a transaction like `pcibind_bind()`.
///
/// Nothing is written when there is nothing to do: the device is bound, no `driver_override`
/// is set, its driver is not a VFIO or stub driver, and `name` is NULL or resolves to that
/// driver (so cleanup paths may call this freely: a host NIC does not flap). The same holds
/// for a `name` naming the driver the device is on with the override it needs already set
/// (`"vfio-pci"` for a device on vfio-pci).
///
/// With NULL `name`: loads the host modules the alias tables name for the device (when not
/// loaded yet), clears the override, unbinds, writes `drivers_probe` and checks that a driver
/// took the device; success with no driver only when no host driver matches the device. With
/// a `name` (resolved as `pcibind_resolve_driver()` does): override := that driver, unbind,
/// probe, check, then the override is cleared when the driver matches the device by its own
/// ID table (a host driver) and kept otherwise (an override-only VFIO driver, or a driver
/// that does not claim the device). On any failure the device is put back where it started
/// (on vfio-pci, with its override) and the call fails with PCIBIND_ERR_BIND, or the message
/// says where it is (PCIBIND_ERR_RESTORE).
///
/// A device on a host driver whose override is set, with NULL `name`, only has its override
/// cleared: no unbind, no probe (since 0.3). With NULL `name` and no readable alias tables, a
/// device that no driver takes is a failure (restored, PCIBIND_ERR_BIND), not a success with
/// no driver (0.3).
///
/// The checks of `pcibind_bind()` (since 0.3): a `name` that is not the driver the device is
/// on must claim the device (PCIBIND_ERR_NOT_CLAIMED), and a device taken off a host driver
/// must not be in use on the host (PCIBIND_ERR_IN_USE): `pcibind_reattach(host NIC,
/// "vfio-pci")` refuses what `pcibind_bind()` refuses. A device on a VFIO driver whose group
/// node or cdev a process holds open (a running VM) is refused too, naming the process.
/// `flags`: PCIBIND_BIND_FORCE skips the checks (0.3), PCIBIND_BIND_ALLOW_IN_USE,
/// PCIBIND_BIND_ALLOW_UNCLAIMED and PCIBIND_BIND_ALLOW_SRIOV one each (0.3); other bits are
/// refused. Forced (or with PCIBIND_BIND_ALLOW_IN_USE) off a VFIO driver that a VMM holds, the kernel's unbind waits until the VMM lets go: the call
/// waits at most the lock timeout (10 s when that is 0), then fails with PCIBIND_ERR_IN_USE
/// saying the unbind is pending; the device stays locked until the kernel is done, and the
/// next call then puts it back where it started.
///
/// `driver_out` may be NULL; otherwise on success it receives the driver the device is bound
/// to, or NULL when it was left unbound; the caller owns a non-NULL result and releases it with
/// `pcibind_string_free()`.
/// Returns 0, or the codes of `pcibind_bind()`.
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_reattach(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    name: *const c_char,
    flags: c_uint,
    driver_out: *mut *mut c_char,
) -> c_int {
    let out = out_init(driver_out);
    with_ctx(ctx, |ctx| {
        let (options, _) = move_options(flags, CHECK_FLAGS)?;
        let driver = ctx.reattach(address_arg(address)?, opt_str_arg(name, "name")?, options)?;
        if let (Some(out), Some(driver)) = (out, driver) {
            *out = malloc_string(driver.as_str())?;
        }
        Ok(())
    })
}

/// Sets `*result_out` to 1 when the device at `address` is bound to a VFIO driver (it has
/// `vfio-dev/`, or its driver is `vfio-pci` or a VFIO variant driver such as
/// `mlx5_vfio_pci`), else 0. Use this instead of comparing the driver name with "vfio-pci".
/// The variants the kernel ships are known without the module tables (a service under
/// `ProtectKernelModules=yes` cannot read them); others are known by their `vfio_pci:` aliases
/// or by the device's `vfio-dev/`.
/// Returns 0, or PCIBIND_ERR_INVALID_ARG, PCIBIND_ERR_INVALID_ADDRESS, PCIBIND_ERR_NO_DEVICE,
/// PCIBIND_ERR_IO. On failure `*result_out` is 0.
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_is_vfio_bound(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    result_out: *mut c_int,
) -> c_int {
    let out = int_out_init(result_out);
    with_ctx(ctx, |ctx| {
        let out = out.ok_or_else(|| null("result_out"))?;
        *out = ctx.is_vfio_bound(address_arg(address)?)? as c_int;
        Ok(())
    })
}
