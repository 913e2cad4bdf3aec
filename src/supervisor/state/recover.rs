//! The core's half of surviving a panic: a bug that panics in the middle of a step leaves units in
//! phases whose actions were never carried out (a `starting` unit never spawned, a `stopping` unit
//! never signalled, a timer never armed) and a dirty set half consumed. `recover` puts back what
//! every phase needs, so that no unit waits forever on something that will not come.

use std::time::Instant;

use super::{Action, Core, Phase, TimerKind, KILL_GRACE};

impl Core {
    /// After a caught panic: relaunches starts whose spawn was lost, re-evaluates every unit and
    /// asks for every timer the units' phases rely on. Arming a timer the loop already holds (same
    /// unit, kind and generation) is the loop's to skip.
    pub fn recover(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        // The loop settles every spawn before it leaves its queue (spawn_batch), so between
        // events a starting unit always has a pid: one without was never spawned. Back to waiting, and reconcile launches it.
        let lost: Vec<String> = self
            .units
            .iter()
            .filter(|(_, e)| e.phase == Phase::Starting && e.pid.is_none())
            .map(|(n, _)| n.clone())
            .collect();
        for n in &lost {
            self.set_phase(n, Phase::Waiting, now);
        }
        self.touch_all();
        self.reconcile(now, &mut out);
        for (n, e) in &self.units {
            let (kind, from, after) = match e.phase {
                Phase::Starting if !e.spec.ready_on_spawn && !e.spec.ready_timeout.is_zero() => {
                    (TimerKind::ReadyTimeout, e.since, e.spec.ready_timeout)
                }
                // The jittered delay is gone with the panic; the base delay is a fair stand-in.
                Phase::Backoff => (TimerKind::BackoffElapsed, e.since, e.spec.backoff.delay),
                Phase::Stopping if e.stop.killed => (TimerKind::StopTimeout, now, KILL_GRACE),
                Phase::Stopping => (TimerKind::StopTimeout, e.since, e.spec.stop_timeout),
                _ => continue,
            };
            self.arm(n, kind, from, after, &mut out);
            if e.phase == Phase::Stopping && !e.stop.group_gone {
                // inotify reports changes only: a group emptied meanwhile must be looked at.
                out.push(Action::CheckGroup(n.clone()));
            }
        }
        out
    }

    /// Whether the boot event has been applied (a panic may have lost it).
    pub fn booted(&self) -> bool {
        self.booted
    }
}
