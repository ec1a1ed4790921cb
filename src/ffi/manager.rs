//! What a manager needs (SPEC 3.14): a bind that reports where the device started, the in-use
//! question asked alone, and a module loader of the caller's (its type, and the adapter that
//! makes it the core's loader).

use std::ffi::{c_char, c_int, c_uint, c_void};

use super::boundary::{
    self, address_arg, int_out_init, malloc_string, null, opt_str_arg, out_init, with_ctx,
    with_ctx_mut,
};
use super::{log_plan, move_options, pcibind_ctx, BIND_FLAGS};
use crate::Modprobe;

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
