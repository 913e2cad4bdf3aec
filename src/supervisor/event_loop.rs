//! The one event loop of stage 2: poll(2) over the signalfd, the sd_notify socket, cgroup.events
//! watches, service output and readiness pipes and the control server, with the earliest timer as
//! the poll timeout. Everything that happens becomes an `Event` for the pure core; the core's
//! `Action`s are carried out here (spawn, signal, arm a timer, log a transition).
//!
//! Single-threaded on purpose: nothing runs concurrently with a fork, and the reaper is the only
//! caller of waitpid(-1).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::cgroup::CgroupRoot;
use super::output::{LineBuffer, LINE_CAP};
use super::readiness;
use super::spawn::{self, SpawnRequest};
use super::state::{Action, Core, Event, ExitStatus, KillScope, Phase, TimerKind};
use super::{notify, Config};
use crate::control::ops::ShutdownKind;
use crate::control::server::ControlServer;
use crate::sys::inotify::{FileWatcher, WatchId};
use crate::sys::notify_socket::NotifySocket;
use crate::sys::poll::{poll_fds, Watch};
use crate::sys::reap::{self as process, Reaped};
use crate::timeline::{SubjectKind, Timeline, TimelineEvent};
use crate::unitlog::{Stream, UnitLogs};
use crate::units::schema::{KillMode, Readiness};
use crate::units::Unit;

/// Bytes read from one pipe per wakeup, so one chatty service cannot starve the loop.
const READ_BUDGET: usize = 64 * 1024;

/// A service output pipe being drained into the unit's log.
struct Pipe {
    unit: String,
    stream: Stream,
    file: File,
    lines: LineBuffer,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct TimerEntry {
    at: Instant,
    seq: u64,
    unit: String,
    kind: TimerKind,
    gen: u64,
}

/// Everything the running supervisor holds. The control API reaches it through `Operations`.
pub struct Supervisor {
    pub(super) cfg: Config,
    pub(super) core: Core,
    /// Valid units from disk, by name.
    pub(super) units: BTreeMap<String, Unit>,
    pub(super) cgroups: Option<CgroupRoot>,
    /// Relative path under the cgroup root where unit groups live ("" on a machine).
    pub(super) cgroup_base: String,
    pub(super) notify_path: PathBuf,
    pub(super) logs: UnitLogs,
    pub(super) timeline: Timeline,
    pub(super) status_text: BTreeMap<String, String>,
    pub(super) shutdown_kind: Option<ShutdownKind>,
    pipes: Vec<Pipe>,
    ready_fds: Vec<(String, File)>,
    probes: BTreeMap<String, Readiness>,
    next_probe: Option<Instant>,
    timers: BinaryHeap<Reverse<TimerEntry>>,
    timer_seq: u64,
    watcher: Option<FileWatcher>,
    watches: BTreeMap<String, WatchId>,
    queue: VecDeque<Event>,
    spawned_at: BTreeMap<String, Instant>,
    boot_done: bool,
    boot_started_us: u64,
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
        Self {
            core,
            units: BTreeMap::new(),
            cgroups,
            cgroup_base,
            notify_path,
            logs: UnitLogs::default(),
            timeline,
            status_text: BTreeMap::new(),
            shutdown_kind: None,
            pipes: Vec::new(),
            ready_fds: Vec::new(),
            probes: BTreeMap::new(),
            next_probe: None,
            timers: BinaryHeap::new(),
            timer_seq: 0,
            watcher: FileWatcher::new().ok(),
            watches: BTreeMap::new(),
            queue: VecDeque::new(),
            spawned_at: BTreeMap::new(),
            boot_done: false,
            boot_started_us: crate::timeline::boottime_us(),
            cfg,
        }
    }

    /// The unit's cgroup relative to the cgroup root.
    pub(super) fn cgroup_rel(&self, unit: &Unit) -> String {
        if self.cgroup_base.is_empty() {
            unit.cgroup.path.clone()
        } else {
            format!("{}/{}", self.cgroup_base, unit.cgroup.path)
        }
    }

    /// Feeds an event to the core and carries out every resulting action (which may queue more).
    pub fn dispatch(&mut self, ev: Event) {
        self.queue.push_back(ev);
        while let Some(ev) = self.queue.pop_front() {
            log::debug!("event {ev:?}");
            let actions = self.core.step(ev, Instant::now());
            for a in actions {
                self.perform(a);
            }
        }
    }

