//! Is a device in use on the host? (SPEC 3.3 step 5; the shapes are SPEC 1, "What 'in use on
//! the host' looks like in sysfs".) One small function per shape, each giving the sentences
//! that end up in the refusal: network interfaces anywhere below the device, and the interfaces
//! above them; disks below it that are mounted (by number or by source), btrfs members, swap,
//! held; NVMe namespaces whose last live path is the device; framebuffers.
//!
//! Sysfs is read through `sysfs` only; the proc files under the configured proc root (`/proc`
//! normally; a fake tree's in tests). Proc content is parsed field by field with `get`: an odd
//! line is skipped or read as far as it goes, never a panic.

use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::address::PciAddress;
use crate::error::{Error, Result};
use crate::log::{Logger, Priority};
use crate::sysfs::{
    BlockDevice, BtrfsFilesystem, DeviceSubtree, NetInterface, NetKind, NvmeNamespace, Sysfs,
    UpperLink,
};

#[cfg(test)]
mod tests;

const IFF_UP: u32 = 0x1;
/// `if_inet6` scope of link-local addresses, which every interface that is up has.
const SCOPE_LINK: u32 = 0x20;
/// Largest proc file read (a mountinfo of tens of thousands of mounts fits).
const MAX_PROC_FILE: u64 = 64 << 20;
/// How many interfaces above a NIC are followed (a VLAN on a bond in a bridge is three).
const MAX_UPPER_DEPTH: usize = 8;
/// How many mount points one reason lists before it says how many more there are.
const MAX_MOUNTPOINTS_SHOWN: usize = 4;

/// Why the device is in use, or `None` when it is not. Reasons are sentences joined with
/// "; ". An NVMe controller that is one of several live paths to an in-use namespace is not
/// in use; `log` gets a warning naming the namespace.
pub(crate) fn in_use_reason(
    sysfs: &Sysfs,
    proc_root: &Path,
    log: &Logger,
    address: &PciAddress,
) -> Result<Option<String>> {
    let tree = sysfs.device_subtree(address)?;
    let mut reasons = Vec::new();
    if !tree.interfaces.is_empty() {
        let net = NetTables::read(proc_root)?;
        reasons.extend(network_below(sysfs, &net, &tree.interfaces)?);
    }
    if !tree.disks.is_empty() || !tree.nvme_controllers.is_empty() {
        let storage = Storage::read(sysfs, proc_root)?;
        // Hidden disks (multipath paths) cannot be opened; their namespace's disk is checked
        // by `nvme_multipath`.
        for disk in tree.disks.iter().filter(|d| !d.hidden) {
            reasons.extend(disk_reasons(disk, &storage));
        }
        reasons.extend(nvme_multipath(sysfs, &storage, log, &tree)?);
    }
    reasons.extend(framebuffers(&tree));
    Ok((!reasons.is_empty()).then(|| reasons.join("; ")))
}

// --- proc files ---

/// Lines of a proc file, read whole (bounded) and as lossy UTF-8: one odd byte in a mount
/// point must not make the whole table read as empty. A missing file reads as empty (a fake
/// tree may not have every file; the real /proc always does); any other failure is an error,
/// since "could not look" must not pass for "not in use".
fn proc_lines(proc_root: &Path, rel: &str) -> Result<Vec<String>> {
    let path = proc_root.join(rel);
    let mut bytes = Vec::new();
    // Non-blocking in case something other than a proc file sits there.
    let read = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .and_then(|f| f.take(MAX_PROC_FILE + 1).read_to_end(&mut bytes));
    match read {
        Ok(_) if bytes.len() as u64 > MAX_PROC_FILE => Err(Error::Malformed {
            path,
            detail: format!("longer than {MAX_PROC_FILE} bytes"),
        }),
        Ok(_) => Ok(String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io("reading a proc file", path, e)),
    }
}

