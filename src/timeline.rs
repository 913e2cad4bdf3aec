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

/// The most stamps kept: a few hundred kilobytes in `initctl analyze`'s reply, far below its limit.
pub const MAX_STAMPS: usize = 4096;

/// Stamps always kept from the start when the boot never completes (its stages, first units).
const HEAD_STAMPS: usize = MAX_STAMPS / 4;

/// Every stamp of the boot, then a window of the newest later ones: a node that restarts units
/// for months must not grow PID 1's memory or `initctl analyze`'s reply without bound.
#[derive(Debug, Default, Clone)]
pub struct Timeline {
    entries: Vec<Stamp>,
    /// How many leading stamps belong to the boot (set when the boot completes).
    boot_len: Option<usize>,
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
        if event == TimelineEvent::BootComplete && self.boot_len.is_none() {
            self.boot_len = Some(self.entries.len());
        }
        if self.entries.len() > MAX_STAMPS {
            // A quarter at a time, so the cost of the move is spread over many stamps.
            let head = self.boot_len.unwrap_or(HEAD_STAMPS).min(MAX_STAMPS / 2);
            let end = (head + MAX_STAMPS / 4).min(self.entries.len());
            self.entries.drain(head..end);
        }
    }

    pub fn entries(&self) -> &[Stamp] {
        &self.entries
    }

    /// Runs one step of the boot between a `Start` and a `Ready` stamp of stage `name`, so its
    /// cost shows in `initctl analyze` and the critical path has no unexplained gap (issue 11).
    pub fn span<T>(&mut self, name: &str, step: impl FnOnce() -> T) -> T {
        self.mark(SubjectKind::Stage, name, TimelineEvent::Start);
        let out = step();
        self.mark(SubjectKind::Stage, name, TimelineEvent::Ready);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding 8 of issue 12: every transition added a stamp forever, so after ~20 k restarts
    /// `initctl analyze` exceeded the reply limit for good. The timeline is bounded: the boot's
    /// stamps stay, the oldest later ones go.
    #[test]
    fn timeline_is_bounded_and_keeps_the_boot() {
        let mut t = Timeline::new();
        t.mark_at(1, SubjectKind::Stage, "boot", TimelineEvent::Start);
        t.mark_at(2, SubjectKind::Unit, "containerd", TimelineEvent::Ready);
        t.mark_at(3, SubjectKind::Stage, "boot", TimelineEvent::BootComplete);
        for i in 0..100_000u64 {
            t.mark_at(10 + i, SubjectKind::Unit, "crashy", TimelineEvent::Stopped);
        }
        assert!(t.entries().len() <= MAX_STAMPS, "{}", t.entries().len());
        assert_eq!(t.entries()[0].name, "boot");
        assert_eq!(t.entries()[1].name, "containerd");
        assert_eq!(t.entries()[2].event, TimelineEvent::BootComplete);
        assert_eq!(t.entries().last().map(|s| s.at_us), Some(10 + 99_999));
        // What is kept after the boot is the newest, in order.
        let later: Vec<u64> = t.entries()[3..].iter().map(|s| s.at_us).collect();
        assert!(
            later.windows(2).all(|w| w[1] == w[0] + 1),
            "a gap inside the kept tail"
        );
        assert!(later.len() >= MAX_STAMPS / 2, "{}", later.len());
    }

    /// A boot that never completes (a unit crash-looping during it) is bounded too, and keeps
    /// its first stamps.
    #[test]
    fn timeline_without_boot_complete_is_bounded_too() {
        let mut t = Timeline::new();
        t.mark_at(1, SubjectKind::Stage, "mounts", TimelineEvent::Start);
        for i in 0..50_000u64 {
            t.mark_at(10 + i, SubjectKind::Unit, "crashy", TimelineEvent::Start);
        }
        assert!(t.entries().len() <= MAX_STAMPS);
        assert_eq!(t.entries()[0].name, "mounts");
        assert_eq!(t.entries().last().map(|s| s.at_us), Some(10 + 49_999));
    }
}
