//! The vocabulary of the supervisor's state machine: what it knows of a unit (`UnitSpec`), the
//! phases a unit goes through, the events that move it and the actions it asks the event loop for.
//! Kept apart from the transitions themselves (`state`) so both stay readable.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::backoff::BackoffPolicy;
use crate::timeline::{SubjectKind, TimelineEvent};
use crate::units::schema::{KillMode, Readiness, RestartPolicy, UnitType};
use crate::units::Unit;

/// How long after the SIGKILL of a stop we keep waiting before declaring the unit stopped anyway
/// (a process stuck in uninterruptible sleep must not hang a shutdown forever).
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// What the state machine needs from a unit file.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitSpec {
    pub kind: UnitType,
    pub requires: Vec<String>,
    pub wants: Vec<String>,
    pub after: Vec<String>,
    /// Daemon with `ready = "exec"`: ready as soon as it is spawned.
    pub ready_on_spawn: bool,
    pub ready_timeout: Duration,
    pub restart: RestartPolicy,
    pub backoff: BackoffPolicy,
    pub stop_signal: Signal,
    pub stop_timeout: Duration,
    pub kill_mode: KillMode,
    /// The unit runs in its own cgroup (false when no cgroup2 filesystem is available).
    pub has_cgroup: bool,
}

impl UnitSpec {
    pub fn from_unit(u: &Unit, has_cgroup: bool) -> Self {
        Self {
            kind: u.kind,
            requires: u.requires.clone(),
            wants: u.wants.clone(),
            after: u.after.clone(),
            ready_on_spawn: u.kind == UnitType::Daemon && u.ready == Readiness::Exec,
            ready_timeout: u.ready_timeout,
            restart: u.restart,
            backoff: BackoffPolicy {
                delay: u.restart_delay,
                delay_max: u.restart_delay_max,
                reset_after: u.restart_reset_after,
            },
            stop_signal: u.stop_signal,
            stop_timeout: u.stop_timeout,
            kill_mode: u.kill_mode,
            has_cgroup,
        }
    }

    /// The spec of a unit whose file could not be read: it never starts, so the values are moot.
    pub fn inert() -> Self {
        Self {
            kind: UnitType::Oneshot,
            requires: Vec::new(),
            wants: Vec::new(),
            after: Vec::new(),
            ready_on_spawn: false,
            ready_timeout: Duration::ZERO,
            restart: RestartPolicy::No,
            backoff: BackoffPolicy {
                delay: Duration::ZERO,
                delay_max: Duration::ZERO,
                reset_after: Duration::ZERO,
            },
            stop_signal: Signal::SIGTERM,
            stop_timeout: Duration::ZERO,
            kill_mode: KillMode::Main,
            has_cgroup: false,
        }
    }

    /// Whether stopping waits for (and signals) the whole cgroup.
    pub(super) fn group_kill(&self) -> bool {
        self.has_cgroup && self.kill_mode == KillMode::Cgroup
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not running and not asked to run.
    Inactive,
    /// Asked to run; dependencies not satisfied yet.
    Waiting,
    /// Spawned; waiting for readiness (a oneshot: for its exit).
    Starting,
    /// A daemon that is ready.
    Running,
    /// A oneshot that exited 0, or a daemon that exited 0 under `restart = "no"` or `"on-failure"`.
    Exited,
    /// Waiting out the restart delay.
    Backoff,
    /// Signalled; waiting for its processes to go.
    Stopping,
    /// Failed: see `Entry::failure`.
    Failed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Inactive => "inactive",
            Phase::Waiting => "waiting",
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Exited => "exited",
            Phase::Backoff => "backoff",
            Phase::Stopping => "stopping",
            Phase::Failed => "failed",
        }
    }

    /// Has (or may have) processes, so dependents-first stop ordering must wait for it.
    pub(super) fn is_active(self) -> bool {
        matches!(
            self,
            Phase::Starting | Phase::Running | Phase::Stopping | Phase::Exited
        )
    }
}

/// How a main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
    /// The process is gone but its status was lost (a panic swallowed the reaped exit).
    Lost,
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == ExitStatus::Code(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ExitStatus::Code(c) => write!(f, "exited {c}"),
            ExitStatus::Lost => write!(f, "exited (status lost)"),
            ExitStatus::Signal(s) => match Signal::try_from(s) {
                Ok(sig) => write!(f, "killed by {}", sig.as_str()),
                Err(_) => write!(f, "killed by signal {s}"),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKind {
    ReadyTimeout,
    BackoffElapsed,
    StopTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillScope {
    /// Only the main process.
    Main,
    /// Every process of the unit's cgroup (SIGKILL means `cgroup.kill`).
    Group,
}

/// What happens once a stop completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterStop {
    Inactive,
    Restart,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct StopProgress {
    pub(super) main_gone: bool,
    pub(super) group_gone: bool,
    pub(super) killed: bool,
    pub(super) then: AfterStop,
}

/// Where a built-in fact stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactState {
    Pending,
    Reached,
    /// Given up on (a bounded wait expired), with the reason requirers fail with.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Starts every enabled unit (and what they require or want).
    Boot,
    Start(String),
    Stop(String),
    Restart(String),
    FactReached(String),
    /// A fact will not be reached: requirers fail with the reason, `after`/`wants` go on.
    FactFailed {
        fact: String,
        reason: String,
    },
    Spawned {
        unit: String,
        pid: i32,
    },
    SpawnFailed {
        unit: String,
        message: String,
    },
    /// READY=1, a newline on the readiness fd, or a probe that succeeded.
    Ready(String),
    /// MAINPID= from sd_notify.
    MainPid {
        unit: String,
        pid: i32,
    },
    /// The unit's main process ended (the reaper matched the pid).
    Exited {
        unit: String,
        status: ExitStatus,
    },
    Timer {
        unit: String,
        kind: TimerKind,
        gen: u64,
    },
    /// The unit's cgroup has no processes left.
    GroupEmpty(String),
    /// The loop evaluated the unit's conditions: `Some(reason)` while one does not hold, so the
    /// unit is skipped (it waits, is not a failure, and boot completion does not wait for it).
    Condition {
        unit: String,
        unmet: Option<String>,
    },
    Shutdown,
}

impl Event {
    /// The unit the event is about; `None` for events about the whole graph or a fact.
    pub fn unit(&self) -> Option<&str> {
        match self {
            Event::Boot | Event::FactReached(_) | Event::FactFailed { .. } | Event::Shutdown => {
                None
            }
            Event::Start(u)
            | Event::Stop(u)
            | Event::Restart(u)
            | Event::Ready(u)
            | Event::GroupEmpty(u)
            | Event::Spawned { unit: u, .. }
            | Event::SpawnFailed { unit: u, .. }
            | Event::MainPid { unit: u, .. }
            | Event::Exited { unit: u, .. }
            | Event::Timer { unit: u, .. }
            | Event::Condition { unit: u, .. } => Some(u),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Spawn(String),
    Kill {
        unit: String,
        signal: Signal,
        scope: KillScope,
    },
    ArmTimer {
        unit: String,
        kind: TimerKind,
        at: Instant,
        gen: u64,
    },
    /// Ask the loop to send `GroupEmpty` now if the group is already empty (inotify only reports changes).
    CheckGroup(String),
    /// Record in the timeline and log a progress line.
    Transition {
        subject: SubjectKind,
        name: String,
        event: TimelineEvent,
        detail: String,
    },
}

/// "2s", "1500ms": how timeouts appear in failure reasons.
pub fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
