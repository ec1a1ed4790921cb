//! Display: framebuffers below the device, and the firmware's boot framebuffer inside its BARs.

use std::path::Path;

use super::DeviceSubtree;
use super::{could_not_read, unread_of};
use crate::os::procfs;
use crate::os::sysfs::{AbsentMeans, Sysfs};
use crate::types::address::PciAddress;
use crate::types::error::Result;

/// A framebuffer below the device (`graphics/fbN`): the console may be drawn on it.
pub(super) fn framebuffers(tree: &DeviceSubtree) -> Vec<String> {
    tree.framebuffers
        .iter()
        .map(|fb| format!("it drives framebuffer {fb}, which the console may be using"))
        .collect()
}

/// The `/proc/iomem` names of the firmware's boot framebuffer and of the drivers that draw the
/// console on it before (or instead of) the GPU's own driver: the x86 sysfb platform device
/// (`BOOTFB`), efifb, vesafb, simplefb's `simple-framebuffer` and simpledrm.
const BOOT_FRAMEBUFFERS: [&str; 5] = [
    "BOOTFB",
    "efifb",
    "simple-framebuffer",
    "vesafb",
    "simpledrm",
];

/// IORESOURCE_MEM in a `resource` line's flags.
const IORESOURCE_MEM: u64 = 0x200;

/// One line of `/proc/iomem`: "  START-END : NAME", two spaces of indent per level of nesting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct IomemEntry {
    depth: usize,
    start: u64,
    end: u64,
    pub(super) name: String,
    /// Index of the entry it is nested in.
    pub(super) parent: Option<usize>,
}

/// `/proc/iomem`, odd lines skipped.
pub(super) fn parse_iomem(lines: &[String]) -> Vec<IomemEntry> {
    let mut out: Vec<IomemEntry> = Vec::new();
    for line in lines {
        let depth = line.len() - line.trim_start_matches(' ').len();
        let Some((range, name)) = line.trim_start().split_once(" : ") else {
            continue;
        };
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        else {
            continue;
        };
        // The nearest entry above with less indent holds this one.
        let parent = out.iter().rposition(|e| e.depth < depth);
        out.push(IomemEntry {
            depth,
            start,
            end,
            name: name.trim_end().to_owned(),
            parent,
        });
    }
    out
}

/// The ranges (start, end) of the device's memory BARs and windows from its `resource`
/// file ("START END FLAGS" per line); unassigned ones (all zero) left out.
fn memory_ranges(resource: &str) -> Vec<(u64, u64)> {
    resource
        .lines()
        .filter_map(|l| {
            let mut f = l
                .split_whitespace()
                .map(|x| u64::from_str_radix(x.trim_start_matches("0x"), 16).ok());
            let (start, end, flags) = (f.next()??, f.next()??, f.next()??);
            (flags & IORESOURCE_MEM != 0 && end > start).then_some((start, end))
        })
        .collect()
}

/// The firmware's boot framebuffer inside one of the device's BARs (SPEC 1, "Display"): efifb,
/// vesafb or simpledrm draw the console there through a platform device, so nothing of it is
/// below the GPU in sysfs; `/proc/iomem` shows the range, nested in the BAR.
///
/// A reader without CAP_SYS_ADMIN sees every `/proc/iomem` address as zero: then an entry is
/// placed by its nesting alone (inside the range named by the device's address), ranges are
/// never compared (zero against zero would match everything), and a boot framebuffer that
/// is nested in no PCI device's range refuses every display controller with a memory BAR,
/// saying the addresses could not be read.
pub(super) fn boot_framebuffer(
    sysfs: &Sysfs,
    proc_root: &Path,
    address: &PciAddress,
) -> Result<Vec<String>> {
    let lines = match procfs::lines(proc_root, "iomem") {
        Ok(lines) => lines,
        Err(e) => return Ok(vec![could_not_read(&unread_of(e)?)]),
    };
    let iomem = parse_iomem(&lines);
    let boot_fbs: Vec<&IomemEntry> = iomem
        .iter()
        .filter(|e| BOOT_FRAMEBUFFERS.contains(&e.name.as_str()))
        .collect();
    if boot_fbs.is_empty() {
        return Ok(Vec::new());
    }
    let ancestors = |entry: &IomemEntry| {
        std::iter::successors(entry.parent, |&i| iomem[i].parent).map(|i| &iomem[i])
    };
    let ours = address.to_string();
    let hidden = iomem.iter().all(|e| e.start == 0 && e.end == 0);
    let resource = match sysfs
        .device_attr(address, "resource")
        .absent_means(String::new())
    {
        Ok(text) => text,
        Err(e) => return Ok(vec![could_not_read(&unread_of(e)?)]),
    };
    let bars = memory_ranges(&resource);
    let mut reasons = Vec::new();
    for fb in boot_fbs {
        let nested_in_ours = ancestors(fb).any(|a| a.name == ours);
        let in_a_bar = !hidden
            && bars
                .iter()
                .any(|&(start, end)| fb.start <= end && start <= fb.end);
        if nested_in_ours || in_a_bar {
            let range = if hidden {
                String::new()
            } else {
                format!(" at {:x}-{:x}", fb.start, fb.end)
            };
            reasons.push(format!(
                "its BAR holds the firmware's boot framebuffer ({}{range} in {}), which efifb, \
                 vesafb or simpledrm may be drawing the console on",
                fb.name,
                proc_root.join("iomem").display()
            ));
            continue;
        }
        let placed = ancestors(fb).any(|a| PciAddress::parse(&a.name).is_ok());
        if hidden && !placed && !bars.is_empty() && is_display(sysfs, address) {
            reasons.push(could_not_read(&format!(
                "where the firmware's boot framebuffer ({}) lies: {} shows this process no \
                 addresses (reading them needs CAP_SYS_ADMIN)",
                fb.name,
                proc_root.join("iomem").display()
            )));
        }
    }
    reasons.dedup();
    Ok(reasons)
}

/// True for a display controller (PCI base class 0x03), the only kind a boot framebuffer lives
/// in; false when its class cannot be read.
fn is_display(sysfs: &Sysfs, address: &PciAddress) -> bool {
    sysfs
        .device_attr(address, "class")
        .ok()
        .and_then(|c| u32::from_str_radix(c.trim().trim_start_matches("0x"), 16).ok())
        .is_some_and(|class| class >> 16 == 0x03)
}