/// Undoes the octal escapes (`\040` for a space, `\011`, `\012`, `\134`) of mountinfo and swaps
/// fields; anything else, a malformed escape included, is kept as it is.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| b == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')));
        match octal {
            Some(value) if value <= 0xff => {
                out.push(value as u8);
                i += 4;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// True when a mount or swap source names the block device `name` (`/dev/NAME`).
fn names_device(source: &str, name: &str) -> bool {
    source.strip_prefix("/dev/") == Some(name)
}

// --- network ---

/// The routing tables the network checks need.
struct NetTables {
    /// `net/route`: "Iface Destination Gateway ..." after a header line.
    routes: Vec<String>,
    /// `net/if_inet6`: "address ifindex prefixlen scope flags ifname".
    inet6: Vec<String>,
}

impl NetTables {
    fn read(proc_root: &Path) -> Result<NetTables> {
        Ok(NetTables {
            routes: proc_lines(proc_root, "net/route")?,
            inet6: proc_lines(proc_root, "net/if_inet6")?,
        })
    }

    /// "is up with ..." when the interface `name` has an IPv4 route or an IPv6 address that is
    /// not link-local (the caller checked that it is up).
    fn addresses(&self, name: &str) -> Option<String> {
        let v4_routes = self
            .routes
            .iter()
            .skip(1)
            .filter(|l| l.split_whitespace().next() == Some(name))
            .count();
        if v4_routes > 0 {
            return Some(format!("is up with {v4_routes} IPv4 route(s)"));
        }
        self.inet6
            .iter()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let scope = u32::from_str_radix(f.get(3)?, 16).ok()?;
                (f.get(5) == Some(&name) && scope != SCOPE_LINK).then(|| f.first().copied())?
            })
            .map(|addr| format!("is up with IPv6 address {addr}"))
    }
}

fn is_up(iface: &NetInterface) -> bool {
    iface.flags & IFF_UP != 0
}

/// Interfaces found anywhere below the device (`BDF/net/IF`, virtio-net's
/// `BDF/virtioN/net/IF`, auxiliary devices' ...) that are up and carry traffic, directly or
/// through an interface above them.
fn network_below(
    sysfs: &Sysfs,
    net: &NetTables,
    interfaces: &[NetInterface],
) -> Result<Vec<String>> {
    let mut reasons = Vec::new();
    for iface in interfaces.iter().filter(|i| is_up(i)) {
        let why = match net.addresses(&iface.name) {
            Some(own) => Some(own),
            None => network_above(sysfs, net, iface, &mut vec![iface.name.clone()], 0)?,
        };
        if let Some(why) = why {
            reasons.push(format!("network interface {} {why}", iface.name));
        }
    }
    Ok(reasons)
}

/// How `iface` carries traffic through an up interface above it (its bridge, bond, team or
/// Open vSwitch master; VLAN and macvlan devices on it; recursively, at most
/// `MAX_UPPER_DEPTH` levels, each interface once), e.g. "is a port of bridge br0, which is up
/// with 1 IPv4 route(s)"; `None` when it does not.
fn network_above(
    sysfs: &Sysfs,
    net: &NetTables,
    iface: &NetInterface,
    seen: &mut Vec<String>,
    depth: usize,
) -> Result<Option<String>> {
    if depth >= MAX_UPPER_DEPTH {
        return Ok(None);
    }
    for link in &iface.uppers {
        if seen.contains(&link.name) {
            continue;
        }
        seen.push(link.name.clone());
        if link.is_master && link.name == OVS_DATAPATH {
            if let Some(why) = open_vswitch(sysfs, net, seen, depth)? {
                return Ok(Some(why));
            }
            continue;
        }
        // Gone since the link was read, or down: no traffic through it.
        let Some(upper) = sysfs.net_interface(&link.name)? else {
            continue;
        };
        if !is_up(&upper) {
            continue;
        }
        let why = match net.addresses(&upper.name) {
            Some(own) => Some(own),
            None => network_above(sysfs, net, &upper, seen, depth + 1)?,
        };
        if let Some(why) = why {
            return Ok(Some(format!("{}, which {why}", relation(link, &upper))));
        }
    }
    Ok(None)
}

/// The kernel datapath of Open vSwitch: the `master` of every port of every OVS bridge.
const OVS_DATAPATH: &str = "ovs-system";

/// A port of Open vSwitch: its datapath (normally down, with no address) is the master of the
/// ports of every OVS bridge, and which bridge a port belongs to is known only to OVS's
/// database, not to sysfs. So the port counts as carrying the host's traffic when any other
/// interface of the datapath (an internal port such as `br-ex`, or what is above one) is up
/// with an address or route: wrong only towards refusing, which PCIBIND_BIND_FORCE overrides.
fn open_vswitch(
    sysfs: &Sysfs,
    net: &NetTables,
    seen: &mut Vec<String>,
    depth: usize,
) -> Result<Option<String>> {
    for name in sysfs.net_interface_names()? {
        if seen.contains(&name) {
            continue;
        }
        let Some(port) = sysfs.net_interface(&name)? else {
            continue;
        };
        let on_datapath = port
            .uppers
            .iter()
            .any(|l| l.is_master && l.name == OVS_DATAPATH);
        if !on_datapath || !is_up(&port) {
            continue;
        }
        seen.push(name.clone());
        let why = match net.addresses(&name) {
            Some(own) => Some(own),
            None => network_above(sysfs, net, &port, seen, depth + 1)?,
        };
        if let Some(why) = why {
            return Ok(Some(format!(
                "is a port of Open vSwitch, whose interface {name} {why}"
            )));
        }
    }
    Ok(None)
}

