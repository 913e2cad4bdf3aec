//! The control API's view of the supervisor: `Operations` implemented on the running `Supervisor`.
//! Requests become events for the state machine, so the API can never put a unit in a state the
//! core would not reach by itself.

use std::path::PathBuf;
use std::time::Instant;

use super::event_loop::Supervisor;
use super::readiness;
use super::state::{Event, Phase};
use crate::control::ops::{OpError, Operations, ReloadReport, ShutdownKind, UnitStatus};
use crate::timeline::Stamp;
use crate::unitlog::LogLine;

impl Supervisor {
    fn known(&self, unit: &str) -> Result<(), OpError> {
        if !crate::units::valid_unit_name(unit) {
            return Err(OpError::InvalidName(unit.to_string()));
        }
        if self.core.get(unit).is_some() {
            Ok(())
        } else {
            Err(OpError::NoSuchUnit(unit.to_string()))
        }
    }

    /// Start and restart both end in a start: refused for unknown units, during shutdown, and for
    /// units that can never start (broken file, cycle, missing dependency).
    fn startable(&self, unit: &str) -> Result<(), OpError> {
        self.known(unit)?;
        if self.core.shutting_down() {
            return Err(OpError::Refused("shutting down".into()));
        }
        if let Some(reason) = self.core.get(unit).and_then(|e| e.blocked.clone()) {
            return Err(OpError::Refused(format!(
                "unit {unit} cannot start: {reason}"
            )));
        }
        Ok(())
    }

    fn unit_status(&self, name: &str) -> Option<UnitStatus> {
        let e = self.core.get(name)?;
        let unit = self.units.get(name);
        let cgroup = match (&self.env.cgroups, unit) {
            (Some(cg), Some(u)) => Some(cg.root.join(self.cgroup_rel(u))),
            _ => None,
        };
        let stats = match (&self.env.cgroups, unit) {
            (Some(cg), Some(u)) if e.phase != Phase::Inactive => {
                Some(cg.stats(&self.cgroup_rel(u)))
            }
            _ => None,
        };
        let state = if e.phase == Phase::Inactive && !e.enabled {
            "disabled"
        } else if e.is_skipped() {
            "skipped"
        } else {
            e.phase.as_str()
        };
        let since_us = crate::timeline::boottime_us().saturating_sub(
            Instant::now()
                .saturating_duration_since(e.since)
                .as_micros() as u64,
        );
        Some(UnitStatus {
            name: name.to_string(),
            description: unit.map(|u| u.description.clone()).unwrap_or_default(),
            state: state.to_string(),
            enabled: e.enabled,
            pid: e.pid,
            since_us,
            restarts: e.restarts,
            last_exit: e.last_exit.map(|s| s.to_string()),
            failure: e.failure.clone(),
            skipped: e.skipped.clone(),
            readiness: unit
                .map(|u| readiness::describe(&u.ready))
                .unwrap_or_default(),
            status_text: self.status_text.get(name).cloned(),
            cgroup: cgroup.map(|p| p.display().to_string()),
            memory_bytes: stats.as_ref().and_then(|s| s.memory_current),
            cpu_usec: stats.as_ref().and_then(|s| s.cpu_usage_usec),
            log_lines_dropped: self.logs.dropped(name),
            requires: e.spec.requires.clone(),
            wants: e.spec.wants.clone(),
            after: e.spec.after.clone(),
        })
    }
}

impl Operations for Supervisor {
    fn list(&self) -> Vec<UnitStatus> {
        self.core
            .entries()
            .filter_map(|(n, _)| self.unit_status(n))
            .collect()
    }

    fn status(&self, unit: &str) -> Result<UnitStatus, OpError> {
        self.known(unit)?;
        self.unit_status(unit)
            .ok_or_else(|| OpError::NoSuchUnit(unit.to_string()))
    }

    fn start(&mut self, unit: &str) -> Result<(), OpError> {
        self.startable(unit)?;
        self.dispatch(Event::Start(unit.to_string()));
        Ok(())
    }

    fn stop(&mut self, unit: &str) -> Result<(), OpError> {
        self.known(unit)?;
        self.dispatch(Event::Stop(unit.to_string()));
        Ok(())
    }

    fn restart(&mut self, unit: &str) -> Result<(), OpError> {
        self.startable(unit)?;
        self.dispatch(Event::Restart(unit.to_string()));
        Ok(())
    }

