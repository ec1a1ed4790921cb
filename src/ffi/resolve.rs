//! Driver names (SPEC 3.1, 3.2): resolving a name to a registered PCI driver, the driver a
//! device is on, and the best VFIO driver for a device.

use std::ffi::{c_char, c_int, c_uint};

use super::boundary::{address_arg, check_flags, malloc_string, null, out_init, str_arg, with_ctx};
use super::pcibind_ctx;

/// Resolves `name`, a PCI driver name or a kernel module name in either `-`/`_` spelling
/// (`vfio_pci`, `vfio-pci`, `qat_4xxx`, `mlx5-vfio-pci`), to the exact name of a PCI driver
/// registered in `<root>/bus/pci/drivers/` now, loading the module when needed. A module whose
/// load is in flight (its `/sys/module` directory exists, no PCI driver yet, `initstate` not
/// `live`: another caller is loading it) counts as not loaded: modprobe runs, which the kernel
/// makes wait for that load, and the call waits for the load to end (up to 60 s) even with
/// module loading disabled. `flags` must be 0.
///
/// On success `*driver_out` receives the driver name; the caller owns it and releases it with
/// `pcibind_string_free()` (or `free()`). On failure `*driver_out` is NULL.
/// Returns 0, or PCIBIND_ERR_INVALID_ARG (NULL argument, bad flags, a name outside
/// `[A-Za-z0-9_.+-]{1,64}` or starting with `-` or `.`; nothing is touched then),
/// PCIBIND_ERR_NO_DRIVER (no such driver: also when modprobe reports that no module has that
/// name, and for `none`, the `driver_override` value that keeps a device on no driver, which
/// is never passed to modprobe), PCIBIND_ERR_MODULE_LOAD (modprobe could not be run or failed
/// otherwise: blacklisted, refused by the kernel), PCIBIND_ERR_IO.
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_resolve_driver(
    ctx: *const pcibind_ctx,
    name: *const c_char,
    flags: c_uint,
    driver_out: *mut *mut c_char,
) -> c_int {
    let out = out_init(driver_out);
    with_ctx(ctx, |ctx| {
        let out = out.ok_or_else(|| null("driver_out"))?;
        check_flags(flags, 0)?;
        let driver = ctx.resolve_driver(str_arg(name, "name")?)?;
        *out = malloc_string(driver.as_str())?;
        Ok(())
    })
}

/// Reads which driver the device at `address` (`DDDD:BB:DD.F` or `BB:DD.F`) is bound to.
///
/// On success `*driver_out` receives the driver name, or NULL when the device is unbound; the
/// caller owns a non-NULL result and releases it with `pcibind_string_free()` (or `free()`).
/// Returns 0, or PCIBIND_ERR_INVALID_ARG, PCIBIND_ERR_INVALID_ADDRESS, PCIBIND_ERR_NO_DEVICE,
/// PCIBIND_ERR_IO.
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_current_driver(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    driver_out: *mut *mut c_char,
) -> c_int {
    let out = out_init(driver_out);
    with_ctx(ctx, |ctx| {
        let out = out.ok_or_else(|| null("driver_out"))?;
        if let Some(driver) = ctx.current_driver(address_arg(address)?)? {
            *out = malloc_string(driver.as_str())?;
        }
        Ok(())
    })
}

/// Finds the module of the best VFIO driver for the device at `address`: the most specific
/// VFIO variant driver whose `vfio_pci:` alias (in `modules.alias` or, for built-ins,
/// `modules.builtin.modinfo`) matches the device's `modalias` (`mlx5_vfio_pci` for a
/// ConnectX VF), else `"vfio_pci"`. Ranking: fewest wildcard fields, then fewest wildcards, then
/// file order; a tie between modules is logged as a warning. The tables come from the
/// configured modules dir (`pcibind_ctx_set_modules_dir()`), else `/lib/modules/<release>`,
/// then `/usr/lib/modules/<release>`; they are parsed once per context and re-read only when
/// they change (every call looks them up again by path and compares device, inode, size,
/// mtime and ctime, so a replaced or rewritten file, or a re-pointed modules-dir symlink, is
/// seen). When none can be read this is not an error: a warning is logged and the answer
/// is `"vfio_pci"`. The result is a module name; `pcibind_resolve_driver()` turns it into the
/// driver name (`vfio_pci` -> `vfio-pci`). Nothing is loaded or written.
///
/// On success `*module_out` receives the module name; the caller owns it and releases it with
/// `pcibind_string_free()` (or `free()`). On failure `*module_out` is NULL.
/// Returns 0, or PCIBIND_ERR_INVALID_ARG, PCIBIND_ERR_INVALID_ADDRESS, PCIBIND_ERR_NO_DEVICE,
/// PCIBIND_ERR_IO (the device's `modalias` is missing, unreadable or malformed; errno EINVAL
/// for malformed).
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_find_vfio_variant(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    module_out: *mut *mut c_char,
) -> c_int {
    let out = out_init(module_out);
    with_ctx(ctx, |ctx| {
        let out = out.ok_or_else(|| null("module_out"))?;
        let module = ctx.find_vfio_variant(address_arg(address)?)?;
        *out = malloc_string(module.as_str())?;
        Ok(())
    })
}
