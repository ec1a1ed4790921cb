//! Names of drivers and modules (SPEC 3.1, 3.2): the registered driver a name stands for, whether
//! a name is a driver's or a module's at all, the PCI drivers and modules there are, and the
//! VFIO module best for a device.

use crate::policy::resolve;
use crate::types::address::PciAddress;
use crate::types::error::Result;
use crate::types::log::Priority;
use crate::types::name::{DriverName, ModuleName};
use crate::Context;

/// [`Context::resolve_driver`].
pub(crate) fn resolve_driver(ctx: &Context, name: &str) -> Result<DriverName> {
    let name = DriverName::new(name)?;
    resolve::resolve_driver(
        &ctx.sysfs,
        &ctx.modprobe,
        ctx.modprobe_timeout,
        &ctx.log,
        &name,
    )
}

/// [`Context::names_driver_or_module`].
pub(crate) fn names_driver_or_module(ctx: &Context, name: &str) -> bool {
    let Ok(name) = DriverName::new(name) else {
        return false;
    };
    let dashed = DriverName::new(&name.as_str().replace('_', "-"));
    dashed
        .iter()
        .chain([&name.underscored()])
        .any(|d| ctx.sysfs.driver_exists(d))
        || ctx.sysfs.module_exists(&ModuleName::from(&name))
}

/// [`Context::pci_drivers`].
pub(crate) fn pci_drivers(ctx: &Context) -> Result<Vec<DriverName>> {
    ctx.sysfs.drivers()
}

/// [`Context::pci_modules`].
pub(crate) fn pci_modules(ctx: &Context) -> Vec<ModuleName> {
    match ctx.tables.pci_modules(&ctx.log) {
        Ok(modules) => modules,
        Err(why) => {
            ctx.log.log(
                Priority::Warning,
                format_args!("{why}; no PCI modules listed"),
            );
            Vec::new()
        }
    }
}

/// [`Context::find_vfio_variant`].
pub(crate) fn find_vfio_variant(ctx: &Context, address: &str) -> Result<ModuleName> {
    let address = PciAddress::parse(address)?;
    let modalias = ctx.sysfs.modalias(&address)?;
    Ok(ctx.vfio_variant_for(&address, &modalias))
}
