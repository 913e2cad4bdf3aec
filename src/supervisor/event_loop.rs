//! The one event loop of stage 2: poll(2) over the signalfd, the sd_notify socket, cgroup.events
//! watches, service output and readiness pipes and the control server, with the earliest timer as
//! the poll timeout. Everything that happens becomes an `Event` for the pure core; the core's
//! `Action`s are carried out here (spawn, signal, arm a timer, log a transition).
//!
//! Single-threaded on purpose: nothing runs concurrently with a fork, and the reaper is the only
//! caller of waitpid(-1).

use crate::collections::strmap::StrMap;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::cgroup::CgroupRoot;
pub(super) use super::parts::{BootRecord, Pipe, Placement, ShutdownState, UnitIo};
use super::state::{Action, Core, Event, ExitStatus, TimerKind};
use super::subsystem::{ChildExit, Subsystem};
use super::Config;
use crate::control::ops::ShutdownKind;
use crate::control::server::ControlServer;
use crate::sys::inotify::FileWatcher;
use crate::sys::notify_socket::NotifySocket;
use crate::sys::poll::{poll_fds, Watch};
use crate::sys::reap::{self as process, Reaped};
use crate::timeline::{SubjectKind, Timeline, TimelineEvent};
use crate::unitlog::UnitLogs;
use crate::units::Unit;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct TimerEntry {
    at: Instant,
    seq: u64,
    unit: String,
    kind: TimerKind,
    gen: u64,
}

/// Everything the running supervisor holds, grouped by who uses it: `env` (where units are
/// placed), `io` (descriptors of running units), `boot` (the record of this boot), `shutdown`.
/// The control API reaches it through `Operations`.
pub struct Supervisor {
    pub(super) env: Placement,
    pub(super) core: Core,
    /// Valid units from disk, by name.
    pub(super) units: StrMap<Unit>,
    pub(super) logs: UnitLogs,
    pub(super) status_text: StrMap<String>,
    pub(super) io: UnitIo,
    pub(super) boot: BootRecord,
    pub(super) shutdown: ShutdownState,
    /// When skipped units' conditions are looked at again (`None`: no unit is skipped).
    pub(super) next_condition_check: Option<Instant>,
    timers: BinaryHeap<Reverse<TimerEntry>>,
    timer_seq: u64,
    pub(super) queue: VecDeque<Event>,
    /// Networking, hotplug, the power button: polled beside the supervisor's own descriptors.
    pub(super) subsystems: Vec<Box<dyn Subsystem>>,
    /// A panic cut a pass short: rebuild what it lost before the next one (see `recovery`).
    pub(super) needs_recovery: bool,
    /// The core's facts generation last offered to the subsystems.
    pub(super) facts_gen_offered: u64,
}

impl Supervisor {
    pub(super) fn new(
        cfg: Config,
        timeline: Timeline,
        cgroups: Option<CgroupRoot>,
        cgroup_base: String,
    ) -> Self {
        let facts: Vec<&str> = crate::units::schema::FACTS.to_vec();
        let core = Core::new(&facts, &cfg.facts_reached);
        let notify_path = cfg.run_dir.join("notify.sock");
        let logs = UnitLogs::default();
        Self {
            core,
            units: StrMap::new(),
            logs,
            status_text: StrMap::new(),
            io: UnitIo {
                pipes: Vec::new(),
                ready_fds: StrMap::new(),
                probes: StrMap::new(),
                next_probe: None,
                watcher: FileWatcher::new().ok(),
                watches: StrMap::new(),
                shared_output: StrMap::new(),
                spawning: Default::default(),
            },
            boot: BootRecord {
                timeline,
                spawned_at: StrMap::new(),
                done: false,
                started_us: crate::timeline::boottime_us(),
            },
            shutdown: ShutdownState {
                kind: None,
                limit: super::deadline::DEFAULT_SHUTDOWN_LIMIT,
                deadline: None,
                forced: false,
            },
            next_condition_check: None,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            queue: VecDeque::new(),
            subsystems: Vec::new(),
            needs_recovery: false,
            facts_gen_offered: 0,
            env: Placement {
                cfg,
                cgroups,
                cgroup_base,
                notify_path,
                cgroup_cleanup: None,
                init_group_pending: false,
            },
        }
    }

