//! Network interface names where a PCI address is expected (`pcibind bind eth1`): the PCI
//! function behind the interface, found through `class/net/IF/device`.

use crate::os::sysfs::{valid_ifname, InterfaceDevice};
use crate::types::address::PciAddress;
use crate::types::error::{quote, Error, Result};
use crate::Context;

/// The bus of virtio devices: virtio-net's interface hangs below `virtioN`, which hangs below
/// the PCI function (`BDF/virtioN/net/IF`).
const VIRTIO_BUS: &str = "virtio";
const PCI_BUS: &str = "pci";

/// [`Context::net_interface_device`].
pub(crate) fn net_interface_device(ctx: &Context, name: &str) -> Result<PciAddress> {
    let quoted = quote(name);
    if !valid_ifname(name) {
        return Err(Error::InvalidArg(format!(
            "{quoted} is not a network interface name"
        )));
    }
    let (device, bus) = match ctx.sysfs.net_interface_device(name)? {
        InterfaceDevice::NoInterface => {
            return Err(Error::InvalidArg(format!(
                "no network interface is named {quoted}"
            )))
        }
        InterfaceDevice::Virtual => {
            return Err(Error::InvalidArg(format!(
                "network interface {quoted} has no device (a virtual interface: bridge, \
                 bond, VLAN, tunnel, ...), so no PCI device to act on"
            )))
        }
        InterfaceDevice::Device { name, bus } => (name, bus),
    };
    let found = match bus.as_deref() {
        Some(VIRTIO_BUS) => ctx.sysfs.pci_parent_of(&device)?,
        Some(PCI_BUS) | None => PciAddress::parse(&device)
            .ok()
            .filter(|a| ctx.sysfs.require_device(a).is_ok()),
        Some(_) => None,
    };
    found.ok_or_else(|| {
        Error::InvalidArg(format!(
            "network interface {quoted} is on {} device {}, not on a PCI device",
            bus.as_deref().unwrap_or("an unknown bus's"),
            quote(&device)
        ))
    })
}

/// [`Context::pci_net_interfaces`].
pub(crate) fn pci_net_interfaces(ctx: &Context) -> Result<Vec<String>> {
    let mut names = ctx.sysfs.net_interface_names()?;
    names.retain(|name| net_interface_device(ctx, name).is_ok());
    Ok(names)
}

/// [`Context::is_net_interface`].
pub(crate) fn is_net_interface(ctx: &Context, name: &str) -> bool {
    valid_ifname(name)
        && !matches!(
            ctx.sysfs.net_interface_device(name),
            Ok(InterfaceDevice::NoInterface)
        )
}
