//! The work behind the pairs of the states × events table (`Core::apply` in state.rs): each
//! function here is called for one (phase, event) pair the table has already decided, so none of
//! them looks at the phase to choose what to do.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::{
    fmt_duration, Action, AfterStop, Backoff, Core, ExitStatus, KillScope, Phase, TimerKind,
    KILL_GRACE,
};
use crate::timeline::{SubjectKind, TimelineEvent};
use crate::units::schema::{RestartPolicy, UnitType};

impl Core {
    pub(super) fn is_blocked(&self, n: &str) -> bool {
        self.units.get(n).is_some_and(|e| e.blocked.is_some())
    }

    pub(super) fn is_daemon(&self, n: &str) -> bool {
        self.units
            .get(n)
            .is_some_and(|e| e.spec.kind == UnitType::Daemon)
    }

    /// Whether a timer armed with `gen` still belongs to the unit's current phase.
    pub(super) fn is_current(&self, n: &str, gen: u64) -> bool {
        self.units.get(n).is_some_and(|e| e.gen == gen)
    }

    /// Failed → inactive on an explicit start or restart: the reason goes with it.
    pub(super) fn clear_failure(&mut self, n: &str, now: Instant) {
        if let Some(e) = self.units.get_mut(n) {
            e.failure = None;
            e.pending_failure = None;
        }
        self.set_phase(n, Phase::Inactive, now);
    }

    /// An explicit start outranks a failure waiting for the unit's stop to complete.
    pub(super) fn forget_pending_failure(&mut self, n: &str) {
        if let Some(e) = self.units.get_mut(n) {
            e.pending_failure = None;
        }
    }

    /// A restart asked for by hand: wanted up, no pending failure, a fresh backoff sequence.
    pub(super) fn want_restart(&mut self, n: &str) {
        if let Some(e) = self.units.get_mut(n) {
            e.want_up = true;
            e.pending_failure = None;
            e.backoff = Backoff::new(e.backoff.attempts() as u64 ^ 0xabcd);
        }
    }

    /// A stop in progress ends in a start instead of inactive.
    pub(super) fn restart_after_stop(&mut self, n: &str) {
        if let Some(e) = self.units.get_mut(n) {
            e.stop.then = AfterStop::Restart;
        }
    }

    pub(super) fn on_spawned(&mut self, n: &str, pid: i32, now: Instant, out: &mut Vec<Action>) {
        let Some(e) = self.units.get_mut(n) else {
            return;
        };
        e.pid = Some(pid);
        e.started_at = Some(now);
        out.push(Action::Transition {
            subject: SubjectKind::Unit,
            name: n.to_string(),
            event: TimelineEvent::Start,
            detail: format!("pid {pid}"),
        });
        if e.spec.ready_on_spawn {
            self.become_ready(n, Phase::Running, String::new(), now, out);
        }
    }

    pub(super) fn set_main_pid(&mut self, n: &str, pid: i32) {
        if let Some(e) = self.units.get_mut(n) {
            e.pid = Some(pid);
        }
    }

    pub(super) fn record_exit(&mut self, n: &str, status: ExitStatus) {
        if let Some(e) = self.units.get_mut(n) {
            e.pid = None;
            e.last_exit = Some(status);
        }
    }

    pub(super) fn group_gone(&mut self, n: &str) {
        if let Some(e) = self.units.get_mut(n) {
            e.stop.group_gone = true;
        }
    }

    pub(super) fn main_gone_while_stopping(
        &mut self,
        n: &str,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(e) = self.units.get_mut(n) else {
            return;
        };
        e.stop.main_gone = true;
        if !e.stop.group_gone {
            // The kernel clears `populated` before it reports the exit, so a unit whose main
            // process was its last one is done now, without waiting for inotify.
            out.push(Action::CheckGroup(n.to_string()));
        }
        self.maybe_stopped(n, now, out);
    }

    /// The main process of a starting or running unit ended on its own: done, failed, or a
    /// restart after the backoff delay.
    pub(super) fn main_exited(
        &mut self,
        n: &str,
        status: ExitStatus,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(e) = self.units.get_mut(n) else {
            return;
        };
        let ran_for = e
            .started_at
            .map(|s| now.saturating_duration_since(s))
            .unwrap_or_default();
        let oneshot = e.spec.kind == UnitType::Oneshot;
        if status.success() && (oneshot || e.spec.restart != RestartPolicy::Always) {
            let starting = e.phase == Phase::Starting;
            if oneshot && starting {
                self.become_ready(n, Phase::Exited, status.to_string(), now, out);
            } else {
                self.set_phase(n, Phase::Exited, now);
                out.push(Action::Transition {
                    subject: SubjectKind::Unit,
                    name: n.to_string(),
                    event: TimelineEvent::Stopped,
                    detail: status.to_string(),
                });
            }
            return;
        }
        let restart = match e.spec.restart {
            RestartPolicy::Always | RestartPolicy::OnFailure => !self.shutting_down,
            RestartPolicy::No => false,
        };
        if !restart {
            self.kill_leftovers(n, out);
            self.fail(n, &status.to_string(), now, out);
            return;
        }
        let policy = e.spec.backoff;
        let delay = e.backoff.next_delay(&policy, ran_for);
        e.restarts = e.restarts.saturating_add(1);
        out.push(Action::Transition {
            subject: SubjectKind::Unit,
            name: n.to_string(),
            event: TimelineEvent::Stopped,
            detail: format!("{status}, restarting in {} ms", delay.as_millis()),
        });
        self.kill_leftovers(n, out);
        if delay.is_zero() {
            self.set_phase(n, Phase::Waiting, now);
        } else {
            self.set_phase(n, Phase::Backoff, now);
            self.arm(n, TimerKind::BackoffElapsed, now, delay, out);
        }
    }

    pub(super) fn ready_timed_out(&mut self, n: &str, now: Instant, out: &mut Vec<Action>) {
        let Some(e) = self.units.get_mut(n) else {
            return;
        };
        let reason = format!("not ready within {}", fmt_duration(e.spec.ready_timeout));
        e.want_up = false;
        e.pending_failure = Some(reason.clone());
        self.fail_requirers(n, &reason);
        self.begin_stop(n, AfterStop::Inactive, now, out);
    }

    /// stop-timeout: SIGKILL; if even that has not finished it within the grace period, stop
    /// waiting (a process in uninterruptible sleep must not hang a shutdown forever).
    pub(super) fn stop_timed_out(&mut self, n: &str, now: Instant, out: &mut Vec<Action>) {
        let Some(e) = self.units.get_mut(n) else {
            return;
        };
        if e.stop.killed {
            e.stop.main_gone = true;
            e.stop.group_gone = true;
            e.pid = None;
            self.maybe_stopped(n, now, out);
        } else {
            e.stop.killed = true;
            let scope = if e.spec.group_kill() {
                KillScope::Group
            } else {
                KillScope::Main
            };
            out.push(Action::Kill {
                unit: n.to_string(),
                signal: Signal::SIGKILL,
                scope,
            });
            self.arm(n, TimerKind::StopTimeout, now, KILL_GRACE, out);
        }
    }
}
