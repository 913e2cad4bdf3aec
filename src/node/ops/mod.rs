//! The ops container on demand (`initctl ops [-- CMD...]`): a privileged toolbox container started
//! through containerd when an administrator asks, never at boot, attached to the caller's terminal,
//! removed when the session ends. A node has no login shell; this is the way in (docs/node.md).
//!
//! A `Subsystem` of the event loop: PID 1 runs `ctr` as a child (no gRPC stack in the init) with the
//! caller's stdin, stdout and stderr, which came over the control socket with SCM_RIGHTS, as the
//! child's own; the loop's reaper reports its end through `child_exited`. Nothing here blocks: the
//! cleanup (`ctr tasks delete --force`, `ctr containers delete`) runs as further children, each
//! bounded by a timeout after which it is killed and the next step runs. When the caller goes away
//! (initctl killed, connection closed) the control server calls `abandon`: `ctr run` gets SIGTERM,
//! SIGKILL after `term_grace`, and the same cleanup runs. Every session is logged (`journal`).

pub mod journal;
pub mod plan;

use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::{Instant, SystemTime};

use nix::sys::signal::Signal;

use crate::collections::vecmap::VecMap;
use crate::control::ops::{OpsSessions, Peer, SessionEnd};
use crate::control::protocol::OpsRequest;
use crate::supervisor::subsystem::{ChildExit, Notice, Subsystem};
pub use plan::OpsConfig;

/// Starts and signals the session's processes: the real one runs `ctr`; tests record.
pub trait Launcher {
    /// Starts `ctr ARGS`; with `stdio` as its stdin, stdout, stderr, else /dev/null. Returns the pid.
    fn spawn(&mut self, args: &[String], stdio: Option<[OwnedFd; 3]>) -> std::io::Result<i32>;
    fn signal(&mut self, pid: i32, sig: Signal);
}

/// `ctr` as a child of PID 1, in a process group of its own, with a plain environment.
pub struct CtrLauncher {
    pub ctr: std::path::PathBuf,
}

impl Launcher for CtrLauncher {
    fn spawn(&mut self, args: &[String], stdio: Option<[OwnedFd; 3]>) -> std::io::Result<i32> {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(&self.ctr);
        c.args(args)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .process_group(0);
        match stdio {
            Some([i, o, e]) => c
                .stdin(Stdio::from(i))
                .stdout(Stdio::from(o))
                .stderr(Stdio::from(e)),
            None => c
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        };
        // The Child handle is dropped without waiting: the event loop's reaper collects it.
        Ok(c.spawn()?.id() as i32)
    }

    fn signal(&mut self, pid: i32, sig: Signal) {
        if let Err(e) = crate::sys::reap::signal_pid(pid, sig) {
            log::warn!("ops: signal {sig} to {pid}: {e}");
        }
    }
}

#[derive(Debug)]
enum Phase {
    /// `ctr run` is running; `term_at`: when SIGTERM was sent (the caller went away).
    Running { pid: i32, term_at: Option<Instant> },
    /// Cleanup step `step` of `steps` runs as `pid` (None: could not start; moves on at once).
    Cleaning {
        steps: Vec<Vec<String>>,
        step: usize,
        pid: Option<i32>,
        since: Instant,
        killed: bool,
    },
    /// Over; waiting for the control server to collect the end.
    Done { at: Instant },
}

#[derive(Debug)]
struct Session {
    id: String,
    peer: Peer,
    argv: Vec<String>,
    tty: bool,
    started: Instant,
    started_wall: SystemTime,
    phase: Phase,
    /// How `ctr run` ended.
    ended: Option<ChildExit>,
    abandoned: bool,
    /// Every cleanup step exited 0.
    cleanup_ok: bool,
}

pub struct Ops {
    cfg: OpsConfig,
    launcher: Box<dyn Launcher>,
    /// A few at most (`max_sessions`): a sorted vector, not a B-tree of its own.
    sessions: VecMap<u64, Session>,
    next_key: u64,
    nonce: u32,
    shutting_down: bool,
}

