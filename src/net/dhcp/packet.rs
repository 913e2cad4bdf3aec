//! DHCPv4 wire format for the client: the requests it sends and the checks every reply must pass
//! before the state machine sees it, built on `dhcproto`.
//!
//! Everything that arrives from the network is untrusted: a reply becomes a [`Reply`] only when it
//! decodes, is a BOOTREPLY for our transaction id and hardware address, and carries a message type
//! and a server identifier; option values are then checked one by one (a bad MTU or hostname is
//! ignored, not fatal), so a hostile server can at worst refuse us a lease.

use std::net::Ipv4Addr;

use dhcproto::v4::{
    Decodable, DhcpOption, Encodable, Flags, HType, Message, MessageType, Opcode, OptionCode,
};

use super::lease::{Lease, Route};

/// The largest reply accepted: an Ethernet frame's UDP payload. We announce it as option 57, so a
/// conforming server never sends more.
pub const MAX_MESSAGE: usize = 1472;

/// Why a packet was dropped (each logged at debug level, never an error: the network is noisy).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("packet of {0} bytes exceeds {MAX_MESSAGE}")]
    Oversized(usize),
    #[error("undecodable packet: {0}")]
    Decode(String),
    #[error("not a BOOTREPLY")]
    NotReply,
    #[error("transaction id {got:#010x} is not ours ({want:#010x})")]
    Xid { got: u32, want: u32 },
    #[error("hardware address is not ours")]
    Chaddr,
    #[error("no DHCP message type")]
    NoMessageType,
    #[error("no server identifier")]
    NoServerId,
    #[error("{0:?} offers no address")]
    NoAddress(MessageType),
    #[error("ACK without a lease time")]
    NoLeaseTime,
    #[error("option {0} with a length the decoder cannot take")]
    Hostile(u8),
    #[error("could not encode: {0}")]
    Encode(String),
}

/// A reply that passed every check, reduced to what the state machine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Offer {
        server: Ipv4Addr,
        address: Ipv4Addr,
    },
    Ack(Lease),
    Nak {
        server: Ipv4Addr,
        message: Option<String>,
    },
}

/// What a request carries besides its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestFields {
    /// `ciaddr`: our address while RENEWING or REBINDING.
    pub ciaddr: Option<Ipv4Addr>,
    /// Option 50, in SELECTING's REQUEST and in INIT-REBOOT.
    pub requested: Option<Ipv4Addr>,
    /// Option 54, only when answering an OFFER (and in RELEASE/DECLINE).
    pub server: Option<Ipv4Addr>,
    /// Ask for broadcast replies: we cannot receive unicast before the address is configured.
    pub broadcast: bool,
    /// Seconds since the exchange began (`secs`).
    pub secs: u16,
}

/// Options the client asks for (option 55).
const WANTED: &[OptionCode] = &[
    OptionCode::SubnetMask,
    OptionCode::ClasslessStaticRoute,
    OptionCode::Router,
    OptionCode::DomainNameServer,
    OptionCode::Hostname,
    OptionCode::DomainName,
    OptionCode::DomainSearch,
    OptionCode::BroadcastAddr,
    OptionCode::InterfaceMtu,
];

/// Encodes a client message of type `kind`.
pub fn build(
    kind: MessageType,
    xid: u32,
    mac: [u8; 6],
    f: RequestFields,
) -> Result<Vec<u8>, PacketError> {
    let mut m = blank(xid, mac)?;
    m.set_opcode(Opcode::BootRequest).set_htype(HType::Eth);
    m.set_ciaddr(f.ciaddr.unwrap_or(Ipv4Addr::UNSPECIFIED));
    m.set_secs(f.secs);
    if f.broadcast {
        m.set_flags(Flags::default().set_broadcast());
    }
    let opts = m.opts_mut();
    opts.insert(DhcpOption::MessageType(kind));
    let mut client_id = vec![1u8];
    client_id.extend_from_slice(&mac);
    opts.insert(DhcpOption::ClientIdentifier(client_id));
    if let Some(a) = f.requested {
        opts.insert(DhcpOption::RequestedIpAddress(a));
    }
    if let Some(s) = f.server {
        opts.insert(DhcpOption::ServerIdentifier(s));
    }
    if !matches!(kind, MessageType::Release | MessageType::Decline) {
        opts.insert(DhcpOption::MaxMessageSize(MAX_MESSAGE as u16));
        opts.insert(DhcpOption::ParameterRequestList(WANTED.to_vec()));
    }
    m.to_vec()
        .map_err(|e| PacketError::Encode(encode_error_text(&e)))
}

