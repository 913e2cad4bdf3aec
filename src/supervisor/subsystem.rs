//! The seam between the supervisor and the init's other long-running jobs (networking, hotplug,
//! the power button): each is a `Subsystem` the one event loop polls beside its own descriptors.
//!
//! A subsystem owns its descriptors, timers and child processes and never touches the supervisor's
//! fields: it reports what happened as `Notice`s (a fact reached or given up on, a timeline stamp, a
//! shutdown request), and the supervisor turns those into events for its pure core. That keeps each
//! subsystem testable on its own (feed it readiness, read its notices) and keeps the loop the only
//! place that sleeps. Everything here runs on PID 1's one thread: a subsystem must never block.

use std::os::fd::RawFd;
use std::time::Instant;

use crate::control::ops::ShutdownKind;
pub use crate::sys::poll::PollFlags;
use crate::timeline::{SubjectKind, TimelineEvent};

/// What a subsystem tells the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A built-in fact (`network`, `network-online`, `devices`, ...) is now true: units ordered
    /// after it or requiring it may start.
    FactReached(String),
    /// A fact will not be reached (a bounded wait expired): units that require it fail with the
    /// reason, units merely ordered after it go on. A later `FactReached` still counts.
    FactFailed { fact: String, reason: String },
    /// A stamp for the boot timeline, e.g. `(Stage, "link eth0", Ready)`.
    Stamp {
        kind: SubjectKind,
        name: String,
        event: TimelineEvent,
    },
    /// A stamp taken earlier than the notice is read (a step that ran before the loop did).
    StampAt {
        at_us: u64,
        kind: SubjectKind,
        name: String,
        event: TimelineEvent,
    },
    /// Begin an orderly shutdown (the power button); ignored when one is already under way.
    Shutdown(ShutdownKind),
}

/// A child process's end, as the reaper saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    Code(i32),
    Signal(i32),
}

/// The units as the supervisor sees them, for subsystems that judge the node's health (the OS
/// update blessing). Given only to subsystems whose `wants_units` is true.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnitsView {
    /// Boot complete: every enabled unit came up once, or failed.
    pub settled: bool,
    /// Every loaded unit: name, whether it is enabled, its phase (`running`, `exited`, `failed`, ...).
    pub units: Vec<(String, bool, &'static str)>,
}

/// A job driven by the event loop. Every method must return promptly: no blocking I/O, no sleeps.
pub trait Subsystem {
    /// Short name, used by the control API (`initctl net` asks for "net") and in log lines.
    fn name(&self) -> &'static str;
    /// Descriptors to poll now, with the events to wait for (none by default: a step that only
    /// works from `tick`).
    fn poll_fds(&self) -> Vec<(RawFd, PollFlags)> {
        Vec::new()
    }
    /// The earliest time `tick` must run (a retransmission, a lease's T1, a bounded wait).
    fn deadline(&self) -> Option<Instant>;
    /// One of its descriptors is ready (`revents` as poll(2) returned them).
    fn on_ready(&mut self, _fd: RawFd, _revents: PollFlags, _now: Instant, _out: &mut Vec<Notice>) {
    }
    /// Called on every loop pass after descriptors were handled; acts on whatever is due by `now`.
    fn tick(&mut self, now: Instant, out: &mut Vec<Notice>);
    /// A child process the supervisor does not own was reaped; returns whether it was this
    /// subsystem's (helper processes such as module loaders). The loop is the only reaper.
    fn child_exited(&mut self, _pid: i32, _status: ChildExit, _out: &mut Vec<Notice>) -> bool {
        false
    }
    /// The facts units wait for that are not reached yet, given whenever that set grows (a unit
    /// naming `device:/dev/...` was loaded). A subsystem that can reach some of them watches for
    /// them; the others it ignores.
    fn facts_wanted(&mut self, _facts: &[String], _now: Instant, _out: &mut Vec<Notice>) {}
    /// Whether `units_seen` should be called (building the view costs a little on every pass).
    fn wants_units(&self) -> bool {
        false
    }
    /// The units' phases, on every loop pass before `tick`, when `wants_units` is true.
    fn units_seen(&mut self, _units: &UnitsView, _now: Instant, _out: &mut Vec<Notice>) {}
    /// A control API request addressed to this subsystem (`initctl os upgrade`); the answer or
    /// why it was refused. Non-blocking: long work runs as a child reaped through `child_exited`.
    fn request(
        &mut self,
        _request: &serde_json::Value,
        _out: &mut Vec<Notice>,
    ) -> Result<serde_json::Value, String> {
        Err(format!("subsystem {} takes no requests", self.name()))
    }
    /// The ops container sessions this subsystem runs, if it is the one that does (`node::ops`).
    fn ops_sessions(&mut self) -> Option<&mut dyn crate::control::ops::OpsSessions> {
        None
    }
    /// An orderly shutdown has begun (DHCP RELEASE, closing devices). Non-blocking.
    fn begin_shutdown(&mut self, _out: &mut Vec<Notice>) {}
    /// What the control API shows for this subsystem (`initctl net`, `initctl devices`).
    fn status(&self) -> serde_json::Value;
}
