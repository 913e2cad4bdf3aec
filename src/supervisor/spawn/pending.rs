//! A child between its start and its exec: `spawn::begin` returns one as soon as the child
//! exists, and `Pending::finish` learns (within `EXEC_TIMEOUT` of the start) whether it exec'd.
//!
//! Why apart: waiting for each child's exec before starting the next one left PID 1 idle while
//! the kernel loaded the program, once per unit. Starting a thousand units, the supervisor now
//! starts the next ones meanwhile and settles each child afterwards, by which time it has
//! usually exec'd (`cargo bench --bench supervisor`, docs/supervisor.md). Nothing is lost: the
//! wait is still bounded per child (counted from its start, so a batch of stuck children costs
//! one bound, not one each), a child stuck before exec is still killed and reported, and a failed
//! step still comes back with its errno and path.

use std::os::fd::OwnedFd;
use std::time::Instant;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::child::{take_report, Failure};
use super::{ChildJob, Plan, SpawnError, Started, EXEC_TIMEOUT};
use crate::sys::process::SharedChild;

/// How the child was started.
pub(super) enum Child {
    /// Sharing our memory until it execs (sys::clone_vm): settled once it lets go.
    Shared(SharedChild<ChildJob>),
    /// Forked (kernels without clone3): already settled when started, from its report pipe.
    Forked(Result<Option<Failure>, Errno>, Box<ChildJob>),
}

/// A started child whose exec has not been confirmed yet. Dropping one without `finish` leaves
/// its child running unsupervised: the supervisor finishes every one it begins.
pub struct Pending {
    pub(super) unit: String,
    pub(super) pid: Pid,
    pub(super) child: Child,
    /// Read end of the child's failure report (non-blocking).
    pub(super) report: OwnedFd,
    pub(super) ready_fd: Option<OwnedFd>,
    /// Read ends of fresh output pipes (`spawn::begin`), parked.
    pub(super) output: Option<(OwnedFd, OwnedFd)>,
    /// `EXEC_TIMEOUT` after the start (`None`: beyond what `Instant` can hold, never).
    pub(super) deadline: Option<Instant>,
}

impl Pending {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    pub fn unit(&self) -> &str {
        &self.unit
    }

    /// Whether the child has exec'd or exited: `finish` then returns without waiting.
    pub fn settled(&self) -> bool {
        match &self.child {
            Child::Shared(c) => c.released(),
            Child::Forked(..) => true,
        }
    }

    /// Waits, until `EXEC_TIMEOUT` after the start at most, for the child to exec or fail; gives
    /// its pid, readiness pipe and (from `begin`) the output pipes' read ends. A child that failed
    /// a step is reaped here (the caller never sees a pid that did not exec); one still short of
    /// exec at the limit is killed, and the loop's reaper collects it.
    pub fn finish(self) -> Result<(Started, Option<(OwnedFd, OwnedFd)>), SpawnError> {
        let Pending {
            unit,
            pid,
            child,
            report,
            ready_fd,
            output,
            deadline,
        } = self;
        let result = match child {
            Child::Shared(child) => {
                let left = deadline.map_or(EXEC_TIMEOUT, |d| {
                    d.saturating_duration_since(Instant::now())
                });
                // Released: exec'd (past the point of no return) or exited, having written its
                // report first if a step failed.
                let outcome = child
                    .wait_released(left)
                    .and_then(|()| take_report(&report));
                let result = settle(&unit, pid, outcome, &child.data().plan, ready_fd);
                // Frees the child's stack and plan and closes its descriptors, now or (a child
                // that has not let go) once the kernel says it has.
                drop(child);
                result
            }
            Child::Forked(outcome, job) => settle(&unit, pid, outcome, &job.plan, ready_fd),
        };
        result.map(|started| (started, output))
    }
}

/// Turns the child's report (or the lack of one) into the result, reaping or killing the child
/// where it will never exec.
fn settle(
    unit: &str,
    pid: Pid,
    outcome: Result<Option<Failure>, Errno>,
    plan: &Plan,
    ready_fd: Option<OwnedFd>,
) -> Result<Started, SpawnError> {
    match outcome {
        Ok(None) => Ok(Started { pid, ready_fd }),
        Ok(Some(report)) => {
            // Reap here: the event loop's reaper would see an exit for a pid it never learnt of.
            // (The loop finishes every pending spawn before its reaper runs again.)
            let _ = crate::sys::reap::reap(pid);
            Err(report.into_error(unit, plan))
        }
        Err(Errno::ETIMEDOUT) => {
            // Not reaped here: a child in uninterruptible sleep would block waitpid. The loop's
            // reaper collects it whenever the SIGKILL takes effect.
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            Err(SpawnError::Prepare {
                unit: unit.to_string(),
                message: format!("did not exec within {}s", EXEC_TIMEOUT.as_secs()),
            })
        }
        Err(e) => {
            // Cannot tell what happened; do not leave a half-started child behind. Not reaped
            // here either (it may be stuck in the kernel): the loop's reaper collects it.
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            Err(SpawnError::Prepare {
                unit: unit.to_string(),
                message: format!("wait for exec: {e}"),
            })
        }
    }
}
