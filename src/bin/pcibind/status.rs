//! `pcibind status`: every device grouped by where it is, as dpdk-devbind's `--status` groups
//! them (on a VFIO driver, on a host driver, on no driver), each with its IOMMU group and
//! whether that group is viable, which is what decides if a guest can have the device: no
//! member on a host driver (bridges on `pcieport` and devices on `pci-stub` or on no driver do
//! not count; SPEC 3.4's classes, from `Context::iommu_group`).

use std::collections::hash_map::{Entry, HashMap};
use std::io::{self, Write};

use pcibind::{Context, DeviceInfo, Error, GroupMember, Holder, MemberClass};

/// A group of the listing: its JSON key, its text heading, and who belongs there.
type Section = (&'static str, &'static str, fn(&DeviceInfo) -> bool);

/// The groups, in the order shown.
const SECTIONS: [Section; 3] = [
    ("vfio", "Devices on a VFIO driver", |i| i.vfio_bound),
    ("host", "Devices on a host driver", |i| {
        i.driver.is_some() && !i.vfio_bound
    }),
    ("none", "Devices on no driver", |i| i.driver.is_none()),
];

/// One device and its IOMMU group's members on host drivers (`None` without a group): the
/// group is viable when there are none.
struct Listed {
    info: DeviceInfo,
    blocking: Option<Vec<GroupMember>>,
    /// The processes holding a device on a VFIO driver (a running VM); `None` for the others.
    vmm: Option<Vec<Holder>>,
}

impl Listed {
    fn line(&self) -> String {
        let (ids, class) = crate::output::ids_and_class(&self.info);
        let driver = self
            .info
            .driver
            .as_ref()
            .map_or_else(|| "-".to_owned(), |d| d.to_string());
        let group = match (self.info.iommu_group, &self.blocking) {
            (Some(g), Some(blocking)) if blocking.is_empty() => format!("iommu_group={g} viable"),
            (Some(g), Some(blocking)) => {
                let names: Vec<String> = blocking
                    .iter()
                    .map(|m| match &m.driver {
                        Some(d) => format!("{} on {d}", m.address),
                        None => m.address.to_string(),
                    })
                    .collect();
                format!("iommu_group={g} not viable: {}", names.join(", "))
            }
            _ => "no IOMMU group".to_owned(),
        };
        let held = match self.vmm.as_deref() {
            Some(holders) if !holders.is_empty() => {
                let who: Vec<String> = holders
                    .iter()
                    .map(|h| format!("{} ({})", h.pid, h.command))
                    .collect();
                format!(" held by process {}", who.join(", "))
            }
            _ => String::new(),
        };
        format!(
            "{} {ids} '{class}' drv={driver} {group}{held}",
            self.info.address
        )
    }

    fn json(&self) -> String {
        let (viable, blocking) = match &self.blocking {
            None => ("null".to_owned(), "null".to_owned()),
            Some(blocking) => {
                let items: Vec<String> = blocking
                    .iter()
                    .map(|m| crate::output::json_str(&m.address.to_string()))
                    .collect();
                (
                    blocking.is_empty().to_string(),
                    format!("[{}]", items.join(", ")),
                )
            }
        };
        let vmm = match &self.vmm {
            None => "null".to_owned(),
            Some(holders) => {
                let items: Vec<String> = holders
                    .iter()
                    .map(|h| {
                        format!(
                            "{{\"pid\": {}, \"command\": {}}}",
                            h.pid,
                            crate::output::json_str(&h.command)
                        )
                    })
                    .collect();
                format!("[{}]", items.join(", "))
            }
        };
        format!(
            "{{{}, \"iommu_group_viable\": {viable}, \"iommu_group_blocking\": {blocking}, \
             \"vmm_holders\": {vmm}}}",
            crate::output::device_json_fields(&self.info),
        )
    }
}

pub fn status(ctx: &Context, json: bool) -> Result<(), Error> {
    // A group is read once, for its first member listed.
    let mut groups: HashMap<u32, Vec<GroupMember>> = HashMap::new();
    let mut entries = Vec::new();
    for address in ctx.devices()? {
        let info = ctx.device_info(&address.to_string())?;
        let blocking = match info.iommu_group {
            Some(g) => {
                let members = match groups.entry(g) {
                    Entry::Occupied(e) => e.into_mut(),
                    Entry::Vacant(e) => e.insert(ctx.iommu_group(&address.to_string())?),
                };
                Some(
                    members
                        .iter()
                        .filter(|m| m.class == MemberClass::Blocking)
                        .cloned()
                        .collect(),
                )
            }
            None => None,
        };
        entries.push(Listed {
            info,
            blocking,
            vmm: None,
        });
    }
    // Who holds the devices on VFIO drivers: one look at every process for all of them.
    let on_vfio: Vec<_> = entries
        .iter()
        .filter(|e| e.info.vfio_bound)
        .map(|e| e.info.address)
        .collect();
    if !on_vfio.is_empty() {
        for (address, holders) in ctx.vmm_holders(&on_vfio)? {
            if let Some(e) = entries.iter_mut().find(|e| e.info.address == address) {
                e.vmm = Some(holders);
            }
        }
    }
    // Transactions whose caller died (SPEC 3.12), and those running now.
    let interrupted = ctx.interrupted();
    let mut out = io::stdout().lock();
    let sections = SECTIONS.iter().map(|(key, heading, belongs)| {
        let members: Vec<&Listed> = entries.iter().filter(|e| belongs(&e.info)).collect();
        (key, heading, members)
    });
    if json {
        let parts: Vec<String> = sections
            .map(|(key, _, members)| {
                let items: Vec<String> = members
                    .iter()
                    .map(|e| format!("    {}", e.json()))
                    .collect();
                if items.is_empty() {
                    format!("  \"{key}\": []")
                } else {
                    format!("  \"{key}\": [\n{}\n  ]", items.join(",\n"))
                }
            })
            .collect();
        let records = match &interrupted {
            Err(_) => "null".to_owned(),
            Ok(found) => {
                let items: Vec<String> = found
                    .iter()
                    .map(|i| {
                        format!(
                            "{{\"address\": {}, \"transaction\": {}, \"running\": {}}}",
                            crate::output::json_str(&i.address.to_string()),
                            crate::output::json_str(&i.description),
                            i.running
                        )
                    })
                    .collect();
                format!("[{}]", items.join(", "))
            }
        };
        let _ = writeln!(
            out,
            "{{\n{},\n  \"interrupted\": {records}\n}}",
            parts.join(",\n")
        );
        return Ok(());
    }
    for (i, (_, heading, members)) in sections.enumerate() {
        if i > 0 {
            let _ = writeln!(out);
        }
        let _ = writeln!(out, "{heading}\n{}", "=".repeat(heading.len()));
        if members.is_empty() {
            let _ = writeln!(out, "(none)");
        }
        for e in members {
            let _ = writeln!(out, "{}", e.line());
        }
    }
    match interrupted {
        Ok(found) if found.is_empty() => {}
        Ok(found) => {
            let heading = "Interrupted transactions (`pcibind recover` rolls them back)";
            let _ = writeln!(out, "\n{heading}\n{}", "=".repeat(heading.len()));
            for i in found {
                let state = if i.running {
                    "running now"
                } else {
                    "interrupted"
                };
                let _ = writeln!(out, "{} {state}: {}", i.address, i.description);
            }
        }
        Err(e) => {
            let _ = writeln!(out, "\n(interrupted transactions unknown: {e})");
        }
    }
    Ok(())
}
