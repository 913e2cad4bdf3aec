//! The boot timeline: CLOCK_BOOTTIME stamps of every stage and unit transition.
//!
//! CLOCK_BOOTTIME counts from the kernel's start (suspend included), so stamps line up with the
//! kernel's own printk times and a harness can compare them with guest uptime directly.

use serde::{Deserialize, Serialize};

/// Microseconds since the kernel started.
pub fn boottime_us() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME) {
        Ok(ts) => (ts.tv_sec() as u64) * 1_000_000 + (ts.tv_nsec() as u64) / 1_000,
        Err(_) => 0,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectKind {
    Stage,
    Unit,
    Fact,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimelineEvent {
    /// A stage began, or a unit's process was spawned.
    Start,
    /// A stage ended, a unit became ready, or a fact was reached.
    Ready,
    /// A unit failed (the reason is logged and kept in its status).
    Failed,
    /// A unit was asked to stop.
    Stopping,
    /// A unit's processes are gone.
    Stopped,
    /// Every enabled unit is ready or failed: boot is complete.
    BootComplete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub at_us: u64,
    pub kind: SubjectKind,
    pub name: String,
    pub event: TimelineEvent,
}

#[derive(Debug, Default, Clone)]
pub struct Timeline {
    entries: Vec<Stamp>,
}

impl Timeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an event now.
    pub fn mark(&mut self, kind: SubjectKind, name: &str, event: TimelineEvent) {
        self.mark_at(boottime_us(), kind, name, event);
    }

    /// Records an event at a given time (tests, and stamps taken before the timeline existed).
    pub fn mark_at(&mut self, at_us: u64, kind: SubjectKind, name: &str, event: TimelineEvent) {
        self.entries.push(Stamp {
            at_us,
            kind,
            name: name.to_string(),
            event,
        });
    }

    pub fn entries(&self) -> &[Stamp] {
        &self.entries
    }
}
