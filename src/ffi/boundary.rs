//! The panic boundary, the thread-local last error, and the argument helpers every exported
//! function goes through, so that NULL checks and pointer casts live here and nowhere else.
//!
//! The helpers that read or write through a pointer are `unsafe fn`s: their one safety
//! condition is the C contract of the exported function that calls them (a pointer argument
//! is NULL or valid for its type; strings are NUL-terminated; a context is live).

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use super::codes::{code_of, pcibind_error};
use super::pcibind_ctx;
use crate::types::error::{quote, Error, Result};
use crate::types::log::{Priority, Sink};
use crate::Context;

struct LastError {
    message: CString,
    errno: c_int,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

/// A C string of `text`, with any NUL byte (say, from modprobe's stderr) made visible instead
/// of cutting the message short.
pub(crate) fn c_string_lossy(text: &str) -> CString {
    CString::new(text.replace('\0', "\\0")).unwrap_or_default()
}

fn set_last_error(err: &Error) {
    let last = LastError {
        message: c_string_lossy(&err.to_string()),
        errno: err.errno(),
    };
    LAST_ERROR.with(|cell| *cell.borrow_mut() = Some(last));
}

fn clear_last_error() {
    LAST_ERROR.with(|cell| *cell.borrow_mut() = None);
}

/// The last error's message on this thread; `""` when the last call succeeded. The pointer is
/// valid until the next call into the library on this thread that can fail.
pub(crate) fn last_error_message() -> *const c_char {
    LAST_ERROR.with(|cell| match &*cell.borrow() {
        // The CString lives in the thread-local until the next failing or resetting call.
        Some(last) => last.message.as_ptr(),
        None => c"".as_ptr(),
    })
}

pub(crate) fn last_error_errno() -> c_int {
    LAST_ERROR.with(|cell| cell.borrow().as_ref().map_or(0, |l| l.errno))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// Runs `f`, turning its error into a code and the thread's last error, and a panic into
/// `PCIBIND_ERR_INTERNAL` (SPEC 3.14: that call fails; the caller of a context drops its
/// caches, and the context goes on serving the daemon's other threads). The last error is set
/// on failure and cleared on success, also when a log callback made a failing call into the
/// library during `f`. The second value says whether `f` panicked.
fn guarded_catching(f: impl FnOnce() -> Result<()>) -> (c_int, bool) {
    clear_last_error();
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            clear_last_error();
            (pcibind_error::PCIBIND_OK as c_int, false)
        }
        Ok(Err(e)) => (fail(e), false),
        Err(payload) => (
            fail(Error::Internal(format!(
                "caught a panic: {}; this call failed (a bug: please report it); a \
                 transaction it left half done is rolled back by the next call on the device",
                panic_message(&*payload)
            ))),
            true,
        ),
    }
}

/// `guarded_catching` for the functions that take no context.
pub(crate) fn guarded(f: impl FnOnce() -> Result<()>) -> c_int {
    guarded_catching(f).0
}

fn fail(err: Error) -> c_int {
    set_last_error(&err);
    code_of(&err)
}

/// `guarded` for operations on a context (`const pcibind_ctx *`).
///
/// # Safety
/// `ctx` is NULL or a live context from `pcibind_ctx_new()`.
pub(crate) unsafe fn with_ctx(
    ctx: *const pcibind_ctx,
    f: impl FnOnce(&Context) -> Result<()>,
) -> c_int {
    match unsafe { ctx.as_ref() } {
        Some(ctx) => {
            let (rc, panicked) = guarded_catching(|| f(&ctx.inner));
            if panicked {
                // What a panic left half-built in a cache is not trusted: read afresh.
                ctx.inner.forget_caches();
            }
            rc
        }
        None => guarded(|| Err(null("ctx"))),
    }
}

/// `with_ctx` for the `_plan` exports: `*plan_out` is reset, required, and on success given
/// the plan `f` works out, in `malloc`ed memory the caller releases with
/// `pcibind_string_free()`.
///
/// # Safety
/// As `with_ctx`; `plan_out` is NULL or writable.
pub(crate) unsafe fn with_plan_out(
    ctx: *const pcibind_ctx,
    plan_out: *mut *mut c_char,
    f: impl FnOnce(&Context) -> Result<crate::Plan>,
) -> c_int {
    let out = unsafe { out_init(plan_out) };
    unsafe {
        with_ctx(ctx, |ctx| {
            let out = out.ok_or_else(|| null("plan_out"))?;
            *out = malloc_string(&f(ctx)?.to_string())?;
            Ok(())
        })
    }
}