/// How long a finished session waits to be collected before it is dropped (its client vanished
/// without the server noticing, which should not happen).
const UNCOLLECTED: std::time::Duration = std::time::Duration::from_secs(5);

impl Ops {
    pub fn new(cfg: OpsConfig, launcher: Box<dyn Launcher>) -> Self {
        let mut b = [0u8; 4];
        let _ = crate::sys::random::fill_insecure(&mut b);
        Self {
            cfg,
            launcher,
            sessions: VecMap::new(),
            next_key: 1,
            nonce: u32::from_le_bytes(b),
            shutting_down: false,
        }
    }

    /// The shipped configuration with the real `ctr`.
    pub fn machine(log_dir: Option<std::path::PathBuf>) -> Self {
        let cfg = OpsConfig::machine(log_dir);
        let launcher = Box::new(CtrLauncher {
            ctr: cfg.ctr.clone(),
        });
        Self::new(cfg, launcher)
    }

    /// Container mode (tests): enabled only when `LIFSEA_OPS_ADDRESS` names a containerd socket;
    /// `LIFSEA_OPS_CTR`, `LIFSEA_OPS_TOOLBOX` and `LIFSEA_OPS_CGROUP` override the other paths.
    pub fn from_env(log_dir: Option<std::path::PathBuf>) -> Option<Self> {
        let address = std::env::var_os("LIFSEA_OPS_ADDRESS")?;
        let mut cfg = OpsConfig::machine(log_dir);
        cfg.address = address.into();
        cfg.cgroup_parent = std::env::var("LIFSEA_OPS_CGROUP").ok();
        if let Some(p) = std::env::var_os("LIFSEA_OPS_CTR") {
            cfg.ctr = p.into();
        }
        if let Some(p) = std::env::var_os("LIFSEA_OPS_TOOLBOX") {
            cfg.toolbox = p.into();
        }
        let launcher = Box::new(CtrLauncher {
            ctr: cfg.ctr.clone(),
        });
        Some(Self::new(cfg, launcher))
    }

    fn record(&self, line: &str) {
        log::info!("{line}");
        if let Some(dir) = &self.cfg.log_dir {
            if let Err(e) = journal::append(dir, line, journal::MAX_BYTES) {
                log::warn!(
                    "ops: session log {}: {e}",
                    dir.join(journal::FILE).display()
                );
            }
        }
    }

    /// `ctr run` ended (or was never going to): start the cleanup.
    fn start_cleanup(&mut self, key: u64, now: Instant) {
        let Some(s) = self.sessions.get(&key) else {
            return;
        };
        let task_may_run = s.abandoned || !matches!(s.ended, Some(ChildExit::Code(_)));
        let steps = plan::cleanup_steps(&self.cfg, &s.id, task_may_run);
        self.run_step(key, steps, 0, now);
    }

    fn run_step(&mut self, key: u64, steps: Vec<Vec<String>>, step: usize, now: Instant) {
        if step >= steps.len() {
            self.finish(key, now);
            return;
        }
        let pid = match self.launcher.spawn(&steps[step], None) {
            Ok(pid) => Some(pid),
            Err(e) => {
                log::warn!("ops: cleanup {:?}: {e}", steps[step]);
                None
            }
        };
        if let Some(s) = self.sessions.get_mut(&key) {
            if pid.is_none() {
                s.cleanup_ok = false;
            }
            s.phase = Phase::Cleaning {
                steps,
                step,
                pid,
                since: now,
                killed: false,
            };
        }
    }

    fn finish(&mut self, key: u64, now: Instant) {
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        s.phase = Phase::Done { at: now };
        let ended = s.ended.unwrap_or(ChildExit::Signal(9));
        let how = if s.abandoned {
            format!("{}, caller gone", plan::describe(ended))
        } else {
            plan::describe(ended)
        };
        let line = journal::end_line(
            &s.id,
            s.peer.uid,
            plan::exit_status(ended),
            &how,
            now.duration_since(s.started).as_millis() as u64,
            if s.cleanup_ok { "ok" } else { "failed" },
        );
        let drop_now = s.abandoned;
        self.record(&line);
        if drop_now {
            self.sessions.remove(&key);
        }
    }

