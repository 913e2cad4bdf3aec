//! The supervisor's pure core: every unit's state and how events move it.
//!
//! `Core::step(event, now)` updates the states and returns the actions the event loop must carry
//! out (spawn, signal, arm a timer, record a transition). No processes, clocks or files here, so every
//! transition is unit-tested (the way dinit tests its service graph and s6-supervise is a
//! states × events table). After each event the core reconciles the whole graph to a fixpoint: units
//! whose dependencies are satisfied start, units nobody wants stop once their dependents have stopped,
//! and failures of hard dependencies travel to their requirers with the reason.

use crate::collections::keyset::StrSet;
use crate::collections::strmap::StrMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::backoff::Backoff;
pub use super::model::*;
use crate::timeline::{SubjectKind, TimelineEvent};

mod reconcile;
mod recover;
mod transitions;

/// One unit's state.
#[derive(Debug, Clone)]
pub struct Entry {
    pub spec: UnitSpec,
    pub enabled: bool,
    /// Why the unit can never start (broken file, cycle, missing dependency).
    pub blocked: Option<String>,
    pub phase: Phase,
    pub since: Instant,
    pub want_up: bool,
    pub pid: Option<i32>,
    pub started_at: Option<Instant>,
    pub restarts: u32,
    pub last_exit: Option<ExitStatus>,
    pub failure: Option<String>,
    /// The condition that does not hold: the unit will not start while this is set.
    pub skipped: Option<String>,
    /// The failure it will be shown with once its stop completes.
    pending_failure: Option<String>,
    pub ever_ready: bool,
    /// Removed from disk by a reload: dropped once stopped.
    pub removed: bool,
    stop: StopProgress,
    gen: u64,
    backoff: Backoff,
}

impl Entry {
    /// Wanted up but held back by a condition: shown as "skipped", not as waiting.
    pub fn is_skipped(&self) -> bool {
        self.skipped.is_some() && self.phase == Phase::Waiting
    }

    fn new(spec: UnitSpec, enabled: bool, now: Instant, seed: u64) -> Self {
        Self {
            spec,
            enabled,
            blocked: None,
            phase: Phase::Inactive,
            since: now,
            want_up: false,
            pid: None,
            started_at: None,
            restarts: 0,
            last_exit: None,
            failure: None,
            skipped: None,
            pending_failure: None,
            ever_ready: false,
            removed: false,
            stop: StopProgress {
                main_gone: true,
                group_gone: true,
                killed: false,
                then: AfterStop::Inactive,
            },
            gen: 0,
            backoff: Backoff::new(seed),
        }
    }
}

/// Every unit and fact, and the reverse dependency index.
#[derive(Debug, Default)]
pub struct Core {
    units: StrMap<Entry>,
    facts: StrMap<FactState>,
    /// unit → units naming it in requires, wants or after.
    dependents: StrMap<StrSet>,
    /// unit → units naming it in requires.
    requirers: StrMap<StrSet>,
    shutting_down: bool,
    /// The boot event was applied.
    booted: bool,
    seed: u64,
    /// Units to re-evaluate in the next `reconcile`.
    dirty: StrSet,
    /// Bumped whenever a device fact is added, so the loop tells subsystems what is wanted.
    facts_gen: u64,
}

impl Core {
    pub fn new(facts: &[&str], reached: &[String]) -> Self {
        let facts = facts
            .iter()
            .map(|f| {
                let state = if reached.iter().any(|r| r == f) {
                    FactState::Reached
                } else {
                    FactState::Pending
                };
                (f.to_string(), state)
            })
            .collect();
        Self {
            facts,
            seed: 0x5eed,
            ..Default::default()
        }
    }

    /// Adds or replaces a unit's spec (state is kept when replacing).
    pub fn upsert(&mut self, name: &str, spec: UnitSpec, enabled: bool, now: Instant) {
        self.seed = self.seed.wrapping_add(0x9e37_79b9);
        self.unindex(name);
        match self.units.get_mut(name) {
            Some(e) => {
                e.spec = spec;
                e.enabled = enabled;
                e.removed = false;
            }
            None => {
                let e = Entry::new(spec, enabled, now, self.seed);
                self.units.insert(name.to_string(), e);
            }
        }
        self.index(name);
        self.touch(name);
        self.touch_dependents(name);
    }

