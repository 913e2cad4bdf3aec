//! Passing open descriptors over a Unix stream socket (SCM_RIGHTS, unix(7)): initctl hands the
//! caller's stdin, stdout and stderr to the init, which gives them to the `ctr run` of an ops
//! session, so that the container talks to the caller's terminal directly instead of PID 1
//! relaying bytes.
//!
//! Receiving is written against libc rather than nix's iterator because of one case: when the
//! sender attaches more descriptors than the control buffer holds, the kernel still installs the
//! ones that fit and sets MSG_CTRUNC; nix then refuses to iterate, and those descriptors would
//! leak into PID 1 for good. Here every installed descriptor is taken over, truncated or not.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

/// Most descriptors accepted with one message; more than this is a client error.
pub const MAX_FDS: usize = 4;

/// What one `recv_with_fds` call got.
#[derive(Debug, Default)]
pub struct Received {
    /// Bytes of data read (0 at end of stream).
    pub len: usize,
    /// Descriptors that came with them (close-on-exec).
    pub fds: Vec<OwnedFd>,
    /// The sender attached more descriptors than `MAX_FDS`: the kernel closed the excess.
    pub truncated: bool,
}

/// Sends `data` with `fds` attached (sendmsg(2) with one SCM_RIGHTS message); returns the bytes
/// sent, which may be fewer than `data.len()` on a stream socket: the caller sends the rest
/// without descriptors.
pub fn send_with_fds(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<usize> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let iov = [IoSlice::new(data)];
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsgs };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads from a stream socket without blocking (recvmsg(2), MSG_DONTWAIT, MSG_CMSG_CLOEXEC), taking
/// over every descriptor that came with the data. `WouldBlock` when nothing is there.
pub fn recv_with_fds(sock: BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<Received> {
    // u64 elements keep the buffer aligned for struct cmsghdr.
    const SPACE_U64: usize = 16 + MAX_FDS;
    let mut control = [0u64; SPACE_U64];
    let mut iov = [IoSliceMut::new(buf)];
    // SAFETY: an all-zero msghdr is valid (no name, no iovecs, no control); the fields set below
    // point at `iov` and `control`, which outlive the recvmsg call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr().cast();
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    let n = loop {
        // SAFETY: `msg` describes valid, writable buffers (see above); recvmsg writes at most
        // their lengths and updates msg_controllen and msg_flags.
        let n = unsafe {
            libc::recvmsg(
                sock.as_raw_fd(),
                &mut msg,
                libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if n >= 0 {
            break n as usize;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    let mut out = Received {
        len: n,
        fds: Vec::new(),
        truncated: msg.msg_flags & libc::MSG_CTRUNC != 0,
    };
    // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR walk the control buffer within msg_controllen as the
    // kernel filled it; each header is read only after the macros returned it non-null.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: `cmsg` is non-null and points into `control` (see above).
        let hdr = unsafe { &*cmsg };
        if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN(0) is a pure computation of the header size.
            let header = unsafe { libc::CMSG_LEN(0) } as usize;
            let count =
                (hdr.cmsg_len as usize).saturating_sub(header) / std::mem::size_of::<RawFd>();
            // SAFETY: CMSG_DATA points just past this header, inside `control`, where the kernel
            // wrote `count` descriptors (cmsg_len says so); unaligned reads are used because the
            // data need not be aligned for i32 on every ABI.
            let data = unsafe { libc::CMSG_DATA(cmsg) } as *const RawFd;
            for i in 0..count {
                // SAFETY: i < count, within the data area described above.
                let fd = unsafe { std::ptr::read_unaligned(data.add(i)) };
                if fd >= 0 {
                    // SAFETY: the kernel just installed this descriptor in our table for us; nothing
                    // else owns it, so taking ownership (and closing it on drop) is sound.
                    out.fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR above.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    if out.fds.len() > MAX_FDS {
        out.truncated = true;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn descriptors_travel_with_the_data_and_work_on_the_other_side() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut pr, pw) = std::os::unix::net::UnixStream::pair().unwrap();
        let n = send_with_fds(a.as_fd(), b"hello\n", &[pw.as_fd()]).unwrap();
        assert_eq!(n, 6);
        drop(pw);
        let mut buf = [0u8; 64];
        let got = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(&buf[..got.len], b"hello\n");
        assert_eq!(got.fds.len(), 1);
        assert!(!got.truncated);
        // The received descriptor is the other socket's peer: writing to it reaches `pr`.
        let mut w = std::fs::File::from(got.fds.into_iter().next().unwrap());
        w.write_all(b"via fd").unwrap();
        drop(w);
        let mut s = String::new();
        pr.read_to_string(&mut s).unwrap();
        assert_eq!(s, "via fd");
    }

    #[test]
    fn too_many_descriptors_are_reported_and_none_leak() {
        let (a, b) = UnixStream::pair().unwrap();
        let files: Vec<std::fs::File> = (0..12)
            .map(|_| std::fs::File::open("/dev/null").unwrap())
            .collect();
        let fds: Vec<BorrowedFd> = files.iter().map(|f| f.as_fd()).collect();
        send_with_fds(a.as_fd(), b"x", &fds).unwrap();
        let mut buf = [0u8; 8];
        let got = recv_with_fds(b.as_fd(), &mut buf).unwrap();
        assert_eq!(got.len, 1);
        assert!(got.truncated, "12 descriptors must be reported as too many");
        // All twelve fit the control buffer: they are owned by `got` and closed with it.
        assert_eq!(got.fds.len(), 12);
    }

    #[test]
    fn nothing_pending_is_would_block() {
        let (_a, b) = UnixStream::pair().unwrap();
        let mut buf = [0u8; 8];
        let e = recv_with_fds(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    }
}
