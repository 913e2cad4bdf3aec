//! Test fixtures shared by the integration tests (through `common`) and the library's own unit
//! tests (through `#[path]`), so that production code carries none.

use std::path::PathBuf;
use std::time::Duration;

use crate::units::schema::{CgroupSpec, KillMode, Readiness, RestartPolicy, UnitType};
use crate::units::Unit;
use nix::sys::signal::Signal;

/// A unit with every field at its default, for tests: a daemon ready at exec,
/// never restarted, stopped with SIGTERM and a 10 s timeout, killed by cgroup, in
/// `system/<name>`, enabled.
pub fn test_unit(name: &str, exec: &[&str]) -> Unit {
    Unit {
        name: name.to_string(),
        source: PathBuf::from(format!("/test/{name}.toml")),
        description: format!("test unit {name}"),
        exec: exec.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        working_dir: None,
        user: None,
        group: None,
        kind: UnitType::Daemon,
        requires: Vec::new(),
        wants: Vec::new(),
        after: Vec::new(),
        ready: Readiness::Exec,
        ready_timeout: Duration::from_secs(60),
        restart: RestartPolicy::No,
        restart_delay: Duration::from_millis(100),
        restart_delay_max: Duration::from_secs(30),
        restart_reset_after: Duration::from_secs(60),
        stop_signal: Signal::SIGTERM,
        stop_timeout: Duration::from_secs(10),
        kill_mode: KillMode::Cgroup,
        cgroup: CgroupSpec {
            path: format!("system/{name}"),
            delegate: false,
            pids_max: None,
        },
        oom_score_adjust: None,
        limits: Vec::new(),
        capabilities: None,
        no_new_privileges: false,
        enabled: true,
        conditions: Vec::new(),
    }
}