/// An empty BOOTP message for `xid` and `mac`, made by decoding a fixed header: `dhcproto`'s
/// constructors all start from `Message::default()`, which draws a random xid through `rand`'s
/// thread RNG, and that calls getrandom(2) without GRND_NONBLOCK — in PID 1 early at boot it
/// blocked the whole event loop until the kernel's CRNG was ready (3 s measured under QEMU TCG).
fn blank(xid: u32, mac: [u8; 6]) -> Result<Message, PacketError> {
    let mut b = vec![0u8; 241];
    b[0] = 1; // BOOTREQUEST
    b[1] = 1; // Ethernet
    b[2] = 6;
    b[4..8].copy_from_slice(&xid.to_be_bytes());
    b[28..34].copy_from_slice(&mac);
    b[236..240].copy_from_slice(&dhcproto::v4::MAGIC);
    b[240] = 255;
    Message::from_bytes(&b).map_err(|e| PacketError::Encode(decode_error_text(&e)))
}

/// dhcproto's words for a decode error, except that a malformed domain name (options 15 and 119)
/// is not spelled out by hickory-proto's error: its `Display` and `Debug` reach the formatting of
/// every DNS record type (~17 KB of the binary) to describe a name a DHCP client only drops.
fn decode_error_text(e: &dhcproto::error::DecodeError) -> String {
    use dhcproto::error::DecodeError as E;
    match e {
        E::AddOverflow => "decoder checked_add failed".into(),
        E::NotEnoughBytes => "parser ran out of data-- not enough bytes".into(),
        E::SliceError(e) => format!("error converting from slice {e}"),
        E::NulError(e) => format!("error getting null terminated string {e}"),
        E::Utf8Error(e) => format!("error converting to UTF-8 {e}"),
        E::InvalidData(n, msg) => format!("invalid data error {n} msg {msg}"),
        E::DomainParseError(_) => "domain parse error: not a valid domain name".into(),
        E::Unknown(_) => "unknown error".into(),
    }
}

/// dhcproto's words for an encode error (see [`decode_error_text`] for the domain-name case).
fn encode_error_text(e: &dhcproto::error::EncodeError) -> String {
    use dhcproto::error::EncodeError as E;
    match e {
        E::AddOverflow => "encoder checked_add failed".into(),
        E::StringSizeTooBig { len } => format!(
            "message is trying to write a string to the message that exceeds the max size of {len}"
        ),
        E::DomainEncodeError(_) => "domain encoding error: not a valid domain name".into(),
    }
}

/// Decodes and checks a packet received on the client port.
pub fn parse(bytes: &[u8], xid: u32, mac: [u8; 6]) -> Result<Reply, PacketError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(PacketError::Oversized(bytes.len()));
    }
    screen_options(bytes)?;
    let m = Message::from_bytes(bytes).map_err(|e| PacketError::Decode(decode_error_text(&e)))?;
    if m.opcode() != Opcode::BootReply {
        return Err(PacketError::NotReply);
    }
    if m.xid() != xid {
        return Err(PacketError::Xid {
            got: m.xid(),
            want: xid,
        });
    }
    // `chaddr()` slices a 16-byte array by the packet's hlen: check it first (found by fuzz/).
    if m.hlen() > 16 || m.chaddr().get(..6) != Some(&mac[..]) {
        return Err(PacketError::Chaddr);
    }
    let kind = m.opts().msg_type().ok_or(PacketError::NoMessageType)?;
    let server = match m.opts().get(OptionCode::ServerIdentifier) {
        Some(DhcpOption::ServerIdentifier(s)) => *s,
        _ => return Err(PacketError::NoServerId),
    };
    let address = m.yiaddr();
    let usable = !(address.is_unspecified()
        || address.is_broadcast()
        || address.is_multicast()
        || address.is_loopback());
    match kind {
        MessageType::Offer if usable => Ok(Reply::Offer { server, address }),
        MessageType::Ack if usable => lease_from(&m, server).map(Reply::Ack),
        MessageType::Nak => Ok(Reply::Nak {
            server,
            message: match m.opts().get(OptionCode::Message) {
                Some(DhcpOption::Message(s)) => Some(printable(s, 128)),
                _ => None,
            },
        }),
        MessageType::Offer | MessageType::Ack => Err(PacketError::NoAddress(kind)),
        _ => Err(PacketError::NotReply),
    }
}

