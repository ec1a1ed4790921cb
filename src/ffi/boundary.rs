//! The panic boundary, the thread-local last error, and the argument helpers every exported
//! function goes through, so that NULL checks and pointer casts live here and nowhere else.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_uint, CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use super::{code_of, pcibind_ctx, pcibind_error};
use crate::error::{Error, Result};
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
/// `PCIBIND_ERR_INTERNAL` that also poisons the context (if any), so it refuses further calls.
pub(crate) fn guarded(poison: Option<&AtomicBool>, f: impl FnOnce() -> Result<()>) -> c_int {
    clear_last_error();
    if poison.is_some_and(|p| p.load(Ordering::Acquire)) {
        return fail(Error::Internal(
            "this context caught a panic earlier and refuses further calls; free it".into(),
        ));
    }
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => pcibind_error::PCIBIND_OK as c_int,
        Ok(Err(e)) => fail(e),
        Err(payload) => {
            if let Some(p) = poison {
                p.store(true, Ordering::Release);
            }
            fail(Error::Internal(format!(
                "caught a panic: {}; the context refuses further calls",
                panic_message(&*payload)
            )))
        }
    }
}

fn fail(err: Error) -> c_int {
    set_last_error(&err);
    code_of(&err)
}

/// `guarded` for operations on a context (`const pcibind_ctx *`).
pub(crate) fn with_ctx(ctx: *const pcibind_ctx, f: impl FnOnce(&Context) -> Result<()>) -> c_int {
    // SAFETY: a non-NULL ctx comes from pcibind_ctx_new and is not yet freed (the C contract).
    match unsafe { ctx.as_ref() } {
        Some(ctx) => guarded(Some(&ctx.poisoned), || f(&ctx.inner)),
        None => guarded(None, || Err(null("ctx"))),
    }
}

/// `guarded` for the setters (`pcibind_ctx *`), which the caller must not run concurrently with
/// other calls on the same context.
pub(crate) fn with_ctx_mut(
    ctx: *mut pcibind_ctx,
    f: impl FnOnce(&mut Context) -> Result<()>,
) -> c_int {
    // SAFETY: as in with_ctx; the caller holds the only reference during a setter call.
    match unsafe { ctx.as_mut() } {
        Some(ctx) => {
            let poisoned = &ctx.poisoned;
            let inner = &mut ctx.inner;
            guarded(Some(poisoned), || f(inner))
        }
        None => guarded(None, || Err(null("ctx"))),
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
pub(crate) fn out_init<'a, T>(out: *mut *mut T) -> Option<&'a mut *mut T> {
    // SAFETY: a non-NULL out-pointer points at writable storage for one pointer (the C contract).
    let out = unsafe { out.as_mut() }?;
    *out = std::ptr::null_mut();
    Some(out)
}

/// A required string argument, which must be UTF-8 (every name and address is ASCII).
pub(crate) fn str_arg<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(null(what));
    }
    // SAFETY: a non-NULL string argument is NUL-terminated (the C contract).
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    std::str::from_utf8(bytes).map_err(|_| {
        Error::InvalidArg(format!(
            "{what} is not valid UTF-8: {:?}",
            String::from_utf8_lossy(bytes)
        ))
    })
}

/// An optional path argument (NULL = `None`); any bytes but NUL are a valid Linux path.
pub(crate) fn path_arg(p: *const c_char) -> Option<PathBuf> {
    if p.is_null() {
        return None;
    }
    // SAFETY: as in str_arg.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    Some(PathBuf::from(OsStr::from_bytes(bytes)))
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

/// A `malloc`ed, NULL-terminated array of `malloc`ed copies of `strings`, as
/// `pcibind_strv_free()` releases it.
pub(crate) fn malloc_strv(strings: &[String]) -> Result<*mut *mut c_char> {
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
                    super::pcibind_strv_free(v);
                    return Err(e);
                }
            }
        }
        Ok(v)
    }
}
