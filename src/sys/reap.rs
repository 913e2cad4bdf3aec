//! How processes end: the reaper's one non-blocking waitpid(2) loop, the blocking wait for a
//! child that failed before exec, and the supervisor's kill(2).

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How a reaped child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    Exited { pid: i32, code: i32 },
    Signaled { pid: i32, signal: i32 },
}

/// waitpid(-1, WNOHANG): one exited child of any kind, or `None` when no child has exited (or
/// there are no children at all).
pub fn reap_one() -> Option<Reaped> {
    match reap_nohang() {
        ReapOutcome::Reaped(r) => Some(r),
        ReapOutcome::Running | ReapOutcome::NoChildren => None,
    }
}

/// kill(2) of one process; a process already gone is not an error.
pub fn signal_pid(pid: i32, sig: Signal) -> nix::Result<()> {
    match nix::sys::signal::kill(Pid::from_raw(pid), sig) {
        Err(Errno::ESRCH) => Ok(()),
        r => r,
    }
}

/// kill(pid, 0): whether a process with this pid exists (a zombie not yet reaped counts). Lets the
/// supervisor find main processes whose reaped exit a panic swallowed, without calling waitpid
/// outside the reaper.
pub fn process_exists(pid: i32) -> bool {
    pid > 0
        && !matches!(
            nix::sys::signal::kill(Pid::from_raw(pid), None),
            Err(Errno::ESRCH)
        )
}

/// kill(2) of a process group (negative pid); a group already gone is not an error.
pub fn signal_group(pgid: i32, sig: Signal) -> nix::Result<()> {
    match nix::sys::signal::killpg(Pid::from_raw(pgid), sig) {
        Err(Errno::ESRCH) => Ok(()),
        r => r,
    }
}

/// kill(-1, sig): every process we may signal except ourselves (only sensible as PID 1 of a
/// namespace or machine).
pub fn signal_everyone(sig: Signal) -> nix::Result<()> {
    match nix::sys::signal::kill(Pid::from_raw(-1), sig) {
        Err(Errno::ESRCH) => Ok(()),
        r => r,
    }
}

/// What a non-blocking waitpid(-1) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReapOutcome {
    Reaped(Reaped),
    /// Children exist but none has exited.
    Running,
    /// ECHILD: there are no children left.
    NoChildren,
}

/// waitpid(-1, WNOHANG), telling "no child exited yet" apart from "no children at all".
pub fn reap_nohang() -> ReapOutcome {
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => {
                return ReapOutcome::Reaped(Reaped::Exited {
                    pid: pid.as_raw(),
                    code,
                })
            }
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                return ReapOutcome::Reaped(Reaped::Signaled {
                    pid: pid.as_raw(),
                    signal: sig as i32,
                })
            }
            Ok(WaitStatus::StillAlive) => return ReapOutcome::Running,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(Errno::ECHILD) => return ReapOutcome::NoChildren,
            Err(_) => return ReapOutcome::Running,
        }
    }
}

/// Waits for one specific child to end and reaps it (waitpid(2)), retrying on EINTR. Used only
/// when a spawn failed before exec, so the child is known to be exiting.
pub fn reap(pid: Pid) -> Result<WaitStatus, Errno> {
    loop {
        match nix::sys::wait::waitpid(pid, None) {
            Err(Errno::EINTR) => {}
            other => return other,
        }
    }
}

/// waitpid(pid, WNOHANG) for one child: true once it has ended and been reaped (or is not our
/// child any more), false while it runs. Lets stage 3 wait for its sync child with a time limit.
pub fn reaped_nohang(pid: Pid) -> bool {
    loop {
        match nix::sys::wait::waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) => return false,
            Err(Errno::EINTR) => continue,
            Ok(_) | Err(_) => return true,
        }
    }
}