/// Offset of the options after the fixed BOOTP header and the magic cookie.
const OPTIONS_START: usize = 240;

/// Refuses the option lengths `dhcproto` 0.14 only checks with `debug_assert!` or by
/// subtraction (rapid commit, client FQDN, client network interface, bulk lease query): none of
/// them is meant for a client, and a bad length must not reach the decoder. Each may appear once
/// (repeats are concatenated by the decoder, which would defeat the length check).
fn screen_options(bytes: &[u8]) -> Result<(), PacketError> {
    let mut seen = [false; 256];
    let mut i = OPTIONS_START;
    while let Some(&code) = bytes.get(i) {
        match code {
            0 => {
                i += 1;
                continue;
            }
            255 => break,
            _ => {}
        }
        let Some(&len) = bytes.get(i + 1) else {
            break;
        };
        let ok = match code {
            80 => len == 0,
            81 => len >= 3,
            94 => len == 3,
            151 | 156 | 157 => len >= 1,
            152..=155 => len == 4,
            _ => true,
        };
        let guarded = matches!(code, 80 | 81 | 94 | 151..=157);
        if !ok || (guarded && seen[usize::from(code)]) {
            return Err(PacketError::Hostile(code));
        }
        seen[usize::from(code)] = true;
        i += 2 + usize::from(len);
    }
    Ok(())
}

/// The lease an ACK grants, with every option value checked.
fn lease_from(m: &Message, server: Ipv4Addr) -> Result<Lease, PacketError> {
    let o = m.opts();
    let address = m.yiaddr();
    let lease_time = match o.get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => *t,
        _ => return Err(PacketError::NoLeaseTime),
    };
    let prefix = match o.get(OptionCode::SubnetMask) {
        Some(DhcpOption::SubnetMask(mask)) => mask_prefix(*mask),
        _ => None,
    }
    .unwrap_or_else(|| classful_prefix(address));
    let secs = |code| match o.get(code) {
        Some(DhcpOption::Renewal(t)) | Some(DhcpOption::Rebinding(t)) => Some(*t),
        _ => None,
    };
    let (t1, t2) = timers(
        lease_time,
        secs(OptionCode::Renewal),
        secs(OptionCode::Rebinding),
    );
    let routers: Vec<Ipv4Addr> = match o.get(OptionCode::Router) {
        Some(DhcpOption::Router(r)) => r.iter().copied().filter(|a| unicast(*a)).collect(),
        _ => Vec::new(),
    };
    // RFC 3442: when option 121 is present the client ignores option 3.
    let routes = match o.get(OptionCode::ClasslessStaticRoute) {
        Some(DhcpOption::ClasslessStaticRoute(r)) => r
            .iter()
            .map(|(net, gw)| Route {
                destination: net.network(),
                prefix: net.prefix_len(),
                gateway: (!gw.is_unspecified()).then_some(*gw),
            })
            .collect(),
        _ => routers
            .first()
            .map(|gw| Route {
                destination: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                gateway: Some(*gw),
            })
            .into_iter()
            .collect(),
    };
    let dns = match o.get(OptionCode::DomainNameServer) {
        Some(DhcpOption::DomainNameServer(d)) => {
            d.iter().copied().filter(|a| unicast(*a)).take(8).collect()
        }
        _ => Vec::new(),
    };
    let mut search: Vec<String> = Vec::new();
    if let Some(DhcpOption::DomainSearch(names)) = o.get(OptionCode::DomainSearch) {
        search.extend(names.iter().filter_map(|n| domain(&n.to_ascii())));
    } else if let Some(DhcpOption::DomainName(d)) = o.get(OptionCode::DomainName) {
        search.extend(d.split_whitespace().filter_map(domain));
    }
    search.truncate(6);
    let hostname = match o.get(OptionCode::Hostname) {
        Some(DhcpOption::Hostname(h)) => domain(h).filter(|h| h.len() <= 64),
        _ => None,
    };
    let mtu = match o.get(OptionCode::InterfaceMtu) {
        Some(DhcpOption::InterfaceMtu(m)) if *m >= 576 => Some(*m),
        _ => None,
    };
    let broadcast = match o.get(OptionCode::BroadcastAddr) {
        Some(DhcpOption::BroadcastAddr(b)) => Some(*b),
        _ => None,
    };
    Ok(Lease {
        address,
        prefix,
        broadcast,
        server,
        routes,
        dns,
        search,
        hostname,
        mtu,
        lease_time,
        t1,
        t2,
    })
}

