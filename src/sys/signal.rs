//! Signals as file descriptor events: the init blocks the signals it handles and reads them from a
//! signalfd inside its single event loop, so no handler ever runs in the middle of other work.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The signals the supervisor acts on.
pub const HANDLED: &[Signal] = &[
    Signal::SIGCHLD,
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGPWR,
    Signal::SIGHUP,
];

fn handled_set() -> SigSet {
    let mut set = SigSet::empty();
    for s in HANDLED {
        set.add(*s);
    }
    set
}

/// Blocks the handled signals (sigprocmask(2)) so they queue for the signalfd instead of killing us.
/// Children must unblock them before exec (spawn resets the mask).
pub fn block_handled() -> nix::Result<()> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&handled_set()), None)
}

/// A non-blocking, close-on-exec signalfd(2) for the handled signals.
pub fn open_signalfd() -> nix::Result<SignalFd> {
    SignalFd::with_flags(
        &handled_set(),
        SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
    )
}

/// Reads one pending signal number from the signalfd (read(2)); `None` when none is pending.
pub fn read_signal(fd: &SignalFd) -> nix::Result<Option<i32>> {
    Ok(fd.read_signal()?.map(|info| info.ssi_signo as i32))
}
