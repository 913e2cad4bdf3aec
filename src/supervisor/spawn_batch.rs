//! Spawns in flight: a unit's child is started (`spawn::begin`) and the supervisor goes on with
//! the next action while it execs; its result (`Spawned` or `SpawnFailed`) is learnt before the
//! core sees any other kind of event, and always before the event queue is left.
//!
//! Why: starting 1,000 units, PID 1 waited for each child's exec before it made the next one,
//! idle while the kernel loaded each program. Now the units one event makes startable (the boot
//! event; a unit becoming ready) are started back to back, and their execs overlap with the
//! supervisor's own work for the next ones (`cargo bench --bench supervisor`).
//!
//! What does not change: a unit's `start` stamp is still when its exec was seen to succeed, a
//! `ready = "exec"` unit is still ready only then (its dependents start after it has exec'd), a
//! failed step still fails the unit with the errno and path, and a child stuck before exec is
//! still killed at `spawn::EXEC_TIMEOUT`. Outside `drain_queue` nothing is in flight, so the
//! reaper, the control API and recovery see what they always saw: every starting unit that was
//! spawned has its pid.

use std::collections::VecDeque;

use super::event_loop::Supervisor;
use super::readiness;
use super::spawn::Pending;
use super::state::Event;
use crate::collections::strmap::StrMap;
use crate::unitlog::Stream;

/// Children in flight at most: beyond this the oldest are settled before the next start. It
/// bounds the descriptors held for children not yet exec'd (about five each) and keeps the
/// numbers a new child copies low (`process::unshare_fds_from`); a few are enough to keep the
/// kernel's exec of one child overlapping with the start of the next.
const WINDOW: usize = 16;

/// One child in flight, with when it was first seen to have exec'd (or exited).
struct InFlight {
    pending: Pending,
    seen_us: Option<u64>,
}

/// The spawns in flight, oldest first, and the exec times of settled ones whose `start` stamp
/// has not been written yet.
#[derive(Default)]
pub(crate) struct SpawnBatch {
    flying: VecDeque<InFlight>,
    exec_at: StrMap<u64>,
    /// Children begun since the init started (the boot's first few get a timeline span).
    begun: usize,
}

impl SpawnBatch {
    /// How many children were begun so far: unlike the units' start stamps, which a batch
    /// writes only once it is settled, this counts each spawn as it begins.
    pub(crate) fn begun(&self) -> usize {
        self.begun
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.flying.is_empty()
    }

    /// The pid of the unit's child in flight, if any.
    pub(crate) fn pid_of(&self, unit: &str) -> Option<i32> {
        self.flying
            .iter()
            .find(|f| f.pending.unit() == unit)
            .map(|f| f.pending.pid().as_raw())
    }

    /// When the unit's last exec was seen, once (for its `start` stamp).
    pub(crate) fn take_exec_at(&mut self, unit: &str) -> Option<u64> {
        self.exec_at.remove(unit)
    }

    /// Notes the time for every child that has exec'd since the last look: an atomic load each,
    /// so the stamp is within one spawn of the exec rather than at the end of the batch.
    fn note_settled(&mut self) {
        let mut now = None;
        for f in self.flying.iter_mut().filter(|f| f.seen_us.is_none()) {
            if f.pending.settled() {
                f.seen_us = Some(*now.get_or_insert_with(crate::timeline::boottime_us));
            }
        }
    }
}

impl Supervisor {
    /// Takes a started child into the batch; settles the oldest when the window is full.
    pub(super) fn fly(&mut self, pending: Pending) {
        self.io.spawning.note_settled();
        self.io.spawning.begun = self.io.spawning.begun.saturating_add(1);
        self.io.spawning.flying.push_back(InFlight {
            pending,
            seen_us: None,
        });
        if self.io.spawning.flying.len() >= WINDOW {
            self.settle_spawns(WINDOW / 2);
        }
    }

    /// Settles spawns in flight, oldest first, until at most `keep` remain, and puts their
    /// results at the front of the queue in that order: a unit's pid is known before any event
    /// that was queued after its spawn began.
    pub(super) fn settle_spawns(&mut self, keep: usize) {
        let mut results = Vec::new();
        while self.io.spawning.flying.len() > keep {
            self.io.spawning.note_settled();
            let Some(f) = self.io.spawning.flying.pop_front() else {
                break;
            };
            results.push(self.settle(f));
        }
        for ev in results.into_iter().rev() {
            self.queue.push_front(ev);
        }
    }

    /// Waits (bounded) for one child's exec and turns the outcome into the core's event, taking
    /// its pipes into the loop when it runs.
    fn settle(&mut self, f: InFlight) -> Event {
        let name = f.pending.unit().to_string();
        match f.pending.finish() {
            Ok((started, output)) => {
                let at = f.seen_us.unwrap_or_else(crate::timeline::boottime_us);
                self.io.spawning.exec_at.insert(name.clone(), at);
                if let Some((stdout, stderr)) = output {
                    self.add_pipe(&name, Stream::Stdout, stdout);
                    self.add_pipe(&name, Stream::Stderr, stderr);
                }
                self.io.ready_fds.remove(&name);
                if let Some(fd) = started.ready_fd {
                    let file = std::fs::File::from(fd);
                    let _ =
                        crate::sys::poll::set_nonblocking(std::os::fd::AsRawFd::as_raw_fd(&file));
                    self.io.ready_fds.insert(name.clone(), file);
                }
                if let Some(ready) = self
                    .units
                    .get(&name)
                    .map(|u| &u.ready)
                    .filter(|r| readiness::is_probe(r))
                {
                    let probe = readiness::Probe::new(ready.clone());
                    self.io.probes.insert(name.clone(), probe);
                    self.io.next_probe = Some(std::time::Instant::now());
                }
                Event::Spawned {
                    unit: name,
                    pid: started.pid.as_raw(),
                }
            }
            Err(e) => {
                log::warn!("{e}");
                Event::SpawnFailed {
                    unit: name,
                    message: e.to_string(),
                }
            }
        }
    }
}