    fn perform(&mut self, a: Action) {
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

    fn on_transition(
        &mut self,
        subject: SubjectKind,
        name: &str,
        event: TimelineEvent,
        detail: &str,
    ) {
        self.timeline.mark(subject, name, event);
        let suffix = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        };
        match (subject, event) {
            (SubjectKind::Fact, _) => log::info!("[  OK  ] reached {name}"),
            (_, TimelineEvent::Ready) => {
                let ms = self
                    .spawned_at
                    .get(name)
                    .map(|t| t.elapsed().as_millis())
                    .unwrap_or(0);
                let what = if detail.is_empty() { "ready" } else { "done" };
                log::info!("[  OK  ] {name} {what} ({ms} ms)");
            }
            (_, TimelineEvent::Failed) => log::warn!("[FAILED] {name}: {detail}"),
            (_, TimelineEvent::Start) => {
                self.spawned_at.insert(name.to_string(), Instant::now());
                log::debug!("started {name}{suffix}");
            }
            (_, TimelineEvent::Stopping) => log::info!("stopping {name}"),
            (_, TimelineEvent::Stopped) => log::info!("[ STOP ] {name}{suffix}"),
            (_, TimelineEvent::BootComplete) => {}
        }
        if subject == SubjectKind::Unit {
            let line = format!("{}{suffix}", event_word(event));
            self.logs.push(name, Stream::Init, line.as_bytes());
        }
        if event != TimelineEvent::Start && event != TimelineEvent::Stopping {
            // Readiness watching ends with the starting phase.
            if self
                .core
                .get(name)
                .map_or(true, |e| e.phase != Phase::Starting)
            {
                self.probes.remove(name);
                self.ready_fds.retain(|(u, _)| u != name);
            }
        }
    }

    fn spawn_unit(&mut self, name: &str) {
        let Some(unit) = self.units.get(name).cloned() else {
            self.queue.push_back(Event::SpawnFailed {
                unit: name.to_string(),
                message: "unit definition missing".into(),
            });
            return;
        };
        let cgroup_dir = self.prepare_cgroup(&unit);
        let req = SpawnRequest {
            unit: &unit,
            notify_socket: Some(&self.notify_path),
            cgroup_dir,
            etc_dir: &self.cfg.etc_dir,
        };
        match spawn::spawn(&req) {
            Ok(s) => {
                self.add_pipe(name, Stream::Stdout, s.stdout);
                self.add_pipe(name, Stream::Stderr, s.stderr);
                self.ready_fds.retain(|(u, _)| u != name);
                if let Some(fd) = s.ready_fd {
                    let _ = crate::sys::poll::set_nonblocking(fd.as_raw_fd());
                    self.ready_fds.push((name.to_string(), File::from(fd)));
                }
                if readiness::is_probe(&unit.ready) {
                    self.probes.insert(name.to_string(), unit.ready.clone());
                    self.next_probe = Some(Instant::now());
                }
                self.queue.push_back(Event::Spawned {
                    unit: name.to_string(),
                    pid: s.pid.as_raw(),
                });
            }
            Err(e) => {
                log::warn!("{e}");
                self.queue.push_back(Event::SpawnFailed {
                    unit: name.to_string(),
                    message: e.to_string(),
                });
            }
        }
    }

    /// Creates the unit's cgroup and watches its cgroup.events; `None` without cgroups.
    fn prepare_cgroup(&mut self, unit: &Unit) -> Option<PathBuf> {
        let cg = self.cgroups.as_ref()?;
        let rel = self.cgroup_rel(unit);
        if self.cfg.container {
            crate::shutdown::note_created_cgroup(&unit.cgroup.path);
        }
        // A delegated group belongs to the service's user, so it can manage its own subtree.
        let owner = if unit.cgroup.delegate {
            spawn::unit_owner(unit, &self.cfg.etc_dir).unwrap_or_else(|e| {
                log::warn!("{e}");
                None
            })
        } else {
            None
        };
        let dir = match cg.create(&rel, unit.cgroup.delegate, owner) {
            Ok(d) => d,
            Err(e) => {
                log::warn!("unit {}: {e}; running it without its own cgroup", unit.name);
                return None;
            }
        };
        if !self.watches.contains_key(&unit.name) {
            if let Some(w) = &self.watcher {
                match w.watch_modify(&cg.events_path(&rel)) {
                    Ok(id) => {
                        self.watches.insert(unit.name.clone(), id);
                    }
                    Err(e) => log::warn!("unit {}: cannot watch cgroup.events: {e}", unit.name),
                }
            }
        }
        Some(dir)
    }

