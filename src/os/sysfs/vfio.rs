//! A device's `vfio-dev/`: present when it is bound to a VFIO driver (kernel 6.1 or later),
//! naming its VFIO character device.

use super::{AbsentMeans, Sysfs};
use crate::types::address::PciAddress;
use crate::types::error::Result;

impl Sysfs {
    /// True when the device has `vfio-dev/` (bound to a VFIO driver, kernel 6.1 or later).
    pub fn has_vfio_dev(&self, address: &PciAddress) -> bool {
        self.tree.is_dir(&self.device_dir(address).join("vfio-dev"))
    }

    /// The entries of the device's `vfio-dev/` (`vfio0`: its VFIO character device's name), in
    /// name order; empty when it has none.
    pub fn vfio_dev_names(&self, address: &PciAddress) -> Result<Vec<String>> {
        let dir = self.device_dir(address).join("vfio-dev");
        let mut names = self
            .list_dir(&dir, "listing the device's vfio-dev")
            .absent_means(Vec::new())?;
        names.retain(|n| {
            n.strip_prefix("vfio")
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        });
        names.sort();
        Ok(names)
    }
}
