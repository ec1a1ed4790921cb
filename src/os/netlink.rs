//! The kernel's own answer to "which interfaces carry traffic" (SPEC 1, "What 'in use on the
//! host' looks like", Network): every address (`RTM_GETADDR`) and every route of every table
//! (`RTM_GETROUTE`, VRFs and the `local` table included), dumped over rtnetlink for the
//! caller's network namespace, with the interface names (`RTM_GETLINK`) to match them by.
//! `/proc/net/route` shows the main table only, so a `/32` address (its only route is in
//! `local`), an interface in a VRF or one used by policy routing looks idle there.
//!
//! The messages are built and parsed by the rust-netlink crates (`netlink-packet-route`,
//! `netlink-sys`); this module only asks, reads the three dumps whole and keeps what the
//! in-use check needs. Read-only: nothing is ever sent but dump requests.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// How long one receive may wait for the kernel (it answers a dump at once; a bound keeps a
/// wedged socket from hanging a bind).
const RECV_TIMEOUT: Duration = Duration::from_secs(5);
/// A dump the kernel marks interrupted (the tables changed while it was sent) is asked again
/// at most this many times.
const DUMP_TRIES: usize = 5;
/// Receive buffer: the kernel sends dump parts of up to 32 KiB when the reader's buffer is
/// that large.
const RECV_BUFFER: usize = 64 << 10;
/// At most this many messages per dump (a router with a full Internet table has ~1M routes,
/// more than an in-use check should hold; past it the answer is "could not read").
const MAX_MESSAGES: usize = 4 << 20;

const RT_TABLE_DEFAULT: u32 = 253;
const RT_TABLE_MAIN: u32 = 254;
const RT_TABLE_LOCAL: u32 = 255;

/// One address of an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

/// One route, as far as "through which interface, in which table" goes: a multipath route
/// gives one per next hop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub index: u32,
    pub table: u32,
    pub destination: Option<(IpAddr, u8)>,
}

/// The three dumps, taken one after the other.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    pub names: HashMap<u32, String>,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
}

/// True for an IPv6 link-local address (fe80::/10), which every interface that is up has.
fn is_ipv6_link_local(addr: &IpAddr) -> bool {
    matches!(addr, IpAddr::V6(a) if a.segments()[0] & 0xffc0 == 0xfe80)
}

/// True for the routes the kernel makes for every interface that is up with IPv6 on, address
/// or not: `fe80::/64` in `main`, `ff00::/8` (multicast) and the link-local address itself in
/// `local`. They say nothing about traffic.
fn is_automatic_ipv6_route(destination: &Option<(IpAddr, u8)>) -> bool {
    match destination {
        Some((IpAddr::V6(a), len)) => {
            let first = a.segments()[0];
            (first & 0xffc0 == 0xfe80 && *len >= 10) || (first & 0xff00 == 0xff00 && *len >= 8)
        }
        _ => false,
    }
}

fn table_name(table: u32) -> String {
    match table {
        RT_TABLE_MAIN => "main".into(),
        RT_TABLE_LOCAL => "local".into(),
        RT_TABLE_DEFAULT => "default".into(),
        n => n.to_string(),
    }
}

