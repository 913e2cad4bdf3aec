//! The validated in-memory model of a unit file: what the supervisor acts on.
//!
//! Raw TOML is parsed into private serde structs in `parse.rs` (unknown keys refused) and then
//! validated into these types, so that nothing downstream ever sees a duration string, a signal name
//! or a capability name it would have to interpret again.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use caps::Capability;
use nix::sys::resource::Resource;
use nix::sys::signal::Signal;

/// Names of facts owned by the init itself that units may depend on like units.
pub const FACTS: &[&str] = &["mounts", "machine", "devices", "network", "network-online"];

/// Whether the unit is a long-running service or a task that runs to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitType {
    /// Ready according to `ready`; expected to keep running.
    Daemon,
    /// Ready (and its dependents start) when it exits with status 0.
    Oneshot,
}

/// How the supervisor learns that a daemon is ready for its dependents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// Ready as soon as exec succeeded.
    Exec,
    /// `READY=1` on `$NOTIFY_SOCKET` (sd_notify).
    Notify,
    /// s6-style: the service writes a newline to this file descriptor number.
    Fd(i32),
    /// Ready when this path exists.
    Path(PathBuf),
    /// Ready when a connect() to this Unix stream socket succeeds.
    Unix(PathBuf),
    /// Ready when a TCP connect() to this address succeeds.
    Tcp(SocketAddr),
    /// Ready when a plain HTTP/1.1 GET of this loopback URL answers 200.
    Http(super::http_url::HttpTarget),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    OnFailure,
    Always,
}

/// What a stop (or a restart) kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillMode {
    /// Every process in the unit's cgroup (`cgroup.kill`).
    Cgroup,
    /// Only the main process: containerd's shims must outlive a containerd restart.
    Main,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupSpec {
    /// Relative to the cgroup2 root, validated: no `..`, no leading `/`, no empty components.
    /// Default `system/<unit name>`.
    pub path: String,
    /// Hand the subtree to the service (chown to its user, enable controllers below it).
    pub delegate: bool,
    /// Written to the group's `pids.max`: a fork bomb in the unit hits this ceiling instead of the
    /// machine's pid space. `None` leaves `max` (no limit).
    pub pids_max: Option<u64>,
}

/// One resource limit: soft and hard values, `u64::MAX` meaning infinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub resource: Resource,
    pub soft: u64,
    pub hard: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CapabilitySpec {
    /// `None` leaves the bounding set as inherited; `Some(set)` drops everything else.
    pub bounding: Option<Vec<Capability>>,
    /// Raised into the ambient set (so a non-root user keeps them across exec).
    pub ambient: Vec<Capability>,
}

/// A validated unit, as loaded from `<name>.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub name: String,
    pub source: PathBuf,
    pub description: String,
    pub exec: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub kind: UnitType,
    pub requires: Vec<String>,
    pub wants: Vec<String>,
    pub after: Vec<String>,
    pub ready: Readiness,
    pub ready_timeout: Duration,
    pub restart: RestartPolicy,
    /// First restart happens without delay; then `restart_delay` doubling up to `restart_delay_max`.
    pub restart_delay: Duration,
    pub restart_delay_max: Duration,
    /// A run at least this long resets the backoff.
    pub restart_reset_after: Duration,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    pub kill_mode: KillMode,
    pub cgroup: CgroupSpec,
    pub oom_score_adjust: Option<i32>,
    pub limits: Vec<Limit>,
    pub capabilities: Option<CapabilitySpec>,
    pub no_new_privileges: bool,
    pub enabled: bool,
    /// Every one must hold for the unit to start; otherwise it is skipped (docs/units.md).
    pub conditions: Vec<super::condition::Condition>,
}
