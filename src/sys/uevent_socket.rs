//! The kernel's uevent multicast socket (NETLINK_KOBJECT_UEVENT, group 1): what udevd listens to.
//!
//! Other processes may send to the group too, so messages whose sender port id is not the kernel's
//! (0) are reported as foreign and dropped. Tests feed the same reader from one end of a
//! socketpair, where there is no sender to check. nix wraps every call: no unsafe here.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{
    bind, recv, recvfrom, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr,
    SockFlag, SockProtocol, SockType,
};

/// The kernel's uevent group.
const UEVENT_GROUP: u32 = 1;

/// Receive buffer: a burst of uevents at boot (every CPU, every PCI function) must not overflow it.
const RCVBUF: usize = 4 << 20;

/// What one receive produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// A message of this many bytes is in the buffer.
    Message(usize),
    /// A message from someone other than the kernel, dropped.
    Foreign(u32),
    /// Nothing queued.
    Empty,
}

/// A non-blocking source of uevent datagrams.
#[derive(Debug)]
pub struct UeventSocket {
    fd: OwnedFd,
    netlink: bool,
}

impl UeventSocket {
    /// Opens and binds the kernel uevent socket (non-blocking, close-on-exec).
    pub fn open_kernel() -> nix::Result<UeventSocket> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            SockProtocol::NetlinkKObjectUEvent,
        )?;
        // Needs CAP_NET_ADMIN; the ordinary limit applies otherwise, which is fine for tests.
        if setsockopt(&fd, sockopt::RcvBufForce, &RCVBUF).is_err() {
            let _ = setsockopt(&fd, sockopt::RcvBuf, &RCVBUF);
        }
        bind(fd.as_raw_fd(), &NetlinkAddr::new(0, UEVENT_GROUP))?;
        Ok(UeventSocket { fd, netlink: true })
    }

    /// Wraps a datagram or seqpacket socket (one end of a socketpair); made non-blocking.
    pub fn from_fd(fd: OwnedFd) -> nix::Result<UeventSocket> {
        crate::sys::poll::set_nonblocking(fd.as_raw_fd())?;
        Ok(UeventSocket { fd, netlink: false })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Receives one datagram into `buf`. A datagram longer than `buf` is truncated to it, so a
    /// caller that passes one byte more than it accepts sees oversized messages as such.
    pub fn receive(&self, buf: &mut [u8]) -> nix::Result<Received> {
        let r = if self.netlink {
            recvfrom::<NetlinkAddr>(self.fd.as_raw_fd(), buf).map(|(n, from)| {
                match from.map(|a| a.pid()) {
                    Some(0) => Received::Message(n),
                    Some(pid) => Received::Foreign(pid),
                    None => Received::Foreign(u32::MAX),
                }
            })
        } else {
            recv(self.fd.as_raw_fd(), buf, MsgFlags::empty()).map(Received::Message)
        };
        match r {
            Err(Errno::EAGAIN) => Ok(Received::Empty),
            other => other,
        }
    }
}
