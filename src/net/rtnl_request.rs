//! The rtnetlink requests the init sends, serialised with `netlink-packet-route`'s own emitters
//! for headers and attributes, but without its `RouteNetlinkMessage` enum.
//!
//! Emitting through `RouteNetlinkMessage` links the emitter of every message kind and every link
//! attribute the crate knows (`LinkMessage::emit` alone was 45 KB and `RouteNetlinkMessage::emit`
//! 21 KB, docs/binary-size.md), reached from one "set link up" request. The init sends only seven
//! kinds, and its link requests carry at most an MTU: [`Request`] names exactly those, emits the
//! address and route messages with the crate's `AddressMessage`/`RouteMessage` emitters and a
//! link request as the crate's `LinkHeader` plus a plain MTU attribute. The bytes are the same as
//! the crate's (the tests compare them); replies are still parsed as `RouteNetlinkMessage`.

use netlink_packet_core::{DefaultNla, Emitable, NetlinkSerializable};
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkHeader;
use netlink_packet_route::route::RouteMessage;

// Message types from <linux/rtnetlink.h>.
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const IFLA_MTU: u16 = 4;

#[derive(Debug, Clone)]
pub enum Request {
    GetLink(LinkHeader),
    SetLink(LinkHeader, Option<u32>),
    GetAddress(AddressMessage),
    NewAddress(AddressMessage),
    DelAddress(AddressMessage),
    GetRoute(RouteMessage),
    NewRoute(RouteMessage),
    DelRoute(RouteMessage),
}

impl Request {
    fn link_parts(&self) -> Option<(&LinkHeader, Option<DefaultNla>)> {
        match self {
            Request::GetLink(h) => Some((h, None)),
            Request::SetLink(h, mtu) => Some((
                h,
                mtu.map(|m| DefaultNla::new(IFLA_MTU, m.to_ne_bytes().to_vec())),
            )),
            _ => None,
        }
    }
}

impl NetlinkSerializable for Request {
    fn message_type(&self) -> u16 {
        match self {
            Request::GetLink(_) => RTM_GETLINK,
            Request::SetLink(..) => RTM_SETLINK,
            Request::GetAddress(_) => RTM_GETADDR,
            Request::NewAddress(_) => RTM_NEWADDR,
            Request::DelAddress(_) => RTM_DELADDR,
            Request::GetRoute(_) => RTM_GETROUTE,
            Request::NewRoute(_) => RTM_NEWROUTE,
            Request::DelRoute(_) => RTM_DELROUTE,
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            Request::GetAddress(m) | Request::NewAddress(m) | Request::DelAddress(m) => {
                m.buffer_len()
            }
            Request::GetRoute(m) | Request::NewRoute(m) | Request::DelRoute(m) => m.buffer_len(),
            _ => match self.link_parts() {
                Some((h, nla)) => h.buffer_len() + nla.as_slice().buffer_len(),
                None => 0,
            },
        }
    }

    fn serialize(&self, buffer: &mut [u8]) {
        match self {
            Request::GetAddress(m) | Request::NewAddress(m) | Request::DelAddress(m) => {
                m.emit(buffer)
            }
            Request::GetRoute(m) | Request::NewRoute(m) | Request::DelRoute(m) => m.emit(buffer),
            _ => {
                if let Some((h, nla)) = self.link_parts() {
                    h.emit(buffer);
                    if let Some(rest) = buffer.get_mut(h.buffer_len()..) {
                        nla.as_slice().emit(rest);
                    }
                }
            }
        }
    }
}

impl From<Request> for netlink_packet_core::NetlinkPayload<Request> {
    fn from(r: Request) -> Self {
        netlink_packet_core::NetlinkPayload::InnerMessage(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::address::AddressAttribute;
    use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
    use netlink_packet_route::route::{RouteAddress, RouteAttribute};
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
    use std::net::{IpAddr, Ipv4Addr};

    fn bytes<I: NetlinkSerializable + std::fmt::Debug>(p: NetlinkPayload<I>) -> Vec<u8> {
        let mut header = NetlinkHeader::default();
        header.sequence_number = 7;
        header.flags = 0x5;
        let mut msg = NetlinkMessage::new(header, p);
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        buf
    }

    #[test]
    fn same_bytes_as_the_crates_full_emitter() {
        let mut link = LinkMessage::default();
        link.header.index = 3;
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        let mut with_mtu = link.clone();
        with_mtu.attributes.push(LinkAttribute::Mtu(1400));
        let mut addr = AddressMessage::default();
        addr.header.family = AddressFamily::Inet;
        addr.header.prefix_len = 24;
        addr.header.index = 3;
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 2, 15));
        addr.attributes.push(AddressAttribute::Local(a));
        addr.attributes.push(AddressAttribute::Address(a));
        let mut route = RouteMessage::default();
        route.header.address_family = AddressFamily::Inet;
        route
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(Ipv4Addr::new(
                10, 0, 2, 2,
            ))));
        route.attributes.push(RouteAttribute::Oif(3));
        let pairs = [
            (
                Request::GetLink(LinkMessage::default().header),
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
            ),
            (
                Request::SetLink(link.header.clone(), None),
                RouteNetlinkMessage::SetLink(link),
            ),
            (
                Request::SetLink(with_mtu.header.clone(), Some(1400)),
                RouteNetlinkMessage::SetLink(with_mtu),
            ),
            (
                Request::GetAddress(addr.clone()),
                RouteNetlinkMessage::GetAddress(addr.clone()),
            ),
            (
                Request::NewAddress(addr.clone()),
                RouteNetlinkMessage::NewAddress(addr.clone()),
            ),
            (
                Request::DelAddress(addr.clone()),
                RouteNetlinkMessage::DelAddress(addr),
            ),
            (
                Request::GetRoute(route.clone()),
                RouteNetlinkMessage::GetRoute(route.clone()),
            ),
            (
                Request::NewRoute(route.clone()),
                RouteNetlinkMessage::NewRoute(route.clone()),
            ),
            (
                Request::DelRoute(route.clone()),
                RouteNetlinkMessage::DelRoute(route),
            ),
        ];
        for (ours, theirs) in pairs {
            let name = format!("{ours:?}");
            assert_eq!(
                bytes(NetlinkPayload::from(ours)),
                bytes(NetlinkPayload::from(theirs)),
                "{name}"
            );
        }
    }
}
