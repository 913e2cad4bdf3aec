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
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use super::dhcp::Route;

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
            Dump::Links => RouteNetlinkMessage::GetLink(LinkMessage::default()),
            Dump::Addresses => {
                let mut m = AddressMessage::default();
                m.header.family = AddressFamily::Inet;
                RouteNetlinkMessage::GetAddress(m)
            }
            Dump::Routes => {
                let mut m = RouteMessage::default();
                m.header.address_family = AddressFamily::Inet;
                RouteNetlinkMessage::GetRoute(m)
            }
        };
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP)?;
        self.dump_active = Some(seq);
        Ok(())
    }

    /// Sets `IFF_UP` and optionally the MTU. Returns the request's sequence number.
    pub fn set_link(&mut self, index: u32, mtu: Option<u32>) -> Result<u32, LinkError> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.header.flags = LinkFlags::Up;
        m.header.change_mask = LinkFlags::Up;
        if let Some(mtu) = mtu {
            m.attributes.push(LinkAttribute::Mtu(mtu));
        }
        self.send(RouteNetlinkMessage::SetLink(m), NLM_F_REQUEST | NLM_F_ACK)
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
            RouteNetlinkMessage::NewAddress(m),
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
        self.send(
            RouteNetlinkMessage::DelAddress(m),
            NLM_F_REQUEST | NLM_F_ACK,
        )
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
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    pub fn del_route(&mut self, index: u32, r: &Route) -> Result<u32, LinkError> {
        let mut m = Self::route_message(index, r, RouteProtocol::Unspec);
        m.header.scope = RouteScope::NoWhere;
        self.send(RouteNetlinkMessage::DelRoute(m), NLM_F_REQUEST | NLM_F_ACK)
    }

    fn send(&mut self, inner: RouteNetlinkMessage, flags: u16) -> Result<u32, LinkError> {
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

    fn parse_datagram(&mut self, mut data: &[u8], out: &mut Vec<RtnlEvent>) {
        while data.len() >= 16 {
            let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
            if len < 16 || len > data.len() {
                break;
            }
            let (one, rest) = data.split_at(len);
            data = rest.get(len.div_ceil(4) * 4 - len..).unwrap_or(&[]);
            match NetlinkMessage::<RouteNetlinkMessage>::deserialize(one) {
                Ok(m) => self.on_message(m, out),
                Err(e) => log::debug!("rtnetlink: undecodable message: {e}"),
            }
        }
    }

    fn on_message(&mut self, m: NetlinkMessage<RouteNetlinkMessage>, out: &mut Vec<RtnlEvent>) {
        let seq = m.header.sequence_number;
        match m.payload {
            NetlinkPayload::Done(_) if self.dump_active == Some(seq) => {
                self.dump_active = None;
                if let Err(e) = self.next_dump() {
                    log::warn!("{e}");
                }
            }
            NetlinkPayload::Error(e) => {
                let errno = e.code.map(|c| -c.get());
                if self.dump_active == Some(seq) {
                    self.dump_active = None;
                    let _ = self.next_dump();
                }
                out.push(RtnlEvent::Ack { seq, errno });
            }
            NetlinkPayload::InnerMessage(inner) => {
                if let Some(ev) = event(inner) {
                    out.push(ev)
                }
            }
            _ => {}
        }
    }
}

fn event(m: RouteNetlinkMessage) -> Option<RtnlEvent> {
    match m {
        RouteNetlinkMessage::NewLink(l) => Some(RtnlEvent::Link(link_state(&l))),
        RouteNetlinkMessage::DelLink(l) => Some(RtnlEvent::LinkGone(l.header.index)),
        RouteNetlinkMessage::NewAddress(a) => address_event(&a, true),
        RouteNetlinkMessage::DelAddress(a) => address_event(&a, false),
        RouteNetlinkMessage::NewRoute(r) => route_event(&r, true),
        RouteNetlinkMessage::DelRoute(r) => route_event(&r, false),
        _ => None,
    }
}

fn address_event(a: &AddressMessage, added: bool) -> Option<RtnlEvent> {
    if a.header.family != AddressFamily::Inet {
        return None;
    }
    let address = a.attributes.iter().find_map(|x| match x {
        AddressAttribute::Local(IpAddr::V4(v)) => Some(*v),
        _ => None,
    })?;
    Some(RtnlEvent::Address {
        index: a.header.index,
        address,
        prefix: a.header.prefix_len,
        added,
    })
}

/// Main-table IPv4 unicast routes only: the kernel's local and broadcast routes are not ours.
fn route_event(r: &RouteMessage, added: bool) -> Option<RtnlEvent> {
    let main = r.header.table == RouteHeader::RT_TABLE_MAIN
        || r.attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Table(t) if *t == u32::from(RouteHeader::RT_TABLE_MAIN)));
    if r.header.address_family != AddressFamily::Inet
        || !main
        || r.header.kind != RouteType::Unicast
    {
        return None;
    }
    let mut route = Route {
        destination: Ipv4Addr::UNSPECIFIED,
        prefix: r.header.destination_prefix_length,
        gateway: None,
    };
    let mut index = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => route.destination = *d,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => route.gateway = Some(*g),
            RouteAttribute::Oif(i) => index = Some(*i),
            _ => {}
        }
    }
    Some(RtnlEvent::Route {
        index,
        route,
        added,
    })
}

fn link_state(l: &LinkMessage) -> LinkState {
    let mut s = LinkState {
        index: l.header.index,
        name: String::new(),
        up: l.header.flags.contains(LinkFlags::Up),
        carrier: l.header.flags.contains(LinkFlags::LowerUp),
        loopback: l.header.flags.contains(LinkFlags::Loopback),
        mac: None,
        mtu: 0,
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => s.name = n.clone(),
            LinkAttribute::Mtu(m) => s.mtu = *m,
            LinkAttribute::Address(mac) if mac.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(mac);
                s.mac = Some(m);
            }
            _ => {}
        }
    }
    s
}
