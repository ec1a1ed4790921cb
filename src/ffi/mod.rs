//! The C API: every exported function, written out literally. Each one only converts and checks
//! its arguments and forwards to [`crate::Context`]; `boundary` holds the shared machinery
//! (every pointer conversion and NULL check), `codes` the result codes.
//!
//! The functions are `unsafe extern "C"`: they take raw pointers, and their safety condition
//! is the C contract the header states (pointers NULL or valid, strings NUL-terminated,
//! contexts live). The module is private: Rust code uses [`crate::Context`].

#![allow(non_camel_case_types)]

mod boundary;
mod codes;

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::time::Duration;

use boundary::{
    address_arg, check_flags, guarded, int_out_init, malloc_string, null, opt_str_arg, out_init,
    path_arg, str_arg, with_ctx, with_ctx_mut,
};

use crate::types::error::Error;
use crate::types::log::Logger;
use crate::{Context, Modprobe};

/// Flags of `pcibind_bind()` (and `pcibind_bind_plan()`, `pcibind_bind_start()`); combine
/// with `|`. The moves that run safety checks (`pcibind_unbind()`, `pcibind_reattach()`, the
/// group moves) take the check flags too (FORCE and the three ALLOW_*).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum pcibind_bind_flags {
    /// Skip every safety check: the same as PCIBIND_BIND_ALLOW_IN_USE,
    /// PCIBIND_BIND_ALLOW_UNCLAIMED and PCIBIND_BIND_ALLOW_SRIOV together.
    PCIBIND_BIND_FORCE = 1,
    /// Change nothing and load nothing: run the checks that need no module load, and log the
    /// exact plan (at LOG_NOTICE, one message per line) instead of carrying it out.
    PCIBIND_BIND_DRY_RUN = 2,
    /// `pcibind_sriov_set_numvfs()` only (and, since 0.3, `pcibind_sriov_set_numvfs_plan()`):
    /// let host drivers probe the new VFs (leave the PF's `sriov_drivers_autoprobe` alone and
    /// give the VFs no `driver_override`). Since 0.2.
    PCIBIND_SRIOV_AUTOPROBE = 4,
    /// Skip the in-use check only: a network interface below the device that carries the
    /// host's traffic (up with an address or route, itself or through a bridge, bond, VLAN,
    /// ... above it), a disk below it that is mounted, a btrfs member, swap or held open
    /// exclusively, an NVMe controller that is the last live path to such a namespace, a
    /// framebuffer or the firmware's boot framebuffer (the console GPU), mediated devices, a
    /// VMM holding a device on a VFIO driver, and anything the check could not read. See
    /// `pcibind_in_use()`. Since 0.3.
    PCIBIND_BIND_ALLOW_IN_USE = 8,
    /// Skip the check that the target driver claims the device (its module's `pci:` or
    /// `vfio_pci:` aliases match the device). Since 0.3.
    PCIBIND_BIND_ALLOW_UNCLAIMED = 16,
    /// Skip the SR-IOV checks only: an SR-IOV PF with VFs enabled going to a VFIO driver, a PF
    /// one of whose VFs is on a VFIO driver taken off its driver. Since 0.3.
    PCIBIND_BIND_ALLOW_SRIOV = 32,
    /// A named target that is not a VFIO driver (vfio-pci or a variant) is refused with
    /// PCIBIND_ERR_NOT_CLAIMED, before anything is written (for a manager's "this device is
    /// for a VFIO driver of the user's choice"). Not skipped by PCIBIND_BIND_FORCE.
    /// `pcibind_bind()`, `pcibind_bind_plan()` and `pcibind_bind_start()` only. Since 0.3.
    PCIBIND_BIND_REQUIRE_VFIO = 64,
    /// With a NULL name, the VFIO variant driver chosen for the device must be had: when its
    /// module cannot be loaded (or no driver registers), the call fails with
    /// PCIBIND_ERR_MODULE_LOAD instead of falling back to vfio-pci (live migration needs the
    /// variant). A device for which vfio-pci itself is the best driver binds to it as usual.
    /// `pcibind_bind()`, `pcibind_bind_plan()`, `pcibind_bind_start()` and
    /// `pcibind_bind_group()`. Since 0.3.
    PCIBIND_BIND_STRICT_VARIANT = 128,
}

