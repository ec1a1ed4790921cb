//! The calls that take no context: releasing what the library returned, the result codes'
//! texts, the thread's last error, and the library's version.

use std::ffi::{c_char, c_int};

use super::{boundary, codes};

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