    fn end_of(s: &Session) -> SessionEnd {
        let ended = s.ended.unwrap_or(ChildExit::Signal(9));
        SessionEnd {
            id: s.id.clone(),
            exit: plan::exit_status(ended),
            detail: plan::describe(ended),
            removed: s.cleanup_ok,
            duration_ms: match s.phase {
                Phase::Done { at } => at.duration_since(s.started).as_millis() as u64,
                _ => 0,
            },
        }
    }
}

impl OpsSessions for Ops {
    fn begin(&mut self, req: &OpsRequest, stdio: Vec<OwnedFd>, peer: Peer) -> Result<u64, String> {
        if self.shutting_down {
            return Err("shutting down".into());
        }
        if self.sessions.len() >= self.cfg.max_sessions {
            return Err(format!(
                "{} ops sessions are open already; try again later",
                self.sessions.len()
            ));
        }
        if !self.cfg.toolbox.join("bin/sh").exists() {
            return Err(format!(
                "no toolbox root filesystem at {} (bin/sh missing)",
                self.cfg.toolbox.display()
            ));
        }
        let stdio: [OwnedFd; 3] = stdio.try_into().map_err(|v: Vec<OwnedFd>| {
            format!(
                "ops needs the caller's stdin, stdout and stderr; {} descriptors came",
                v.len()
            )
        })?;
        let key = self.next_key;
        self.next_key += 1;
        let id = plan::container_id(key, self.nonce);
        let host_files = ["/etc/hosts", "/etc/resolv.conf"]
            .iter()
            .all(|f| std::path::Path::new(f).exists());
        let args = plan::run_args(&self.cfg, &id, req, host_files);
        let pid = self
            .launcher
            .spawn(&args, Some(stdio))
            .map_err(|e| format!("cannot run {}: {e}", self.cfg.ctr.display()))?;
        let now = Instant::now();
        self.sessions.insert(
            key,
            Session {
                id: id.clone(),
                peer,
                argv: req.argv.clone(),
                tty: req.tty,
                started: now,
                started_wall: SystemTime::now(),
                phase: Phase::Running { pid, term_at: None },
                ended: None,
                abandoned: false,
                cleanup_ok: true,
            },
        );
        self.record(&journal::start_line(
            &id, peer.uid, peer.pid, req.tty, &req.argv,
        ));
        Ok(key)
    }

    fn poll(&mut self, key: u64) -> Option<SessionEnd> {
        match self.sessions.get(&key) {
            Some(s) if matches!(s.phase, Phase::Done { .. }) => {
                let end = Self::end_of(s);
                self.sessions.remove(&key);
                Some(end)
            }
            _ => None,
        }
    }

    fn abandon(&mut self, key: u64) {
        let now = Instant::now();
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        if s.abandoned {
            return;
        }
        s.abandoned = true;
        match &mut s.phase {
            Phase::Running { pid, term_at } => {
                log::info!("ops session {}: the caller went away; stopping it", s.id);
                *term_at = Some(now);
                let pid = *pid;
                self.launcher.signal(pid, Signal::SIGTERM);
            }
            Phase::Cleaning { .. } => {}
            Phase::Done { .. } => {
                self.sessions.remove(&key);
            }
        }
    }
}

