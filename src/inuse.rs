//! Is a device in use on the host? (SPEC 3.3 step 5): a network interface of it that is up with
//! an address or route, or a block device of it that is mounted, used as swap, or held by
//! another block device (device-mapper, md). Reads the device's sysfs entries and the proc
//! files under the configured proc root (`/proc` normally; a fake tree's in tests).

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::address::PciAddress;
use crate::error::Result;
use crate::sysfs::Sysfs;

const IFF_UP: u32 = 0x1;
/// `if_inet6` scope of link-local addresses, which every interface that is up has.
const SCOPE_LINK: u32 = 0x20;

/// Lines of a proc file; a missing or unreadable file reads as empty (a fake tree may not have
/// every file; the real /proc always does).
fn proc_lines(proc_root: &Path, rel: &str) -> Vec<String> {
    // Bounded, and non-blocking in case something other than a proc file sits there.
    let mut text = String::new();
    let read = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(proc_root.join(rel))
        .and_then(|f| f.take(MAX_PROC_FILE).read_to_string(&mut text));
    match read {
        Ok(_) => text.lines().map(str::to_owned).collect(),
        Err(_) => Vec::new(),
    }
}

/// Largest proc file read (a mountinfo of tens of thousands of mounts fits).
const MAX_PROC_FILE: u64 = 64 << 20;

/// Why the device is in use, or `None` when it is not.
pub(crate) fn in_use_reason(
    sysfs: &Sysfs,
    proc_root: &Path,
    address: &PciAddress,
) -> Result<Option<String>> {
    let mut reasons = Vec::new();

    let interfaces = sysfs.net_interfaces(address)?;
    if interfaces.iter().any(|(_, flags)| flags & IFF_UP != 0) {
        let routes = proc_lines(proc_root, "net/route");
        let inet6 = proc_lines(proc_root, "net/if_inet6");
        for (name, flags) in &interfaces {
            if flags & IFF_UP == 0 {
                continue;
            }
            // net/route: "Iface Destination Gateway ..." after a header line.
            let v4_routes = routes
                .iter()
                .skip(1)
                .filter(|l| l.split_whitespace().next() == Some(name.as_str()))
                .count();
            // net/if_inet6: "address ifindex prefixlen scope flags ifname".
            let v6_addresses: Vec<&str> = inet6
                .iter()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    let scope = u32::from_str_radix(f.get(3)?, 16).ok()?;
                    (f.get(5) == Some(&name.as_str()) && scope != SCOPE_LINK).then_some(f[0])
                })
                .collect();
            if v4_routes > 0 {
                reasons.push(format!(
                    "network interface {name} is up with {v4_routes} IPv4 route(s)"
                ));
            } else if let Some(addr) = v6_addresses.first() {
                reasons.push(format!(
                    "network interface {name} is up with IPv6 address {addr}"
                ));
            }
        }
    }

    let disks = sysfs.block_devices(address)?;
    if !disks.is_empty() {
        // mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT ..."; swaps: "/dev/NAME type ...".
        let mountinfo = proc_lines(proc_root, "self/mountinfo");
        let swaps = proc_lines(proc_root, "swaps");
        for disk in &disks {
            if let Some(holder) = disk.holders.first() {
                reasons.push(format!("block device {} is held by {holder}", disk.name));
            }
            let mounted = mountinfo.iter().find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (!disk.dev.is_empty() && f.get(2) == Some(&disk.dev.as_str()))
                    .then(|| f[4].to_owned())
            });
            if let Some(mountpoint) = mounted {
                reasons.push(format!(
                    "block device {} is mounted on {mountpoint}",
                    disk.name
                ));
            }
            let swap = format!("/dev/{}", disk.name);
            if swaps
                .iter()
                .skip(1)
                .any(|l| l.split_whitespace().next() == Some(swap.as_str()))
            {
                reasons.push(format!("block device {} is used as swap", disk.name));
            }
        }
    }

    Ok((!reasons.is_empty()).then(|| reasons.join("; ")))
}