/// `guarded` for the setters (`pcibind_ctx *`), which the caller must not run concurrently with
/// other calls on the same context.
///
/// # Safety
/// As `with_ctx`, and no other call on `ctx` runs meanwhile.
pub(crate) unsafe fn with_ctx_mut(
    ctx: *mut pcibind_ctx,
    f: impl FnOnce(&mut Context) -> Result<()>,
) -> c_int {
    match unsafe { ctx.as_mut() } {
        Some(ctx) => {
            let (rc, panicked) = guarded_catching(|| f(&mut ctx.inner));
            if panicked {
                ctx.inner.forget_caches();
            }
            rc
        }
        None => guarded(|| Err(null("ctx"))),
    }
}

pub(crate) fn null(what: &str) -> Error {
    Error::InvalidArg(format!("{what} is NULL"))
}

pub(crate) fn check_flags(flags: c_uint, allowed: c_uint) -> Result<()> {
    if flags & !allowed != 0 {
        return Err(Error::InvalidArg(format!(
            "unknown flag bits {:#x}",
            flags & !allowed
        )));
    }
    Ok(())
}

/// Sets `*out` to NULL (when `out` itself is not NULL) and returns it for filling on success.
/// Called first thing in every function with an out-pointer.
///
/// # Safety
/// `out` is NULL or points at writable storage for one pointer.
pub(crate) unsafe fn out_init<'a, T>(out: *mut *mut T) -> Option<&'a mut *mut T> {
    let out = unsafe { out.as_mut() }?;
    *out = std::ptr::null_mut();
    Some(out)
}

/// `out_init` for a number result (`int`, `unsigned int`): set to 0 on entry.
///
/// # Safety
/// `out` is NULL or points at a writable `T`.
pub(crate) unsafe fn int_out_init<'a, T: Default>(out: *mut T) -> Option<&'a mut T> {
    let out = unsafe { out.as_mut() }?;
    *out = T::default();
    Some(out)
}

/// The bytes of a string argument; `None` for NULL.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that outlives `'a`.
unsafe fn bytes_arg<'a>(p: *const c_char) -> Option<&'a [u8]> {
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_bytes())
}

/// A required string argument, which must be UTF-8 (every name is ASCII).
///
/// # Safety
/// As `bytes_arg`.
pub(crate) unsafe fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    let bytes = unsafe { bytes_arg(p) }.ok_or_else(|| null(what))?;
    std::str::from_utf8(bytes).map_err(|_| {
        Error::InvalidArg(format!(
            "{what} is not valid UTF-8: {}",
            quote(&String::from_utf8_lossy(bytes))
        ))
    })
}

/// An optional string argument (NULL = `None`).
///
/// # Safety
/// As `bytes_arg`.
pub(crate) unsafe fn opt_str_arg<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    unsafe { str_arg(p, what) }.map(Some)
}

/// A PCI address argument: bytes that are not UTF-8 cannot be an address, and are reported as
/// a malformed address, not as a bad argument.
///
/// # Safety
/// As `bytes_arg`.
pub(crate) unsafe fn address_arg<'a>(p: *const c_char) -> Result<&'a str> {
    let bytes = unsafe { bytes_arg(p) }.ok_or_else(|| null("address"))?;
    std::str::from_utf8(bytes).map_err(|_| Error::InvalidAddress {
        input: quote(&String::from_utf8_lossy(bytes)),
        reason: "not valid UTF-8",
    })
}

/// An optional path argument (NULL = `None`); any bytes but NUL are a valid Linux path.
///
/// # Safety
/// As `bytes_arg`.
pub(crate) unsafe fn path_arg(p: *const c_char) -> Option<PathBuf> {
    unsafe { bytes_arg(p) }.map(|bytes| PathBuf::from(OsStr::from_bytes(bytes)))
}

/// A new context, owned by the caller until `ctx_free`.
pub(crate) fn ctx_into_raw(inner: Context) -> *mut pcibind_ctx {
    Box::into_raw(Box::new(pcibind_ctx { inner }))
}

