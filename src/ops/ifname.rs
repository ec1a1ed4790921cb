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

impl Context {
    /// The PCI function behind network interface `name`: the device its `device` link names,
    /// or for virtio-net, whose link names the virtio device `virtioN`, the PCI function that
    /// device sits on (binding moves that function, and the interface goes with it, as
    /// dpdk-devbind does it). A malformed name, an interface that does not exist, has no
    /// device (a bridge, a bond, a VLAN) or whose device is on another bus (USB) is
    /// [`Error::InvalidArg`], saying which.
    pub fn net_interface_device(&self, name: &str) -> Result<PciAddress> {
        let quoted = quote(name);
        if !valid_ifname(name) {
            return Err(Error::InvalidArg(format!(
                "{quoted} is not a network interface name"
            )));
        }
        let (device, bus) = match self.sysfs.net_interface_device(name)? {
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
            Some(VIRTIO_BUS) => self.sysfs.pci_parent_of(&device)?,
            Some(PCI_BUS) | None => PciAddress::parse(&device)
                .ok()
                .filter(|a| self.sysfs.require_device(a).is_ok()),
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

    /// The names of the network interfaces (`class/net/`) that stand for a PCI device, those
    /// [`Context::net_interface_device`] answers for, in name order; virtual interfaces and
    /// those of other buses are left out. E.g. for offering interface names in the tool's
    /// shell completions.
    pub fn pci_net_interfaces(&self) -> Result<Vec<String>> {
        let mut names = self.sysfs.net_interface_names()?;
        names.retain(|name| self.net_interface_device(name).is_ok());
        Ok(names)
    }

    /// True when a network interface of that name exists (whatever its device).
    pub fn is_net_interface(&self, name: &str) -> bool {
        valid_ifname(name)
            && !matches!(
                self.sysfs.net_interface_device(name),
                Ok(InterfaceDevice::NoInterface)
            )
    }
}