/// The ways a device is in use on the host, as `pcibind_in_use()` reports them: a bit mask, 0
/// when it is not in use. Since 0.3.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
// For the header (cbindgen) and the check below; older compilers call the variants unused.
#[allow(dead_code)]
pub enum pcibind_in_use_kind {
    /// A network interface below it carries the host's traffic (or could not be read).
    PCIBIND_IN_USE_NETWORK = 1,
    /// A disk below it is mounted, swap, a btrfs member or held (or could not be read).
    PCIBIND_IN_USE_STORAGE = 2,
    /// It drives a framebuffer, or its BAR holds the firmware's boot framebuffer.
    PCIBIND_IN_USE_DISPLAY = 4,
    /// It is on a VFIO driver and a process (a VMM) holds its group node or its cdev.
    PCIBIND_IN_USE_VMM = 8,
    /// Anything else: mediated devices on it, a part of it that could not be read.
    PCIBIND_IN_USE_OTHER = 16,
}

// The C kinds are the core's bits, checked when compiling.
const _: () = {
    use crate::InUseKinds as K;
    use pcibind_in_use_kind::*;
    assert!(PCIBIND_IN_USE_NETWORK as u32 == K::NETWORK.bits());
    assert!(PCIBIND_IN_USE_STORAGE as u32 == K::STORAGE.bits());
    assert!(PCIBIND_IN_USE_DISPLAY as u32 == K::DISPLAY.bits());
    assert!(PCIBIND_IN_USE_VMM as u32 == K::VMM.bits());
    assert!(PCIBIND_IN_USE_OTHER as u32 == K::OTHER.bits());
};

const FORCE: c_uint = pcibind_bind_flags::PCIBIND_BIND_FORCE as c_uint;
const DRY_RUN: c_uint = pcibind_bind_flags::PCIBIND_BIND_DRY_RUN as c_uint;
const ALLOW_IN_USE: c_uint = pcibind_bind_flags::PCIBIND_BIND_ALLOW_IN_USE as c_uint;
const ALLOW_UNCLAIMED: c_uint = pcibind_bind_flags::PCIBIND_BIND_ALLOW_UNCLAIMED as c_uint;
const ALLOW_SRIOV: c_uint = pcibind_bind_flags::PCIBIND_BIND_ALLOW_SRIOV as c_uint;
const REQUIRE_VFIO: c_uint = pcibind_bind_flags::PCIBIND_BIND_REQUIRE_VFIO as c_uint;
const STRICT_VARIANT: c_uint = pcibind_bind_flags::PCIBIND_BIND_STRICT_VARIANT as c_uint;

/// The flags that skip safety checks, which every move takes.
const CHECK_FLAGS: c_uint = FORCE | ALLOW_IN_USE | ALLOW_UNCLAIMED | ALLOW_SRIOV;
/// The flags of `pcibind_bind()`.
const BIND_FLAGS: c_uint = CHECK_FLAGS | DRY_RUN | REQUIRE_VFIO | STRICT_VARIANT;
/// The flags of `pcibind_bind_group()`.
const BIND_GROUP_FLAGS: c_uint = CHECK_FLAGS | DRY_RUN | STRICT_VARIANT;
/// The flags of `pcibind_reattach_group()`.
const REATTACH_GROUP_FLAGS: c_uint = CHECK_FLAGS | DRY_RUN;

/// The options of a move from its `flags`, of which `allowed` are accepted, and whether it is
/// a dry run.
fn move_options(flags: c_uint, allowed: c_uint) -> crate::Result<(crate::BindOptions, bool)> {
    check_flags(flags, allowed)?;
    let has = |bit: c_uint| flags & bit != 0;
    Ok((
        crate::BindOptions {
            force: has(FORCE),
            allow_in_use: has(ALLOW_IN_USE),
            allow_unclaimed: has(ALLOW_UNCLAIMED),
            allow_sriov: has(ALLOW_SRIOV),
            require_vfio: has(REQUIRE_VFIO),
            strict_variant: has(STRICT_VARIANT),
        },
        has(DRY_RUN),
    ))
}

/// An opaque library context: one sysfs tree and the settings used on it. Create it with
/// `pcibind_ctx_new()`, release it with `pcibind_ctx_free()`. Operations taking a
/// `const pcibind_ctx *` may be called from many threads at once; the setters taking a
/// `pcibind_ctx *` must not run concurrently with any other call on the same context.
pub struct pcibind_ctx {
    inner: Context,
}

/// A log callback: `priority` is a syslog priority (`LOG_ERR` = 3 .. `LOG_DEBUG` = 7) and
/// `message` a NUL-terminated line without a trailing newline, valid only during the call. It
/// may be called from any thread that calls into the library, and must not unwind or longjmp.
pub type pcibind_log_fn =
    Option<unsafe extern "C" fn(userdata: *mut c_void, priority: c_int, message: *const c_char)>;

