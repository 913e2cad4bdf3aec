//! The seam between the control API and the supervisor: what an API request may ask the running
//! init to do. The supervisor implements `Operations`; the server only ever talks to this trait, so
//! the server is tested with a recording implementation and the supervisor without sockets.

use serde::{Deserialize, Serialize};

use crate::timeline::Stamp;
use crate::unitlog::LogLine;

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct UnitStatus {
    pub name: String,
    pub description: String,
    /// "inactive" | "waiting" | "starting" | "running" | "ready" | "stopping" | "exited" | "failed" | "backoff" | "disabled" | "skipped"
    pub state: String,
    pub enabled: bool,
    pub pid: Option<i32>,
    /// CLOCK_BOOTTIME microseconds of the last state change.
    pub since_us: u64,
    pub restarts: u32,
    /// e.g. "exited 1", "killed by SIGKILL"
    pub last_exit: Option<String>,
    /// Why the unit failed, in plain words.
    pub failure: Option<String>,
    /// Why the unit is skipped: the first of its conditions that does not hold (docs/units.md).
    #[serde(default)]
    pub skipped: Option<String>,
    /// "exec" | "notify" | "fd 3" | "path /x" | "unix /x" | "tcp 1.2.3.4:5"
    pub readiness: String,
    /// The last STATUS= sent over sd_notify.
    pub status_text: Option<String>,
    /// Absolute cgroup directory.
    pub cgroup: Option<String>,
    pub memory_bytes: Option<u64>,
    pub cpu_usec: Option<u64>,
    /// Output lines that could not be written to the unit's log file (a full /var); they stayed
    /// in memory.
    #[serde(default)]
    pub log_lines_dropped: u64,
    pub requires: Vec<String>,
    pub wants: Vec<String>,
    pub after: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReloadReport {
    pub started: Vec<String>,
    pub stopped: Vec<String>,
    pub restarted: Vec<String>,
    pub unchanged: Vec<String>,
    /// Unit-file and graph errors found while reloading, one line each ("file:line: message").
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ShutdownKind {
    Poweroff,
    Reboot,
    Halt,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum OpError {
    #[error("no such unit: {0}")]
    NoSuchUnit(String),
    #[error("invalid unit name: {0}")]
    InvalidName(String),
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

/// Who opened an ops session: the control connection's SO_PEERCRED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Peer {
    pub uid: u32,
    pub pid: i32,
}

/// How an ops session ended: initctl exits with `exit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEnd {
    /// The container's name.
    pub id: String,
    pub exit: i32,
    /// "exited 0", "killed by signal 9".
    pub detail: String,
    /// The container record was removed (every cleanup step succeeded).
    pub removed: bool,
    pub duration_ms: u64,
}

/// Ops container sessions (implemented by `node::ops`): started with the caller's stdio, ended by
/// the command or by the caller going away, collected once.
pub trait OpsSessions {
    /// Starts a session with the caller's stdin, stdout and stderr; returns its key.
    fn begin(
        &mut self,
        req: &super::protocol::OpsRequest,
        stdio: Vec<std::os::fd::OwnedFd>,
        peer: Peer,
    ) -> Result<u64, String>;
    /// The session's end once it is over and cleaned up; it is forgotten then.
    fn poll(&mut self, key: u64) -> Option<SessionEnd>;
    /// The caller went away: end the session and clean up without anyone to tell.
    fn abandon(&mut self, key: u64);
}

/// Everything the API can do to the running init. Start/stop/restart return at once: the request is
/// queued and the state machine carries it out; a client watches `status` for the outcome.
pub trait Operations {
    fn list(&self) -> Vec<UnitStatus>;
    fn status(&self, unit: &str) -> Result<UnitStatus, OpError>;
    fn start(&mut self, unit: &str) -> Result<(), OpError>;
    fn stop(&mut self, unit: &str) -> Result<(), OpError>;
    fn restart(&mut self, unit: &str) -> Result<(), OpError>;
    /// Re-reads the unit directories: starts new units, stops removed ones, restarts changed ones.
    fn reload(&mut self) -> Result<ReloadReport, OpError>;
    /// The admin unit directory (`/etc/lifsea/units`), where enable/disable write their marker files.
    fn admin_unit_dir(&self) -> std::path::PathBuf;
    /// Last `n` lines of a unit's output.
    fn logs_tail(&self, unit: &str, n: usize) -> Result<Vec<LogLine>, OpError>;
    /// Lines after sequence number `seq` (for `logs -f`).
    fn logs_since(&self, unit: &str, seq: u64) -> Result<Vec<LogLine>, OpError>;
    fn timeline(&self) -> Vec<Stamp>;
    /// Begins an orderly shutdown; returns at once.
    fn shutdown(&mut self, kind: ShutdownKind);
    /// What a subsystem (`net`, `devices`, ...) reports about itself.
    fn subsystem(&self, name: &str) -> Result<serde_json::Value, OpError>;
    /// Starts an ops container session (`initctl ops`).
    fn ops_begin(
        &mut self,
        _req: &super::protocol::OpsRequest,
        _stdio: Vec<std::os::fd::OwnedFd>,
        _peer: Peer,
    ) -> Result<u64, OpError> {
        Err(OpError::Refused(
            "ops sessions are not available here".into(),
        ))
    }
    /// An ops session's end, once (see `OpsSessions::poll`).
    fn ops_poll(&mut self, _key: u64) -> Option<SessionEnd> {
        None
    }
    /// The caller of an ops session went away.
    fn ops_abandon(&mut self, _key: u64) {}
    /// Asks a subsystem to act (`os` upgrade or rollback); the answer says what was started.
    fn subsystem_request(
        &mut self,
        name: &str,
        _request: serde_json::Value,
    ) -> Result<serde_json::Value, OpError> {
        Err(OpError::Failed(format!(
            "subsystem {name} takes no requests"
        )))
    }
}
