//! Read-only questions about devices and their VFIO state (SPEC 3.4, 3.14): a device's driver,
//! is it a VFIO driver, who is in its IOMMU group and can the group be assigned, is the device
//! in use, which processes hold devices on VFIO drivers.

use crate::os::holders::Holder;
use crate::policy::group::{self, GroupMember};
use crate::policy::inuse::{vmm, InUse};
use crate::types::address::PciAddress;
use crate::types::error::Result;
use crate::types::name::DriverName;
use crate::Context;

/// [`Context::current_driver`].
pub(crate) fn current_driver(ctx: &Context, address: &str) -> Result<Option<DriverName>> {
    let address = PciAddress::parse(address)?;
    ctx.sysfs.device_driver(&address)
}

/// [`Context::is_vfio_bound`].
pub(crate) fn is_vfio_bound(ctx: &Context, address: &str) -> Result<bool> {
    let address = PciAddress::parse(address)?;
    Ok(ctx.classifier().vfio_driver_of(&address)?.is_some())
}

/// [`Context::iommu_group`].
pub(crate) fn iommu_group(ctx: &Context, address: &str) -> Result<Vec<GroupMember>> {
    let address = PciAddress::parse(address)?;
    group::members(&ctx.classifier(), &address)
}

/// [`Context::iommu_group_viability`].
pub(crate) fn iommu_group_viability(ctx: &Context, address: &str) -> Result<Option<String>> {
    Ok(group::viability(&iommu_group(ctx, address)?))
}

/// [`Context::in_use`].
pub(crate) fn in_use(ctx: &Context, address: &str) -> Result<Option<InUse>> {
    let address = PciAddress::parse(address)?;
    ctx.sysfs.require_device(&address)?;
    let driver = ctx.sysfs.device_driver(&address)?;
    let host = driver.is_none() || ctx.classifier().on_host_driver(&address, driver.as_ref());
    ctx.safety().in_use_now(&address, driver.as_ref(), host)
}

/// [`Context::vmm_holders`].
pub(crate) fn vmm_holders(
    ctx: &Context,
    addresses: &[PciAddress],
) -> Result<Vec<(PciAddress, Vec<Holder>)>> {
    vmm::vmm_holders(&ctx.classifier(), &ctx.proc_root, &ctx.dev_root, addresses)
}