    /// Starts persisting unit logs to `log_dir` (what the ring holds so far goes first). Called
    /// after the boot dispatch: creating /var/log/lifsea is nothing containerd waits for.
    pub(super) fn open_log_dir(&mut self) {
        if let Some(dir) = self.env.cfg.log_dir.clone() {
            // Not fatal: the in-memory ring keeps every unit's output either way.
            if let Err(e) = self.logs.set_dir(&dir) {
                log::warn!("unit logs stay in memory only: {e}");
            }
        }
    }

    /// Marks a fact (`network-online`, ...) as reached: units waiting for it may start. For stage-1
    /// code that finishes while the loop runs (the network coming up).
    pub fn reach_fact(&mut self, fact: &str) {
        self.dispatch(Event::FactReached(fact.to_string()));
    }

    /// The unit's cgroup relative to the cgroup root.
    pub(super) fn cgroup_rel(&self, unit: &Unit) -> String {
        if self.env.cgroup_base.is_empty() {
            unit.cgroup.path.clone()
        } else {
            format!("{}/{}", self.env.cgroup_base, unit.cgroup.path)
        }
    }

    /// Feeds an event to the core and carries out every resulting action (which may queue more).
    pub fn dispatch(&mut self, ev: Event) {
        self.queue.push_back(ev);
        self.drain_queue();
    }

    /// Steps the core through every queued event. A panic leaves the rest queued for recovery.
    /// Spawns in flight are settled before any event but another spawn's result, and before
    /// the queue is left (spawn_batch.rs).
    pub(super) fn drain_queue(&mut self) {
        loop {
            let result_next = matches!(
                self.queue.front(),
                Some(Event::Spawned { .. } | Event::SpawnFailed { .. })
            );
            if !result_next && !self.io.spawning.is_empty() {
                self.settle_spawns(0);
            }
            let Some(ev) = self.queue.pop_front() else {
                break;
            };
            log::debug!("event {ev:?}");
            #[cfg(feature = "fault-injection")]
            super::fault::point(super::fault::When::Before, &ev);
            #[cfg(feature = "fault-injection")]
            let seen = ev.clone();
            let actions = self.core.step(ev, Instant::now());
            #[cfg(feature = "fault-injection")]
            super::fault::point(super::fault::When::After, &seen);
            for a in actions {
                self.perform(a);
            }
        }
    }

    pub(super) fn perform(&mut self, a: Action) {
        match a {
            Action::Spawn(unit) => self.spawn_unit(&unit),
            Action::Kill {
                unit,
                signal,
                scope,
            } => self.kill_unit(&unit, signal, scope),
            Action::ArmTimer {
                unit,
                kind,
                at,
                gen,
            } => {
                self.timer_seq += 1;
                self.timers.push(Reverse(TimerEntry {
                    at,
                    seq: self.timer_seq,
                    unit,
                    kind,
                    gen,
                }));
            }
            Action::CheckGroup(unit) => {
                self.watch_group(&unit);
                if !self.group_populated(&unit) {
                    self.queue.push_back(Event::GroupEmpty(unit));
                }
            }
            Action::Transition {
                subject,
                name,
                event,
                detail,
            } => self.on_transition(subject, &name, event, &detail),
        }
    }

    /// Reaps every exited child; matches main pids to units, orphans are reaped silently.
    fn reap(&mut self) {
        while let Some(r) = process::reap_one() {
            let (pid, status, exit) = match r {
                Reaped::Exited { pid, code } => {
                    (pid, ExitStatus::Code(code), ChildExit::Code(code))
                }
                Reaped::Signaled { pid, signal } => {
                    (pid, ExitStatus::Signal(signal), ChildExit::Signal(signal))
                }
            };
            match self.core.unit_by_pid(pid).map(str::to_string) {
                Some(unit) => {
                    log::debug!("unit {unit}: main process {pid} {status}");
                    self.dispatch(Event::Exited { unit, status });
                }
                None => {
                    let mut notices = Vec::new();
                    let claimed = self
                        .subsystems
                        .iter_mut()
                        .any(|s| s.child_exited(pid, exit, &mut notices));
                    self.apply_notices(notices);
                    if !claimed {
                        log::trace!("reaped orphan {pid} ({status})");
                    }
                }
            }
        }
    }