/// What the interface below is to `upper`: "is a port of bridge br0", "is the lower device of
/// eth0.10".
fn relation(link: &UpperLink, upper: &NetInterface) -> String {
    let name = &upper.name;
    match (link.is_master, upper.kind) {
        (true, NetKind::Bridge) => format!("is a port of bridge {name}"),
        (true, NetKind::Bond) => format!("is a port of bond {name}"),
        (true, NetKind::Other) => format!("is a port of {name}"),
        (false, _) => format!("is the lower device of {name}"),
    }
}

// --- storage ---

/// One line of mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE
/// SOURCE SUPEROPTIONS".
#[derive(Clone, Debug, PartialEq, Eq)]
struct Mount {
    dev: String,
    mountpoint: String,
    /// Empty when the line ends before the separator.
    fstype: String,
    source: String,
}

impl Mount {
    /// `None` for a line too short to name a device and a mount point.
    fn parse(line: &str) -> Option<Mount> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let dev = fields.get(2)?;
        let mountpoint = fields.get(4)?;
        // The optional fields (shared:N, master:N, ...) end at a lone "-".
        let fstype_at = fields.iter().skip(6).position(|f| *f == "-").map(|i| i + 7);
        let field = |at: Option<usize>| {
            at.and_then(|i| fields.get(i))
                .map(|f| unescape(f))
                .unwrap_or_default()
        };
        Some(Mount {
            dev: (*dev).to_owned(),
            mountpoint: unescape(mountpoint),
            fstype: field(fstype_at),
            source: field(fstype_at.map(|i| i + 1)),
        })
    }
}

/// The storage tables the disk checks need.
struct Storage {
    mounts: Vec<Mount>,
    /// The first field of every `/proc/swaps` line but the header.
    swaps: Vec<String>,
    btrfs: Vec<BtrfsFilesystem>,
}

impl Storage {
    fn read(sysfs: &Sysfs, proc_root: &Path) -> Result<Storage> {
        let mounts = proc_lines(proc_root, "self/mountinfo")?
            .iter()
            .filter_map(|l| Mount::parse(l))
            .collect();
        let swaps = proc_lines(proc_root, "swaps")?
            .iter()
            .filter_map(|l| l.split_whitespace().next().map(unescape))
            .filter(|f| f != "Filename")
            .collect();
        Ok(Storage {
            mounts,
            swaps,
            btrfs: sysfs.btrfs_filesystems()?,
        })
    }
}

/// Every way `disk` is used, as "block device NAME ..." sentences.
fn disk_reasons(disk: &BlockDevice, storage: &Storage) -> Vec<String> {
    disk_uses(disk, storage)
        .into_iter()
        .map(|use_| format!("block device {} {use_}", disk.name))
        .collect()
}

