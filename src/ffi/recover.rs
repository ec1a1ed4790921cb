//! Rolling back interrupted transactions (SPEC 3.12) on request.

use std::ffi::{c_char, c_int, c_uint};

use super::boundary::{self, address_arg, check_flags, out_init, with_ctx};
use super::pcibind_ctx;

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
