//! What the tool prints: tables, JSON (written by hand: a few flat objects need no
//! serializer), and the phrases several commands share.

use std::io::Write;

use pcibind::{class_name, DeviceInfo};

/// A plan as the tool prints it.
pub(crate) fn plan_text(plan: pcibind::Plan) -> String {
    format!("plan (nothing changed):\n{plan}")
}

pub(crate) const UNBOUND: &str = "unbound (driver_override none)";

pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub(crate) fn json_opt(s: Option<&str>) -> String {
    s.map_or_else(|| "null".to_owned(), json_str)
}

pub(crate) fn device_json_fields(info: &DeviceInfo) -> String {
    let (vendor, device, class, cname) = match &info.modalias {
        Some(m) => {
            let (b, s, i) = m.class();
            (
                json_str(&format!("{:04x}", m.vendor())),
                json_str(&format!("{:04x}", m.device())),
                json_str(&format!("{b:02x}{s:02x}{i:02x}")),
                json_str(class_name(b, s)),
            )
        }
        None => ("null".into(), "null".into(), "null".into(), "null".into()),
    };
    format!(
        "\"address\": {}, \"vendor\": {vendor}, \"device\": {device}, \"class\": {class}, \
         \"class_name\": {cname}, \"driver\": {}, \"driver_override\": {}, \"iommu_group\": {}, \
         \"vfio_bound\": {}, \"vfio_driver_module\": {}",
        json_str(&info.address.to_string()),
        json_opt(info.driver.as_ref().map(|d| d.as_str())),
        json_opt(info.driver_override.as_deref()),
        info.iommu_group.map_or("null".into(), |g| g.to_string()),
        info.vfio_bound,
        json_opt(info.vfio_module.as_ref().map(|m| m.as_str())),
    )
}

/// A JSON array of already indented items, one a line (`[]` when there are none).
pub(crate) fn print_json_array(out: &mut impl Write, items: &[String]) {
    if items.is_empty() {
        let _ = writeln!(out, "[]");
    } else {
        let _ = writeln!(out, "[\n{}\n]", items.join(",\n"));
    }
}

/// A device's `vendor:device` IDs and class name, `?` without a usable modalias.
pub(crate) fn ids_and_class(info: &DeviceInfo) -> (String, String) {
    match &info.modalias {
        Some(m) => {
            let (b, s, _) = m.class();
            (
                format!("{:04x}:{:04x}", m.vendor(), m.device()),
                class_name(b, s).to_owned(),
            )
        }
        None => ("?".into(), "?".into()),
    }
}

/// Rows under a header, each column as wide as its widest cell.
pub(crate) fn print_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
}
