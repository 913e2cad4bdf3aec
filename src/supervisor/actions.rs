//! Carrying out the core's actions: spawning a unit into its cgroup with its pipes, and signalling
//! a unit (its main process, or its whole group).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sys::signal::Signal;

use super::event_loop::{Pipe, Supervisor};
use super::notify;
use super::output::{LineBuffer, LINE_CAP};
use super::spawn::{self, SpawnRequest};
use super::state::{Event, KillScope};
use crate::sys::reap as process;
use crate::timeline::{SubjectKind::Stage, TimelineEvent};
use crate::unitlog::Stream;
use crate::units::schema::KillMode;
use crate::units::Unit;

/// How many of the boot's first spawns get a `cgroup <unit>` span in the timeline (a bound, so a
/// boot of 1,000 units does not fill the timeline with them).
const BOOT_SPAWN_STAMPS: usize = 4;

impl Supervisor {
    pub(super) fn spawn_unit(&mut self, name: &str) {
        let Some(unit) = self.units.get(name).cloned() else {
            self.queue.push_back(Event::SpawnFailed {
                unit: name.to_string(),
                message: "unit definition missing".into(),
            });
            return;
        };
        // The boot's first spawns (containerd's) are on the init's critical path: show their
        // cgroup set-up apart from the fork and exec (the unit's own start stamp) in the timeline.
        let stamp = (!self.boot.done && self.io.spawning.begun() < BOOT_SPAWN_STAMPS)
            .then(|| format!("cgroup {name}"));
        if let Some(s) = &stamp {
            self.boot.timeline.mark(Stage, s, TimelineEvent::Start);
        }
        let cgroup_dir = self.prepare_cgroup(&unit);
        if let Some(s) = &stamp {
            self.boot.timeline.mark(Stage, s, TimelineEvent::Ready);
        }
        let shared = unit.kill_mode == KillMode::Main && self.ensure_shared_output(name);
        if !shared {
            self.io.shared_output.remove(name);
        }
        let rel = self.cgroup_rel(&unit);
        let req = SpawnRequest {
            unit: &unit,
            notify_socket: Some(&self.env.notify_path),
            cgroup_dir,
            clone_into_cgroup: self
                .env
                .cgroups
                .as_ref()
                .is_some_and(|cg| !cg.was_killed(&rel)),
            etc_dir: &self.env.cfg.etc_dir,
        };
        // Started, not yet exec'd: the batch settles it (spawn_batch.rs) before the core sees
        // anything but another spawn's result.
        // The same first spawns: PID 1's side of the start (the plan, pipes, clone3) as a span,
        // so what is left until the unit's `start` stamp is the child's own steps and the exec.
        let span = stamp.map(|_| format!("spawn {name}"));
        if let Some(s) = &span {
            self.boot.timeline.mark(Stage, s, TimelineEvent::Start);
        }
        let begun = match self.io.shared_output.get(name) {
            Some((out, err)) => spawn::begin_with_output(&req, out.as_fd(), err.as_fd()),
            None => spawn::begin(&req),
        };
        if let Some(s) = &span {
            self.boot.timeline.mark(Stage, s, TimelineEvent::Ready);
        }
        match begun {
            Ok(pending) => self.fly(pending),
            Err(e) => {
                log::warn!("{e}");
                self.queue.push_back(Event::SpawnFailed {
                    unit: name.to_string(),
                    message: e.to_string(),
                });
            }
        }
    }

    /// Makes the unit's shared output pipes (once; their read ends drained like any output
    /// pipe). False when they cannot be made: the unit then gets fresh pipes per instance.
    fn ensure_shared_output(&mut self, name: &str) -> bool {
        if self.io.shared_output.contains_key(name) {
            return true;
        }
        let pipes = spawn::output_pipe().and_then(|o| spawn::output_pipe().map(|e| (o, e)));
        match pipes {
            Ok(((out_r, out_w), (err_r, err_w))) => {
                self.add_pipe(name, Stream::Stdout, out_r);
                self.add_pipe(name, Stream::Stderr, err_r);
                self.io
                    .shared_output
                    .insert(name.to_string(), (out_w, err_w));
                true
            }
            Err(e) => {
                log::warn!("unit {name}: output pipes: {e}; one pair per instance instead");
                false
            }
        }
    }

