//! rtnetlink for the init's own loop: one non-blocking NETLINK_ROUTE socket, subscribed to link,
//! IPv4 address and IPv4 route changes, through which links are set up, addresses and routes
//! added and removed, and the kernel's tables dumped at start.
//!
//! Nothing here waits: a request goes out with a sequence number and its ACK (or error) comes
//! back later as an [`RtnlEvent`] when the event loop finds the socket readable. Dumps run one at
//! a time (the kernel refuses a second dump on a socket while one is under way), queued in order
//! links → addresses → routes. Messages are built and parsed by `netlink-packet-route`; the
//! socket is `netlink-sys`'s, so this file needs no `unsafe`.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, RawFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkFlags, LinkHeader};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::AddressFamily;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::dhcp::Route;
use super::rtnl_request::Request;

const RTNLGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV4_ROUTE: u32 = 7;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("rtnetlink socket: {op}: {source}")]
    Socket {
        op: &'static str,
        source: std::io::Error,
    },
    #[error("rtnetlink send: {0}")]
    Send(std::io::Error),
}

/// A link as the kernel reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    pub up: bool,
    /// `IFF_LOWER_UP`: the driver says there is carrier.
    pub carrier: bool,
    /// Operstate UP (`IFLA_OPERSTATE`), which only the kernel's link watcher sets, in the same
    /// run that attaches the link's queueing discipline once carrier is on.
    ///
    /// Why it matters: a link set up just before (or while) its driver turns carrier on reports
    /// `IFF_LOWER_UP` with operstate UNKNOWN or DOWN until that run, and until the qdisc is
    /// attached packets go to the no-op one, dropped without an error. virtio-net at boot races
    /// its own carrier work that way; the DHCP client sends its first message again when the link
    /// turns UP (`dhcp::Input::LinkReady`).
    pub oper_up: bool,
    pub loopback: bool,
    pub mac: Option<[u8; 6]>,
    pub mtu: u32,
}

/// What the kernel told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtnlEvent {
    Link(LinkState),
    LinkGone(u32),
    Address {
        index: u32,
        address: Ipv4Addr,
        prefix: u8,
        added: bool,
    },
    /// A main-table IPv4 route.
    Route {
        index: Option<u32>,
        route: Route,
        added: bool,
    },
    /// The answer to request `seq`: `None` for success, else the errno.
    Ack {
        seq: u32,
        errno: Option<i32>,
    },
    /// The kernel dropped notifications (ENOBUFS): the tables must be dumped again.
    Overrun,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dump {
    Links,
    Addresses,
    Routes,
}

/// The route metric of routes we add: below the kernel's default so a DHCP default route is
/// preferred over none, and equal for every link (first come, first used).
pub const ROUTE_METRIC: u32 = 1024;

pub struct Rtnl {
    sock: Socket,
    seq: u32,
    dumps: VecDeque<Dump>,
    dump_active: Option<u32>,
}

impl Rtnl {
    pub fn open() -> Result<Self, LinkError> {
        let e = |op| move |source| LinkError::Socket { op, source };
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(e("socket"))?;
        sock.bind(&SocketAddr::new(0, 0)).map_err(e("bind"))?;
        for g in [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV4_ROUTE] {
            sock.add_membership(g).map_err(e("add membership"))?;
        }
        let _ = sock.set_rx_buf_sz(1 << 20);
        sock.set_non_blocking(true).map_err(e("non-blocking"))?;
        Ok(Rtnl {
            sock,
            seq: 0,
            dumps: VecDeque::new(),
            dump_active: None,
        })
    }

    /// Whether dumps are still running or queued (the tables are not complete yet).
    pub fn dumping(&self) -> bool {
        self.dump_active.is_some() || !self.dumps.is_empty()
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// Queues dumps of links, addresses and routes (start, and after an overrun).
    pub fn dump_all(&mut self) -> Result<(), LinkError> {
        for d in [Dump::Links, Dump::Addresses, Dump::Routes] {
            if !self.dumps.contains(&d) {
                self.dumps.push_back(d);
            }
        }
        self.next_dump()
    }

    fn next_dump(&mut self) -> Result<(), LinkError> {
        if self.dump_active.is_some() {
            return Ok(());
        }
        let Some(d) = self.dumps.pop_front() else {
            return Ok(());
        };
        let msg = match d {
            Dump::Links => Request::GetLink(LinkHeader::default()),
            Dump::Addresses => {
                let mut m = AddressMessage::default();
                m.header.family = AddressFamily::Inet;
                Request::GetAddress(m)
            }
            Dump::Routes => {
                let mut m = RouteMessage::default();
                m.header.address_family = AddressFamily::Inet;
                Request::GetRoute(m)
            }
        };
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP)?;
        self.dump_active = Some(seq);
        Ok(())
    }