/// Creates a context for the sysfs tree at `sysfs_root` (an absolute path to a directory; NULL
/// means `"/sys"`). `flags` must be 0. The new context is silent (no log callback), looks for
/// `modules.alias` in `/lib/modules/<release>` then `/usr/lib/modules/<release>`, loads modules
/// with the first of `/usr/sbin/modprobe`, `/sbin/modprobe` that exists, and keeps lock files in
/// the build's lock directory (`-Dlockdir`, by default `/run/pcibind`;
/// `pkg-config --variable=lockdir pcibind`).
///
/// On success `*ctx_out` receives the context, which the caller owns and releases with
/// `pcibind_ctx_free()`. On failure `*ctx_out` is NULL.
/// Returns 0, or PCIBIND_ERR_INVALID_ARG (NULL `ctx_out`, bad flags, relative root) or
/// PCIBIND_ERR_IO (the root is not a readable directory).
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_ctx_new(
    sysfs_root: *const c_char,
    flags: c_uint,
    ctx_out: *mut *mut pcibind_ctx,
) -> c_int {
    let out = out_init(ctx_out);
    guarded(|| {
        let out = out.ok_or_else(|| null("ctx_out"))?;
        check_flags(flags, 0)?;
        let root = path_arg(sysfs_root).unwrap_or_else(|| "/sys".into());
        *out = boundary::ctx_into_raw(Context::new(root)?);
        Ok(())
    })
}

/// Releases a context and everything it holds. NULL is fine. No call on `ctx` may be running
/// or follow.
/// @since 0.1
#[no_mangle]
pub unsafe extern "C" fn pcibind_ctx_free(ctx: *mut pcibind_ctx) {
    boundary::ctx_free(ctx)
}

/// Sets the directory holding `modules.alias` (and `modules.builtin.modinfo`), as an absolute
/// path; NULL restores the default search (`/lib/modules/<release>`, then
/// `/usr/lib/modules/<release>`). The string is copied.
/// Returns 0 or PCIBIND_ERR_INVALID_ARG.
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_ctx_set_modules_dir(
    ctx: *mut pcibind_ctx,
    dir: *const c_char,
) -> c_int {
    with_ctx_mut(ctx, |ctx| ctx.set_modules_dir(path_arg(dir)))
}

/// Sets the program used to load kernel modules, as an absolute path. It is run directly (no
/// shell) as `PATH -b MODULE` with the caller's environment; it inherits no descriptor of the
/// caller's but stdin, stdout and stderr (since 0.3). NULL means never load modules:
/// a name whose module is not loaded then resolves only if a matching driver is already
/// registered. The string is copied.
/// Returns 0 or PCIBIND_ERR_INVALID_ARG.
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_ctx_set_modprobe(
    ctx: *mut pcibind_ctx,
    path: *const c_char,
) -> c_int {
    with_ctx_mut(ctx, |ctx| {
        ctx.set_modprobe(path_arg(path).map_or(Modprobe::Disabled, Modprobe::Program))
    })
}

/// Sets the directory for the per-device lock files shared with other processes, as an
/// absolute path; NULL restores the default, the build's lock directory (`-Dlockdir`, by default
/// `/run/pcibind`; `pkg-config --variable=lockdir pcibind`). The string is copied.
/// The directory is created 0700 when missing and lock files 0600, so no other user can hold a
/// device's lock. An existing directory (or lock file) must belong to the caller's effective
/// user and not be a symbolic link; one open to others that holds only lock files is made 0700
/// (and 0644 lock files 0600). Anything else makes the operations fail with PCIBIND_ERR_IO
/// (errno EPERM) until an administrator removes it.
/// Returns 0 or PCIBIND_ERR_INVALID_ARG.
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_ctx_set_lock_dir(
    ctx: *mut pcibind_ctx,
    dir: *const c_char,
) -> c_int {
    with_ctx_mut(ctx, |ctx| ctx.set_lock_dir(path_arg(dir)))
}

/// Sets how long, in milliseconds, an operation on a device (`pcibind_bind()`,
/// `pcibind_unbind()`, `pcibind_reattach()`) waits for the device's lock while another thread
/// of the process or another process holds it, before it fails with PCIBIND_ERR_BUSY: one
/// deadline covers both waits. The default is 60000 (60 s); 0 fails at once when the lock is
/// held.
/// Returns 0 or PCIBIND_ERR_INVALID_ARG (NULL `ctx`).
/// @since 0.2
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_ctx_set_lock_timeout(
    ctx: *mut pcibind_ctx,
    timeout_ms: c_uint,
) -> c_int {
    with_ctx_mut(ctx, |ctx| {
        ctx.set_lock_timeout(Duration::from_millis(timeout_ms.into()));
        Ok(())
    })
}