    fn on_signal(&mut self, signo: i32) {
        let kind = match Signal::try_from(signo) {
            Ok(Signal::SIGCHLD) => return self.reap(),
            Ok(Signal::SIGHUP) => {
                log::info!("SIGHUP: reloading unit files");
                let _ = crate::control::ops::Operations::reload(self);
                return;
            }
            Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => {
                // The first one asks; one more while the shutdown runs insists (src/supervisor/deadline.rs).
                if self.shutdown.kind.is_some() {
                    log::warn!("signal {signo} during the shutdown: forcing its end");
                    self.shutdown.forced = true;
                }
                ShutdownKind::Reboot
            }
            Ok(Signal::SIGUSR1) => ShutdownKind::Halt,
            Ok(Signal::SIGUSR2) | Ok(Signal::SIGPWR) => ShutdownKind::Poweroff,
            _ => return,
        };
        log::info!("signal {signo}: shutting down ({kind:?})");
        self.begin_shutdown(kind);
    }

    pub(super) fn begin_shutdown(&mut self, kind: ShutdownKind) {
        if self.shutdown.kind.is_none() {
            self.shutdown.kind = Some(kind);
            self.shutdown.deadline = Instant::now().checked_add(self.shutdown.limit);
            self.boot
                .timeline
                .mark(SubjectKind::Stage, "shutdown", TimelineEvent::Start);
            let mut notices = Vec::new();
            for s in &mut self.subsystems {
                s.begin_shutdown(&mut notices);
            }
            self.apply_notices(notices);
        }
        self.dispatch(Event::Shutdown);
    }

    fn fire_timers(&mut self, now: Instant) {
        while self.timers.peek().is_some_and(|Reverse(t)| t.at <= now) {
            if let Some(Reverse(t)) = self.timers.pop() {
                self.dispatch(Event::Timer {
                    unit: t.unit,
                    kind: t.kind,
                    gen: t.gen,
                });
            }
        }
    }

    /// Whether a timer for this unit, kind and generation is armed.
    pub(super) fn holds_timer(&self, unit: &str, kind: TimerKind, gen: u64) -> bool {
        self.timers
            .iter()
            .any(|Reverse(t)| t.unit == unit && t.kind == kind && t.gen == gen)
    }