    /// Sets `IFF_UP` and optionally the MTU. Returns the request's sequence number.
    pub fn set_link(&mut self, index: u32, mtu: Option<u32>) -> Result<u32, LinkError> {
        let h = LinkHeader {
            index,
            flags: LinkFlags::Up,
            change_mask: LinkFlags::Up,
            ..LinkHeader::default()
        };
        self.send(Request::SetLink(h, mtu), NLM_F_REQUEST | NLM_F_ACK)
    }

    fn address_message(index: u32, address: Ipv4Addr, prefix: u8) -> AddressMessage {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.header.scope = AddressScope::Universe;
        m.attributes
            .push(AddressAttribute::Local(IpAddr::V4(address)));
        m.attributes
            .push(AddressAttribute::Address(IpAddr::V4(address)));
        m
    }

    pub fn add_address(
        &mut self,
        index: u32,
        address: Ipv4Addr,
        prefix: u8,
        broadcast: Option<Ipv4Addr>,
    ) -> Result<u32, LinkError> {
        let mut m = Self::address_message(index, address, prefix);
        if let Some(b) = broadcast {
            m.attributes.push(AddressAttribute::Broadcast(b));
        }
        self.send(
            Request::NewAddress(m),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    pub fn del_address(
        &mut self,
        index: u32,
        address: Ipv4Addr,
        prefix: u8,
    ) -> Result<u32, LinkError> {
        let m = Self::address_message(index, address, prefix);
        self.send(Request::DelAddress(m), NLM_F_REQUEST | NLM_F_ACK)
    }

    fn route_message(index: u32, r: &Route, protocol: RouteProtocol) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = r.prefix;
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = protocol;
        m.header.scope = if r.gateway.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        m.header.kind = RouteType::Unicast;
        if r.prefix > 0 {
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(
                    r.destination,
                )));
        }
        if let Some(gw) = r.gateway {
            m.attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
        }
        m.attributes.push(RouteAttribute::Oif(index));
        m.attributes.push(RouteAttribute::Priority(ROUTE_METRIC));
        m
    }

    /// Adds (or replaces) a route through link `index`; `dhcp` marks its origin for `ip route`.
    pub fn add_route(&mut self, index: u32, r: &Route, dhcp: bool) -> Result<u32, LinkError> {
        let proto = if dhcp {
            RouteProtocol::Dhcp
        } else {
            RouteProtocol::Static
        };
        let m = Self::route_message(index, r, proto);
        self.send(
            Request::NewRoute(m),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    pub fn del_route(&mut self, index: u32, r: &Route) -> Result<u32, LinkError> {
        let mut m = Self::route_message(index, r, RouteProtocol::Unspec);
        m.header.scope = RouteScope::NoWhere;
        self.send(Request::DelRoute(m), NLM_F_REQUEST | NLM_F_ACK)
    }

    fn send(&mut self, inner: Request, flags: u16) -> Result<u32, LinkError> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(inner));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.sock
            .send_to(&buf, &SocketAddr::new(0, 0), 0)
            .map_err(LinkError::Send)?;
        Ok(self.seq)
    }

    /// Reads everything waiting on the socket (non-blocking) and returns what it said.
    pub fn read(&mut self) -> Vec<RtnlEvent> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        // Bounded so a storm of notifications cannot hold the loop; poll comes back for more.
        for _ in 0..256 {
            let n = match self.sock.recv(&mut &mut buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    out.push(RtnlEvent::Overrun);
                    continue;
                }
                Err(_) => break,
            };
            self.parse_datagram(buf.get(..n).unwrap_or(&[]), &mut out);
        }
        if out.contains(&RtnlEvent::Overrun) {
            let _ = self.dump_all();
        }
        out
    }

    fn parse_datagram(&mut self, data: &[u8], out: &mut Vec<RtnlEvent>) {
        for (kind, seq, payload) in messages(data) {
            match kind {
                NLMSG_DONE if self.dump_active == Some(seq) => {
                    self.dump_active = None;
                    if let Err(e) = self.next_dump() {
                        log::warn!("{e}");
                    }
                }
                NLMSG_ERROR => {
                    let code = payload
                        .get(..4)
                        .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                    if self.dump_active == Some(seq) {
                        self.dump_active = None;
                        let _ = self.next_dump();
                    }
                    out.push(RtnlEvent::Ack {
                        seq,
                        errno: (code != 0).then_some(-code),
                    });
                }
                _ => {
                    if let Some(ev) = event(kind, payload) {
                        out.push(ev)
                    }
                }
            }
        }
    }
}

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;

