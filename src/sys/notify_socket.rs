//! The sd_notify datagram socket: services send `READY=1` and friends; the kernel attaches the
//! sender's credentials (SO_PASSCRED) so the init can tell which unit a message is from.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::socket::{
    bind, recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, MsgFlags,
    SockFlag, SockType, UnixAddr,
};

/// The largest datagram accepted (systemd uses the same order of magnitude).
pub const MAX_MESSAGE: usize = 4096;

pub struct NotifySocket {
    fd: OwnedFd,
}

/// One datagram and the pid the kernel says sent it.
#[derive(Debug)]
pub struct Datagram {
    pub pid: Option<i32>,
    pub data: Vec<u8>,
}

impl NotifySocket {
    /// socket(AF_UNIX, SOCK_DGRAM) + bind(2) at `path` (a stale file is replaced) + SO_PASSCRED,
    /// then mode 0666: units running as other users must be able to send (connecting to a Unix
    /// socket needs write permission on its file). That is safe because no message is taken on
    /// its word: with SO_PASSCRED the kernel attaches the sender's real pid (only a privileged
    /// sender can name another), and a message counts only for the unit that pid belongs to.
    pub fn bind(path: &Path) -> nix::Result<Self> {
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        let _ = std::fs::remove_file(path);
        bind(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
        setsockopt(&fd, sockopt::PassCred, &true)?;
        nix::sys::stat::fchmodat(
            None,
            path,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )?;
        Ok(Self { fd })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// recvmsg(2) of one datagram with its SCM_CREDENTIALS; `None` when nothing is queued.
    pub fn receive(&self) -> nix::Result<Option<Datagram>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut cmsg = nix::cmsg_space!(libc::ucred);
        let (len, pid) = {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let msg = match recvmsg::<()>(
                self.fd.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(m) => m,
                Err(nix::errno::Errno::EAGAIN) => return Ok(None),
                Err(e) => return Err(e),
            };
            let mut pid = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    match c {
                        ControlMessageOwned::ScmCredentials(cred) => pid = Some(cred.pid()),
                        // File descriptors sent along (FDSTORE) are not supported: close them.
                        ControlMessageOwned::ScmRights(fds) => {
                            for fd in fds {
                                let _ = nix::unistd::close(fd);
                            }
                        }
                        _ => {}
                    }
                }
            }
            (msg.bytes, pid)
        };
        buf.truncate(len);
        Ok(Some(Datagram { pid, data: buf }))
    }
}