/// Releases a context from `ctx_into_raw`; NULL is fine. A panic while dropping stays here.
///
/// # Safety
/// `ctx` is NULL or came from `ctx_into_raw` and is released once, with no call running on it.
pub(crate) unsafe fn ctx_free(ctx: *mut pcibind_ctx) {
    if ctx.is_null() {
        return;
    }
    let ctx = unsafe { Box::from_raw(ctx) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(ctx)));
}

/// The log sink that hands each line to a C callback with its userdata.
pub(crate) fn log_sink(
    callback: unsafe extern "C" fn(*mut c_void, c_int, *const c_char),
    userdata: *mut c_void,
) -> Sink {
    // Carried as an integer: the caller vouches that userdata may be used from any thread.
    let userdata = userdata as usize;
    std::sync::Arc::new(move |priority: Priority, message: &str| {
        let message = c_string_lossy(message);
        // SAFETY: the caller gave a callback that accepts its own userdata and a NUL-terminated
        // message valid for the duration of the call.
        unsafe { callback(userdata as *mut c_void, priority as c_int, message.as_ptr()) };
    })
}

/// Releases a string the library returned (malloc'ed); NULL is fine.
///
/// # Safety
/// `s` is NULL or a string the library returned, released once.
pub(crate) unsafe fn free_string(s: *mut c_char) {
    unsafe { libc::free(s as *mut c_void) }
}

/// Releases a NULL-terminated array of strings the library returned, and each string.
///
/// # Safety
/// `v` is NULL or an array the library returned, released once.
pub(crate) unsafe fn free_strv(v: *mut *mut c_char) {
    if v.is_null() {
        return;
    }
    unsafe {
        let mut p = v;
        while !(*p).is_null() {
            libc::free(*p as *mut c_void);
            p = p.add(1);
        }
        libc::free(v as *mut c_void);
    }
}

/// A `malloc`ed copy of `s`, so C callers may release it with `free()`.
pub(crate) fn malloc_string(s: &str) -> Result<*mut c_char> {
    let c = c_string_lossy(s);
    let bytes = c.as_bytes_with_nul();
    // SAFETY: malloc either fails (NULL, handled) or returns bytes.len() writable bytes.
    unsafe {
        let p = libc::malloc(bytes.len()) as *mut c_char;
        if p.is_null() {
            return Err(Error::io(
                "allocating a string",
                "",
                std::io::Error::from_raw_os_error(libc::ENOMEM),
            ));
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr() as *const c_char, p, bytes.len());
        Ok(p)
    }
}

/// Fills several string out-pointers at once, all or none: each slot that is there receives a
/// `malloc`ed copy of its value (NULL for `None`); should one allocation fail, those made are
/// freed and every slot stays NULL.
pub(crate) fn fill_strings<const N: usize>(
    slots: [(Option<&mut *mut c_char>, Option<&str>); N],
) -> Result<()> {
    let mut made: Vec<(&mut *mut c_char, *mut c_char)> = Vec::with_capacity(N);
    for (slot, value) in slots {
        let (Some(slot), Some(value)) = (slot, value) else {
            continue;
        };
        match malloc_string(value) {
            Ok(p) => made.push((slot, p)),
            Err(e) => {
                for (_, p) in made {
                    // SAFETY: allocated above by malloc_string and not handed out.
                    unsafe { free_string(p) };
                }
                return Err(e);
            }
        }
    }
    for (slot, p) in made {
        *slot = p;
    }
    Ok(())
}

/// A `malloc`ed, NULL-terminated array of `malloc`ed copies of `items` as text (addresses,
/// paths), as `pcibind_strv_free()` releases it.
pub(crate) fn malloc_strv<T: std::fmt::Display>(
    items: impl IntoIterator<Item = T>,
) -> Result<*mut *mut c_char> {
    let strings: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    let enomem = || {
        Error::io(
            "allocating a string array",
            "",
            std::io::Error::from_raw_os_error(libc::ENOMEM),
        )
    };
    // SAFETY: the array has room for every pointer plus the NULL terminator; on any failure
    // everything allocated so far is freed.
    unsafe {
        let v =
            libc::calloc(strings.len() + 1, std::mem::size_of::<*mut c_char>()) as *mut *mut c_char;
        if v.is_null() {
            return Err(enomem());
        }
        for (i, s) in strings.iter().enumerate() {
            match malloc_string(s) {
                Ok(p) => *v.add(i) = p,
                Err(e) => {
                    free_strv(v);
                    return Err(e);
                }
            }
        }
        Ok(v)
    }
}