/// The messages of one datagram as (type, sequence number, payload); a truncated or
/// inconsistent length ends the walk.
pub fn messages(mut data: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if len < 16 || len > data.len() {
            break;
        }
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        let seq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
        out.push((kind, seq, &data[16..len]));
        data = data.get(len.div_ceil(4) * 4..).unwrap_or(&[]);
    }
    out
}

/// The attributes after a fixed header of `skip` bytes, as (kind, value).
fn attributes(payload: &[u8], skip: usize) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    let mut body = payload.get(skip..).unwrap_or(&[]);
    while body.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([body[0], body[1]]));
        let kind = u16::from_ne_bytes([body[2], body[3]]) & 0x3fff;
        let Some(value) = body.get(4..len) else {
            break;
        };
        out.push((kind, value));
        body = body.get(len.div_ceil(4) * 4..).unwrap_or(&[]);
    }
    out
}

fn ipv4(v: &[u8]) -> Option<Ipv4Addr> {
    let b: [u8; 4] = v.try_into().ok()?;
    Some(Ipv4Addr::from(b))
}

fn u32_ne(v: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(v.try_into().ok()?))
}

/// Parses the link, address and route notifications we follow, by hand from the kernel's fixed
/// headers (ifinfomsg, ifaddrmsg, rtmsg) and their attributes: `netlink-packet-route`'s full
/// parser would link in every link kind, qdisc and filter the kernel knows (a few hundred KB of
/// PID 1) to read five fields. The crate still builds every request we send.
pub fn event(kind: u16, p: &[u8]) -> Option<RtnlEvent> {
    match kind {
        RTM_NEWLINK | RTM_DELLINK => {
            let index = u32_ne(p.get(4..8)?)?;
            if kind == RTM_DELLINK {
                return Some(RtnlEvent::LinkGone(index));
            }
            let flags = u32_ne(p.get(8..12)?)?;
            let mut s = LinkState {
                index,
                name: String::new(),
                up: flags & libc::IFF_UP as u32 != 0,
                carrier: flags & IFF_LOWER_UP != 0,
                oper_up: false,
                loopback: flags & libc::IFF_LOOPBACK as u32 != 0,
                mac: None,
                mtu: 0,
            };
            for (k, v) in attributes(p, 16) {
                match k {
                    IFLA_OPERSTATE => s.oper_up = v.first() == Some(&IF_OPER_UP),
                    IFLA_ADDRESS => s.mac = v.try_into().ok(),
                    IFLA_IFNAME => {
                        s.name = String::from_utf8_lossy(v.split(|b| *b == 0).next().unwrap_or(v))
                            .into_owned()
                    }
                    IFLA_MTU => s.mtu = u32_ne(v).unwrap_or(0),
                    _ => {}
                }
            }
            Some(RtnlEvent::Link(s))
        }
        RTM_NEWADDR | RTM_DELADDR => {
            if *p.first()? != libc::AF_INET as u8 {
                return None;
            }
            let prefix = *p.get(1)?;
            let index = u32_ne(p.get(4..8)?)?;
            let attrs = attributes(p, 8);
            let local = attrs.iter().find(|(k, _)| *k == IFA_LOCAL);
            let address = local
                .or_else(|| attrs.iter().find(|(k, _)| *k == IFA_ADDRESS))
                .and_then(|(_, v)| ipv4(v))?;
            Some(RtnlEvent::Address {
                index,
                address,
                prefix,
                added: kind == RTM_NEWADDR,
            })
        }
        RTM_NEWROUTE | RTM_DELROUTE => {
            let (family, prefix, table, rtype) = (*p.first()?, *p.get(1)?, *p.get(4)?, *p.get(7)?);
            if family != libc::AF_INET as u8 || rtype != RTN_UNICAST {
                return None;
            }
            let mut route = Route {
                destination: Ipv4Addr::UNSPECIFIED,
                prefix,
                gateway: None,
            };
            let (mut index, mut table32) = (None, u32::from(table));
            for (k, v) in attributes(p, 12) {
                match k {
                    RTA_DST => route.destination = ipv4(v).unwrap_or(Ipv4Addr::UNSPECIFIED),
                    RTA_GATEWAY => route.gateway = ipv4(v),
                    RTA_OIF => index = u32_ne(v),
                    RTA_TABLE => table32 = u32_ne(v).unwrap_or(table32),
                    _ => {}
                }
            }
            if table32 != u32::from(RouteHeader::RT_TABLE_MAIN) {
                return None;
            }
            Some(RtnlEvent::Route {
                index,
                route,
                added: kind == RTM_NEWROUTE,
            })
        }
        _ => None,
    }
}

