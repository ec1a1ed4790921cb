//! The host's names for `pcibind __complete`: its PCI addresses, network interfaces and drivers.

use std::collections::BTreeSet;

use pcibind::Context;

use super::Kind;
use crate::args::Global;

/// `pcibind __complete KIND...`: the values of each kind, one a line, sorted, each once, asked
/// of a context on the tree and tables of the global options; what cannot be read is left out
/// (a completion has nowhere to say why, so nothing is logged).
pub fn values(global: &Global, kinds: &[Kind]) -> Vec<String> {
    let mut ctx = match Context::new(crate::absolute(&global.sysfs_root)) {
        Ok(ctx) => ctx,
        Err(_) => return Vec::new(),
    };
    if ctx
        .set_modules_dir(global.modules_dir.as_deref().map(crate::absolute))
        .is_err()
    {
        return Vec::new();
    }
    let mut out = BTreeSet::new();
    for kind in kinds {
        match kind {
            Kind::Addresses => out.extend(
                ctx.devices()
                    .unwrap_or_default()
                    .iter()
                    .map(|a| a.to_string()),
            ),
            Kind::Interfaces => out.extend(ctx.pci_net_interfaces().unwrap_or_default()),
            Kind::Drivers => out.extend(drivers(&ctx)),
        }
    }
    out.into_iter().collect()
}

/// The registered PCI drivers, `none`, and the modules the tables give PCI aliases to whose
/// driver is not registered (in either spelling: no `vfio_pci` once `vfio-pci` is there).
fn drivers(ctx: &Context) -> Vec<String> {
    let registered: Vec<String> = ctx
        .pci_drivers()
        .unwrap_or_default()
        .iter()
        .map(|d| d.to_string())
        .collect();
    let known: BTreeSet<String> = registered.iter().map(|d| d.replace('-', "_")).collect();
    let mut out = registered;
    out.push(pcibind::NO_DRIVER_OVERRIDE.to_owned());
    out.extend(
        ctx.pci_modules()
            .iter()
            .map(|m| m.to_string())
            .filter(|m| !known.contains(&m.replace('-', "_"))),
    );
    out
}