    /// One pass of the loop: wait for something, then handle all of it.
    fn iterate(&mut self, io: &mut LoopIo) {
        // Before sleeping: the previous pass (or the boot event) may have settled everything.
        self.check_boot_complete();
        self.prune_removed();
        let now = Instant::now();
        self.offer_wanted_facts(now);
        let mut deadline = self.timers.peek().map(|Reverse(t)| t.at);
        let sub_deadline = self.subsystems.iter().filter_map(|s| s.deadline()).min();
        io.retry_notify(now);
        for d in [
            io.server.as_ref().and_then(|s| s.next_deadline()),
            self.io.next_probe,
            self.next_condition_check,
            sub_deadline,
            io.notify_retry_at,
            self.shutdown.deadline,
        ] {
            deadline = match (deadline, d) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let timeout_ms = match deadline {
            None => -1,
            Some(t) => t.saturating_duration_since(now).as_millis().min(60_000) as i32 + 1,
        };

        let mut watches = vec![
            Watch::input(io.signals.as_raw_fd()),
            // poll(2) skips a negative fd: the slot stays, so the indices below hold.
            Watch::input(io.notify.as_ref().map_or(-1, NotifySocket::raw_fd)),
        ];
        if let Some(w) = &self.io.watcher {
            watches.push(Watch::input(w.raw_fd()));
        }
        let pipes_at = watches.len();
        watches.extend(
            self.io
                .pipes
                .iter()
                .map(|p| Watch::input(p.file.as_raw_fd())),
        );
        let ready_at = watches.len();
        watches.extend(
            self.io
                .ready_fds
                .values()
                .map(|f| Watch::input(f.as_raw_fd())),
        );
        // Subsystem descriptors, remembered with their owner's index.
        let subs_at = watches.len();
        let mut sub_owner = Vec::new();
        for (i, s) in self.subsystems.iter().enumerate() {
            for (fd, ev) in s.poll_fds() {
                watches.push(Watch::new(fd, ev));
                sub_owner.push(i);
            }
        }
        let server_at = watches.len();
        if let Some(s) = &io.server {
            watches.extend(s.poll_fds().into_iter().map(|(fd, ev)| Watch::new(fd, ev)));
        }
        if let Err(e) = poll_fds(&mut watches, timeout_ms) {
            log::warn!("poll failed: {e}");
            std::thread::sleep(Duration::from_millis(10));
            return;
        }

        if watches[0].is_ready() {
            while let Ok(Some(signo)) = crate::sys::signal::read_signal(&io.signals) {
                self.on_signal(signo);
            }
        }
        if let Some(notify) = io.notify.as_ref().filter(|_| watches[1].is_ready()) {
            self.on_notify(notify);
        }
        if self.io.watcher.is_some() && watches[2].is_ready() {
            self.on_cgroup_events();
        }
        // Pipes: drain the ready ones, drop the closed ones. Draining dispatches nothing, so the
        // indices hold; walking backwards keeps them valid across swap_remove.
        let pipe_ready: Vec<bool> = watches[pipes_at..ready_at]
            .iter()
            .map(Watch::is_ready)
            .collect();
        for i in (0..pipe_ready.len()).rev() {
            if pipe_ready[i] && !self.drain_pipe(i) {
                self.io.pipes.swap_remove(i);
            }
        }
        // Readiness pipes, by unit name: reading one may dispatch events that drop others.
        let rfd_ready: Vec<String> = watches[ready_at..subs_at]
            .iter()
            .zip(self.io.ready_fds.keys())
            .filter(|(w, _)| w.is_ready())
            .map(|(_, u)| u.clone())
            .collect();
        for unit in rfd_ready {
            if !self.read_ready_fd(&unit) {
                self.io.ready_fds.remove(&unit);
            }
        }
        let now = Instant::now();
        let mut notices = Vec::new();
        for (w, &i) in watches[subs_at..server_at].iter().zip(&sub_owner) {
            if w.is_ready() {
                if let Some(s) = self.subsystems.get_mut(i) {
                    s.on_ready(w.fd, w.revents, now, &mut notices);
                }
            }
        }
        self.offer_units(now, &mut notices);
        for s in &mut self.subsystems {
            s.tick(now, &mut notices);
        }
        self.apply_notices(notices);
        // Borrowed, not taken: a panic inside a request handler must not lose the server.
        if let Some(server) = io.server.as_mut() {
            for w in &watches[server_at..] {
                if w.is_ready() {
                    server.on_ready(w.fd, w.revents, self, now);
                }
            }
            server.tick(self, now);
        }
        self.fire_timers(now);
        self.run_probes(now);
        self.recheck_conditions(now);
        // A SIGCHLD may have been coalesced with one already consumed: reaping is cheap, always do it.
        self.reap();
        self.check_boot_complete();
    }
}

/// The descriptors the loop owns besides the supervisor's own state.
pub(super) struct LoopIo {
    pub signals: nix::sys::signalfd::SignalFd,
    /// `None` while the socket cannot be bound (a run dir path too long, /run not writable): the
    /// loop runs degraded, still reaping and obeying signals, and retries now and then.
    pub notify: Option<NotifySocket>,
    pub notify_path: PathBuf,
    pub notify_retry_at: Option<Instant>,
    pub server: Option<ControlServer>,
}

/// How often a notify socket that could not be bound is tried again.
pub(super) const NOTIFY_RETRY: Duration = Duration::from_secs(5);

impl LoopIo {
    /// Binds the notify socket again if it is missing and a retry is due.
    fn retry_notify(&mut self, now: Instant) {
        if self.notify.is_some() || self.notify_retry_at.map_or(true, |t| t > now) {
            return;
        }
        match NotifySocket::bind(&self.notify_path) {
            Ok(n) => {
                log::info!("bound {} at last", self.notify_path.display());
                self.notify = Some(n);
                self.notify_retry_at = None;
            }
            Err(e) => {
                log::debug!("cannot bind {}: {e}", self.notify_path.display());
                self.notify_retry_at = now.checked_add(NOTIFY_RETRY);
            }
        }
    }
}

/// Runs the loop until a shutdown has stopped every unit. A panic inside one iteration is caught,
/// logged, and what it cut short is rebuilt before the next pass: PID 1 must not die.
pub(super) fn run_loop(sup: &mut Supervisor, io: &mut LoopIo) -> ShutdownKind {
    loop {
        if sup.needs_recovery {
            super::recovery::guarded("recovery after a panic", || sup.recover_after_panic());
        }
        if super::recovery::guarded("a loop iteration", || sup.iterate(io)).is_none() {
            sup.needs_recovery = true;
        }
        // Unit log lines of this pass reach the disk in one write per unit (src/unitlog).
        super::recovery::guarded("flushing unit logs", || sup.logs.flush());
        if sup.core.shutting_down() {
            if let Some(kind) = sup.shutdown.kind {
                if sup.core.all_down() {
                    return kind;
                }
                if sup.shutdown_overdue(Instant::now()) {
                    super::recovery::guarded("forcing the end of the shutdown", || {
                        sup.force_end_of_shutdown();
                        sup.logs.flush();
                    });
                    return kind;
                }
            }
        }
    }
}