    fn add_pipe(&mut self, unit: &str, stream: Stream, fd: OwnedFd) {
        let _ = crate::sys::poll::set_nonblocking(fd.as_raw_fd());
        self.pipes.push(Pipe {
            unit: unit.to_string(),
            stream,
            file: File::from(fd),
            lines: LineBuffer::new(LINE_CAP),
        });
    }

    fn group_populated(&self, unit: &str) -> bool {
        let (Some(cg), Some(u)) = (&self.cgroups, self.units.get(unit)) else {
            return false;
        };
        // A group that cannot be read (removed, never created) holds no processes.
        cg.is_populated(&self.cgroup_rel(u)).unwrap_or(false)
    }

    fn kill_unit(&mut self, name: &str, signal: Signal, scope: KillScope) {
        let pid = self.core.get(name).and_then(|e| e.pid);
        let Some(unit) = self.units.get(name) else {
            return;
        };
        match (scope, &self.cgroups) {
            (KillScope::Group, Some(cg)) => {
                let rel = self.cgroup_rel(unit);
                let r = if signal == Signal::SIGKILL {
                    cg.kill(&rel)
                } else {
                    cg.signal_all(&rel, signal)
                        .and_then(|_| cg.signal_all(&rel, Signal::SIGCONT))
                };
                if let Err(e) = r {
                    log::warn!("unit {name}: signalling its cgroup failed: {e}");
                }
                // A MAINPID outside the group still gets the signal.
                if let Some(pid) = pid {
                    let _ = process::signal_pid(pid, signal);
                }
            }
            _ => {
                let Some(pid) = pid else { return };
                if let Err(e) = process::signal_pid(pid, signal) {
                    log::warn!("unit {name}: kill({pid}, {}) failed: {e}", signal.as_str());
                }
                // Without cgroups, the process group stands in for the unit's group (spawn makes
                // every service a session and process group leader).
                if unit.kill_mode == KillMode::Cgroup && self.cgroups.is_none() {
                    let _ = process::signal_group(pid, signal);
                }
                if signal != Signal::SIGKILL && signal != Signal::SIGCONT {
                    let _ = process::signal_pid(pid, Signal::SIGCONT);
                }
            }
        }
    }