    fn reload(&mut self) -> Result<ReloadReport, OpError> {
        if self.core.shutting_down() {
            return Err(OpError::Refused("shutting down".into()));
        }
        Ok(self.reload_units())
    }

    fn admin_unit_dir(&self) -> PathBuf {
        self.env
            .cfg
            .unit_dirs
            .last()
            .cloned()
            .unwrap_or_else(|| PathBuf::from(crate::paths::ADMIN_UNIT_DIR))
    }

    fn logs_tail(&self, unit: &str, n: usize) -> Result<Vec<LogLine>, OpError> {
        self.known(unit)?;
        Ok(self.logs.tail(unit, n))
    }

    fn logs_since(&self, unit: &str, seq: u64) -> Result<Vec<LogLine>, OpError> {
        self.known(unit)?;
        Ok(self.logs.since(unit, seq))
    }

    fn timeline(&self) -> Vec<Stamp> {
        self.boot.timeline.entries().to_vec()
    }

    fn shutdown(&mut self, kind: ShutdownKind) {
        self.begin_shutdown(kind);
    }

    fn subsystem_request(
        &mut self,
        name: &str,
        request: serde_json::Value,
    ) -> Result<serde_json::Value, OpError> {
        let mut notices = Vec::new();
        let answer = match self.subsystems.iter_mut().find(|s| s.name() == name) {
            Some(s) => s.request(&request, &mut notices).map_err(OpError::Refused),
            None => Err(OpError::Failed(format!("no subsystem {name} is running"))),
        };
        self.apply_notices(notices);
        answer
    }

    fn ops_begin(
        &mut self,
        req: &crate::control::protocol::OpsRequest,
        stdio: Vec<std::os::fd::OwnedFd>,
        peer: crate::control::ops::Peer,
    ) -> Result<u64, OpError> {
        if self.core.shutting_down() {
            return Err(OpError::Refused("shutting down".into()));
        }
        match self.subsystems.iter_mut().find_map(|s| s.ops_sessions()) {
            Some(o) => o.begin(req, stdio, peer).map_err(OpError::Refused),
            None => Err(OpError::Refused("ops sessions are not enabled".into())),
        }
    }

    fn ops_poll(&mut self, key: u64) -> Option<crate::control::ops::SessionEnd> {
        self.subsystems
            .iter_mut()
            .find_map(|s| s.ops_sessions())
            .and_then(|o| o.poll(key))
    }

    fn ops_abandon(&mut self, key: u64) {
        if let Some(o) = self.subsystems.iter_mut().find_map(|s| s.ops_sessions()) {
            o.abandon(key);
        }
    }

