//! The device nodes a VMM opens (SPEC 3.9), and where they are looked for (the dev root).

use std::ffi::{c_char, c_int};

use super::boundary::{self, address_arg, null, out_init, path_arg, with_ctx, with_ctx_mut};
use super::pcibind_ctx;

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