/// Sets how long, in milliseconds, modprobe may run. At the limit it is killed (SIGKILL to its
/// process group, so with anything it started) and the load fails with
/// PCIBIND_ERR_MODULE_LOAD, the message saying that it timed out, with what it printed. The
/// call returns within about a second of the limit even if modprobe cannot die (a module init
/// stuck in the kernel leaves it in `D` state; since 0.3): the message then says it did not
/// exit, and a thread of the library reaps it when it ends, never waited for while a device
/// lock is held. The default is 60000 (60 s).
/// Returns 0 or PCIBIND_ERR_INVALID_ARG (NULL `ctx`, or 0).
/// @since 0.2
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_ctx_set_modprobe_timeout(
    ctx: *mut pcibind_ctx,
    timeout_ms: c_uint,
) -> c_int {
    with_ctx_mut(ctx, |ctx| {
        ctx.set_modprobe_timeout(Duration::from_millis(timeout_ms.into()))
    })
}

/// Sets where the safety checks read the kernel's proc files (`self/mountinfo`, `swaps`,
/// `iomem`; `net/route` and `net/if_inet6` in a tree that is not `/proc`) and each process's
/// open files (`PID/fd/`, to find a VMM holding a device), as an absolute path; NULL restores
/// the default, `/proc`. With `/proc` itself, addresses and routes come from the kernel over
/// rtnetlink instead (since 0.3). Meant for tests against fake trees. The string is copied.
/// Returns 0 or PCIBIND_ERR_INVALID_ARG.
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_ctx_set_proc_root(
    ctx: *mut pcibind_ctx,
    dir: *const c_char,
) -> c_int {
    with_ctx_mut(ctx, |ctx| ctx.set_proc_root(path_arg(dir)))
}

