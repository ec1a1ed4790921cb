//! Network: interfaces anywhere below the device that are up and carry traffic, directly or
//! through the interfaces above them (bridges, bonds, VLANs, Open vSwitch).

use std::path::Path;

use super::{could_not_read, unread_detail, unread_of};
use crate::os::netlink;
use crate::os::procfs;
use crate::os::sysfs::{valid_ifname, Sysfs};
use crate::types::error::Result;

const IFF_UP: u32 = 0x1;
/// `if_inet6` scope of link-local addresses, which every interface that is up has.
const SCOPE_LINK: u32 = 0x20;
/// How many interfaces above a NIC are followed (a VLAN on a bond in a bridge is three).
const MAX_UPPER_DEPTH: usize = 8;

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
pub(super) fn network_below(
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
        let Some(upper) = net_interface(sysfs, &link.name)? else {
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
        let Some(port) = net_interface(sysfs, &name)? else {
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

// --- what the tree says of an interface ---

/// What a network interface is, as far as a reason needs to say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetKind {
    /// Has `bridge/`.
    Bridge,
    /// Has `bonding/`.
    Bond,
    /// Anything else (team, Open vSwitch, VLAN, macvlan, a plain NIC, ...).
    Other,
}

/// A link from a network interface to one directly above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpperLink {
    pub name: String,
    /// Named by the `master` link (a bridge, bond, team or Open vSwitch port), not only by
    /// an `upper_*` link (VLAN, macvlan).
    pub is_master: bool,
}

/// A network interface and the interfaces directly above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetInterface {
    pub name: String,
    /// Its `flags` (IFF_UP is bit 0); 0 when unreadable (then `unread` says so).
    pub flags: u32,
    pub kind: NetKind,
    /// Its `master` and the targets of its `upper_*` links, master first, each once.
    pub uppers: Vec<UpperLink>,
    /// What could not be read about it ("its flags (PATH: ERROR)").
    pub unread: Vec<String>,
}

/// The network interface `name` (`class/net/NAME`), or `None` when there is none.
fn net_interface(sysfs: &Sysfs, name: &str) -> Result<Option<NetInterface>> {
    if !valid_ifname(name) {
        return Ok(None);
    }
    let dir = sysfs.root().join("class/net").join(name);
    if !sysfs.is_dir(&dir) {
        return Ok(None);
    }
    Ok(Some(read_interface(sysfs, &dir, name.to_owned())))
}

/// The interface whose directory is `dir`. What cannot be read (its flags, its links) is
/// listed in `unread`, never taken for "down" or "nothing above".
pub(super) fn read_interface(sysfs: &Sysfs, dir: &Path, name: String) -> NetInterface {
    let mut unread = Vec::new();
    let flags_path = dir.join("flags");
    let flags = match sysfs.read_small(&flags_path, "reading an interface's flags") {
        Ok(t) => match u32::from_str_radix(t.trim().trim_start_matches("0x"), 16) {
            Ok(flags) => flags,
            Err(_) => {
                unread.push(format!(
                    "its flags ({}: {:?})",
                    flags_path.display(),
                    t.trim()
                ));
                0
            }
        },
        Err(e) => {
            unread.push(format!("its flags ({})", unread_detail(&e)));
            0
        }
    };
    let kind = if sysfs.is_dir(&dir.join("bridge")) {
        NetKind::Bridge
    } else if sysfs.is_dir(&dir.join("bonding")) {
        NetKind::Bond
    } else {
        NetKind::Other
    };
    let mut uppers: Vec<UpperLink> = Vec::new();
    let mut links = match sysfs.list_dir(dir, "listing an interface's links") {
        Ok(links) => links,
        Err(e) => {
            unread.push(format!("the interfaces above it ({})", unread_detail(&e)));
            Vec::new()
        }
    };
    // `master` first, so the relation shown is "a port of", not "below".
    links.sort_by_key(|l| l != "master");
    for link in links {
        let is_master = link == "master";
        if !is_master && !link.starts_with("upper_") {
            continue;
        }
        let Ok(Some(upper)) = sysfs.link_basename(&dir.join(&link), "reading an upper link") else {
            continue;
        };
        if valid_ifname(&upper) && !uppers.iter().any(|u| u.name == upper) {
            uppers.push(UpperLink {
                name: upper,
                is_master,
            });
        }
    }
    NetInterface {
        name,
        flags,
        kind,
        uppers,
        unread,
    }
}
