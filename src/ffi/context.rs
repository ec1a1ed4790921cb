//! Creating and releasing a context, and its settings (the `pcibind_ctx_set_*` calls), with the
//! log callback's type. Two setters live with their subjects, where the header's order puts
//! them: the module loader in `manager.rs`, the dev root in `nodes.rs`.

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::time::Duration;

use super::boundary::{self, check_flags, guarded, null, out_init, path_arg, with_ctx_mut};
use super::pcibind_ctx;
use crate::types::error::Error;
use crate::types::log::Logger;
use crate::{Context, Modprobe};

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