/// T1 and T2 as the server gave them, or RFC 2131's defaults (0.5 and 0.875 of the lease) when
/// missing or inconsistent (T1 < T2 < lease is required).
pub fn timers(lease: u32, t1: Option<u32>, t2: Option<u32>) -> (u32, u32) {
    let d1 = lease / 2;
    let d2 = (u64::from(lease) * 7 / 8) as u32;
    match (t1, t2) {
        (Some(a), Some(b)) if a < b && b < lease => (a, b),
        (Some(a), None) if a < d2 => (a, d2),
        (None, Some(b)) if d1 < b && b < lease => (d1, b),
        _ => (d1, d2),
    }
}

fn unicast(a: Ipv4Addr) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast())
}

/// The prefix length of a contiguous netmask; `None` for a mask with holes.
pub fn mask_prefix(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// The classful prefix of an address, for a server that sends no subnet mask (RFC 2132 §3.3).
fn classful_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// A domain or host name as found in an option, if it is one: letters, digits, `-`, `.`, `_`,
/// at most 253 characters. Anything else (spaces, control characters, shell syntax) is refused:
/// the value ends up in resolv.conf and in the kernel's hostname.
fn domain(s: &str) -> Option<String> {
    let s = s.trim_end_matches('\0').trim_end_matches('.');
    let ok = !s.is_empty()
        && s.len() <= 253
        && !s.starts_with(['-', '.'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    ok.then(|| s.to_ascii_lowercase())
}

/// A server's free text, made safe to log.
fn printable(s: &str, max: usize) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect::<String>()
}

/// Builds a reply as a server would: tests use it to feed the state machine.
#[cfg(test)]
pub fn server_reply(
    kind: MessageType,
    xid: u32,
    mac: [u8; 6],
    yiaddr: Ipv4Addr,
    opts: Vec<DhcpOption>,
) -> Vec<u8> {
    let Ok(mut m) = blank(xid, mac) else {
        return Vec::new();
    };
    m.set_opcode(Opcode::BootReply).set_yiaddr(yiaddr);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    for o in opts {
        m.opts_mut().insert(o);
    }
    m.to_vec().unwrap_or_default()
}

/// Reads a request back (tests check what the client sent).
#[cfg(test)]
pub fn decode_request(bytes: &[u8]) -> Option<Message> {
    Message::from_bytes(bytes).ok()
}

#[cfg(test)]
mod error_text_tests {
    use super::*;
    use dhcproto::error::{DecodeError, EncodeError};

    /// The hand-written words are dhcproto's own (`Display`), the domain-name case aside.
    #[test]
    fn error_texts_are_dhcprotos_words() {
        let slice = <[u8; 2]>::try_from(&[1u8][..]).unwrap_err();
        let nul = std::ffi::CStr::from_bytes_with_nul(b"a").unwrap_err();
        let invalid = vec![0xffu8];
        let utf8 = std::str::from_utf8(&invalid).unwrap_err();
        for e in [
            DecodeError::AddOverflow,
            DecodeError::NotEnoughBytes,
            DecodeError::SliceError(slice),
            DecodeError::NulError(nul),
            DecodeError::Utf8Error(utf8),
            DecodeError::InvalidData(7, "bad"),
            DecodeError::Unknown("x".into()),
        ] {
            assert_eq!(decode_error_text(&e), e.to_string());
        }
        for e in [
            EncodeError::AddOverflow,
            EncodeError::StringSizeTooBig { len: 300 },
        ] {
            assert_eq!(encode_error_text(&e), e.to_string());
        }
        // hickory-proto's error text is what the hand-written words leave out.
        let e = DecodeError::DomainParseError(dhcproto::NameError::from("label too long"));
        assert_eq!(
            decode_error_text(&e),
            "domain parse error: not a valid domain name"
        );
        let e = EncodeError::DomainEncodeError(dhcproto::NameError::from("label too long"));
        assert_eq!(
            encode_error_text(&e),
            "domain encoding error: not a valid domain name"
        );
    }
}