impl Subsystem for Ops {
    fn name(&self) -> &'static str {
        "ops"
    }

    fn deadline(&self) -> Option<Instant> {
        self.sessions
            .values()
            .filter_map(|s| match &s.phase {
                Phase::Running { term_at, .. } => term_at.map(|t| t + self.cfg.term_grace),
                // A step that could not start moves on at the next pass.
                Phase::Cleaning {
                    pid: None, since, ..
                } => Some(*since),
                Phase::Cleaning { since, killed, .. } if !killed => {
                    Some(*since + self.cfg.cleanup_timeout)
                }
                Phase::Cleaning { .. } => None,
                // Wake the loop at once so that the server collects the end.
                Phase::Done { at } => Some(*at),
            })
            .min()
    }

    fn tick(&mut self, now: Instant, _out: &mut Vec<Notice>) {
        let mut stale = Vec::new();
        for (key, s) in &mut self.sessions {
            match &mut s.phase {
                Phase::Running {
                    pid,
                    term_at: Some(t),
                } if now >= *t + self.cfg.term_grace => {
                    log::warn!(
                        "ops session {}: ctr did not end after SIGTERM; killing it",
                        s.id
                    );
                    self.launcher.signal(*pid, Signal::SIGKILL);
                    // Escalated once; the reaper reports the end.
                    s.phase = Phase::Running {
                        pid: *pid,
                        term_at: None,
                    };
                }
                Phase::Cleaning {
                    pid: Some(pid),
                    since,
                    killed,
                    steps,
                    step,
                } if !*killed && now >= *since + self.cfg.cleanup_timeout => {
                    log::warn!(
                        "ops session {}: {:?} timed out; killing it",
                        s.id,
                        steps[*step]
                    );
                    *killed = true;
                    s.cleanup_ok = false;
                    self.launcher.signal(*pid, Signal::SIGKILL);
                }
                Phase::Done { at } if now >= *at + UNCOLLECTED => stale.push(*key),
                _ => {}
            }
        }
        for key in stale {
            self.sessions.remove(&key);
        }
        // Cleanup steps that could not even start move on here.
        let unstarted: Vec<u64> = self
            .sessions
            .iter()
            .filter(|(_, s)| matches!(s.phase, Phase::Cleaning { pid: None, .. }))
            .map(|(k, _)| *k)
            .collect();
        for key in unstarted {
            self.next_step(key, now);
        }
    }

    fn child_exited(&mut self, pid: i32, status: ChildExit, _out: &mut Vec<Notice>) -> bool {
        let now = Instant::now();
        let found = self.sessions.iter_mut().find_map(|(k, s)| match &s.phase {
            Phase::Running { pid: p, .. } if *p == pid => Some((*k, true)),
            Phase::Cleaning { pid: Some(p), .. } if *p == pid => Some((*k, false)),
            _ => None,
        });
        let Some((key, was_run)) = found else {
            return false;
        };
        if was_run {
            if let Some(s) = self.sessions.get_mut(&key) {
                s.ended = Some(status);
            }
            self.start_cleanup(key, now);
        } else {
            if status != ChildExit::Code(0) {
                if let Some(s) = self.sessions.get_mut(&key) {
                    s.cleanup_ok = false;
                    log::warn!(
                        "ops session {}: cleanup step {}",
                        s.id,
                        plan::describe(status)
                    );
                }
            }
            self.next_step(key, now);
        }
        true
    }

    fn ops_sessions(&mut self) -> Option<&mut dyn OpsSessions> {
        Some(self)
    }

    fn begin_shutdown(&mut self, _out: &mut Vec<Notice>) {
        self.shutting_down = true;
        let keys: Vec<u64> = self.sessions.keys().copied().collect();
        for key in keys {
            self.abandon(key);
        }
    }

    fn status(&self) -> serde_json::Value {
        let sessions: Vec<serde_json::Value> = self
            .sessions
            .values()
            .map(|s| {
                serde_json::json!({
                    "id": s.id,
                    "uid": s.peer.uid,
                    "pid": s.peer.pid,
                    "command": s.argv,
                    "tty": s.tty,
                    "started": journal::utc(
                        s.started_wall
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or(0)
                    ),
                    "phase": match s.phase {
                        Phase::Running { .. } => "running",
                        Phase::Cleaning { .. } => "cleaning up",
                        Phase::Done { .. } => "done",
                    },
                    "abandoned": s.abandoned,
                })
            })
            .collect();
        serde_json::json!({
            "toolbox": self.cfg.toolbox,
            "namespace": self.cfg.namespace,
            "sessions": sessions,
        })
    }
}

impl Ops {
    fn next_step(&mut self, key: u64, now: Instant) {
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        let Phase::Cleaning { steps, step, .. } = &mut s.phase else {
            return;
        };
        let steps = std::mem::take(steps);
        let next = *step + 1;
        self.run_step(key, steps, next, now);
    }
}

#[cfg(test)]
mod tests;