/// Sets the log callback: messages of syslog priority `max_priority` or more severe (0..7;
/// `LOG_WARNING` = 4 gets warnings and errors, `LOG_DEBUG` = 7 everything) are passed to
/// `fn` with `userdata`. NULL `fn` silences the context (the default). The library does not own
/// `userdata`; it must stay valid while the context can log.
///
/// Each call carries one line. The callback is never called while the library holds one of
/// its locks (a device's lock, the alias cache's): lines logged meanwhile are delivered once
/// the lock is released, still during the same call. So the callback may call any function
/// of the library, on this context too (not the setters, which must not run concurrently
/// with other calls).
/// Returns 0 or PCIBIND_ERR_INVALID_ARG (`max_priority` outside 0..7).
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_ctx_set_log_fn(
    ctx: *mut pcibind_ctx,
    fn_: pcibind_log_fn,
    userdata: *mut c_void,
    max_priority: c_int,
) -> c_int {
    with_ctx_mut(ctx, |ctx| {
        if !(0..=7).contains(&max_priority) {
            return Err(Error::InvalidArg(format!(
                "max_priority {max_priority} is not a syslog priority (0..7)"
            )));
        }
        let logger = match fn_ {
            None => Logger::default(),
            Some(callback) => Logger::new(boundary::log_sink(callback, userdata), max_priority),
        };
        ctx.set_logger(logger);
        Ok(())
    })
}

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
    let out = out_init(plan_out);
    with_ctx(ctx, |ctx| {
        let out = out.ok_or_else(|| null("plan_out"))?;
        let (options, _) = move_options(flags, BIND_FLAGS)?;
        let plan = ctx.bind_plan(address_arg(address)?, opt_str_arg(name, "name")?, options)?;
        *out = malloc_string(&plan.to_string())?;
        Ok(())
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
    let out = out_init(plan_out);
    with_ctx(ctx, |ctx| {
        let out = out.ok_or_else(|| null("plan_out"))?;
        let (options, _) = move_options(flags, CHECK_FLAGS)?;
        let plan = ctx.unbind_plan(address_arg(address)?, options)?;
        *out = malloc_string(&plan.to_string())?;
        Ok(())
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
    let out = out_init(plan_out);
    with_ctx(ctx, |ctx| {
        let out = out.ok_or_else(|| null("plan_out"))?;
        let (options, _) = move_options(flags, CHECK_FLAGS)?;
        let plan = ctx.reattach_plan(address_arg(address)?, opt_str_arg(name, "name")?, options)?;
        *out = malloc_string(&plan.to_string())?;
        Ok(())
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

/// Rolls back interrupted transactions (SPEC 3.12): those of the device at `address`, or with
/// NULL `address` of every device whose lock file in the lock directory holds a record.
///
/// Before its first write, every transaction records in the device's lock file where the
/// device started, and removes the record when it ends. A caller that dies in between
/// (killed, out of memory) leaves the record: the next call that takes the device's lock, in
/// any process, first rolls the device back to that start, logs a warning naming the
/// interrupted transaction, and goes on with its own work. So no call needs this one; a
/// manager calls it at start-up to put back at once what an earlier instance left half done,
/// and the tool's `pcibind recover` is the operator's. A record whose device was moved by
/// someone else since (its `driver_override` names neither the start's nor the transaction's
/// driver) is dropped with a warning and the device left as it is; so is the record of a
/// device that is gone. Records live on /run and do not survive a reboot, nor does the state
/// they describe. `flags` must be 0.
///
/// `recovered_out` may be NULL; otherwise on success it receives a NULL-terminated array of
/// the addresses rolled back, in address order (empty when there was nothing to do), which the
/// caller owns and releases with `pcibind_strv_free()`.
/// Returns 0, or PCIBIND_ERR_INVALID_ARG, PCIBIND_ERR_INVALID_ADDRESS, PCIBIND_ERR_NO_DEVICE
/// (the named device does not exist), PCIBIND_ERR_RESTORE (a roll-back failed: the message says
/// where the device is; its record stays for the next try), PCIBIND_ERR_BUSY,
/// PCIBIND_ERR_IO (a record that cannot be parsed, named; never acted on).
/// @since 0.3
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_recover(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    flags: c_uint,
    recovered_out: *mut *mut *mut c_char,
) -> c_int {
    let out = out_init(recovered_out);
    with_ctx(ctx, |ctx| {
        check_flags(flags, 0)?;
        let address = if address.is_null() {
            None
        } else {
            Some(address_arg(address)?)
        };
        let recovered = ctx.recover(address)?;
        if let Some(out) = out {
            *out = boundary::malloc_strv(&recovered)?;
        }
        Ok(())
    })
}

/// `pcibind_bind()`, also saying where the device started and whether the call moved it
/// (SPEC 3.14), for a manager that gives back only what it moved, to exactly where it was.
/// The start is read under the device's lock, after any interrupted transaction of it was
/// rolled back and before anything is loaded or written: no other caller's move can come
/// between the start reported and the move made, as it can between a separate read and the
/// bind. `flags` are those of `pcibind_bind()`.
///
/// Every out-pointer may be NULL. On success: `*driver_out` receives the driver the device is
/// now bound to; `*start_driver_out` the driver it was on (NULL when it was on none);
/// `*start_override_out` its `driver_override` then (NULL when none was set);
/// `*moved_out` 1 when anything changed (a write, or a module load that probed the device),
/// 0 when it was already where it was asked to be. Strings are the caller's, released with
/// `pcibind_string_free()`. To give the device back: when `*moved_out` is 1,
/// `pcibind_reattach(ctx, address, start_driver, 0, NULL)` (a NULL start driver gives it to
/// whichever host driver the kernel chooses), which clears the override of a host driver and
/// keeps that of a VFIO driver. On failure the strings are NULL and `*moved_out` 0.
/// With PCIBIND_BIND_DRY_RUN the plan is logged as by `pcibind_bind()`, the start is the
/// device as it is now (read without the lock), `*driver_out` is NULL when the target's module
/// is not loaded yet, and `*moved_out` is 0.
/// Returns 0, or the codes of `pcibind_bind()`.
/// @since 0.3
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_bind_start(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    name: *const c_char,
    flags: c_uint,
    driver_out: *mut *mut c_char,
    start_driver_out: *mut *mut c_char,
    start_override_out: *mut *mut c_char,
    moved_out: *mut c_int,
) -> c_int {
    let driver_slot = out_init(driver_out);
    let start_driver_slot = out_init(start_driver_out);
    let start_override_slot = out_init(start_override_out);
    let moved_slot = int_out_init(moved_out);
    with_ctx(ctx, |ctx| {
        let (options, dry_run) = move_options(flags, BIND_FLAGS)?;
        let address = address_arg(address)?;
        let name = opt_str_arg(name, "name")?;
        let outcome = if dry_run {
            let start = ctx.state(&crate::PciAddress::parse(address)?)?;
            let plan = ctx.bind_plan(address, name, options)?;
            log_plan(ctx, &plan.lines);
            (plan.target, start.driver, start.driver_override, false)
        } else {
            let o = ctx.bind_start(address, name, options)?;
            (Some(o.driver), o.start_driver, o.start_override, o.moved)
        };
        let (driver, start_driver, start_override, moved) = outcome;
        boundary::fill_strings([
            (driver_slot, driver.as_ref().map(|d| d.as_str())),
            (start_driver_slot, start_driver.as_ref().map(|d| d.as_str())),
            (start_override_slot, start_override.as_deref()),
        ])?;
        if let Some(slot) = moved_slot {
            *slot = moved as c_int;
        }
        Ok(())
    })
}

/// Whether the device at `address` is in use on the host, and how: the question the safety
/// check of a move off its driver asks (SPEC 1, 3.3), answered alone, so that a manager can
/// decide what to allow (PCIBIND_BIND_ALLOW_IN_USE) with its user's configuration in hand.
/// A device on a host driver, or on none, is asked about the host's use of it; one on a VFIO
/// driver only whether a process holds its group node or cdev open (a VMM); one on a stub
/// (`pci-stub`, `pciback`) is in use by nobody. What the check cannot read counts as in use
/// (could not look is not "not in use").
///
/// `*kinds_out` (required) receives a bit mask of `pcibind_in_use_kind` (0: not in use).
/// `reason_out` may be NULL; otherwise on success it receives the reasons as one text (the
/// refusal's, sentences joined with "; "), NULL when not in use; the caller releases it with
/// `pcibind_string_free()`. On failure `*kinds_out` is 0 and `*reason_out` NULL.
/// Returns 0, or PCIBIND_ERR_INVALID_ARG, PCIBIND_ERR_INVALID_ADDRESS, PCIBIND_ERR_NO_DEVICE,
/// PCIBIND_ERR_IO.
/// @since 0.3
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_in_use(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    kinds_out: *mut c_uint,
    reason_out: *mut *mut c_char,
) -> c_int {
    let kinds_slot = int_out_init(kinds_out);
    let reason_slot = out_init(reason_out);
    with_ctx(ctx, |ctx| {
        let kinds_slot = kinds_slot.ok_or_else(|| null("kinds_out"))?;
        let found = ctx.in_use(address_arg(address)?)?;
        if let (Some(slot), Some(found)) = (reason_slot, &found) {
            *slot = malloc_string(&found.reason)?;
        }
        *kinds_slot = found.map_or(0, |f| f.kinds.bits());
        Ok(())
    })
}

/// A module loader (SPEC 3.14): asked to load kernel module `module` (a NUL-terminated name in
/// `_` spelling, valid during the call), it returns 0 once the module is loaded (or was), or
/// non-zero when it is not, setting `*error_out` to a `malloc`ed message saying why (or
/// leaving it NULL), which the library frees with `free()`. `-ENOENT` says that no module has
/// that name (modprobe's "not found"): a name then resolves to no driver
/// (PCIBIND_ERR_NO_DRIVER), as with the library's own modprobe; any other non-zero value is a
/// failed load (PCIBIND_ERR_MODULE_LOAD). Time it yourself: the library waits for it. It is called in the thread of the
/// library call that needs the module, possibly from several threads at once and while a
/// device's lock is held; it must not call into the library on the same device, nor unwind or
/// longjmp.
pub type pcibind_module_loader_fn = Option<
    unsafe extern "C" fn(
        userdata: *mut c_void,
        module: *const c_char,
        error_out: *mut *mut c_char,
    ) -> c_int,
>;

/// The caller's `userdata` and loader, called from any thread that calls into the library.
struct CallerLoader {
    fn_: unsafe extern "C" fn(*mut c_void, *const c_char, *mut *mut c_char) -> c_int,
    userdata: *mut c_void,
}

// SAFETY: the C contract of pcibind_ctx_set_module_loader(): the loader and its userdata may be
// used from any thread that calls into the library.
unsafe impl Send for CallerLoader {}
unsafe impl Sync for CallerLoader {}

impl CallerLoader {
    fn load(&self, module: &crate::ModuleName) -> Result<(), crate::Refusal> {
        let name = boundary::c_string_lossy(module.as_str());
        let mut error: *mut c_char = std::ptr::null_mut();
        // SAFETY: the caller's function, with its own userdata, a valid string and a valid
        // out-pointer, as the contract says.
        let rc = unsafe { (self.fn_)(self.userdata, name.as_ptr(), &mut error) };
        let text = (!error.is_null()).then(|| {
            // SAFETY: the loader sets a malloc'ed NUL-terminated string or leaves NULL.
            let text = unsafe { std::ffi::CStr::from_ptr(error) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: malloc'ed by the caller, as the contract says; freed once.
            unsafe { libc::free(error.cast()) };
            text
        });
        let text = match (rc, text) {
            (0, _) => return Ok(()),
            (_, Some(text)) if !text.trim().is_empty() => text.trim().to_owned(),
            (rc, _) => format!("it returned {rc} and said nothing"),
        };
        Err(crate::Refusal {
            no_such_module: rc == -libc::ENOENT,
            text,
        })
    }
}

/// Sets who loads kernel modules (SPEC 3.14): with a `loader`, the library calls
/// `loader(userdata, module, &error)` instead of running modprobe, wherever it would have run
/// it (resolving a name whose module is not loaded, a VFIO variant, the host modules of a
/// reattach), and waits for the module's driver to register as it does after modprobe. A
/// non-zero return fails the call that needed the module with PCIBIND_ERR_MODULE_LOAD
/// (PCIBIND_ERR_NO_DRIVER for `-ENOENT`) and the loader's text in the message (a VFIO variant that cannot be loaded falls back to
/// vfio-pci, unless PCIBIND_BIND_STRICT_VARIANT). The loader is not timed: its time is the
/// caller's. NULL `loader` restores the default, modprobe (`pcibind_ctx_set_modprobe()` also
/// replaces any loader). `userdata` is passed as is and must stay valid while the context
/// may call the loader.
/// Returns 0 or PCIBIND_ERR_INVALID_ARG.
/// @since 0.3
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_ctx_set_module_loader(
    ctx: *mut pcibind_ctx,
    loader: pcibind_module_loader_fn,
    userdata: *mut c_void,
) -> c_int {
    with_ctx_mut(ctx, |ctx| {
        let modprobe = match loader {
            None => Modprobe::Default,
            Some(fn_) => {
                let loader = CallerLoader { fn_, userdata };
                Modprobe::Loader(crate::ModuleLoader::new(move |m| loader.load(m)))
            }
        };
        ctx.set_modprobe(modprobe)
    })
}

/// A dry run's plan, logged at LOG_NOTICE, one message per line (the flag's documented
/// behaviour for every call that takes PCIBIND_BIND_DRY_RUN).
fn log_plan(ctx: &Context, lines: &[String]) {
    for line in lines {
        ctx.logger()
            .log(crate::Priority::Notice, format_args!("dry run: {line}"));
    }
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

/// Sets where `pcibind_vfio_device_nodes()` looks for the device nodes, as an absolute path;
/// NULL restores the default, `/dev`. Since 0.3 the safety checks look there too: the block
/// device nodes of the disks below a device (opened with `O_EXCL` to ask the kernel whether
/// anything holds them) and the VFIO nodes a VMM may hold open. Meant for tests against fake
/// trees. The string is copied.
/// Returns 0 or PCIBIND_ERR_INVALID_ARG.
/// @since 0.2
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_ctx_set_dev_root(
    ctx: *mut pcibind_ctx,
    dir: *const c_char,
) -> c_int {
    with_ctx_mut(ctx, |ctx| ctx.set_dev_root(path_arg(dir)))
}

/// Lists the device nodes a VMM opens to use the device at `address`, which must be on a VFIO
/// driver (SPEC 3.9): those that exist, in this order: the legacy container `/dev/vfio/vfio`,
/// the group `/dev/vfio/GROUP` (`/dev/vfio/noiommu-GROUP` for a no-IOMMU group), then, on
/// kernels with the VFIO character device (6.6 and later), the iommufd pair `/dev/iommu` and
/// `/dev/vfio/devices/vfioN`, only when both exist. Paths are under the dev root
/// (`pcibind_ctx_set_dev_root()`).
///
/// On success `*paths_out` receives a NULL-terminated array that the caller owns and releases
/// with `pcibind_strv_free()`. On failure it is NULL.
/// Returns 0, or PCIBIND_ERR_INVALID_ARG, PCIBIND_ERR_INVALID_ADDRESS, PCIBIND_ERR_NO_DEVICE,
/// PCIBIND_ERR_UNSUPPORTED (the device is not on a VFIO driver), PCIBIND_ERR_IO.
/// @since 0.2
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_vfio_device_nodes(
    ctx: *const pcibind_ctx,
    address: *const c_char,
    paths_out: *mut *mut *mut c_char,
) -> c_int {
    let out = out_init(paths_out);
    with_ctx(ctx, |ctx| {
        let out = out.ok_or_else(|| null("paths_out"))?;
        let nodes = ctx.vfio_device_nodes(address_arg(address)?)?;
        *out = boundary::malloc_strv(nodes.iter().map(|p| p.display()))?;
        Ok(())
    })
}

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
    let out = out_init(plan_out);
    with_ctx(ctx, |ctx| {
        let out = out.ok_or_else(|| null("plan_out"))?;
        let options = sriov_options(flags)?;
        let plan = ctx.sriov_set_numvfs_plan(address_arg(pf_address)?, numvfs, options)?;
        *out = malloc_string(&plan.to_string())?;
        Ok(())
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

/// Releases a string returned by the library. NULL is fine. Same as `free()`.
/// @since 0.1
#[no_mangle]
pub unsafe extern "C" fn pcibind_string_free(s: *mut c_char) {
    boundary::free_string(s)
}

/// Releases a NULL-terminated array of strings returned by the library, and each string in it.
/// NULL is fine.
/// @since 0.1
#[no_mangle]
pub unsafe extern "C" fn pcibind_strv_free(v: *mut *mut c_char) {
    boundary::free_strv(v)
}

/// A static, human-readable description of a result code (the first line of its
/// documentation above); unknown codes get `"unknown error"`. Never NULL; do not free.
/// @since 0.1
#[no_mangle]
pub unsafe extern "C" fn pcibind_strerror(code: c_int) -> *const c_char {
    codes::text_of(code).as_ptr()
}

/// The message of the last call on this thread that can fail: what failed, where, and why,
/// or `""` when that call succeeded. Every such call sets it or clears it, including one that
/// succeeds after its log callback made failing calls into the library. Never NULL. Owned by
/// the library: valid until the next call into the library on this thread other than
/// `pcibind_last_error_message()`, `pcibind_last_error_errno()`, `pcibind_strerror()`,
/// `pcibind_version()` and the free functions. User input quoted in it is cut to 80
/// characters (with its length in bytes).
/// @since 0.1
#[no_mangle]
pub unsafe extern "C" fn pcibind_last_error_message() -> *const c_char {
    boundary::last_error_message()
}

/// The OS error number (`errno`) behind the last failed call on this thread, or 0 when there
/// is none or the last call succeeded. Always set (non-zero) for PCIBIND_ERR_IO: an I/O
/// failure that carries no OS error of its own reports EINVAL (malformed content) or EIO.
/// For PCIBIND_ERR_BIND and PCIBIND_ERR_RESTORE it is the kernel's answer to the step that
/// failed, or 0 when the kernel accepted every write but did not bind.
/// @since 0.1
#[must_use]
#[no_mangle]
pub unsafe extern "C" fn pcibind_last_error_errno() -> c_int {
    boundary::last_error_errno()
}

/// The library's version, e.g. `"0.1.0"`. Static; do not free.
/// @since 0.1
#[no_mangle]
pub unsafe extern "C" fn pcibind_version() -> *const c_char {
    const VERSION: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes(),
    ) {
        Ok(v) => v,
        Err(_) => panic!("the version has no NUL"),
    };
    VERSION.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::codes::pcibind_error;
    use super::*;
    use std::ffi::{CStr, CString};

    fn last_message() -> String {
        // SAFETY: the library returns a valid NUL-terminated string.
        unsafe { CStr::from_ptr(pcibind_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_fails_that_call_drops_the_caches_and_leaves_the_context_usable() {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        let dev = sys.join("bus/pci/devices/0000:01:00.0");
        std::fs::create_dir_all(&dev).unwrap();
        std::fs::write(
            dev.join("modalias"),
            "pci:v00008086d00001572sv00008086sd00000001bc02sc00i00\n",
        )
        .unwrap();
        let modules = dir.path().join("modules");
        std::fs::create_dir_all(&modules).unwrap();
        std::fs::write(
            modules.join("modules.alias"),
            "alias pci:v00008086d00001572sv*sd*bc*sc*i* i40e\n",
        )
        .unwrap();
        let root = CString::new(sys.to_str().unwrap()).unwrap();
        let modules = CString::new(modules.to_str().unwrap()).unwrap();
        let mut ctx = std::ptr::null_mut();
        assert_eq!(unsafe { pcibind_ctx_new(root.as_ptr(), 0, &mut ctx) }, 0);
        assert_eq!(
            unsafe { pcibind_ctx_set_modules_dir(ctx, modules.as_ptr()) },
            0
        );
        let variant = |ctx: *mut pcibind_ctx| {
            let mut out = std::ptr::null_mut();
            let rc = unsafe { pcibind_find_vfio_variant(ctx, c"0000:01:00.0".as_ptr(), &mut out) };
            assert_eq!(rc, 0, "{}", last_message());
            unsafe { pcibind_string_free(out) };
        };
        variant(ctx);
        variant(ctx);
        let reads = || unsafe { &*ctx }.inner.tables.reads();
        assert_eq!(reads(), 1, "the second lookup comes from the cache");

        // A panic in the middle of a call that holds the tables' cache lock (poisoning it).
        let rc = unsafe { with_ctx(ctx, |ctx| ctx.tables.panic_holding_the_cache()) };
        assert_eq!(rc, pcibind_error::PCIBIND_ERR_INTERNAL as c_int);
        assert!(last_message().contains("boom"), "{}", last_message());
        assert!(!last_message().contains("PCIBIND_"), "{}", last_message());

        // The context serves the next call, from the tables read afresh.
        variant(ctx);
        assert_eq!(reads(), 2, "the cache was dropped after the panic");
        let mut out = std::ptr::null_mut();
        let rc = unsafe { pcibind_current_driver(ctx, c"0000:01:00.0".as_ptr(), &mut out) };
        assert_eq!(rc, 0, "{}", last_message());
        // The setters' path too.
        let rc = unsafe { with_ctx_mut(ctx, |_| panic!("boom again")) };
        assert_eq!(rc, pcibind_error::PCIBIND_ERR_INTERNAL as c_int);
        variant(ctx);
        assert_eq!(reads(), 3);
        unsafe { pcibind_ctx_free(ctx) };
    }
}
