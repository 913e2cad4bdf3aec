//! Which units the supervisor knows: loading them from disk at start and on reload, turning broken
//! files, cycles and missing dependencies into units that are shown as failed with the reason (and
//! never started), and diffing a reload against what runs.

use crate::collections::keyset::StrSet;
use crate::collections::strmap::StrMap;
use std::time::Instant;

use super::event_loop::Supervisor;
use super::state::{Event, Phase, UnitSpec};
use crate::control::ops::ReloadReport;
use crate::units::graph::{self, GraphError};
use crate::units::load::{load_dirs, LoadOutcome};
use crate::units::Unit;

/// Units and the reasons some of them can never start.
pub struct Catalog {
    pub units: StrMap<Unit>,
    /// unit → why it is blocked (broken file, cycle, missing dependency).
    pub blocked: StrMap<String>,
    /// Every problem, one line each.
    pub errors: Vec<String>,
}

/// Loads the unit directories and checks the graph.
pub fn load(dirs: &[std::path::PathBuf]) -> Catalog {
    from_outcome(load_dirs(dirs))
}

/// Classifies a load outcome plus graph errors (pure apart from the graph check).
pub fn from_outcome(outcome: LoadOutcome) -> Catalog {
    let mut errors: Vec<String> = outcome.errors.iter().map(|e| e.to_string()).collect();
    let mut blocked = StrMap::new();
    for (name, errs) in &outcome.broken {
        let first = errs
            .first()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "invalid unit file".into());
        blocked.insert(name.clone(), format!("invalid unit file: {first}"));
    }
    for ge in graph::check(&outcome.units) {
        // A dependency on a broken file is not "unknown": the dependent fails at start with the
        // broken unit's reason instead.
        if let GraphError::Missing { missing, .. } = &ge {
            if outcome.broken.contains_key(missing) {
                continue;
            }
        }
        errors.push(ge.to_string());
        match &ge {
            GraphError::Missing { unit, missing } => {
                blocked
                    .entry(unit.clone())
                    .or_insert_with(|| format!("depends on unknown unit {missing}"));
            }
            GraphError::Cycle { units } => {
                let reason = format!("dependency cycle: {}", units.join(" -> "));
                for u in units {
                    blocked.entry(u.clone()).or_insert_with(|| reason.clone());
                }
            }
        }
    }
    Catalog {
        units: outcome.units,
        blocked,
        errors,
    }
}

impl Supervisor {
    /// Installs a freshly loaded catalog into an empty supervisor.
    pub(super) fn install(&mut self, cat: Catalog) {
        for e in &cat.errors {
            log::error!("{e}");
        }
        let now = Instant::now();
        let has_cg = self.env.cgroups.is_some();
        for (name, unit) in &cat.units {
            let spec = UnitSpec::from_unit(unit, has_cg);
            match cat.blocked.get(name) {
                Some(reason) => self.core.add_blocked(name, spec, reason, now),
                None => self.core.upsert(name, spec, unit.enabled, now),
            }
        }
        for (name, reason) in &cat.blocked {
            if !cat.units.contains_key(name) {
                self.core.add_blocked(name, UnitSpec::inert(), reason, now);
            }
        }
        for (name, reason) in &cat.blocked {
            log::warn!("[FAILED] {name}: {reason}");
            self.boot.timeline.mark(
                crate::timeline::SubjectKind::Unit,
                name,
                crate::timeline::TimelineEvent::Failed,
            );
        }
        self.units = cat.units;
        self.evaluate_conditions(now);
    }

    /// Re-reads the unit directories: new units start (when enabled), removed ones stop, changed ones
    /// restart if they were running.
    pub(super) fn reload_units(&mut self) -> ReloadReport {
        let cat = load(&self.env.cfg.unit_dirs);
        let mut report = ReloadReport {
            errors: cat.errors.clone(),
            ..Default::default()
        };
        let now = Instant::now();
        let has_cg = self.env.cgroups.is_some();
        let old: StrSet = self.core.entries().map(|(n, _)| n.clone()).collect();
        let mut to_start = Vec::new();
        let mut to_restart = Vec::new();
        let mut to_stop = Vec::new();
        for (name, unit) in &cat.units {
            let spec = UnitSpec::from_unit(unit, has_cg);
            if let Some(reason) = cat.blocked.get(name) {
                if self
                    .core
                    .get(name)
                    .is_some_and(|e| e.phase != Phase::Failed && e.phase != Phase::Inactive)
                {
                    to_stop.push(name.clone());
                } else {
                    self.core.add_blocked(name, spec, reason, now);
                }
                continue;
            }
            match self.units.get(name) {
                None => {
                    self.core.upsert(name, spec, unit.enabled, now);
                    if unit.enabled {
                        to_start.push(name.clone());
                        report.started.push(name.clone());
                    }
                }
                Some(prev) if prev != unit => {
                    let active = self.core.get(name).is_some_and(|e| {
                        matches!(
                            e.phase,
                            Phase::Starting | Phase::Running | Phase::Waiting | Phase::Backoff
                        )
                    });
                    self.core.upsert(name, spec, unit.enabled, now);
                    if active {
                        to_restart.push(name.clone());
                        report.restarted.push(name.clone());
                    } else {
                        report.unchanged.push(name.clone());
                    }
                }
                Some(_) => report.unchanged.push(name.clone()),
            }
        }
        for name in &old {
            if !cat.units.contains_key(name) && !cat.blocked.contains_key(name) {
                to_stop.push(name.clone());
                report.stopped.push(name.clone());
            }
        }
        for (name, unit) in &cat.units {
            self.units.insert(name.clone(), unit.clone());
        }
        self.evaluate_conditions(now);
        for name in &to_stop {
            self.core.mark_removed(name);
            self.dispatch(Event::Stop(name.clone()));
        }
        for name in to_restart {
            self.dispatch(Event::Restart(name));
        }
        for name in to_start {
            self.dispatch(Event::Start(name));
        }
        self.prune_removed();
        report
    }

    /// Forgets units removed by a reload once they are down.
    pub(super) fn prune_removed(&mut self) {
        let gone: Vec<String> = self
            .core
            .entries()
            .filter(|(_, e)| e.removed && matches!(e.phase, Phase::Inactive | Phase::Failed))
            .map(|(n, _)| n.clone())
            .collect();
        for n in gone {
            self.core.remove(&n);
            if let (Some(w), Some(id)) = (&self.io.watcher, self.io.watches.remove(&n)) {
                w.unwatch(id);
            }
            if let (Some(cg), Some(u)) = (&self.env.cgroups, self.units.get(&n)) {
                // Empty by now (the unit stopped); a group kept alive by kill = "main" stays.
                let _ = cg.remove(&self.cgroup_rel(u));
            }
            self.units.remove(&n);
            self.status_text.remove(&n);
            self.boot.spawned_at.remove(&n);
            self.logs.forget(&n);
            // Our write ends close; the pipes end once no leftover holds them (EOF, then dropped).
            self.io.shared_output.remove(&n);
        }
    }
}
