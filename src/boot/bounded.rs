//! Stage-3 work that may hang in the kernel, run in a child process the init waits for with a
//! time limit.
//!
//! sync(2), unmounting a filesystem and remounting one read-only write back dirty data; when a
//! disk or a network server stops answering they sleep uninterruptibly, with no timeout, and
//! PID 1 would never reach reboot(2). PID 1 has no threads, so the work goes to a forked child
//! (same mount namespace, so its unmounts are ours) that reports each step it begins through a
//! pipe; the init polls for the child's exit, the limit and a shutdown signal, and on either of
//! the last two goes on without it, knowing which step was still busy.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::sys::process::{self, Forked};

/// How often the wait looks at the child, the clock and the signals.
const POLL: Duration = Duration::from_millis(10);

/// How the bounded work ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The child finished every step.
    Done,
    /// The limit passed; `busy` is the step it was on. The child was sent SIGKILL (it may stay
    /// in uninterruptible sleep) and is not waited for.
    TimedOut { busy: String, pid: Pid },
    /// `interrupted` said so before the child finished (a second shutdown signal).
    Interrupted { busy: String, pid: Pid },
    /// No child could be made; nothing was done.
    NotStarted(String),
}

/// What the child uses to say which step it begins.
pub struct Progress {
    fd: OwnedFd,
}

impl Progress {
    /// Reports the step the work begins now.
    pub fn step(&mut self, what: &str) {
        let mut line = what.replace('\n', " ");
        line.push('\n');
        let _ = process::write_all(self.fd.as_raw_fd(), line.as_bytes());
    }
}

/// Runs `work` in a child and waits at most `limit` for it, asking `interrupted` each poll.
pub fn run_bounded(
    limit: Duration,
    interrupted: &mut dyn FnMut() -> bool,
    work: impl FnOnce(&mut Progress),
) -> Outcome {
    let (r, w) = match nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK) {
        Ok(p) => p,
        Err(e) => return Outcome::NotStarted(format!("pipe: {e}")),
    };
    // The write end is non-blocking too: a step report must never hold the child's work.
    let pid = match process::fork_process() {
        Err(e) => return Outcome::NotStarted(format!("fork: {e}")),
        Ok(Forked::Child) => {
            // PID 1 has a single thread, so the child may do anything the parent could; a panic
            // must end the child, never continue as a second init.
            drop(r);
            let mut progress = Progress { fd: w };
            let code = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                work(&mut progress)
            })) {
                Ok(()) => 0,
                Err(_) => 1,
            };
            process::exit_immediately(code)
        }
        Ok(Forked::Parent(pid)) => pid,
    };
    drop(w);
    let mut reader = std::fs::File::from(r);
    let mut busy = String::from("starting");
    let mut partial = Vec::new();
    let deadline = Instant::now().checked_add(limit);
    loop {
        read_steps(&mut reader, &mut partial, &mut busy);
        if crate::sys::reap::reaped_nohang(pid) {
            return Outcome::Done;
        }
        let late = deadline.is_some_and(|d| Instant::now() >= d);
        let asked = interrupted();
        if late || asked {
            read_steps(&mut reader, &mut partial, &mut busy);
            let _ = crate::sys::reap::signal_pid(pid.as_raw(), Signal::SIGKILL);
            return if asked {
                Outcome::Interrupted { busy, pid }
            } else {
                Outcome::TimedOut { busy, pid }
            };
        }
        std::thread::sleep(POLL);
    }
}

/// Reads what the child reported so far; the last whole line is the step it is on.
fn read_steps(reader: &mut std::fs::File, partial: &mut Vec<u8>, busy: &mut String) {
    let mut buf = [0u8; 512];
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        partial.extend_from_slice(&buf[..n]);
        while let Some(i) = partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = partial.drain(..=i).collect();
            *busy = String::from_utf8_lossy(&line[..i]).into_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reap(pid: Pid) {
        let _ = crate::sys::reap::reap(pid);
    }

    #[test]
    fn work_that_finishes_is_done() {
        let dir = std::env::temp_dir().join(format!("lifsea-bounded-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("done");
        let out = run_bounded(Duration::from_secs(20), &mut || false, |p| {
            p.step("sync");
            crate::sys::power::sync_all();
            let _ = std::fs::write(&marker, "yes");
        });
        assert_eq!(out, Outcome::Done);
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "yes");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Finding 11 of issue 12: sync(2) and unmounts ran on PID 1 itself with no time limit. A step
    /// that never returns now costs the limit, and the init knows which step it was.
    #[test]
    fn hung_work_is_left_behind_at_the_limit() {
        let started = Instant::now();
        let out = run_bounded(Duration::from_millis(500), &mut || false, |p| {
            p.step("sync");
            p.step("unmounting /var");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        });
        let took = started.elapsed();
        let Outcome::TimedOut { busy, pid } = out else {
            panic!("{out:?}");
        };
        assert_eq!(busy, "unmounting /var");
        assert!(
            took >= Duration::from_millis(500) && took < Duration::from_secs(3),
            "{took:?}"
        );
        reap(pid);
    }

    /// A second shutdown signal ends the wait at once.
    #[test]
    fn an_interruption_ends_the_wait() {
        let started = Instant::now();
        let mut polls = 0;
        let out = run_bounded(
            Duration::from_secs(60),
            &mut || {
                polls += 1;
                polls > 10
            },
            |p| {
                p.step("sync");
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                }
            },
        );
        let Outcome::Interrupted { busy, pid } = out else {
            panic!("{out:?}");
        };
        assert_eq!(busy, "sync");
        assert!(started.elapsed() < Duration::from_secs(5));
        reap(pid);
    }
}
