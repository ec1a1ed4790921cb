//! Is a device in use on the host? (SPEC 3.3 step 5; the shapes are SPEC 1, "What 'in use on
//! the host' looks like in sysfs".) One small function per shape, each giving the sentences
//! that end up in the refusal: network interfaces anywhere below the device, and the interfaces
//! above them; disks below it that the kernel says are held (`O_EXCL`, `blockdev`), named by
//! what holds them where the host lists it (mounted by number or by source, btrfs members,
//! swap, `holders/`); NVMe namespaces whose last live path is the device; framebuffers below
//! it, and the firmware's boot framebuffer inside its BARs.
//!
//! Could not look is not "not in use": whatever a check needs and cannot read (an interface's
//! flags, a disk's `holders/`, a proc table, the kernel's netlink answer) becomes a reason of
//! its own, naming what could not be read, so the device is refused unless forced. A proc file
//! that does not exist at all (`ENOENT`: a test tree without it, a kernel without the feature)
//! describes nothing and refuses nothing.
//!
//! Sysfs is read through `sysfs` only; the proc files through `procfs`, under the configured
//! proc root (`/proc` normally; a fake tree's in tests); addresses and routes over netlink (`netlink`) when the
//! proc root is the real `/proc`, else from the tree's `net/route` and `net/if_inet6`; device
//! nodes under the dev root. Proc content is parsed field by field with `get`: an odd line is
//! skipped or read as far as it goes, never a panic.

use std::path::Path;

use crate::os::blockdev::{self, Exclusive};
use crate::os::netlink;
use crate::os::procfs;
use crate::os::sysfs::{
    AbsentMeans, BlockDevice, BtrfsFilesystem, DeviceSubtree, NetInterface, NetKind, NvmeNamespace,
    Sysfs, UpperLink,
};
use crate::types::address::PciAddress;
use crate::types::error::{Error, Result};
use crate::types::log::{Logger, Priority};

#[cfg(test)]
mod tests;

const IFF_UP: u32 = 0x1;
/// `if_inet6` scope of link-local addresses, which every interface that is up has.
const SCOPE_LINK: u32 = 0x20;
/// How many interfaces above a NIC are followed (a VLAN on a bond in a bridge is three).
const MAX_UPPER_DEPTH: usize = 8;
/// How many mount points one reason lists before it says how many more there are.
const MAX_MOUNTPOINTS_SHOWN: usize = 4;

/// The ways a device is in use (SPEC 3.14's kinds, the C API's `PCIBIND_IN_USE_*` bits): a
/// set, since one device can be several at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct InUseKinds(u32);

impl InUseKinds {
    /// A network interface below it carries the host's traffic.
    pub const NETWORK: InUseKinds = InUseKinds(1);
    /// A disk below it is mounted, swap, a btrfs member, or held.
    pub const STORAGE: InUseKinds = InUseKinds(2);
    /// It drives a framebuffer, or its BAR holds the boot framebuffer.
    pub const DISPLAY: InUseKinds = InUseKinds(4);
    /// A VMM holds it (its VFIO group or cdev open).
    pub const VMM: InUseKinds = InUseKinds(8);
    /// Anything else: mediated devices on it, a part of its subtree that could not be read.
    pub const OTHER: InUseKinds = InUseKinds(16);

    /// The bits, as the C API gives them.
    pub const fn bits(self) -> u32 {
        self.0
    }

    pub fn contains(self, other: InUseKinds) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The kinds' names ("network", "storage", "display", "vmm", "other"), in bit order.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Self::NETWORK, "network"),
            (Self::STORAGE, "storage"),
            (Self::DISPLAY, "display"),
            (Self::VMM, "vmm"),
            (Self::OTHER, "other"),
        ]
        .into_iter()
        .filter(|(k, _)| self.contains(*k))
        .map(|(_, name)| name)
        .collect()
    }
}

impl std::ops::BitOr for InUseKinds {
    type Output = InUseKinds;
    fn bitor(self, rhs: InUseKinds) -> InUseKinds {
        InUseKinds(self.0 | rhs.0)
    }
}

/// How a device is in use: the kinds, and the reasons as one text (sentences joined with
/// "; "), what a refusal says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InUse {
    pub kinds: InUseKinds,
    pub reason: String,
}

/// How the device is in use on the host, or `None` when it is not. An NVMe controller that
/// is one of several live paths to an in-use namespace is not in use; `log` gets a warning
/// naming the namespace. A device that is gone when the checks end (removed while they walked
/// its subtree) is [`Error::NoDevice`], whatever the walk met. A VMM holding the device is
/// the caller's to ask (`Context::in_use_now`).
pub(crate) fn in_use(
    sysfs: &Sysfs,
    proc_root: &Path,
    dev_root: &Path,
    log: &Logger,
    address: &PciAddress,
) -> Result<Option<InUse>> {
    let answer = reasons(sysfs, proc_root, dev_root, log, address);
    sysfs.require_device(address)?;
    let reasons = answer?;
    if reasons.is_empty() {
        return Ok(None);
    }
    Ok(Some(InUse {
        kinds: reasons
            .iter()
            .fold(InUseKinds::default(), |all, (kind, _)| all | *kind),
        reason: reasons
            .into_iter()
            .map(|(_, why)| why)
            .collect::<Vec<_>>()
            .join("; "),
    }))
}

