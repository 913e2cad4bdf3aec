//! The supervisor's pure core: every unit's state and how events move it.
//!
//! `Core::step(event, now)` updates the states and returns the actions the event loop must carry
//! out (spawn, signal, arm a timer, record a transition). No processes, clocks or files here, so every
//! transition is unit-tested (the way dinit tests its service graph and s6-supervise is a
//! states × events table). After each event the core reconciles the whole graph to a fixpoint: units
//! whose dependencies are satisfied start, units nobody wants stop once their dependents have stopped,
//! and failures of hard dependencies travel to their requirers with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use nix::sys::signal::Signal;

use super::backoff::Backoff;
pub use super::model::*;
use crate::timeline::{SubjectKind, TimelineEvent};
use crate::units::schema::{RestartPolicy, UnitType};

mod reconcile;

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
    units: BTreeMap<String, Entry>,
    facts: BTreeMap<String, FactState>,
    /// unit → units naming it in requires, wants or after.
    dependents: BTreeMap<String, BTreeSet<String>>,
    /// unit → units naming it in requires.
    requirers: BTreeMap<String, BTreeSet<String>>,
    shutting_down: bool,
    seed: u64,
    /// Units to re-evaluate in the next `reconcile`.
    dirty: BTreeSet<String>,
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
            e.phase = Phase::Failed;
            e.failure = Some(reason.to_string());
        }
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
        })
    }

    /// Applies one event; returns what the event loop must do.
    pub fn step(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.apply(event, now, &mut out);
        self.reconcile(now, &mut out);
        out
    }

    fn apply(&mut self, event: Event, now: Instant, out: &mut Vec<Action>) {
        match event {
            Event::Boot => {
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
            Event::Start(n) => self.start(&n),
            Event::Stop(n) => self.stop_with_requirers(&n),
            Event::Restart(n) => self.restart(&n, now, out),
            Event::FactReached(f) => {
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
            Event::FactFailed { fact, reason } => {
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
            Event::Spawned { unit, pid } => self.on_spawned(&unit, pid, now, out),
            Event::SpawnFailed { unit, message } => {
                if self.phase(&unit) == Some(Phase::Starting) {
                    self.fail(&unit, &format!("spawn failed: {message}"), now, out);
                }
            }
            Event::Ready(unit) => self.on_ready(&unit, now, out),
            Event::MainPid { unit, pid } => {
                if let Some(e) = self.units.get_mut(&unit) {
                    if matches!(e.phase, Phase::Starting | Phase::Running | Phase::Stopping)
                        && pid > 0
                    {
                        e.pid = Some(pid);
                    }
                }
            }
            Event::Exited { unit, status } => self.on_exit(&unit, status, now, out),
            Event::Timer { unit, kind, gen } => self.on_timer(&unit, kind, gen, now, out),
            Event::GroupEmpty(unit) => {
                if let Some(e) = self.units.get_mut(&unit) {
                    if e.phase == Phase::Stopping {
                        e.stop.group_gone = true;
                    }
                }
                self.maybe_stopped(&unit, now, out);
            }
            Event::Shutdown => {
                self.shutting_down = true;
                for e in self.units.values_mut() {
                    e.want_up = false;
                }
                self.touch_all();
            }
        }
    }

    fn phase(&self, n: &str) -> Option<Phase> {
        self.units.get(n).map(|e| e.phase)
    }

    fn start(&mut self, n: &str) {
        if self.shutting_down {
            return;
        }
        if let Some(e) = self.units.get_mut(n) {
            if e.blocked.is_some() {
                return;
            }
            if e.phase == Phase::Failed {
                e.phase = Phase::Inactive;
                e.failure = None;
            }
            e.pending_failure = None;
        }
        self.pull_in(n);
    }

    fn restart(&mut self, n: &str, now: Instant, out: &mut Vec<Action>) {
        if self.shutting_down {
            return;
        }
        let Some(e) = self.units.get_mut(n) else {
            return;
        };
        if e.blocked.is_some() {
            return;
        }
        e.want_up = true;
        e.pending_failure = None;
        e.backoff = Backoff::new(e.backoff.attempts() as u64 ^ 0xabcd);
        match e.phase {
            Phase::Starting | Phase::Running | Phase::Exited => {
                self.begin_stop(n, AfterStop::Restart, now, out)
            }
            Phase::Backoff => self.set_phase(n, Phase::Waiting, now),
            Phase::Stopping => e.stop.then = AfterStop::Restart,
            Phase::Failed => {
                e.phase = Phase::Inactive;
                e.failure = None;
                self.pull_in(n);
            }
            Phase::Inactive | Phase::Waiting => self.pull_in(n),
        }
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

    fn on_spawned(&mut self, n: &str, pid: i32, now: Instant, out: &mut Vec<Action>) {
        let Some(e) = self.units.get_mut(n) else {
            return;
        };
        if e.phase != Phase::Starting {
            return;
        }
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

    fn on_ready(&mut self, n: &str, now: Instant, out: &mut Vec<Action>) {
        let Some(e) = self.units.get(n) else { return };
        if e.phase == Phase::Starting && e.spec.kind == UnitType::Daemon {
            self.become_ready(n, Phase::Running, String::new(), now, out);
        }
    }

    fn on_exit(&mut self, n: &str, status: ExitStatus, now: Instant, out: &mut Vec<Action>) {
        let Some(e) = self.units.get_mut(n) else {
            return;
        };
        e.pid = None;
        e.last_exit = Some(status);
        match e.phase {
            Phase::Stopping => {
                e.stop.main_gone = true;
                if !e.stop.group_gone {
                    // The kernel clears `populated` before it reports the exit, so a unit whose
                    // main process was its last one is done now, without waiting for inotify.
                    out.push(Action::CheckGroup(n.to_string()));
                }
                self.maybe_stopped(n, now, out);
            }
            Phase::Starting | Phase::Running => {
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
                    self.arm(n, TimerKind::BackoffElapsed, now + delay, out);
                }
            }
            _ => {}
        }
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

    fn arm(&self, n: &str, kind: TimerKind, at: Instant, out: &mut Vec<Action>) {
        if let Some(e) = self.units.get(n) {
            out.push(Action::ArmTimer {
                unit: n.to_string(),
                kind,
                at,
                gen: e.gen,
            });
        }
    }

    fn on_timer(
        &mut self,
        n: &str,
        kind: TimerKind,
        gen: u64,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let Some(e) = self.units.get_mut(n) else {
            return;
        };
        if e.gen != gen {
            return;
        }
        match (kind, e.phase) {
            (TimerKind::ReadyTimeout, Phase::Starting) => {
                let reason = format!("not ready within {}", fmt_duration(e.spec.ready_timeout));
                e.want_up = false;
                e.pending_failure = Some(reason.clone());
                self.fail_requirers(n, &reason);
                self.begin_stop(n, AfterStop::Inactive, now, out);
            }
            (TimerKind::BackoffElapsed, Phase::Backoff) => self.set_phase(n, Phase::Waiting, now),
            (TimerKind::StopTimeout, Phase::Stopping) => {
                if e.stop.killed {
                    // SIGKILL did not finish it within the grace period: give up waiting.
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
                    self.arm(n, TimerKind::StopTimeout, now + KILL_GRACE, out);
                }
            }
            _ => {}
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
        self.arm(n, TimerKind::StopTimeout, now + timeout, out);
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
