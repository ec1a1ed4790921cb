//! `pcibind show`: one device in detail.

use std::io::{self, Write};

use pcibind::{class_name, Context, Error};

use crate::output::{device_json_fields, json_opt, json_str};

/// What `show` says of a device's transaction record: an interrupted transaction (rolled back
/// by the next command that touches it, or by `pcibind recover`), one running now, or a lock
/// directory that cannot be read; `None` when there is no record.
pub(crate) fn interrupted_line(ctx: &Context, address: &pcibind::PciAddress) -> Option<String> {
    match ctx.interrupted() {
        Err(e) => Some(format!("unknown: {e}")),
        Ok(found) => found.into_iter().find(|i| i.address == *address).map(|i| {
            if i.running {
                format!("running now: {}", i.description)
            } else {
                format!(
                    "interrupted: {} (`pcibind recover` rolls it back)",
                    i.description
                )
            }
        }),
    }
}

pub(crate) fn show(ctx: &Context, address: &str, json: bool) -> Result<(), Error> {
    let info = ctx.device_info(address)?;
    let a = info.address.to_string();
    let members = ctx.iommu_group(&a).ok();
    let viability = members.as_ref().map(|m| pcibind::group::viability(m));
    let in_use = ctx.in_use(&a)?;
    let interrupted = interrupted_line(ctx, &info.address);
    // What a VMM opens (SPEC 3.9): only a device on a VFIO driver has any.
    let nodes: Vec<String> = if info.vfio_bound {
        ctx.vfio_device_nodes(&a)?
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    } else {
        Vec::new()
    };
    let mut out = io::stdout().lock();
    if json {
        let members_json = members.as_ref().map_or("null".into(), |ms| {
            let items: Vec<String> = ms
                .iter()
                .map(|m| {
                    format!(
                        "{{\"address\": {}, \"driver\": {}, \"class\": {}}}",
                        json_str(&m.address.to_string()),
                        json_opt(m.driver.as_ref().map(|d| d.as_str())),
                        json_str(&m.class.to_string())
                    )
                })
                .collect();
            format!("[{}]", items.join(", "))
        });
        let _ = writeln!(
            out,
            "{{{}, \"modalias\": {}, \"iommu_group_members\": {members_json}, \
             \"iommu_group_viable\": {}, \"in_use\": {}, \"in_use_kinds\": [{}], \
             \"vfio_device_nodes\": [{}], \
             \"interrupted_transaction\": {}}}",
            device_json_fields(&info),
            json_opt(info.modalias.as_ref().map(|m| m.as_str())),
            viability
                .as_ref()
                .map_or("null".into(), |v| v.is_none().to_string()),
            json_opt(in_use.as_ref().map(|u| u.reason.as_str())),
            in_use
                .as_ref()
                .map(|u| u.kinds.names())
                .unwrap_or_default()
                .iter()
                .map(|k| json_str(k))
                .collect::<Vec<_>>()
                .join(", "),
            nodes
                .iter()
                .map(|n| json_str(n))
                .collect::<Vec<_>>()
                .join(", "),
            json_opt(interrupted.as_deref()),
        );
        return Ok(());
    }
    let opt = |s: Option<String>, none: &str| s.unwrap_or_else(|| none.to_owned());
    let _ = writeln!(out, "device:          {a}");
    if let Some(m) = &info.modalias {
        let (b, s, i) = m.class();
        let _ = writeln!(
            out,
            "id:              {:04x}:{:04x}",
            m.vendor(),
            m.device()
        );
        let _ = writeln!(
            out,
            "class:           {b:02x}{s:02x}{i:02x} ({})",
            class_name(b, s)
        );
        let _ = writeln!(out, "modalias:        {m}");
    }
    let _ = writeln!(
        out,
        "driver:          {}",
        opt(info.driver.as_ref().map(|d| d.to_string()), "(none)")
    );
    let _ = writeln!(
        out,
        "driver_override: {}",
        opt(info.driver_override.clone(), "(unset)")
    );
    if let Some(line) = &interrupted {
        let _ = writeln!(out, "transaction:     {line}");
    }
    let _ = writeln!(
        out,
        "vfio-bound:      {}",
        if info.vfio_bound { "yes" } else { "no" }
    );
    let _ = writeln!(
        out,
        "vfio driver:     {}",
        opt(
            info.vfio_module.as_ref().map(|m| m.to_string()),
            if info.modalias.as_ref().is_some_and(|m| m.is_bridge()) {
                "(none: a bridge stays on the host)"
            } else {
                "(unknown)"
            }
        )
    );
    match (&members, info.iommu_group) {
        (Some(ms), Some(g)) => {
            let _ = writeln!(out, "iommu group:     {g}");
            for m in ms {
                let _ = writeln!(
                    out,
                    "  {}  {:<16} {}",
                    m.address,
                    m.driver
                        .as_ref()
                        .map_or("(no driver)".into(), |d| d.to_string()),
                    m.class
                );
            }
            let _ = writeln!(
                out,
                "group viable:    {}",
                match viability.flatten() {
                    None => "yes".to_owned(),
                    Some(why) => format!("no ({why})"),
                }
            );
        }
        _ => {
            let _ = writeln!(out, "iommu group:     (none: is the IOMMU enabled?)");
        }
    }
    let _ = writeln!(
        out,
        "in use on host:  {}",
        in_use.map_or("no".to_owned(), |u| format!(
            "yes ({}): {} (bind refuses it without --allow in-use or --force)",
            u.kinds.names().join(", "),
            u.reason
        ))
    );
    if info.vfio_bound {
        let _ = writeln!(
            out,
            "device nodes:    {}",
            if nodes.is_empty() {
                "(none found)".to_owned()
            } else {
                nodes.join(" ")
            }
        );
    }
    Ok(())
}