/// [`in_use`]'s reason alone.
#[cfg(test)]
pub(crate) fn in_use_reason(
    sysfs: &Sysfs,
    proc_root: &Path,
    dev_root: &Path,
    log: &Logger,
    address: &PciAddress,
) -> Result<Option<String>> {
    Ok(in_use(sysfs, proc_root, dev_root, log, address)?.map(|u| u.reason))
}

fn reasons(
    sysfs: &Sysfs,
    proc_root: &Path,
    dev_root: &Path,
    log: &Logger,
    address: &PciAddress,
) -> Result<Vec<(InUseKinds, String)>> {
    let tree = sysfs.device_subtree(address)?;
    let tag = |kind: InUseKinds| move |why: String| (kind, why);
    let mut reasons: Vec<(InUseKinds, String)> = tree
        .unread
        .iter()
        .map(|what| could_not_read(&format!("{what} below it")))
        .map(tag(InUseKinds::OTHER))
        .collect();
    reasons.extend(
        network_below(sysfs, proc_root, &tree.interfaces)?
            .into_iter()
            .map(tag(InUseKinds::NETWORK)),
    );
    if !tree.disks.is_empty() || !tree.nvme_controllers.is_empty() {
        let storage = Storage::read(sysfs, proc_root)?;
        let mut found: Vec<String> = storage
            .unread
            .iter()
            .map(|what| could_not_read(what))
            .collect();
        // Hidden disks (multipath paths) cannot be opened; their namespace's disk is checked
        // by `nvme_multipath`.
        let disks: Vec<&BlockDevice> = tree.disks.iter().filter(|d| !d.hidden).collect();
        found.extend(disks_reasons(&disks, &storage, Some(dev_root)));
        found.extend(nvme_multipath(sysfs, &storage, dev_root, log, &tree)?);
        reasons.extend(found.into_iter().map(tag(InUseKinds::STORAGE)));
    }
    reasons.extend(
        framebuffers(&tree)
            .into_iter()
            .chain(boot_framebuffer(sysfs, proc_root, address)?)
            .map(tag(InUseKinds::DISPLAY)),
    );
    reasons.extend(mediated_devices(&tree).map(tag(InUseKinds::OTHER)));
    Ok(reasons)
}

/// Mediated devices made on the device (`mdev_supported_types/TYPE/devices/UUID`): each is a
/// vGPU or a queue slice that a guest or the host may be using, which unbinding the parent
/// driver destroys.
fn mediated_devices(tree: &DeviceSubtree) -> Option<String> {
    let shown: Vec<&str> = tree.mdevs.iter().take(4).map(String::as_str).collect();
    (!shown.is_empty()).then(|| {
        format!(
            "it has {} mediated device(s) ({}{}), which unbinding its driver would destroy",
            tree.mdevs.len(),
            shown.join(", "),
            if tree.mdevs.len() > shown.len() {
                ", ..."
            } else {
                ""
            }
        )
    })
}

/// The reason given for something a check needed and could not read.
fn could_not_read(what: &str) -> String {
    format!("could not read {what}, so cannot tell whether it is in use")
}

/// What an error says could not be read: "PATH (ERROR)" for an OS error. A link leading out of
/// the root is no failure to read but a hostile tree, and stays an error.
fn unread_of(e: Error) -> Result<String> {
    match e {
        Error::Io { path, source, .. } => Ok(format!("{} ({source})", path.display())),
        Error::Malformed { path, detail } => Ok(format!("{} ({detail})", path.display())),
        e => Err(e),
    }
}

// --- proc files ---

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

/// Where the addresses and routes come from.
enum NetTables {
    /// The kernel's answer over netlink: every address and every route of every table.
    Kernel(netlink::Snapshot),
    /// A tree's proc files (the proc root is not `/proc`).
    Tree {
        /// `net/route`: "Iface Destination Gateway ..." after a header line.
        routes: Vec<String>,
        /// `net/if_inet6`: "address ifindex prefixlen scope flags ifname".
        inet6: Vec<String>,
    },
}