impl Snapshot {
    /// Dumps links, addresses and routes of the caller's network namespace.
    pub fn take() -> io::Result<Snapshot> {
        let socket = open()?;
        let mut snapshot = Snapshot::default();
        let mut seq = 0;
        for message in dump(
            &socket,
            &mut seq,
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
        )? {
            if let RouteNetlinkMessage::NewLink(link) = message {
                let name = link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                });
                if let Some(name) = name {
                    snapshot.names.insert(link.header.index, name);
                }
            }
        }
        let get_addr = RouteNetlinkMessage::GetAddress(AddressMessage::default());
        for message in dump(&socket, &mut seq, get_addr)? {
            if let RouteNetlinkMessage::NewAddress(a) = message {
                // IFA_LOCAL is the interface's own address on point-to-point links, where
                // IFA_ADDRESS is the peer's; elsewhere both are the same.
                let local = a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Local(ip) => Some(*ip),
                    _ => None,
                });
                let address = a.attributes.iter().find_map(|x| match x {
                    AddressAttribute::Address(ip) => Some(*ip),
                    _ => None,
                });
                if let Some(addr) = local.or(address) {
                    snapshot.addresses.push(Address {
                        index: a.header.index,
                        addr,
                        prefix_len: a.header.prefix_len,
                    });
                }
            }
        }
        let get_route = RouteNetlinkMessage::GetRoute(RouteMessage::default());
        for message in dump(&socket, &mut seq, get_route)? {
            if let RouteNetlinkMessage::NewRoute(r) = message {
                snapshot.add_route(&r);
            }
        }
        Ok(snapshot)
    }

    fn add_route(&mut self, r: &RouteMessage) {
        let mut table = u32::from(r.header.table);
        let mut destination = None;
        let mut indexes = Vec::new();
        for attribute in &r.attributes {
            match attribute {
                // Tables above 255 (VRFs) are only in RTA_TABLE.
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(RouteAddress::Inet(a)) => {
                    destination = Some((IpAddr::V4(*a), r.header.destination_prefix_length))
                }
                RouteAttribute::Destination(RouteAddress::Inet6(a)) => {
                    destination = Some((IpAddr::V6(*a), r.header.destination_prefix_length))
                }
                RouteAttribute::Oif(i) => indexes.push(*i),
                RouteAttribute::MultiPath(hops) => {
                    indexes.extend(hops.iter().map(|h| h.interface_index))
                }
                _ => {}
            }
        }
        // A route through a nexthop object (RTA_NH_ID) carries its interface too as long as
        // net.ipv4.nexthop_compat_mode is 1, the default; with it 0 such routes name no
        // interface and are not seen here.
        for index in indexes {
            self.routes.push(Route {
                index,
                table,
                destination,
            });
        }
    }

    /// How the interface named `name` carries traffic: "is up with IPv4 address
    /// 10.0.9.1/32", "is up with 2 route(s) (table main, 10)"; `None` when it has no address
    /// other than IPv6 link-local and no route but the ones IPv6 makes for every interface.
    /// The caller checked that it is up.
    pub fn usage(&self, name: &str) -> Option<String> {
        let indexes: Vec<u32> = self
            .names
            .iter()
            .filter(|(_, n)| n.as_str() == name)
            .map(|(i, _)| *i)
            .collect();
        if indexes.is_empty() {
            return None;
        }
        let address = self
            .addresses
            .iter()
            .filter(|a| indexes.contains(&a.index) && !is_ipv6_link_local(&a.addr))
            .min_by_key(|a| a.addr.is_ipv6());
        if let Some(a) = address {
            let family = if a.addr.is_ipv6() { "IPv6" } else { "IPv4" };
            return Some(format!(
                "is up with {family} address {}/{}",
                a.addr, a.prefix_len
            ));
        }
        let routes: Vec<&Route> = self
            .routes
            .iter()
            .filter(|r| indexes.contains(&r.index) && !is_automatic_ipv6_route(&r.destination))
            .collect();
        if routes.is_empty() {
            return None;
        }
        let mut tables: Vec<u32> = routes.iter().map(|r| r.table).collect();
        tables.sort_unstable_by_key(|t| (*t != RT_TABLE_MAIN, *t != RT_TABLE_LOCAL, *t));
        tables.dedup();
        let tables: Vec<String> = tables.into_iter().map(table_name).collect();
        Some(format!(
            "is up with {} route(s) (table {})",
            routes.len(),
            tables.join(", ")
        ))
    }
}

fn open() -> io::Result<Socket> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let timeout = libc::timeval {
        tv_sec: RECV_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    // SAFETY: a valid socket and a correctly sized timeval.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &timeout as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(socket)
}

/// The messages of one dump, asked again when the kernel says the tables changed under it.
fn dump(
    socket: &Socket,
    seq: &mut u32,
    request: RouteNetlinkMessage,
) -> io::Result<Vec<RouteNetlinkMessage>> {
    for _ in 0..DUMP_TRIES {
        *seq += 1;
        if let Some(messages) = dump_once(socket, *seq, request.clone())? {
            return Ok(messages);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::Interrupted,
        format!("the kernel's tables kept changing during {DUMP_TRIES} dumps"),
    ))
}