    /// Adds a unit that must never start, shown as failed with the reason.
    pub fn add_blocked(&mut self, name: &str, spec: UnitSpec, reason: &str, now: Instant) {
        self.upsert(name, spec, true, now);
        if let Some(e) = self.units.get_mut(name) {
            e.blocked = Some(reason.to_string());
            e.failure = Some(reason.to_string());
        }
        self.set_phase(name, Phase::Failed, now);
    }

    /// Marks a unit as deleted from disk: it is forgotten once it is down.
    pub fn mark_removed(&mut self, name: &str) {
        if let Some(e) = self.units.get_mut(name) {
            e.removed = true;
        }
    }

    /// Forgets a unit (only once it has no processes).
    pub fn remove(&mut self, name: &str) {
        self.unindex(name);
        self.units.remove(name);
    }

    /// Adds `name`'s edges to the reverse indexes (incrementally: loading a thousand units must
    /// not rebuild the index a thousand times).
    fn index(&mut self, name: &str) {
        let Some(e) = self.units.get(name) else {
            return;
        };
        let s = &e.spec;
        for d in s.requires.iter().chain(&s.wants).chain(&s.after) {
            self.dependents
                .entry(d.clone())
                .or_default()
                .insert(name.to_string());
            // Device facts exist as soon as a unit names one (`device:/dev/...`).
            if crate::units::values::is_device_fact(d) && !self.facts.contains_key(d) {
                self.facts.insert(d.clone(), FactState::Pending);
                self.facts_gen += 1;
            }
        }
        for d in &s.requires {
            self.requirers
                .entry(d.clone())
                .or_default()
                .insert(name.to_string());
        }
    }

