//! The graph half of the core: whether a waiting unit may start, whether a unit going down may stop
//! yet (its dependents first), the fixpoint pass that applies both after every event, and the walks
//! that pull dependencies in, take requirers down, and carry failures to requirers.

use crate::collections::keyset::KeySet;
use std::time::Instant;

use super::{Action, AfterStop, Core, FactState, Phase, TimerKind};

impl Core {
    /// Whether `n` can start now: Ok(true) go, Ok(false) wait, Err(reason) never.
    pub(super) fn deps_ready(&self, n: &str) -> Result<bool, String> {
        let Some(e) = self.units.get(n) else {
            return Ok(false);
        };
        let mut ready = true;
        for r in &e.spec.requires {
            match self.facts.get(r) {
                Some(FactState::Reached) => continue,
                Some(FactState::Pending) => {
                    ready = false;
                    continue;
                }
                Some(FactState::Failed(why)) => return Err(format!("{r} not reached: {why}")),
                None => {}
            }
            match self.units.get(r) {
                None => return Err(format!("dependency {r} not found")),
                Some(d) => match d.phase {
                    Phase::Running | Phase::Exited => {}
                    Phase::Failed => {
                        let why = d.failure.clone().unwrap_or_default();
                        return Err(format!("dependency {r} failed: {why}"));
                    }
                    _ => ready = false,
                },
            }
        }
        for o in e.spec.wants.iter().chain(&e.spec.after) {
            if let Some(f) = self.facts.get(o) {
                // Ordering only: a fact given up on no longer holds anything back.
                ready &= *f != FactState::Pending;
                continue;
            }
            if let Some(d) = self.units.get(o) {
                // Only a start in progress holds back a wants/after dependent.
                let pending = matches!(d.phase, Phase::Waiting | Phase::Starting)
                    || (d.phase == Phase::Inactive && d.want_up);
                ready &= !pending;
            }
        }
        Ok(ready)
    }

    /// No dependent that is going down still has processes.
    pub(super) fn dependents_down(&self, n: &str) -> bool {
        let Some(ds) = self.dependents.get(n) else {
            return true;
        };
        ds.iter().all(|d| {
            self.units
                .get(d)
                .map_or(true, |e| e.want_up || !e.phase.is_active())
        })
    }

    /// Re-evaluates every unit marked dirty (and, through `set_phase`, the neighbours of every unit
    /// that changes) until nothing changes: only what an event can affect is looked at, so a
    /// thousand-unit graph costs per event what the event touches, not the whole graph.
    pub(super) fn reconcile(&mut self, now: Instant, out: &mut Vec<Action>) {
        while let Some(n) = self.dirty.pop_first() {
            let Some(e) = self.units.get(&n) else {
                continue;
            };
            let (phase, want_up) = (e.phase, e.want_up);
            match phase {
                Phase::Inactive if want_up && !self.shutting_down => {
                    self.set_phase(&n, Phase::Waiting, now);
                }
                Phase::Waiting | Phase::Backoff if !want_up => {
                    let failure = self
                        .units
                        .get_mut(&n)
                        .and_then(|e| e.pending_failure.take());
                    match failure {
                        Some(reason) => self.fail(&n, &reason, now, out),
                        None => self.set_phase(&n, Phase::Inactive, now),
                    }
                }
                Phase::Waiting if e.skipped.is_some() => {}
                Phase::Waiting => match self.deps_ready(&n) {
                    Ok(true) => self.launch(&n, now, out),
                    Ok(false) => {}
                    Err(reason) => self.fail(&n, &reason, now, out),
                },
                Phase::Starting | Phase::Running | Phase::Exited
                    if !want_up && self.dependents_down(&n) =>
                {
                    self.begin_stop(&n, AfterStop::Inactive, now, out);
                }
                _ => {}
            }
        }
    }

    pub(super) fn launch(&mut self, n: &str, now: Instant, out: &mut Vec<Action>) {
        self.set_phase(n, Phase::Starting, now);
        let Some(e) = self.units.get_mut(n) else {
            return;
        };
        e.pid = None;
        e.started_at = Some(now);
        let (timed, timeout) = (!e.spec.ready_on_spawn, e.spec.ready_timeout);
        out.push(Action::Spawn(n.to_string()));
        if timed && !timeout.is_zero() {
            self.arm(n, TimerKind::ReadyTimeout, now, timeout, out);
        }
    }

    /// Marks a unit and, transitively, what it requires or wants as wanted up.
    pub(super) fn pull_in(&mut self, n: &str) {
        let mut todo = vec![n.to_string()];
        let mut seen = KeySet::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            let Some(e) = self.units.get_mut(&n) else {
                continue;
            };
            if e.blocked.is_some() {
                continue;
            }
            e.want_up = true;
            self.dirty.insert(n.clone());
            // A wanted unit is only pulled in when it would start at boot anyway.
            todo.extend(e.spec.requires.iter().cloned());
            let wants: Vec<String> = e.spec.wants.clone();
            for w in wants {
                if self.units.get(&w).is_some_and(|x| x.enabled) {
                    todo.push(w);
                }
            }
        }
    }

    pub(super) fn stop_with_requirers(&mut self, n: &str) {
        let mut todo = vec![n.to_string()];
        let mut seen = KeySet::new();
        while let Some(n) = todo.pop() {
            if !seen.insert(n.clone()) {
                continue;
            }
            if let Some(e) = self.units.get_mut(&n) {
                e.want_up = false;
            }
            self.dirty.insert(n.clone());
            if let Some(r) = self.requirers.get(&n) {
                todo.extend(r.iter().cloned());
            }
        }
    }

    /// Every unit requiring `n` (transitively) is stopped and will be shown failed because of it.
    pub(super) fn fail_requirers(&mut self, n: &str, reason: &str) {
        let mut todo: Vec<(String, String)> = vec![(n.to_string(), reason.to_string())];
        while let Some((dep, why)) = todo.pop() {
            let Some(reqs) = self.requirers.get(&dep) else {
                continue;
            };
            for r in reqs.clone() {
                let Some(e) = self.units.get_mut(&r) else {
                    continue;
                };
                if e.phase == Phase::Failed || e.pending_failure.is_some() {
                    continue;
                }
                if !e.want_up && !e.phase.is_active() {
                    continue;
                }
                let msg = format!("dependency {dep} failed: {why}");
                e.want_up = false;
                e.pending_failure = Some(msg.clone());
                self.dirty.insert(r.clone());
                todo.push((r, msg));
            }
        }
    }
}
