//! poll(2) over raw descriptors: the event loop gathers descriptors from several owners (signalfd,
//! sockets, pipes, the control server), some only known as raw numbers, so it polls raw fds.

use std::os::fd::RawFd;

pub use nix::poll::PollFlags;

/// One descriptor to poll and, after `poll_fds`, what happened to it.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    pub fd: RawFd,
    pub events: PollFlags,
    pub revents: PollFlags,
}

/// poll(2) with a timeout in milliseconds (-1 waits forever); returns how many descriptors are ready.
/// EINTR counts as zero ready.
pub fn poll_fds(watches: &mut [Watch], timeout_ms: i32) -> nix::Result<usize> {
    let mut raw: Vec<libc::pollfd> = watches
        .iter()
        .map(|w| libc::pollfd {
            fd: w.fd,
            events: w.events.bits(),
            revents: 0,
        })
        .collect();
    // SAFETY: `raw` is a valid, exclusively borrowed array of `raw.len()` pollfd structs that lives
    // across the call; poll only writes the revents fields.
    let n = unsafe { libc::poll(raw.as_mut_ptr(), raw.len() as libc::nfds_t, timeout_ms) };
    if n < 0 {
        let e = nix::errno::Errno::last();
        return if e == nix::errno::Errno::EINTR {
            Ok(0)
        } else {
            Err(e)
        };
    }
    for (w, r) in watches.iter_mut().zip(&raw) {
        w.revents = PollFlags::from_bits_truncate(r.revents);
    }
    Ok(n as usize)
}

impl Watch {
    /// Waits for input (or hangup) on `fd`.
    pub fn input(fd: RawFd) -> Self {
        Self::new(fd, PollFlags::POLLIN)
    }

    pub fn new(fd: RawFd, events: PollFlags) -> Self {
        Self {
            fd,
            events,
            revents: PollFlags::empty(),
        }
    }

    /// Something happened (input, hangup or error: all need the owner's attention).
    pub fn is_ready(&self) -> bool {
        !self.revents.is_empty()
    }
}

/// fcntl(F_SETFL, O_NONBLOCK) on a descriptor the loop reads from.
pub fn set_nonblocking(fd: RawFd) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(|_| ())
}