/// Every way `disk` is used, as predicates ("is mounted on /", ...).
fn disk_uses(disk: &BlockDevice, storage: &Storage) -> Vec<String> {
    [
        holders(disk),
        mounts(disk, storage),
        btrfs_member(disk, storage),
        swap(disk, storage),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Device-mapper, md, bcache, ... stacked on the disk.
fn holders(disk: &BlockDevice) -> Option<String> {
    (!disk.holders.is_empty()).then(|| format!("is held by {}", disk.holders.join(", ")))
}

/// The mount's `MAJ:MIN` is the disk's: every file system on a block device of its own, but
/// not btrfs, zfs and others, which show an anonymous `0:NN`.
fn mounted_by_number(mount: &Mount, disk: &BlockDevice) -> bool {
    !disk.dev.is_empty() && mount.dev == disk.dev
}

/// The mount's source names the disk (`/dev/nvme0n1p2`), whatever its number.
fn mounted_by_source(mount: &Mount, disk: &BlockDevice) -> bool {
    names_device(&mount.source, &disk.name)
}

/// Where the disk is mounted, found by number or by source.
fn mounts(disk: &BlockDevice, storage: &Storage) -> Option<String> {
    let points: Vec<&str> = storage
        .mounts
        .iter()
        .filter(|m| mounted_by_number(m, disk) || mounted_by_source(m, disk))
        .map(|m| m.mountpoint.as_str())
        .collect();
    (!points.is_empty()).then(|| format!("is mounted on {}", list_mountpoints(&points)))
}

/// "/, /home and 3 more", each mount point once.
fn list_mountpoints(points: &[&str]) -> String {
    let mut unique: Vec<&str> = Vec::new();
    for p in points {
        if !unique.contains(p) {
            unique.push(p);
        }
    }
    let shown = unique
        .iter()
        .take(MAX_MOUNTPOINTS_SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    match unique.len().saturating_sub(MAX_MOUNTPOINTS_SHOWN) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// The disk is a member of a mounted (multi-device) btrfs: `fs/btrfs/UUID/devices/` lists it,
/// and mountinfo may name any member as the source, not necessarily this one.
fn btrfs_member(disk: &BlockDevice, storage: &Storage) -> Option<String> {
    let fs = storage
        .btrfs
        .iter()
        .find(|fs| fs.members.contains(&disk.name))?;
    let through_other: Vec<&Mount> = storage
        .mounts
        .iter()
        .filter(|m| m.fstype == "btrfs")
        .filter(|m| {
            fs.members
                .iter()
                .any(|member| *member != disk.name && names_device(&m.source, member))
        })
        .collect();
    if let Some(first) = through_other.first() {
        let points: Vec<&str> = through_other
            .iter()
            .map(|m| m.mountpoint.as_str())
            .collect();
        return Some(format!(
            "is a member of the btrfs file system {} mounted on {} (from {})",
            fs.uuid,
            list_mountpoints(&points),
            first.source
        ));
    }
    // Mounted under its own name: `mounts` says so. Under no member's name (a source we
    // cannot tell): the file system is in `fs/btrfs/` only while it is mounted.
    let own = storage.mounts.iter().any(|m| mounted_by_source(m, disk));
    (!own).then(|| format!("is a member of the mounted btrfs file system {}", fs.uuid))
}

/// The disk is active swap (`/proc/swaps` by path).
fn swap(disk: &BlockDevice, storage: &Storage) -> Option<String> {
    storage
        .swaps
        .iter()
        .any(|s| names_device(s, &disk.name))
        .then(|| "is used as swap".to_owned())
}

/// Every way a namespace's multipath disk or its partitions are used, as sentences.
fn namespace_uses(ns: &NvmeNamespace, storage: &Storage) -> Vec<String> {
    std::iter::once(&ns.disk)
        .chain(&ns.partitions)
        .flat_map(|disk| disk_reasons(disk, storage))
        .collect()
}

/// NVMe native multipath: the usable disk of a namespace hangs under the `nvme-subsystem`
/// device, not under the controller, whose subtree holds only hidden per-path disks. A
/// controller of the device is in use when it is the last live path to a namespace that is
/// in use; when another live path remains, binding it is allowed with a warning. Namespaces
/// are matched to paths by `nsid` within the subsystem, never by disk name.
fn nvme_multipath(
    sysfs: &Sysfs,
    storage: &Storage,
    log: &Logger,
    tree: &DeviceSubtree,
) -> Result<Vec<String>> {
    let mut reasons = Vec::new();
    if tree.nvme_controllers.is_empty() {
        return Ok(reasons);
    }
    for subsys in sysfs.nvme_subsystems()? {
        let (ours, others): (Vec<_>, Vec<_>) = subsys
            .controllers
            .iter()
            .partition(|c| tree.nvme_controllers.iter().any(|t| t.is(c)));
        for ctrl in &ours {
            for ns in &subsys.namespaces {
                // A namespace whose nsid cannot be read counts as reachable through this
                // controller and no other: refusing is the safe mistake.
                if !ns.nsid.is_none_or(|id| ctrl.path_nsids.contains(&id)) {
                    continue;
                }
                let uses = namespace_uses(ns, storage);
                if uses.is_empty() {
                    continue;
                }
                let live_others: Vec<&str> = others
                    .iter()
                    .filter(|c| c.live && ns.nsid.is_some_and(|id| c.path_nsids.contains(&id)))
                    .map(|c| c.name.as_str())
                    .collect();
                if live_others.is_empty() {
                    reasons.push(format!(
                        "NVMe controller {} is the last live path to namespace {} of {}: {}",
                        ctrl.name,
                        ns.disk.name,
                        subsys.name,
                        uses.join(", ")
                    ));
                } else {
                    log.log(
                        Priority::Warning,
                        format_args!(
                            "NVMe controller {} is a path to namespace {} of {}, which is in use \
                             ({}); allowed, since {} remain(s) a live path to it",
                            ctrl.name,
                            ns.disk.name,
                            subsys.name,
                            uses.join(", "),
                            live_others.join(", ")
                        ),
                    );
                }
            }
        }
    }
    Ok(reasons)
}

// --- display ---

/// A framebuffer below the device (`graphics/fbN`): the console may be drawn on it.
fn framebuffers(tree: &DeviceSubtree) -> Vec<String> {
    tree.framebuffers
        .iter()
        .map(|fb| format!("it drives framebuffer {fb}, which the console may be using"))
        .collect()
}
