//! The C API: every exported function, written out literally, in one file per subject (the
//! `mod` declarations below list them). Each one only converts and checks its arguments and
//! forwards to [`crate::Context`]; `boundary` holds the shared machinery (every pointer
//! conversion and NULL check), `codes` the result codes, and this file what several subjects
//! share: the flag enums, the opaque context, the flag sets and the dry run's log.
//!
//! The functions are `unsafe extern "C"`: they take raw pointers, and their safety condition
//! is the C contract the header states (pointers NULL or valid, strings NUL-terminated,
//! contexts live). The module is private: Rust code uses [`crate::Context`].
//!
//! The header lists the functions in the order cbindgen reads them, so a new function goes
//! where the header should have it; `build-aux/check-header.py` (the `header-in-sync` test)
//! fails when the checked-in header differs.

#![allow(non_camel_case_types)]

mod boundary;
mod codes;

// The exported functions by subject. cbindgen writes the functions in the order it reads them,
// this file's items and then these modules as declared, so this order is the header's; a
// comment line between two declarations keeps rustfmt from sorting them.
// Creating a context and its settings:
mod context;
// Driver names: resolve_driver, current_driver, find_vfio_variant:
mod resolve;
// Moving one device: bind, its plans, unbind, reattach, is_vfio_bound:
mod bind;
// IOMMU groups: members, viability, the group moves:
mod group;
// Rolling back interrupted transactions (SPEC 3.12):
mod recover;
// What a manager needs (SPEC 3.14): bind_start, in_use, the caller's module loader:
mod manager;
// The dev root and the VFIO device nodes (SPEC 3.9):
mod nodes;
// SR-IOV virtual functions (SPEC 3.10):
mod sriov;
// The calls without a context: freeing strings, result codes, the last error, the version:
mod strings;

#[cfg(test)]
mod tests;

use std::ffi::c_uint;

use boundary::check_flags;

use crate::Context;

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

/// A dry run's plan, logged at LOG_NOTICE, one message per line (the flag's documented
/// behaviour for every call that takes PCIBIND_BIND_DRY_RUN).
fn log_plan(ctx: &Context, lines: &[String]) {
    for line in lines {
        ctx.logger()
            .log(crate::Priority::Notice, format_args!("dry run: {line}"));
    }
}
