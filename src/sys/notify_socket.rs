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
    /// A datagram longer than `MAX_MESSAGE` is consumed and reported as `EMSGSIZE`, never parsed.
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
            if msg.flags.contains(MsgFlags::MSG_TRUNC) {
                // Cut to the buffer: what remains is not the message that was sent.
                return Err(nix::errno::Errno::EMSGSIZE);
            }
            (msg.bytes, pid)
        };
        buf.truncate(len);
        Ok(Some(Datagram { pid, data: buf }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixDatagram;

    /// Finding 9 of issue 12: a datagram longer than the buffer was parsed as if whole, so a
    /// `READY=1` at the head of an oversized (cut) message counted.
    #[test]
    fn truncated_datagram_is_refused_and_the_next_one_read() {
        let dir = std::env::temp_dir().join(format!("lifsea-notify-trunc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("n.sock");
        let sock = NotifySocket::bind(&path).unwrap();
        let tx = UnixDatagram::unbound().unwrap();
        let mut big = b"READY=1\n".to_vec();
        big.resize(MAX_MESSAGE + 1000, b'x');
        tx.send_to(&big, &path).unwrap();
        tx.send_to(b"STATUS=ok", &path).unwrap();
        assert!(
            matches!(sock.receive(), Err(nix::errno::Errno::EMSGSIZE)),
            "a cut datagram was returned as if whole"
        );
        let d = sock.receive().unwrap().unwrap();
        assert_eq!(d.data, b"STATUS=ok");
        assert_eq!(d.pid, Some(std::process::id() as i32));
        assert!(sock.receive().unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
