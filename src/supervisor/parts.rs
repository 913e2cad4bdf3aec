//! The supervisor's state besides the pure core, in groups that match who uses them: `Placement`
//! (where units run: configuration and cgroups; spawning and status read it), `UnitIo` (descriptors
//! tied to running units: output and readiness pipes, probes, cgroup watches; the input handlers
//! own it), `BootRecord` (the timeline and boot completion; transitions and the report write it),
//! `ShutdownState` (the kind asked for and the global deadline; signals and `deadline` use it).

use crate::collections::strmap::StrMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::cgroup::{CgroupCleanup, CgroupRoot};
use super::output::LineBuffer;
use super::Config;
use crate::control::ops::ShutdownKind;
use crate::sys::inotify::{FileWatcher, WatchId};
use crate::timeline::Timeline;
use crate::unitlog::Stream;

/// Where units run.
pub(crate) struct Placement {
    pub(crate) cfg: Config,
    pub(crate) cgroups: Option<CgroupRoot>,
    /// Relative path under the cgroup root where unit groups live ("" on a machine).
    pub(crate) cgroup_base: String,
    pub(crate) notify_path: PathBuf,
    /// Container mode: the cgroups created so far, removed by stage 3.
    pub(crate) cgroup_cleanup: Option<CgroupCleanup>,
    /// The root's controllers were enabled before the boot dispatch and the init still waits in
    /// the root for its own group (`cgroup_root::join_init_group_late`).
    pub(crate) init_group_pending: bool,
}

/// A service output pipe being drained into the unit's log.
pub(crate) struct Pipe {
    pub(crate) unit: String,
    pub(crate) stream: Stream,
    pub(crate) file: File,
    pub(crate) lines: LineBuffer,
}

/// Descriptors tied to running units.
pub(crate) struct UnitIo {
    pub(crate) pipes: Vec<Pipe>,
    /// s6 readiness pipes of starting units, by unit.
    pub(crate) ready_fds: StrMap<File>,
    pub(crate) probes: StrMap<super::readiness::Probe>,
    pub(crate) next_probe: Option<Instant>,
    pub(crate) watcher: Option<FileWatcher>,
    /// Each unit's cgroup.events watch.
    pub(crate) watches: StrMap<WatchId>,
    /// Write ends of the output pipes of `kill = "main"` units, kept across instances (see
    /// `spawn::spawn_with_output`); dropped when the unit is removed.
    pub(crate) shared_output: StrMap<(OwnedFd, OwnedFd)>,
    /// Children started and not yet seen to exec (empty outside `drain_queue`).
    pub(crate) spawning: super::spawn_batch::SpawnBatch,
}

/// The record of this boot.
pub(crate) struct BootRecord {
    pub(crate) timeline: Timeline,
    /// When each unit was last spawned (for the "ready (N ms)" lines).
    pub(crate) spawned_at: StrMap<Instant>,
    /// Every enabled unit settled once: boot-timeline.json written.
    pub(crate) done: bool,
    pub(crate) started_us: u64,
}

/// A shutdown's progress.
pub(crate) struct ShutdownState {
    pub(crate) kind: Option<ShutdownKind>,
    /// How long a shutdown may take before what is left is killed (see `deadline`).
    pub(crate) limit: Duration,
    pub(crate) deadline: Option<Instant>,
    /// A SIGTERM/SIGINT came while the shutdown ran: end it now.
    pub(crate) forced: bool,
}