    /// Removes `name`'s edges from the reverse indexes.
    fn unindex(&mut self, name: &str) {
        let Some(e) = self.units.get(name) else {
            return;
        };
        let s = &e.spec;
        for d in s.requires.iter().chain(&s.wants).chain(&s.after) {
            if let Some(set) = self.dependents.get_mut(d) {
                set.remove(name);
            }
        }
        for d in &s.requires {
            if let Some(set) = self.requirers.get_mut(d) {
                set.remove(name);
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.units.get(name)
    }

    pub fn entries(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.units.iter()
    }

    pub fn unit_by_pid(&self, pid: i32) -> Option<&str> {
        self.units
            .iter()
            .find(|(_, e)| e.pid == Some(pid))
            .map(|(n, _)| n.as_str())
    }

    pub fn is_fact(&self, name: &str) -> bool {
        self.facts.contains_key(name)
    }

    pub fn fact(&self, name: &str) -> Option<&FactState> {
        self.facts.get(name)
    }

    /// Changes whenever a device fact is added (see `pending_facts`).
    pub fn facts_generation(&self) -> u64 {
        self.facts_gen
    }

    /// Facts not reached or failed yet, for the subsystems that reach them.
    pub fn pending_facts(&self) -> Vec<String> {
        self.facts
            .iter()
            .filter(|(_, s)| **s == FactState::Pending)
            .map(|(f, _)| f.clone())
            .collect()
    }

    pub fn shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// During shutdown: every unit is down (inactive or failed), so the loop may end.
    pub fn all_down(&self) -> bool {
        self.units
            .values()
            .all(|e| matches!(e.phase, Phase::Inactive | Phase::Failed))
    }

    /// Every enabled unit has become ready, exited or failed (or was stopped on purpose).
    pub fn boot_settled(&self) -> bool {
        self.units.values().all(|e| {
            !e.enabled
                || e.ever_ready
                || matches!(e.phase, Phase::Running | Phase::Exited | Phase::Failed)
                || (e.phase == Phase::Inactive && !e.want_up)
                || e.is_skipped()
        })
    }

    /// Applies one event; returns what the event loop must do.
    pub fn step(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.apply(event, now, &mut out);
        self.reconcile(now, &mut out);
        out
    }

    /// The states × events table (copied into docs/supervisor.md). Events about no unit come
    /// first; every other event is decided by the pair (the unit's phase, the event), and the pairs
    /// that change nothing are written out with the reason, so a new phase or event cannot be
    /// added without deciding each of its pairs. Phases change only through `set_phase`.
    fn apply(&mut self, event: Event, now: Instant, out: &mut Vec<Action>) {
        use Phase::{Backoff, Exited, Failed, Inactive, Running, Starting, Stopping, Waiting};
        let phase = event.unit().and_then(|u| self.phase(u));
        match (phase, event) {
            (_, Event::Boot) => {
                self.booted = true;
                self.touch_all();
                let enabled: Vec<String> = self
                    .units
                    .iter()
                    .filter(|(_, e)| e.enabled)
                    .map(|(n, _)| n.clone())
                    .collect();
                for n in enabled {
                    self.pull_in(&n);
                }
            }
            (_, Event::FactReached(f)) => {
                if let Some(r) = self.facts.get_mut(&f) {
                    if *r != FactState::Reached {
                        *r = FactState::Reached;
                        self.touch_dependents(&f);
                        out.push(Action::Transition {
                            subject: SubjectKind::Fact,
                            name: f,
                            event: TimelineEvent::Ready,
                            detail: String::new(),
                        });
                    }
                }
            }
            (_, Event::FactFailed { fact, reason }) => {
                if let Some(r) = self.facts.get_mut(&fact) {
                    if *r == FactState::Pending {
                        *r = FactState::Failed(reason.clone());
                        self.touch_dependents(&fact);
                        out.push(Action::Transition {
                            subject: SubjectKind::Fact,
                            name: fact,
                            event: TimelineEvent::Failed,
                            detail: reason,
                        });
                    }
                }
            }
            (_, Event::Shutdown) => {
                self.shutting_down = true;
                for e in self.units.values_mut() {
                    e.want_up = false;
                }
                self.touch_all();
            }
            // Conditions gate only the next start: a running unit keeps running (systemd's rule
            // too), a waiting one starts once they hold. The same in every phase.
            (Some(_), Event::Condition { unit, unmet }) => {
                if let Some(e) = self.units.get_mut(&unit) {
                    if e.skipped != unmet {
                        e.skipped = unmet;
                        self.touch(&unit);
                    }
                }
            }
            // A unit the core does not know (removed by a reload meanwhile): nothing to move.
            (None, _) => {}

            // Start: want it up, with what it requires (and wants, if enabled).
            (Some(_), Event::Start(_) | Event::Restart(_)) if self.shutting_down => {}
            (Some(_), Event::Start(n) | Event::Restart(n)) if self.is_blocked(&n) => {}
            (Some(Failed), Event::Start(n)) => {
                self.clear_failure(&n, now);
                self.pull_in(&n);
            }
            (
                Some(Inactive | Waiting | Starting | Running | Exited | Backoff | Stopping),
                Event::Start(n),
            ) => {
                self.forget_pending_failure(&n);
                self.pull_in(&n);
            }

            // Stop: the unit and, transitively, its requirers are no longer wanted; reconcile
            // stops them dependents first. The same in every phase.
            (Some(_), Event::Stop(n)) => self.stop_with_requirers(&n),

            // Restart: a fresh backoff, then whatever brings it back up from where it is.
            (Some(Starting | Running | Exited), Event::Restart(n)) => {
                self.want_restart(&n);
                self.begin_stop(&n, AfterStop::Restart, now, out);
            }
            (Some(Backoff), Event::Restart(n)) => {
                self.want_restart(&n);
                self.set_phase(&n, Phase::Waiting, now);
            }
            (Some(Stopping), Event::Restart(n)) => {
                self.want_restart(&n);
                self.restart_after_stop(&n);
            }
            (Some(Failed), Event::Restart(n)) => {
                self.want_restart(&n);
                self.clear_failure(&n, now);
                self.pull_in(&n);
            }
            (Some(Inactive | Waiting), Event::Restart(n)) => {
                self.want_restart(&n);
                self.pull_in(&n);
            }

            // Spawn reports: only a start in progress takes them.
            (Some(Starting), Event::Spawned { unit, pid }) => self.on_spawned(&unit, pid, now, out),
            (Some(Starting), Event::SpawnFailed { unit, message }) => {
                self.fail(&unit, &format!("spawn failed: {message}"), now, out)
            }
            // The start was given up on before the report came (a stop, a failed dependency).
            (
                Some(Inactive | Waiting | Running | Exited | Backoff | Stopping | Failed),
                Event::Spawned { .. } | Event::SpawnFailed { .. },
            ) => {}

            // Readiness: a starting daemon becomes running.
            (Some(Starting), Event::Ready(n)) if self.is_daemon(&n) => {
                self.become_ready(&n, Phase::Running, String::new(), now, out)
            }
            // A oneshot is ready when it exits 0, not when it says so.
            (Some(Starting), Event::Ready(_)) => {}
            // Late or repeated: already ready, or no longer starting.
            (
                Some(Inactive | Waiting | Running | Exited | Backoff | Stopping | Failed),
                Event::Ready(_),
            ) => {}

            // MAINPID=: while the unit has processes (the loop vetted the pid as the unit's own).
            (Some(Starting | Running | Stopping), Event::MainPid { unit, pid }) if pid > 0 => {
                self.set_main_pid(&unit, pid)
            }
            (Some(Starting | Running | Stopping), Event::MainPid { .. }) => {} // not a pid
            // No process to track: a late message from a process on its way out.
            (Some(Inactive | Waiting | Exited | Backoff | Failed), Event::MainPid { .. }) => {}

            // The main process ended.
            (Some(Stopping), Event::Exited { unit, status }) => {
                self.record_exit(&unit, status);
                self.main_gone_while_stopping(&unit, now, out);
            }
            (Some(Starting | Running), Event::Exited { unit, status }) => {
                self.record_exit(&unit, status);
                self.main_exited(&unit, status, now, out);
            }
            // No phase waits for it (a leftover of kill = "main"): recorded, nothing moves.
            (
                Some(Inactive | Waiting | Exited | Backoff | Failed),
                Event::Exited { unit, status },
            ) => self.record_exit(&unit, status),

            // Timers: one of an earlier phase (older generation) is stale.
            (Some(_), Event::Timer { unit, gen, .. }) if !self.is_current(&unit, gen) => {}
            (
                Some(Starting),
                Event::Timer {
                    unit,
                    kind: TimerKind::ReadyTimeout,
                    ..
                },
            ) => self.ready_timed_out(&unit, now, out),
            (
                Some(Backoff),
                Event::Timer {
                    unit,
                    kind: TimerKind::BackoffElapsed,
                    ..
                },
            ) => self.set_phase(&unit, Phase::Waiting, now),
            (
                Some(Stopping),
                Event::Timer {
                    unit,
                    kind: TimerKind::StopTimeout,
                    ..
                },
            ) => self.stop_timed_out(&unit, now, out),
            // Every phase change bumps the generation, so a current timer always belongs to its
            // own phase: these pairs cannot happen.
            (
                Some(Inactive | Waiting | Running | Exited | Backoff | Stopping | Failed),
                Event::Timer {
                    kind: TimerKind::ReadyTimeout,
                    ..
                },
            ) => {}
            (
                Some(Inactive | Waiting | Starting | Running | Exited | Stopping | Failed),
                Event::Timer {
                    kind: TimerKind::BackoffElapsed,
                    ..
                },
            ) => {}
            (
                Some(Inactive | Waiting | Starting | Running | Exited | Backoff | Failed),
                Event::Timer {
                    kind: TimerKind::StopTimeout,
                    ..
                },
            ) => {}

            // The cgroup emptied: only a stop waits for that.
            (Some(Stopping), Event::GroupEmpty(unit)) => {
                self.group_gone(&unit);
                self.maybe_stopped(&unit, now, out);
            }
            // inotify reports every change of cgroup.events; outside a stop none matters.
            (
                Some(Inactive | Waiting | Starting | Running | Exited | Backoff | Failed),
                Event::GroupEmpty(_),
            ) => {}
        }
    }

    fn phase(&self, n: &str) -> Option<Phase> {
        self.units.get(n).map(|e| e.phase)
    }

    /// Changes a unit's phase and marks it and its neighbours (what it depends on, what depends on
    /// it) for re-evaluation: those are the only units whose next move this change can enable.
    fn set_phase(&mut self, n: &str, p: Phase, now: Instant) {
        let Some(e) = self.units.get_mut(n) else {
            return;
        };
        e.phase = p;
        e.since = now;
        e.gen += 1;
        let s = &e.spec;
        let deps: Vec<String> = s
            .requires
            .iter()
            .chain(&s.wants)
            .chain(&s.after)
            .cloned()
            .collect();
        self.dirty.extend(deps);
        self.touch_dependents(n);
        self.dirty.insert(n.to_string());
    }

    fn touch(&mut self, n: &str) {
        self.dirty.insert(n.to_string());
    }

    fn touch_dependents(&mut self, n: &str) {
        if let Some(ds) = self.dependents.get(n) {
            self.dirty.extend(ds.iter().cloned());
        }
    }

    fn touch_all(&mut self) {
        self.dirty.extend(self.units.keys().cloned());
    }

    fn become_ready(
        &mut self,
        n: &str,
        p: Phase,
        detail: String,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        self.set_phase(n, p, now);
        if let Some(e) = self.units.get_mut(n) {
            e.ever_ready = true;
        }
        out.push(Action::Transition {
            subject: SubjectKind::Unit,
            name: n.to_string(),
            event: TimelineEvent::Ready,
            detail,
        });
    }

    /// After the main process of a cgroup-killed unit died on its own, its stragglers go too.
    fn kill_leftovers(&self, n: &str, out: &mut Vec<Action>) {
        if self.units.get(n).is_some_and(|e| e.spec.group_kill()) {
            out.push(Action::Kill {
                unit: n.to_string(),
                signal: Signal::SIGKILL,
                scope: KillScope::Group,
            });
        }
    }

    /// Asks for a timer `after` from `now`. A deadline the clock cannot represent arms nothing: the
    /// unit waits for as long as it takes, which is what such a duration means.
    fn arm(&self, n: &str, kind: TimerKind, now: Instant, after: Duration, out: &mut Vec<Action>) {
        let Some(at) = now.checked_add(after) else {
            return;
        };
        if let Some(e) = self.units.get(n) {
            out.push(Action::ArmTimer {
                unit: n.to_string(),
                kind,
                at,
                gen: e.gen,
            });
        }
    }

    fn begin_stop(&mut self, n: &str, then: AfterStop, now: Instant, out: &mut Vec<Action>) {
        let Some(e) = self.units.get_mut(n) else {
            return;
        };
        let group = e.spec.group_kill();
        if e.pid.is_none() && !group {
            // Nothing to signal (an exited oneshot, or a daemon whose group we cannot see).
            e.stop = StopProgress {
                main_gone: true,
                group_gone: true,
                killed: false,
                then,
            };
            self.set_phase(n, Phase::Stopping, now);
            self.maybe_stopped(n, now, out);
            return;
        }
        e.stop = StopProgress {
            main_gone: e.pid.is_none(),
            group_gone: !group,
            killed: false,
            then,
        };
        let (signal, timeout) = (e.spec.stop_signal, e.spec.stop_timeout);
        self.set_phase(n, Phase::Stopping, now);
        out.push(Action::Transition {
            subject: SubjectKind::Unit,
            name: n.to_string(),
            event: TimelineEvent::Stopping,
            detail: String::new(),
        });
        out.push(Action::Kill {
            unit: n.to_string(),
            signal,
            scope: if group {
                KillScope::Group
            } else {
                KillScope::Main
            },
        });
        if group {
            out.push(Action::CheckGroup(n.to_string()));
        }
        self.arm(n, TimerKind::StopTimeout, now, timeout, out);
    }

    fn maybe_stopped(&mut self, n: &str, now: Instant, out: &mut Vec<Action>) {
        let Some(e) = self.units.get_mut(n) else {
            return;
        };
        if e.phase != Phase::Stopping || !(e.stop.main_gone && e.stop.group_gone) {
            return;
        }
        let then = e.stop.then;
        let failure = e.pending_failure.take();
        e.pid = None;
        out.push(Action::Transition {
            subject: SubjectKind::Unit,
            name: n.to_string(),
            event: TimelineEvent::Stopped,
            detail: String::new(),
        });
        if let Some(reason) = failure {
            self.fail(n, &reason, now, out);
        } else if then == AfterStop::Restart && !self.shutting_down {
            self.set_phase(n, Phase::Waiting, now);
        } else {
            self.set_phase(n, Phase::Inactive, now);
        }
    }

    fn fail(&mut self, n: &str, reason: &str, now: Instant, out: &mut Vec<Action>) {
        self.set_phase(n, Phase::Failed, now);
        if let Some(e) = self.units.get_mut(n) {
            e.failure = Some(reason.to_string());
            e.pending_failure = None;
            e.pid = None;
        }
        out.push(Action::Transition {
            subject: SubjectKind::Unit,
            name: n.to_string(),
            event: TimelineEvent::Failed,
            detail: reason.to_string(),
        });
        self.fail_requirers(n, reason);
    }
}