    fn subsystem(&self, name: &str) -> Result<serde_json::Value, OpError> {
        self.subsystem_status(name)
            .ok_or_else(|| OpError::Failed(format!("no subsystem {name} is running")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervisor::{catalog, Config};
    use crate::timeline::Timeline;

    fn sup_with(files: &[(&str, &str)]) -> (Supervisor, PathBuf) {
        let dir = std::env::temp_dir().join(format!(
            "lifsea-ops-{}-{}",
            std::process::id(),
            files.len() * 1000 + files.iter().map(|f| f.1.len()).sum::<usize>()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
        }
        let cfg = Config::for_test(vec![dir.clone()], dir.join("run"));
        let mut sup = Supervisor::new(cfg.clone(), Timeline::new(), None, String::new());
        sup.install(catalog::load(&cfg.unit_dirs));
        (sup, dir)
    }

    #[test]
    fn status_list_and_errors_without_running_anything() {
        let (mut sup, dir) = sup_with(&[
            ("idle", "description = \"an idle unit\"\nexec = [\"/bin/true\"]\nenabled = false\nready = { fd = 3 }\n"),
            ("bad", "exec = 1\n"),
        ]);
        let names: Vec<String> = sup.list().into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["bad", "idle"]);
        let idle = sup.status("idle").unwrap();
        assert_eq!(idle.state, "disabled");
        assert_eq!(idle.description, "an idle unit");
        assert_eq!(idle.readiness, "fd 3");
        assert_eq!(idle.pid, None);
        let bad = sup.status("bad").unwrap();
        assert_eq!(bad.state, "failed");
        assert!(bad.failure.unwrap().starts_with("invalid unit file: "));
        assert_eq!(sup.status("nope"), Err(OpError::NoSuchUnit("nope".into())));
        assert_eq!(sup.start("../x"), Err(OpError::InvalidName("../x".into())));
        assert!(matches!(sup.start("bad"), Err(OpError::Refused(_))));
        assert_eq!(sup.logs_tail("idle", 10), Ok(vec![]));
        assert_eq!(sup.admin_unit_dir(), dir);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reload_reports_new_changed_and_removed_units() {
        let (mut sup, dir) = sup_with(&[
            ("a", "exec = [\"/bin/true\"]\nenabled = false\n"),
            ("b", "exec = [\"/bin/true\"]\nenabled = false\n"),
            ("c", "exec = [\"/bin/true\"]\nenabled = false\n"),
        ]);
        std::fs::write(
            dir.join("b.toml"),
            "exec = [\"/bin/false\"]\nenabled = false\n",
        )
        .unwrap();
        std::fs::remove_file(dir.join("c.toml")).unwrap();
        std::fs::write(
            dir.join("d.toml"),
            "exec = [\"/bin/true\"]\nenabled = false\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("e.toml"),
            "exec = [\"/bin/true\"]\nrequires = [\"ghost\"]\nenabled = false\n",
        )
        .unwrap();
        let r = sup.reload().unwrap();
        assert!(
            r.started.is_empty(),
            "d is new but disabled: {:?}",
            r.started
        );
        assert_eq!(r.stopped, vec!["c"]);
        // b changed but was not running: nothing to restart.
        assert_eq!(r.unchanged, vec!["a", "b"]);
        assert!(r.restarted.is_empty());
        assert!(
            r.errors.iter().any(|e| e.contains("ghost")),
            "{:?}",
            r.errors
        );
        assert_eq!(
            sup.status("c"),
            Err(OpError::NoSuchUnit("c".into())),
            "removed units are forgotten"
        );
        assert_eq!(sup.status("d").unwrap().state, "disabled");
        assert_eq!(sup.status("e").unwrap().state, "failed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Issue 10 item 4: conditions are evaluated at install and again on every reload (without
    /// waiting for the periodic look), and the periodic look is armed only while one is unmet.
    #[test]
    fn reload_re_evaluates_conditions() {
        let flag = std::env::temp_dir().join(format!("lifsea-cond-flag-{}", std::process::id()));
        let _ = std::fs::remove_file(&flag);
        let unit = format!(
            "exec = [\"/bin/true\"]\nenabled = false\ncondition = {{ path-exists = \"{}\" }}\n",
            flag.display()
        );
        let (mut sup, dir) = sup_with(&[
            ("gated", &unit),
            ("free", "exec = [\"/bin/true\"]\nenabled = false\n"),
        ]);
        let skipped = |sup: &Supervisor| sup.core.get("gated").and_then(|e| e.skipped.clone());
        assert_eq!(
            skipped(&sup),
            Some(format!("condition: {} does not exist", flag.display()))
        );
        assert_eq!(sup.core.get("free").and_then(|e| e.skipped.clone()), None);
        assert!(sup.next_condition_check.is_some());
        std::fs::write(&flag, "").unwrap();
        sup.reload().unwrap();
        assert_eq!(skipped(&sup), None);
        assert!(sup.next_condition_check.is_none(), "nothing is skipped");
        std::fs::remove_file(&flag).unwrap();
        sup.reload().unwrap();
        assert!(skipped(&sup).is_some());
        // A reload that drops the condition clears the verdict.
        std::fs::write(
            dir.join("gated.toml"),
            "exec = [\"/bin/true\"]\nenabled = false\n",
        )
        .unwrap();
        sup.reload().unwrap();
        assert_eq!(skipped(&sup), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Finding 8 of issue 12: the log ring (and open log file) of a unit removed by a reload was
    /// never freed.
    #[test]
    fn reload_frees_the_logs_of_a_removed_unit() {
        let (mut sup, dir) = sup_with(&[
            ("keep", "exec = [\"/bin/true\"]\nenabled = false\n"),
            (
                "gone",
                "exec = [\"/bin/true\"]\nenabled = false\ndescription = \"x\"\n",
            ),
        ]);
        sup.logs
            .push("keep", crate::unitlog::Stream::Init, b"kept line");
        sup.logs
            .push("gone", crate::unitlog::Stream::Init, b"old line");
        std::fs::remove_file(dir.join("gone.toml")).unwrap();
        let r = sup.reload().unwrap();
        assert_eq!(r.stopped, vec!["gone"]);
        assert_eq!(sup.logs.tail("gone", 10), vec![]);
        assert_eq!(sup.logs.tail("keep", 10).len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