impl NetTables {
    /// The tables; `Err` says what could not be read.
    fn read(proc_root: &Path) -> Result<NetTables, String> {
        if procfs::is_real_proc(proc_root) {
            return netlink::Snapshot::take()
                .map(NetTables::Kernel)
                .map_err(|e| format!("the kernel's addresses and routes (netlink: {e})"));
        }
        let lines = |rel| {
            procfs::lines(proc_root, rel)
                .map_err(|e| unread_of(e).unwrap_or_else(|e| e.to_string()))
        };
        Ok(NetTables::Tree {
            routes: lines("net/route")?,
            inet6: lines("net/if_inet6")?,
        })
    }

    /// "is up with ..." when the interface `name` has an address or route that carries
    /// traffic (the caller checked that it is up).
    fn addresses(&self, name: &str) -> Option<String> {
        match self {
            NetTables::Kernel(snapshot) => snapshot.usage(name),
            NetTables::Tree { routes, inet6 } => tree_addresses(routes, inet6, name),
        }
    }
}

/// A tree's answer: an IPv4 route in `net/route` or an IPv6 address that is not link-local in
/// `net/if_inet6`.
fn tree_addresses(routes: &[String], inet6: &[String], name: &str) -> Option<String> {
    let v4_routes = routes
        .iter()
        .skip(1)
        .filter(|l| l.split_whitespace().next() == Some(name))
        .count();
    if v4_routes > 0 {
        return Some(format!("is up with {v4_routes} IPv4 route(s)"));
    }
    inet6
        .iter()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let scope = u32::from_str_radix(f.get(3)?, 16).ok()?;
            (f.get(5) == Some(&name) && scope != SCOPE_LINK).then(|| f.first().copied())?
        })
        .map(|addr| format!("is up with IPv6 address {addr}"))
}

fn is_up(iface: &NetInterface) -> bool {
    iface.flags & IFF_UP != 0
}