const IFF_LOWER_UP: u32 = 0x1_0000;
const IFLA_OPERSTATE: u16 = 16;
const IF_OPER_UP: u8 = 6;
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RTN_UNICAST: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::{LinkAttribute, LinkMessage};
    use netlink_packet_route::RouteNetlinkMessage;

    /// Serialises `m` the way the kernel would send it, with `netlink-packet-route`.
    fn wire(m: RouteNetlinkMessage, seq: u32) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(m));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }

    #[test]
    fn parses_what_the_crate_emits() {
        let mut l = LinkMessage::default();
        l.header.index = 7;
        l.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
        l.attributes.push(LinkAttribute::IfName("eth0".into()));
        l.attributes.push(LinkAttribute::Mtu(9000));
        l.attributes
            .push(LinkAttribute::Address(vec![0x52, 0x54, 0, 1, 2, 3]));
        let a = Rtnl::address_message(7, Ipv4Addr::new(10, 0, 2, 15), 24);
        let r = Rtnl::route_message(
            7,
            &Route {
                destination: Ipv4Addr::new(192, 168, 7, 0),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
            },
            RouteProtocol::Dhcp,
        );
        let mut data = wire(RouteNetlinkMessage::NewLink(l), 1);
        data.extend(wire(RouteNetlinkMessage::NewAddress(a.clone()), 2));
        data.extend(wire(RouteNetlinkMessage::DelAddress(a), 3));
        data.extend(wire(RouteNetlinkMessage::NewRoute(r), 4));
        let events: Vec<RtnlEvent> = messages(&data)
            .into_iter()
            .filter_map(|(k, _, p)| event(k, p))
            .collect();
        assert_eq!(
            events,
            vec![
                RtnlEvent::Link(LinkState {
                    index: 7,
                    name: "eth0".into(),
                    up: true,
                    carrier: true,
                    oper_up: false,
                    loopback: false,
                    mac: Some([0x52, 0x54, 0, 1, 2, 3]),
                    mtu: 9000,
                }),
                RtnlEvent::Address {
                    index: 7,
                    address: Ipv4Addr::new(10, 0, 2, 15),
                    prefix: 24,
                    added: true
                },
                RtnlEvent::Address {
                    index: 7,
                    address: Ipv4Addr::new(10, 0, 2, 15),
                    prefix: 24,
                    added: false
                },
                RtnlEvent::Route {
                    index: Some(7),
                    route: Route {
                        destination: Ipv4Addr::new(192, 168, 7, 0),
                        prefix: 24,
                        gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
                    },
                    added: true
                },
            ]
        );
    }

    #[test]
    fn carrier_and_operstate_up_come_from_the_message() {
        let link = |operstate: u8| {
            let mut l = LinkMessage::default();
            l.header.index = 3;
            l.header.flags = LinkFlags::Up | LinkFlags::LowerUp;
            l.attributes.push(LinkAttribute::IfName("eth0".into()));
            l.attributes.push(LinkAttribute::OperState(
                netlink_packet_route::link::State::from(operstate),
            ));
            let data = wire(RouteNetlinkMessage::NewLink(l), 1);
            match messages(&data)
                .into_iter()
                .find_map(|(k, _, p)| event(k, p))
            {
                Some(RtnlEvent::Link(s)) => (s.carrier, s.oper_up),
                other => panic!("not a link: {other:?}"),
            }
        };
        assert_eq!(link(0), (true, false), "LOWER_UP, operstate UNKNOWN");
        assert_eq!(link(2), (true, false), "LOWER_UP, operstate DOWN");
        assert_eq!(link(6), (true, true), "operstate UP");
    }

    #[test]
    fn truncated_datagrams_end_the_walk() {
        let mut l = LinkMessage::default();
        l.attributes.push(LinkAttribute::IfName("eth0".into()));
        let data = wire(RouteNetlinkMessage::NewLink(l), 1);
        for n in 0..data.len() {
            // Never a panic; a cut message is skipped whole.
            let m = messages(&data[..n]);
            assert!(m.is_empty());
        }
        // A header claiming more than the datagram holds.
        let mut bad = data.clone();
        bad[0] = 0xff;
        assert!(messages(&bad).is_empty());
        // A link message whose payload is shorter than ifinfomsg.
        assert_eq!(event(RTM_NEWLINK, &[0u8; 6]), None);
        assert_eq!(event(RTM_NEWADDR, &[2u8]), None);
    }
}
