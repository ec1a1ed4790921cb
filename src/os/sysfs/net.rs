//! Network interfaces by name (`class/net/`): which exist, and which device each belongs to.
//! What the in-use checks read of an interface is `policy/inuse/network.rs`'s.

use super::{AbsentMeans, Sysfs};
use crate::types::address::PciAddress;
use crate::types::error::Result;

/// What a network interface's `device` link leads to (`Sysfs::net_interface_device`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InterfaceDevice {
    NoInterface,
    /// An interface with no `device` link.
    Virtual,
    /// `name` is the device's directory name; `bus` what its `subsystem` link names.
    Device {
        name: String,
        bus: Option<String>,
    },
}

/// `IFNAMSIZ`: interface names are shorter.
const IFNAMSIZ: usize = 16;

/// True for a name the kernel accepts for a network interface (`dev_valid_name`), which is
/// then also a safe path component.
pub(crate) fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < IFNAMSIZ
        && name != "."
        && name != ".."
        && !name.contains(['/', ':'])
        && !name.chars().any(char::is_whitespace)
}

impl Sysfs {
    /// The names of every network interface (`class/net/`), in name order; names the kernel
    /// would not give an interface are skipped.
    pub fn net_interface_names(&self) -> Result<Vec<String>> {
        let dir = self.root.join("class/net");
        let mut names = self
            .list_dir(&dir, "listing network interfaces")
            .absent_means(Vec::new())?;
        names.retain(|n| valid_ifname(n));
        names.sort();
        Ok(names)
    }

    /// Where network interface `name`'s `device` link leads: the device's name and the bus
    /// its `subsystem` link names. `Ok(None)` when the interface exists without a `device`
    /// link (a virtual one: bridge, bond, VLAN, loopback); `NoInterface` when there is none.
    pub fn net_interface_device(&self, name: &str) -> Result<InterfaceDevice> {
        let dir = self.root.join("class/net").join(name);
        if !valid_ifname(name) || !self.tree.is_dir(&dir) {
            return Ok(InterfaceDevice::NoInterface);
        }
        let link = dir.join("device");
        let Some(device) = self.link_basename(&link, "reading an interface's device link")? else {
            return Ok(InterfaceDevice::Virtual);
        };
        let bus = self.link_basename(&link.join("subsystem"), "reading a device's bus")?;
        Ok(InterfaceDevice::Device { name: device, bus })
    }

    /// The PCI device that `child` (a device directory's name, such as `virtio0`) sits
    /// directly below, if any.
    pub fn pci_parent_of(&self, child: &str) -> Result<Option<PciAddress>> {
        if !valid_ifname(child) {
            return Ok(None);
        }
        Ok(self
            .devices()?
            .into_iter()
            .find(|a| self.tree.is_dir(&self.device_dir(a).join(child))))
    }
}