    /// Creates the unit's cgroup and watches its cgroup.events; `None` without cgroups.
    pub(super) fn prepare_cgroup(&mut self, unit: &Unit) -> Option<PathBuf> {
        let cg = self.env.cgroups.as_ref()?;
        let rel = self.cgroup_rel(unit);
        if let Some(c) = self.env.cgroup_cleanup.as_mut() {
            c.note_created(&unit.cgroup.path);
        }
        // A delegated group belongs to the service's user, so it can manage its own subtree.
        let owner = if unit.cgroup.delegate {
            spawn::unit_owner(unit, &self.env.cfg.etc_dir).unwrap_or_else(|e| {
                log::warn!("{e}");
                None
            })
        } else {
            None
        };
        let (dir, fresh) = match cg.create_fresh(&rel, unit.cgroup.delegate, owner) {
            Ok(d) => d,
            Err(e) => {
                log::warn!("unit {}: {e}; running it without its own cgroup", unit.name);
                return None;
            }
        };
        // A group made just now already says `max`; one kept from an earlier run may hold a
        // limit the unit no longer sets.
        let limit = unit.cgroup.pids_max;
        let result = match (fresh, limit) {
            (true, None) => Ok(()),
            _ => cg.set_pids_max(&rel, limit),
        };
        if let Err(e) = result {
            log::warn!(
                "unit {}: {e}; its number of processes is not limited",
                unit.name
            );
        }
        Some(dir)
    }

    /// Watches the unit's cgroup.events (once), so that a stop learns when the group empties.
    /// Made when a stop first looks at the group (`Action::CheckGroup`, which every stop that
    /// waits for its group performs before it waits) rather than at each spawn: a watch from the
    /// start fired once per unit as its first process joined, for nothing, and cost a syscall
    /// per spawn. Watching before that look loses no change: the look sees what came before.
    pub(super) fn watch_group(&mut self, name: &str) {
        if self.io.watches.contains_key(name) {
            return;
        }
        let (Some(cg), Some(unit), Some(w)) =
            (&self.env.cgroups, self.units.get(name), &self.io.watcher)
        else {
            return;
        };
        match w.watch_modify(&cg.events_path(&self.cgroup_rel(unit))) {
            Ok(id) => {
                self.io.watches.insert(name.to_string(), id);
            }
            Err(e) => log::warn!("unit {name}: cannot watch cgroup.events: {e}"),
        }
    }

    pub(super) fn add_pipe(&mut self, unit: &str, stream: Stream, fd: OwnedFd) {
        let _ = crate::sys::poll::set_nonblocking(fd.as_raw_fd());
        self.io.pipes.push(Pipe {
            unit: unit.to_string(),
            stream,
            file: File::from(fd),
            lines: LineBuffer::new(LINE_CAP),
        });
    }

    pub(super) fn group_populated(&self, unit: &str) -> bool {
        let (Some(cg), Some(u)) = (&self.env.cgroups, self.units.get(unit)) else {
            return false;
        };
        // A group that cannot be read (removed, never created) holds no processes.
        cg.is_populated(&self.cgroup_rel(u)).unwrap_or(false)
    }

    pub(super) fn kill_unit(&mut self, name: &str, signal: Signal, scope: KillScope) {
        // A child still in flight has no pid in the core yet (see spawn_batch).
        let pid = self
            .core
            .get(name)
            .and_then(|e| e.pid)
            .or_else(|| self.io.spawning.pid_of(name));
        let Some(unit) = self.units.get(name) else {
            return;
        };
        match (scope, &self.env.cgroups) {
            (KillScope::Group, Some(cg)) => {
                let rel = self.cgroup_rel(unit);
                let r = if signal == Signal::SIGKILL {
                    // An empty group needs no kill; skipping it keeps the group on the fast
                    // spawn path (see CgroupRoot::was_killed) for the usual restart.
                    if cg.is_populated(&rel).is_ok_and(|p| !p) {
                        Ok(())
                    } else {
                        cg.kill(&rel)
                    }
                } else {
                    cg.signal_all(&rel, signal)
                        .and_then(|_| cg.signal_all(&rel, Signal::SIGCONT))
                };
                if let Err(e) = r {
                    log::warn!("unit {name}: signalling its cgroup failed: {e}");
                }
                // A MAINPID outside the group still gets the signal (once: a second SIGTERM would
                // run a service's trap twice).
                if let Some(pid) = pid {
                    let group = format!("/{rel}");
                    let inside = notify::cgroup_of(std::path::Path::new("/proc"), pid)
                        .is_some_and(|cg| notify::cgroup_contains(&group, &cg));
                    if !inside {
                        let _ = process::signal_pid(pid, signal);
                    }
                }
            }
            _ => {
                let Some(pid) = pid else { return };
                if let Err(e) = process::signal_pid(pid, signal) {
                    log::warn!("unit {name}: kill({pid}, {}) failed: {e}", signal.as_str());
                }
                // Without cgroups, the process group stands in for the unit's group (spawn makes
                // every service a session and process group leader).
                if unit.kill_mode == KillMode::Cgroup && self.env.cgroups.is_none() {
                    let _ = process::signal_group(pid, signal);
                }
                if signal != Signal::SIGKILL && signal != Signal::SIGCONT {
                    let _ = process::signal_pid(pid, Signal::SIGCONT);
                }
            }
        }
    }
}
