//! The device nodes a VMM opens after a bind (SPEC 3.9): the legacy VFIO container and group,
//! and, on kernels with the VFIO character device (6.6+), the iommufd pair.

use std::path::PathBuf;

use crate::os::files;
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::Context;

/// [`Context::vfio_device_nodes`].
pub(crate) fn vfio_device_nodes(ctx: &Context, address: &str) -> Result<Vec<PathBuf>> {
    let address = PciAddress::parse(address)?;
    if ctx.classifier().vfio_driver_of(&address)?.is_none() {
        return Err(Error::Unsupported {
            address,
            detail: "not on a VFIO driver, so it has no VFIO device nodes".into(),
        });
    }
    let dev = &ctx.dev_root;
    let exists = |p: &PathBuf| files::exists(p);
    let mut nodes = Vec::new();
    let container = dev.join("vfio/vfio");
    if exists(&container) {
        nodes.push(container);
    }
    if let Some(group) = ctx.sysfs.iommu_group(&address)? {
        let found = [
            dev.join(format!("vfio/{group}")),
            dev.join(format!("vfio/noiommu-{group}")),
        ]
        .into_iter()
        .find(exists);
        nodes.extend(found);
    }
    let iommu = dev.join("iommu");
    if let Some(name) = ctx.sysfs.vfio_dev_names(&address)?.first() {
        let cdev = dev.join("vfio/devices").join(name);
        if exists(&iommu) && exists(&cdev) {
            nodes.push(iommu);
            nodes.push(cdev);
        }
    }
    Ok(nodes)
}
