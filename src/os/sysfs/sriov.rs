//! SR-IOV: a PF's VF count (read and written, also within a time limit), its
//! `sriov_drivers_autoprobe`, and its VFs.

use std::fs::File;
use std::time::Duration;

use super::{AbsentMeans, Sysfs};
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};

impl Sysfs {
    /// The number of enabled SR-IOV virtual functions (0 for a device that is no PF).
    pub fn sriov_numvfs(&self, address: &PciAddress) -> Result<u32> {
        Ok(self.sriov_count(address, "sriov_numvfs")?.unwrap_or(0))
    }

    /// The PF's `sriov_totalvfs`; `None` when the device has none (no SR-IOV, or a VF).
    pub fn sriov_totalvfs(&self, address: &PciAddress) -> Result<Option<u32>> {
        self.sriov_count(address, "sriov_totalvfs")
    }

    /// A count attribute of an SR-IOV PF; `None` when the device has none.
    fn sriov_count(&self, address: &PciAddress, name: &'static str) -> Result<Option<u32>> {
        let Some(text) = self
            .device_attr(address, name)
            .map(Some)
            .absent_means(None)?
        else {
            return Ok(None);
        };
        text.trim().parse().map(Some).map_err(|_| Error::Malformed {
            path: self.device_dir(address).join(name),
            detail: format!("{:?} is not a number", text.trim()),
        })
    }

    /// Writes the PF's `sriov_numvfs` (the kernel creates or removes the VFs before answering).
    pub fn set_sriov_numvfs(&self, address: &PciAddress, numvfs: u32) -> Result<()> {
        let path = self.device_dir(address).join("sriov_numvfs");
        self.write_kernel_file(path, numvfs.to_string().as_bytes(), "writing sriov_numvfs")
    }

    /// Sets the PF's VF count as [`Sysfs::set_sriov_numvfs`] does, waiting at most `limit` as
    /// [`Sysfs::unbind_within`] does: removing a VF that a VMM holds waits for it to let go.
    pub fn set_sriov_numvfs_within(
        &self,
        address: &PciAddress,
        numvfs: u32,
        limit: Duration,
        keep: &[&File],
    ) -> Result<bool> {
        let path = self.device_dir(address).join("sriov_numvfs");
        self.write_within(
            path,
            numvfs.to_string(),
            limit,
            keep,
            "writing sriov_numvfs",
        )
    }

    /// The PF's `sriov_drivers_autoprobe`: whether drivers may probe its VFs (at every probe of
    /// a VF that has no `driver_override`).
    pub fn sriov_drivers_autoprobe(&self, address: &PciAddress) -> Result<bool> {
        let text = self.device_attr(address, "sriov_drivers_autoprobe")?;
        match text.trim() {
            "0" => Ok(false),
            "1" => Ok(true),
            other => Err(Error::Malformed {
                path: self.device_dir(address).join("sriov_drivers_autoprobe"),
                detail: format!("{other:?} is not 0 or 1"),
            }),
        }
    }

    pub fn set_sriov_drivers_autoprobe(&self, address: &PciAddress, on: bool) -> Result<()> {
        let path = self.device_dir(address).join("sriov_drivers_autoprobe");
        let value: &[u8] = if on { b"1" } else { b"0" };
        self.write_kernel_file(path, value, "writing sriov_drivers_autoprobe")
    }

    /// The PF's VFs, from its `virtfnN` links, in N order. Links whose target is no PCI
    /// address are skipped.
    pub fn sriov_virtfns(&self, address: &PciAddress) -> Result<Vec<PciAddress>> {
        let dir = self.require_device(address)?;
        let mut links: Vec<(u32, String)> = self
            .list_dir(&dir, "listing the PF's virtfn links")?
            .into_iter()
            .filter_map(|n| {
                let index = n.strip_prefix("virtfn")?;
                if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Some((index.parse().ok()?, n))
            })
            .collect();
        links.sort();
        let mut out = Vec::with_capacity(links.len());
        for (_, name) in links {
            if let Some(target) = self.link_basename(&dir.join(&name), "reading a virtfn link")? {
                if let Ok(vf) = PciAddress::parse(&target) {
                    out.push(vf);
                }
            }
        }
        Ok(out)
    }
}
