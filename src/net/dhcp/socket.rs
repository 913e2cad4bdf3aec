//! The DHCP client's socket for one link: UDP on 0.0.0.0:68, bound to the device
//! (`SO_BINDTODEVICE`) so each link's client hears only its own link, with `SO_BROADCAST` to send
//! to 255.255.255.255. Non-blocking: the event loop polls it.
//!
//! Why UDP rather than AF_PACKET: our requests set the BROADCAST flag, so servers broadcast their
//! replies and the kernel delivers them to this socket before the link has any IPv4 address; a
//! limited-broadcast send from 0.0.0.0 on a device-bound socket needs no route either. That keeps
//! the client free of hand-built IP/UDP headers, checksums and BPF filters, and of `unsafe`. The
//! cost is that a server ignoring the BROADCAST flag (rare; RFC 2131 §4.1 requires honouring it)
//! would unicast to an address the kernel does not have yet. RENEWING then works as plain unicast
//! because the address is configured by then.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};

use nix::sys::socket::{
    bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};

use super::client::Dest;

pub const CLIENT_PORT: u16 = 68;
pub const SERVER_PORT: u16 = 67;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("dhcp socket for {link}: {op}: {source}")]
    Setup {
        link: String,
        op: &'static str,
        source: nix::Error,
    },
    #[error("dhcp send on {link} to {to}: {source}")]
    Send {
        link: String,
        to: SocketAddrV4,
        source: std::io::Error,
    },
}

/// One link's DHCP socket.
#[derive(Debug)]
pub struct DhcpSocket {
    link: String,
    sock: UdpSocket,
}

impl DhcpSocket {
    /// Opens the socket for link `link` (the interface name).
    pub fn open(link: &str) -> Result<Self, SocketError> {
        let err = |op| {
            let link = link.to_string();
            move |source| SocketError::Setup { link, op, source }
        };
        let fd = socket(
            AddressFamily::Inet,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )
        .map_err(err("socket"))?;
        setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(err("SO_REUSEADDR"))?;
        setsockopt(&fd, sockopt::Broadcast, &true).map_err(err("SO_BROADCAST"))?;
        setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(link))
            .map_err(err("SO_BINDTODEVICE"))?;
        let any = SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT));
        bind(fd.as_raw_fd(), &any).map_err(err("bind 0.0.0.0:68"))?;
        Ok(DhcpSocket {
            link: link.to_string(),
            sock: UdpSocket::from(fd),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    pub fn send(&self, dest: Dest, packet: &[u8]) -> Result<(), SocketError> {
        let ip = match dest {
            Dest::Broadcast => Ipv4Addr::BROADCAST,
            Dest::Server(a) => a,
        };
        let to = SocketAddrV4::new(ip, SERVER_PORT);
        self.sock
            .send_to(packet, SocketAddr::V4(to))
            .map(|_| ())
            .map_err(|source| SocketError::Send {
                link: self.link.clone(),
                to,
                source,
            })
    }

    /// Reads every datagram waiting (non-blocking); each is at most `max` bytes, and a datagram
    /// longer than that is reported with its full length so the parser can refuse it.
    pub fn recv_all(&self, max: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; max + 1];
        // Bounded: a flood must not keep PID 1 in this loop.
        for _ in 0..64 {
            match self.sock.recv_from(&mut buf) {
                Ok((n, _)) => out.push(buf[..n].to_vec()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        out
    }
}
