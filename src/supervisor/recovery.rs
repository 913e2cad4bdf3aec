//! Surviving a bug: PID 1 must never die, and a panic caught in the loop must not leave the init
//! waiting forever on something it lost. A panic can swallow the event being handled (a reaped
//! exit, a popped timer), the actions of a step whose phases already moved (a spawn, a signal, a
//! timer), and the rest of the dirty set. `recover_after_panic` rebuilds the invariants from state
//! that survived: main pids that no longer exist become exits, queued events are handled, and the
//! core re-checks every unit and re-asks for every timer its phase needs.

use std::time::Instant;

use super::event_loop::Supervisor;
use super::state::{Action, Event, ExitStatus};
use crate::sys::reap::process_exists;

/// Runs `f`, catching a panic: logged with `what`, `None` returned. The panic message itself has
/// already been logged by the panic hook.
pub(super) fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => Some(v),
        Err(_) => {
            log::error!("{what} panicked; the supervisor goes on");
            None
        }
    }
}

impl Supervisor {
    /// Rebuilds what a caught panic may have lost. Cleared only once it completes: a recovery that
    /// panics itself (each panic consumes the event it was on, so this makes progress) runs again.
    pub(super) fn recover_after_panic(&mut self) {
        log::warn!("recovering from a panic: re-checking every unit");
        // A reaped exit the panic swallowed: the main process is gone, but the unit still has it.
        // kill(pid, 0) rather than waitpid: only the reaper waits, and a zombie still counts.
        let gone: Vec<String> = self
            .core
            .entries()
            .filter(|(_, e)| e.pid.is_some_and(|p| !process_exists(p)))
            .map(|(n, _)| n.clone())
            .filter(|n| {
                !self
                    .queue
                    .iter()
                    .any(|ev| matches!(ev, Event::Exited { unit, .. } if unit == n))
            })
            .collect();
        for unit in gone {
            log::warn!("unit {unit}: main process gone, exit status lost");
            self.queue.push_back(Event::Exited {
                unit,
                status: ExitStatus::Lost,
            });
        }
        self.drain_queue();
        for a in self.core.recover(Instant::now()) {
            if let Action::ArmTimer {
                unit, kind, gen, ..
            } = &a
            {
                if self.holds_timer(unit, *kind, *gen) {
                    continue;
                }
            }
            self.perform(a);
        }
        self.drain_queue();
        self.needs_recovery = false;
    }
}