fn invalid(what: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One dump; `None` when the kernel marked it interrupted (`NLM_F_DUMP_INTR`).
fn dump_once(
    socket: &Socket,
    seq: u32,
    request: RouteNetlinkMessage,
) -> io::Result<Option<Vec<RouteNetlinkMessage>>> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(request));
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf[..]);
    socket.send(&buf, 0)?;

    let mut out = Vec::new();
    let mut interrupted = false;
    let mut receive: Vec<u8> = Vec::with_capacity(RECV_BUFFER);
    loop {
        receive.clear();
        // MSG_TRUNC: the real length, so a message cut short is seen, never parsed in half.
        let size = socket.recv(&mut receive, libc::MSG_TRUNC)?;
        if size > receive.len() {
            return Err(invalid("a netlink message longer than the receive buffer"));
        }
        let mut offset = 0;
        while offset < size {
            let message =
                NetlinkMessage::<RouteNetlinkMessage>::deserialize(&receive[offset..size])
                    .map_err(|e| invalid(format!("unreadable netlink message: {e}")))?;
            let length = message.header.length as usize;
            if length == 0 {
                return Err(invalid("a netlink message of length 0"));
            }
            offset += length;
            if message.header.sequence_number != seq {
                continue; // an answer to an earlier request
            }
            interrupted |= message.header.flags & NLM_F_DUMP_INTR != 0;
            match message.payload {
                NetlinkPayload::Done(_) => return Ok((!interrupted).then_some(out)),
                NetlinkPayload::Error(e) if e.code.is_some() => return Err(e.to_io()),
                NetlinkPayload::Overrun(_) => return Err(invalid("netlink overrun")),
                NetlinkPayload::InnerMessage(m) => {
                    if out.len() >= MAX_MESSAGES {
                        return Err(invalid(format!("more than {MAX_MESSAGES} entries")));
                    }
                    out.push(m);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let mut s = Snapshot::default();
        s.names.insert(2, "eth0".into());
        s.names.insert(3, "eth1".into());
        // Every up interface with IPv6 has these: a link-local address and its routes.
        for index in [2, 3] {
            s.addresses.push(Address {
                index,
                addr: "fe80::1".parse().unwrap(),
                prefix_len: 64,
            });
            for (dst, len, table) in [("fe80::", 64, RT_TABLE_MAIN), ("ff00::", 8, RT_TABLE_LOCAL)]
            {
                s.routes.push(Route {
                    index,
                    table,
                    destination: Some((dst.parse().unwrap(), len)),
                });
            }
        }
        s
    }

    #[test]
    fn link_local_alone_carries_nothing() {
        assert_eq!(snapshot().usage("eth0"), None);
        assert_eq!(snapshot().usage("nonesuch"), None);
    }

    /// `ip addr add 10.0.9.1/32 dev eth0`: no route in main, one in local; the address says.
    #[test]
    fn a_slash_32_address_counts() {
        let mut s = snapshot();
        s.addresses.push(Address {
            index: 2,
            addr: "10.0.9.1".parse().unwrap(),
            prefix_len: 32,
        });
        assert_eq!(
            s.usage("eth0").as_deref(),
            Some("is up with IPv4 address 10.0.9.1/32")
        );
        assert_eq!(s.usage("eth1"), None);
    }

    #[test]
    fn ipv4_is_named_before_ipv6() {
        let mut s = snapshot();
        for addr in ["2001:db8::15", "192.0.2.1"] {
            s.addresses.push(Address {
                index: 3,
                addr: addr.parse().unwrap(),
                prefix_len: 24,
            });
        }
        assert_eq!(
            s.usage("eth1").as_deref(),
            Some("is up with IPv4 address 192.0.2.1/24")
        );
    }

    /// A route in a VRF's table (or one `ip rule` points to) through an interface without an
    /// address of its own.
    #[test]
    fn a_route_in_any_table_counts() {
        let mut s = snapshot();
        for table in [1001, RT_TABLE_MAIN] {
            s.routes.push(Route {
                index: 3,
                table,
                destination: None,
            });
        }
        assert_eq!(
            s.usage("eth1").as_deref(),
            Some("is up with 2 route(s) (table main, 1001)")
        );
    }

    /// The kernel of this machine, read-only: the dump holds what the proc files show (every
    /// IPv4 route of the main table, every IPv6 address), and loopback, when up, has 127.0.0.1.
    #[test]
    fn the_kernel_answers_a_dump_as_its_proc_files_show() {
        let s = Snapshot::take().expect("an rtnetlink dump");
        let index_of = |name: &str| {
            s.names
                .iter()
                .find(|(_, n)| n.as_str() == name)
                .map(|(i, _)| *i)
        };
        let route = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        for name in route
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
        {
            let Some(index) = index_of(name) else {
                continue;
            }; // renamed or gone meanwhile
            assert!(
                s.routes
                    .iter()
                    .any(|r| r.index == index && r.table == RT_TABLE_MAIN),
                "{name} has a route in /proc/net/route but none in the dump"
            );
            assert!(s.usage(name).is_some(), "{name}");
        }
        let inet6 = std::fs::read_to_string("/proc/net/if_inet6").unwrap_or_default();
        for line in inet6.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(hex), Some(name)) = (f.first(), f.get(5)) else {
                continue;
            };
            let Ok(bits) = u128::from_str_radix(hex, 16) else {
                continue;
            };
            let addr = IpAddr::V6(std::net::Ipv6Addr::from(bits));
            if index_of(name).is_some() {
                assert!(
                    s.addresses.iter().any(|a| a.addr == addr),
                    "{addr} of {name} is in if_inet6 but not in the dump"
                );
            }
        }
        let lo_up = std::fs::read_to_string("/sys/class/net/lo/flags")
            .ok()
            .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
            .is_some_and(|f| f & 1 != 0);
        if lo_up {
            let lo = index_of("lo").expect("lo");
            assert!(s
                .addresses
                .iter()
                .any(|a| a.index == lo && a.addr == IpAddr::from([127, 0, 0, 1])));
            // 127.0.0.0/8's routes live in the local table only, as a /32's do.
            assert!(s
                .routes
                .iter()
                .any(|r| r.index == lo && r.table == RT_TABLE_LOCAL));
            assert_eq!(
                s.usage("lo").as_deref(),
                Some("is up with IPv4 address 127.0.0.1/8")
            );
        } else {
            eprintln!("lo is down here (a new network namespace): its addresses not checked");
        }
    }
}