/// Interfaces found anywhere below the device (`BDF/net/IF`, virtio-net's
/// `BDF/virtioN/net/IF`, auxiliary devices' ...) that are up and carry traffic, directly or
/// through an interface above them; and those that could not be read.
fn network_below(
    sysfs: &Sysfs,
    proc_root: &Path,
    interfaces: &[NetInterface],
) -> Result<Vec<String>> {
    let mut reasons: Vec<String> = interfaces
        .iter()
        .flat_map(|i| {
            i.unread
                .iter()
                .map(|what| format!("network interface {}: {}", i.name, could_not_read(what)))
        })
        .collect();
    let up: Vec<&NetInterface> = interfaces.iter().filter(|i| is_up(i)).collect();
    if up.is_empty() {
        return Ok(reasons);
    }
    let net = match NetTables::read(proc_root) {
        Ok(net) => net,
        Err(what) => {
            reasons.extend(up.iter().map(|i| {
                format!(
                    "network interface {} is up, and {}",
                    i.name,
                    could_not_read(&what)
                )
            }));
            return Ok(reasons);
        }
    };
    for iface in up {
        let why = match net.addresses(&iface.name) {
            Some(own) => Some(own),
            None => network_above(sysfs, &net, iface, &mut vec![iface.name.clone()], 0)?,
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
/// with 1 IPv4 route(s)"; `None` when it does not. An interface above that cannot be read
/// counts as carrying traffic.
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
        // Gone since the link was read: no traffic through it.
        let Some(upper) = sysfs.net_interface(&link.name)? else {
            continue;
        };
        if !upper.unread.is_empty() {
            return Ok(Some(format!(
                "{}, of which {}",
                relation(link, &upper),
                could_not_read(&upper.unread.join(", "))
            )));
        }
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
    /// Tables that could not be read ("PATH (ERROR)"): each refuses the device.
    unread: Vec<String>,
}

impl Storage {
    fn read(sysfs: &Sysfs, proc_root: &Path) -> Result<Storage> {
        let mut unread = Vec::new();
        let mut table = |rel| match procfs::lines(proc_root, rel) {
            Ok(lines) => Ok(lines),
            Err(e) => unread_of(e).map(|what| {
                unread.push(what);
                Vec::new()
            }),
        };
        let mounts = table("self/mountinfo")?
            .iter()
            .filter_map(|l| Mount::parse(l))
            .collect();
        let swaps = table("swaps")?
            .iter()
            .filter_map(|l| l.split_whitespace().next().map(unescape))
            .filter(|f| f != "Filename")
            .collect();
        let btrfs = match sysfs.btrfs_filesystems() {
            Ok(btrfs) => btrfs,
            Err(e) => {
                unread.push(unread_of(e)?);
                Vec::new()
            }
        };
        Ok(Storage {
            mounts,
            swaps,
            btrfs,
            unread,
        })
    }
}

/// What is said of a block device that the kernel says is held exclusively while the host
/// lists nothing that would hold it.
const HELD_BY_SOMETHING: &str = "is held open exclusively by something (not a mount, swap or \
                                 holder the host lists: e.g. a ZFS pool, an iSCSI/LIO \
                                 backstore or a VM's disk)";

/// Every way each of `disks` (disks and their partitions) is used, as "block device NAME ..."
/// sentences. With a dev root the kernel's `O_EXCL` answer decides: held is in use (named by
/// what the host lists, else `HELD_BY_SOMETHING`), free is not, whatever the tables say; where
/// it cannot be asked, the tables alone decide. A disk held only because a partition of it is
/// (the kernel claims the whole disk with the partition) is not said twice.
fn disks_reasons(
    disks: &[&BlockDevice],
    storage: &Storage,
    dev_root: Option<&Path>,
) -> Vec<String> {
    let decided: Vec<(&BlockDevice, Vec<String>, bool)> = disks
        .iter()
        .map(|disk| {
            let mut uses: Vec<String> = disk.unread.iter().map(|u| could_not_read(u)).collect();
            let listed = disk_uses(disk, storage);
            let answer = match dev_root {
                Some(dev) => blockdev::exclusive(dev, &disk.dev, disk.devname.as_deref()),
                None => Exclusive::Unknown,
            };
            let mut only_held = false;
            match answer {
                Exclusive::Free => {}
                Exclusive::Unknown => uses.extend(listed),
                Exclusive::Held(_) if listed.is_empty() => {
                    uses.push(HELD_BY_SOMETHING.to_owned());
                    only_held = uses.len() == 1;
                }
                Exclusive::Held(_) => uses.extend(listed),
                Exclusive::Failed(why) => {
                    uses.extend(listed);
                    uses.push(format!(
                        "could not be asked whether something holds it ({why}), so cannot tell \
                         whether it is in use"
                    ));
                }
            }
            (*disk, uses, only_held)
        })
        .collect();
    let explained_by_a_partition = |disk: &BlockDevice| {
        decided.iter().any(|(part, uses, _)| {
            part.whole.as_deref() == Some(disk.name.as_str()) && !uses.is_empty()
        })
    };
    decided
        .iter()
        .filter(|(disk, _, only_held)| !(*only_held && explained_by_a_partition(disk)))
        .flat_map(|(disk, uses, _)| {
            uses.iter()
                .map(move |use_| format!("block device {} {use_}", disk.name))
        })
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

/// The namespace's multipath disk and its partitions.
fn namespace_disks(ns: &NvmeNamespace) -> Vec<&BlockDevice> {
    std::iter::once(&ns.disk).chain(&ns.partitions).collect()
}

/// NVMe native multipath: the usable disk of a namespace hangs under the `nvme-subsystem`
/// device, not under the controller, whose subtree holds only hidden per-path disks. A
/// controller of the device is in use when it is the last live path to a namespace that is
/// in use (the kernel's `O_EXCL` answer deciding, as for any disk); when another live path
/// remains, binding it is allowed with a warning (from the host's tables: the namespace is not
/// opened then). Namespaces are matched to paths by `nsid` within the subsystem, never by disk
/// name.
fn nvme_multipath(
    sysfs: &Sysfs,
    storage: &Storage,
    dev_root: &Path,
    log: &Logger,
    tree: &DeviceSubtree,
) -> Result<Vec<String>> {
    let mut reasons = Vec::new();
    if tree.nvme_controllers.is_empty() {
        return Ok(reasons);
    }
    let subsystems = match sysfs.nvme_subsystems() {
        Ok(subsystems) => subsystems,
        Err(e) => return Ok(vec![could_not_read(&unread_of(e)?)]),
    };
    for subsys in subsystems {
        let (ours, others): (Vec<_>, Vec<_>) = subsys
            .controllers
            .iter()
            .partition(|c| tree.nvme_controllers.iter().any(|t| t.is(c)));
        for ctrl in &ours {
            for ns in &subsys.namespaces {
                // A namespace whose nsid cannot be read counts as reachable through this
                // controller and no other: refusing is the safe mistake.
                if !ns.nsid.map_or(true, |id| ctrl.path_nsids.contains(&id)) {
                    continue;
                }
                let live_others: Vec<&str> = others
                    .iter()
                    .filter(|c| c.live && ns.nsid.is_some_and(|id| c.path_nsids.contains(&id)))
                    .map(|c| c.name.as_str())
                    .collect();
                let last_path = live_others.is_empty();
                let uses =
                    disks_reasons(&namespace_disks(ns), storage, last_path.then_some(dev_root));
                if uses.is_empty() {
                    continue;
                }
                if last_path {
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
struct IomemEntry {
    depth: usize,
    start: u64,
    end: u64,
    name: String,
    /// Index of the entry it is nested in.
    parent: Option<usize>,
}

/// `/proc/iomem`, odd lines skipped.
fn parse_iomem(lines: &[String]) -> Vec<IomemEntry> {
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
fn boot_framebuffer(sysfs: &Sysfs, proc_root: &Path, address: &PciAddress) -> Result<Vec<String>> {
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
