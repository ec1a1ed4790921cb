//! SR-IOV virtual functions (SPEC 3.10): listing them and setting their number.

use std::ffi::{c_char, c_int, c_uint};

use super::boundary::{self, address_arg, check_flags, null, out_init, with_ctx, with_plan_out};
use super::{pcibind_bind_flags, pcibind_ctx, FORCE};

/// Lists the SR-IOV virtual functions of the physical function at `pf_address`, in `virtfnN`
/// order (SPEC 3.10); none while no VFs are enabled.
///
/// On success `*vfs_out` receives a NULL-terminated array of addresses that the caller owns and
/// releases with `pcibind_strv_free()`. On failure it is NULL.
/// Returns 0, or PCIBIND_ERR_INVALID_ARG, PCIBIND_ERR_INVALID_ADDRESS, PCIBIND_ERR_NO_DEVICE,
/// PCIBIND_ERR_UNSUPPORTED (the device has no `sriov_totalvfs`: no SR-IOV, or a VF),
/// PCIBIND_ERR_IO.
/// @since 0.2
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_sriov_vfs(
    ctx: *const pcibind_ctx,
    pf_address: *const c_char,
    vfs_out: *mut *mut *mut c_char,
) -> c_int {
    let out = out_init(vfs_out);
    with_ctx(ctx, |ctx| {
        let out = out.ok_or_else(|| null("vfs_out"))?;
        let vfs = ctx.sriov_vfs(address_arg(pf_address)?)?;
        *out = boundary::malloc_strv(&vfs)?;
        Ok(())
    })
}

/// Sets the number of SR-IOV virtual functions of the physical function at `pf_address` to
/// `numvfs` (SPEC 3.10), holding the PF's lock meanwhile, its VFs' locks while they are
/// removed (a bind of one waits, and so does the removal for a VF being bound), and each new
/// VF's while it is parked.
///
/// More than its `sriov_totalvfs` is refused (PCIBIND_ERR_INVALID_ARG) with nothing written;
/// the current count succeeds with nothing written. Any other change first removes the VFs
/// there are (the kernel cannot go from one non-zero count to another): refused with
/// PCIBIND_ERR_IN_USE while one of them is on a VFIO driver, unless PCIBIND_BIND_FORCE is given,
/// in which case the kernel blocks until the VFIO driver lets go of the VF (until the VM using
/// it releases it). Should a later step fail, the old VFs are gone: the error message says the
/// PF now has 0 VFs.
///
/// By default no host driver may grab the new VFs: the PF's `sriov_drivers_autoprobe` is set
/// to 0 while they are created, each new VF gets the `driver_override` `none` that
/// `pcibind_unbind()` leaves (binding it to a VFIO driver replaces it), then the setting is put
/// back. With PCIBIND_SRIOV_AUTOPROBE all that is left alone and host drivers probe the VFs.
/// `flags`: PCIBIND_BIND_FORCE, PCIBIND_SRIOV_AUTOPROBE; other bits are refused.
///
/// `vfs_out` may be NULL; otherwise on success it receives a NULL-terminated array of the PF's
/// VFs (the new ones, or the existing ones when nothing changed), which the caller owns and
/// releases with `pcibind_strv_free()`.
/// Returns 0, or PCIBIND_ERR_INVALID_ARG, PCIBIND_ERR_INVALID_ADDRESS, PCIBIND_ERR_NO_DEVICE,
/// PCIBIND_ERR_UNSUPPORTED (no SR-IOV, or the PF's driver cannot create VFs: the message names
/// it), PCIBIND_ERR_IN_USE, PCIBIND_ERR_BUSY, PCIBIND_ERR_IO.
/// @since 0.2
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_sriov_set_numvfs(
    ctx: *const pcibind_ctx,
    pf_address: *const c_char,
    numvfs: c_uint,
    flags: c_uint,
    vfs_out: *mut *mut *mut c_char,
) -> c_int {
    let out = out_init(vfs_out);
    with_ctx(ctx, |ctx| {
        let options = sriov_options(flags)?;
        let vfs = ctx.sriov_set_numvfs(address_arg(pf_address)?, numvfs, options)?;
        if let Some(out) = out {
            *out = boundary::malloc_strv(&vfs)?;
        }
        Ok(())
    })
}

/// What `pcibind_sriov_set_numvfs()` with the same arguments would do, without doing any of it:
/// one action per line (each write of `sriov_numvfs` and `sriov_drivers_autoprobe`, the
/// `driver_override` of each new VF, with its value and path), then what a failure of each
/// step would restore, or a line saying there is nothing to do. Nothing is written and no lock
/// is taken; the checks run (and fail the call) as the real call's: more VFs than
/// `sriov_totalvfs`, a VF on a VFIO driver or in use on the host unless PCIBIND_BIND_FORCE, a
/// device that is no SR-IOV PF. `flags` are those of `pcibind_sriov_set_numvfs()`.
///
/// On success `*plan_out` receives the plan, which the caller owns and releases with
/// `pcibind_string_free()`. On failure it is NULL. Returns 0 or the codes of
/// `pcibind_sriov_set_numvfs()` that can occur before anything is written.
/// @since 0.3
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_sriov_set_numvfs_plan(
    ctx: *const pcibind_ctx,
    pf_address: *const c_char,
    numvfs: c_uint,
    flags: c_uint,
    plan_out: *mut *mut c_char,
) -> c_int {
    with_plan_out(ctx, plan_out, |ctx| {
        let options = sriov_options(flags)?;
        ctx.sriov_set_numvfs_plan(address_arg(pf_address)?, numvfs, options)
    })
}

/// The options of `pcibind_sriov_set_numvfs()` from its `flags`.
fn sriov_options(flags: c_uint) -> crate::Result<crate::SriovOptions> {
    const AUTOPROBE: c_uint = pcibind_bind_flags::PCIBIND_SRIOV_AUTOPROBE as c_uint;
    check_flags(flags, FORCE | AUTOPROBE)?;
    Ok(crate::SriovOptions {
        force: flags & FORCE != 0,
        autoprobe: flags & AUTOPROBE != 0,
    })
}