    /// Reaps every exited child; matches main pids to units, orphans are reaped silently.
    fn reap(&mut self) {
        while let Some(r) = process::reap_one() {
            let (pid, status) = match r {
                Reaped::Exited { pid, code } => (pid, ExitStatus::Code(code)),
                Reaped::Signaled { pid, signal } => (pid, ExitStatus::Signal(signal)),
            };
            match self.core.unit_by_pid(pid).map(str::to_string) {
                Some(unit) => {
                    log::debug!("unit {unit}: main process {pid} {status}");
                    self.dispatch(Event::Exited { unit, status });
                }
                None => log::trace!("reaped orphan {pid} ({status})"),
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
            Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => ShutdownKind::Reboot,
            Ok(Signal::SIGUSR1) => ShutdownKind::Halt,
            Ok(Signal::SIGUSR2) | Ok(Signal::SIGPWR) => ShutdownKind::Poweroff,
            _ => return,
        };
        log::info!("signal {signo}: shutting down ({kind:?})");
        self.begin_shutdown(kind);
    }

    pub(super) fn begin_shutdown(&mut self, kind: ShutdownKind) {
        if self.shutdown_kind.is_none() {
            self.shutdown_kind = Some(kind);
            self.timeline
                .mark(SubjectKind::Stage, "shutdown", TimelineEvent::Start);
        }
        self.dispatch(Event::Shutdown);
    }

    fn on_notify(&mut self, sock: &NotifySocket) {
        loop {
            let d = match sock.receive() {
                Ok(Some(d)) => d,
                Ok(None) => return,
                Err(e) => {
                    log::debug!("notify socket: {e}");
                    return;
                }
            };
            let Some(pid) = d.pid else { continue };
            let Some(unit) = self.attribute(pid) else {
                log::debug!("notify message from pid {pid} belongs to no unit; ignored");
                continue;
            };
            let msg = notify::parse(&d.data);
            if let Some(mp) = msg.main_pid {
                self.dispatch(Event::MainPid {
                    unit: unit.clone(),
                    pid: mp,
                });
            }
            if let Some(s) = msg.status {
                self.status_text.insert(unit.clone(), s);
            }
            if let Some(e) = msg.errno {
                log::info!("unit {unit}: reports errno {e}");
            }
            if msg.stopping {
                log::debug!("unit {unit}: stopping");
            }
            if msg.ready {
                self.dispatch(Event::Ready(unit));
            }
        }
    }

    /// Which unit a notify sender belongs to: main pid, cgroup member, or descendant of the main pid.
    fn attribute(&self, pid: i32) -> Option<String> {
        if let Some(u) = self.core.unit_by_pid(pid) {
            return Some(u.to_string());
        }
        let proc_dir = Path::new("/proc");
        if self.cgroups.is_some() {
            if let Some(cg) = notify::cgroup_of(proc_dir, pid) {
                for (name, unit) in &self.units {
                    let rel = format!("/{}", self.cgroup_rel(unit));
                    if notify::cgroup_contains(&rel, &cg)
                        && self.core.get(name).is_some_and(|e| e.pid.is_some())
                    {
                        return Some(name.clone());
                    }
                }
            }
        }
        self.core
            .entries()
            .find(|(_, e)| {
                e.pid
                    .is_some_and(|main| notify::descends_from(proc_dir, pid, main))
            })
            .map(|(n, _)| n.clone())
    }

    fn on_cgroup_events(&mut self) {
        let Some(w) = &self.watcher else { return };
        let fired = w.fired();
        for id in fired {
            let unit = self
                .watches
                .iter()
                .find(|(_, w)| **w == id)
                .map(|(u, _)| u.clone());
            if let Some(u) = unit {
                if !self.group_populated(&u) {
                    self.dispatch(Event::GroupEmpty(u));
                }
            }
        }
    }

    /// Drains one output pipe; returns false once it reached end of file.
    fn drain_pipe(&mut self, idx: usize) -> bool {
        let mut buf = [0u8; 8192];
        let mut total = 0;
        let Some(p) = self.pipes.get_mut(idx) else {
            return false;
        };
        loop {
            match p.file.read(&mut buf) {
                Ok(0) => {
                    if let Some(tail) = p.lines.finish() {
                        log::debug!("{}: {}", p.unit, String::from_utf8_lossy(&tail));
                        self.logs.push(&p.unit, p.stream, &tail);
                    }
                    return false;
                }
                Ok(n) => {
                    for line in p.lines.feed(&buf[..n]) {
                        log::debug!("{}: {}", p.unit, String::from_utf8_lossy(&line));
                        self.logs.push(&p.unit, p.stream, &line);
                    }
                    total += n;
                    if total >= READ_BUDGET {
                        return true;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return e.kind() == std::io::ErrorKind::WouldBlock,
            }
        }
    }

    /// Reads the s6 readiness pipe; a newline means ready. Returns false once it is closed.
    fn read_ready_fd(&mut self, idx: usize) -> bool {
        let mut buf = [0u8; 512];
        let Some((unit, f)) = self.ready_fds.get_mut(idx) else {
            return false;
        };
        loop {
            match f.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    if buf[..n].contains(&b'\n') {
                        let u = unit.clone();
                        self.dispatch(Event::Ready(u));
                        return false;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return e.kind() == std::io::ErrorKind::WouldBlock,
            }
        }
    }

    fn run_probes(&mut self, now: Instant) {
        if self.next_probe.map_or(true, |t| t > now) {
            return;
        }
        let ready: Vec<String> = self
            .probes
            .iter()
            .filter(|(_, r)| readiness::probe(r))
            .map(|(u, _)| u.clone())
            .collect();
        for u in ready {
            self.probes.remove(&u);
            self.dispatch(Event::Ready(u));
        }
        self.next_probe = if self.probes.is_empty() {
            None
        } else {
            Some(now + readiness::PROBE_INTERVAL)
        };
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

    fn check_boot_complete(&mut self) {
        if self.boot_done || !self.core.boot_settled() {
            return;
        }
        self.boot_done = true;
        self.timeline
            .mark(SubjectKind::Stage, "boot", TimelineEvent::BootComplete);
        // On a machine CLOCK_BOOTTIME counts from the kernel's start, which is what a boot takes; in
        // a container it counts from the host's boot, so measure from the supervisor's start there.
        let now_us = crate::timeline::boottime_us();
        let ms = if self.cfg.container {
            now_us.saturating_sub(self.boot_started_us)
        } else {
            now_us
        } / 1000;
        log::info!("boot complete in {ms} ms");
        if let Err(e) = super::report::write_boot_timeline(&self.cfg.run_dir, self) {
            log::warn!("{e}");
        }
    }

    /// One pass of the loop: wait for something, then handle all of it.
    fn iterate(&mut self, io: &mut LoopIo) {
        // Before sleeping: the previous pass (or the boot event) may have settled everything.
        self.check_boot_complete();
        self.prune_removed();
        let now = Instant::now();
        let mut deadline = self.timers.peek().map(|Reverse(t)| t.at);
        for d in [
            io.server.as_ref().and_then(|s| s.next_deadline()),
            self.next_probe,
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
            Watch::input(io.notify.raw_fd()),
        ];
        if let Some(w) = &self.watcher {
            watches.push(Watch::input(w.raw_fd()));
        }
        let pipes_at = watches.len();
        watches.extend(self.pipes.iter().map(|p| Watch::input(p.file.as_raw_fd())));
        let ready_at = watches.len();
        watches.extend(
            self.ready_fds
                .iter()
                .map(|(_, f)| Watch::input(f.as_raw_fd())),
        );
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
        if watches[1].is_ready() {
            self.on_notify(&io.notify);
        }
        if self.watcher.is_some() && watches[2].is_ready() {
            self.on_cgroup_events();
        }
        // Pipes: drain the ready ones, drop the closed ones (indices shift, so walk backwards).
        let pipe_ready: Vec<bool> = watches[pipes_at..ready_at]
            .iter()
            .map(Watch::is_ready)
            .collect();
        for i in (0..pipe_ready.len()).rev() {
            if pipe_ready[i] && !self.drain_pipe(i) {
                self.pipes.remove(i);
            }
        }
        let rfd_ready: Vec<bool> = watches[ready_at..server_at]
            .iter()
            .map(Watch::is_ready)
            .collect();
        for i in (0..rfd_ready.len()).rev() {
            if rfd_ready[i]
                && i < self.ready_fds.len()
                && !self.read_ready_fd(i)
                && i < self.ready_fds.len()
            {
                self.ready_fds.remove(i);
            }
        }
        let now = Instant::now();
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
        // A SIGCHLD may have been coalesced with one already consumed: reaping is cheap, always do it.
        self.reap();
        self.check_boot_complete();
    }
}

/// The descriptors the loop owns besides the supervisor's own state.
pub(super) struct LoopIo {
    pub signals: nix::sys::signalfd::SignalFd,
    pub notify: NotifySocket,
    pub server: Option<ControlServer>,
}

fn event_word(e: TimelineEvent) -> &'static str {
    match e {
        TimelineEvent::Start => "started",
        TimelineEvent::Ready => "ready",
        TimelineEvent::Failed => "failed",
        TimelineEvent::Stopping => "stopping",
        TimelineEvent::Stopped => "stopped",
        TimelineEvent::BootComplete => "boot complete",
    }
}

/// Runs the loop until a shutdown has stopped every unit. A panic inside one iteration is caught,
/// logged, and the loop goes on: PID 1 must not die.
pub(super) fn run_loop(sup: &mut Supervisor, io: &mut LoopIo) -> ShutdownKind {
    loop {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sup.iterate(io)));
        if r.is_err() {
            log::error!("supervisor loop iteration panicked; continuing");
            sup.queue.clear();
        }
        if sup.core.shutting_down() && sup.core.all_down() {
            if let Some(kind) = sup.shutdown_kind {
                return kind;
            }
        }
    }
}
