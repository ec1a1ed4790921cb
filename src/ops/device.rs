//! What a device is and where it stands, for listings (the command-line tool's `list` and
//! `show`): one read-only look at each fact, through `sysfs`.

use crate::types::address::PciAddress;
use crate::types::error::Result;
use crate::types::modalias::Modalias;
use crate::types::name::{DriverName, ModuleName};
use crate::Context;

/// One device's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub address: PciAddress,
    /// `None` when the device's `modalias` is missing or malformed.
    pub modalias: Option<Modalias>,
    pub driver: Option<DriverName>,
    pub driver_override: Option<String>,
    pub iommu_group: Option<u32>,
    pub vfio_bound: bool,
    /// The module of the best VFIO driver for it; `None` without a usable modalias, and for a
    /// bridge, which no group move moves (`Modalias::is_bridge`).
    pub vfio_module: Option<ModuleName>,
}

/// [`Context::devices`].
pub(crate) fn devices(ctx: &Context) -> Result<Vec<PciAddress>> {
    ctx.sysfs.devices()
}

/// [`Context::device_info`].
pub(crate) fn device_info(ctx: &Context, address: &str) -> Result<DeviceInfo> {
    let address = PciAddress::parse(address)?;
    ctx.sysfs.require_device(&address)?;
    let modalias = ctx.sysfs.modalias(&address).ok();
    let driver = ctx.sysfs.device_driver(&address)?;
    let vfio_bound = ctx.classifier().on_vfio_driver(&address, driver.as_ref());
    Ok(DeviceInfo {
        vfio_module: modalias
            .as_ref()
            .filter(|m| !m.is_bridge())
            .map(|m| ctx.vfio_variant_for(&address, m)),
        modalias,
        driver,
        driver_override: ctx.sysfs.driver_override(&address)?,
        iommu_group: ctx.sysfs.iommu_group(&address).unwrap_or(None),
        vfio_bound,
        address,
    })
}

/// A short name for a PCI class (base class, subclass).
pub fn class_name(base: u8, sub: u8) -> &'static str {
    match (base, sub) {
        (0x01, 0x06) => "SATA controller",
        (0x01, 0x08) => "NVMe controller",
        (0x01, _) => "storage controller",
        (0x02, 0x00) => "Ethernet controller",
        (0x02, _) => "network controller",
        (0x03, 0x00) => "VGA controller",
        (0x03, 0x02) => "3D controller",
        (0x03, _) => "display controller",
        (0x04, 0x03) => "audio device",
        (0x04, _) => "multimedia controller",
        (0x05, _) => "memory controller",
        (0x06, 0x00) => "host bridge",
        (0x06, 0x01) => "ISA bridge",
        (0x06, 0x04) => "PCI bridge",
        (0x06, _) => "bridge",
        (0x07, _) => "communication controller",
        (0x08, _) => "system peripheral",
        (0x09, _) => "input device",
        (0x0b, _) => "processor",
        (0x0c, 0x03) => "USB controller",
        (0x0c, 0x05) => "SMBus",
        (0x0c, _) => "serial bus controller",
        (0x0d, _) => "wireless controller",
        (0x10, _) => "encryption controller",
        (0x11, _) => "signal processing controller",
        (0x12, _) => "processing accelerator",
        (0xff, _) => "unassigned class",
        _ => "other",
    }
}
