//! The blessing subsystem: finds the init's own boot entry (by its `ostree=` argument), watches
//! the health set through the supervisor's units view, and once it has held for `healthy-for`
//! drops the entry's boot counter inside a short writable window on `/sysroot` (remount the bind
//! read-write, rename, fsync the directory, remount read-only: the window closes even when the
//! rename fails). A boot whose health set fails or misses the deadline asks for a reboot without
//! blessing, so the bootloader uses the next try or falls back. It also reports a fallback: an
//! entry newer than ours that ran out of tries is why we are booting this one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use thiserror::Error;

use super::bls::{parse_entry, Entry};
use super::bootcount::{blessed_name, own_entry, sort_entries, vercmp};
use super::config::{self, OsConfig};
use super::health::{judge, Gate, Stage};
use super::update::{self, Job};
use crate::control::ops::ShutdownKind;
use crate::supervisor::subsystem::PollFlags;
use crate::supervisor::{ChildExit, Notice, Subsystem, UnitsView};
use crate::timeline::{SubjectKind, TimelineEvent};

/// Where the entries are, relative to the physical root.
pub const ENTRIES_DIR: &str = "boot/loader/entries";

#[derive(Debug, Error)]
pub enum BlessError {
    #[error("read {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("make {path} writable: {source}")]
    OpenWindow { path: PathBuf, source: nix::Error },
    #[error("make {path} read-only again: {source}")]
    CloseWindow { path: PathBuf, source: nix::Error },
    #[error("rename {from} to {to}: {source}")]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: std::io::Error,
    },
    #[error("fsync {path}: {source}")]
    Sync {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The effects of a rename on the physical root, behind a trait so the order (and that the window
/// always closes) is tested without root.
pub trait EntryOps {
    fn remount_rw(&mut self, target: &Path) -> nix::Result<()>;
    fn remount_ro(&mut self, target: &Path) -> nix::Result<()>;
    fn rename(&mut self, from: &Path, to: &Path) -> std::io::Result<()>;
    fn fsync_dir(&mut self, dir: &Path) -> std::io::Result<()>;
}

/// The real calls.
#[derive(Debug, Default)]
pub struct SysEntryOps;

impl EntryOps for SysEntryOps {
    fn remount_rw(&mut self, target: &Path) -> nix::Result<()> {
        crate::sys::mount::remount_bind_writable(target)
    }
    fn remount_ro(&mut self, target: &Path) -> nix::Result<()> {
        crate::sys::mount::remount_bind_readonly(target)
    }
    fn rename(&mut self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }
    fn fsync_dir(&mut self, dir: &Path) -> std::io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
}

/// Renames `from` to `to` in `dir` on `sysroot`, durably; opens a writable window on `sysroot`
/// first when it is read-only (`window`), and always closes it again.
pub fn rename_entry(
    ops: &mut dyn EntryOps,
    sysroot: &Path,
    window: bool,
    dir: &Path,
    from: &str,
    to: &str,
) -> Result<(), BlessError> {
    if window {
        ops.remount_rw(sysroot)
            .map_err(|source| BlessError::OpenWindow {
                path: sysroot.to_path_buf(),
                source,
            })?;
    }
    let (f, t) = (dir.join(from), dir.join(to));
    let done = ops
        .rename(&f, &t)
        .map_err(|source| BlessError::Rename {
            from: f,
            to: t,
            source,
        })
        .and_then(|()| {
            ops.fsync_dir(dir).map_err(|source| BlessError::Sync {
                path: dir.to_path_buf(),
                source,
            })
        });
    if window {
        let closed = ops
            .remount_ro(sysroot)
            .map_err(|source| BlessError::CloseWindow {
                path: sysroot.to_path_buf(),
                source,
            });
        done.and(closed)
    } else {
        done
    }
}

/// Reads every entry in `dir`; entries that do not parse are returned as messages (a bootloader
/// skips them too).
pub fn read_entries(dir: &Path) -> Result<(Vec<Entry>, Vec<String>), BlessError> {
    let rd = std::fs::read_dir(dir).map_err(|source| BlessError::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let (mut entries, mut bad) = (Vec::new(), Vec::new());
    for de in rd.flatten() {
        let name = de.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".conf") {
            continue;
        }
        match std::fs::read_to_string(de.path()) {
            Ok(text) => match parse_entry(&name, &text) {
                Ok(e) => entries.push(e),
                Err(e) => bad.push(e.to_string()),
            },
            Err(e) => bad.push(format!("read {}: {e}", de.path().display())),
        }
    }
    sort_entries(&mut entries);
    Ok((entries, bad))
}

/// Entries newer than ours that ran out of tries: the reason the bootloader fell back to us.
pub fn fallback_from<'a>(entries: &'a [Entry], own: &Entry) -> Vec<&'a Entry> {
    entries
        .iter()
        .filter(|e| e.bad() && e.id != own.id && vercmp(&e.id, &own.id).is_gt())
        .collect()
}

/// The subsystem (`initctl os` reads its status).
pub struct Blesser {
    sysroot: PathBuf,
    cfg: OsConfig,
    /// Re-read when an upgrade ends: the tries an admin sets just before upgrading apply to it.
    cfg_path: PathBuf,
    config_error: Option<String>,
    /// Our entry's file name, while it still has a counter to drop.
    own: Option<String>,
    /// Why nothing is counted this boot (no entry found, already blessed, ...).
    not_counted: Option<String>,
    fallback: Option<String>,
    gate: Gate,
    /// A blessing that failed (logged once, shown in status).
    error: Option<String>,
    ops: Box<dyn EntryOps>,
    /// Notices from set-up, given on the first tick.
    pending: Vec<Notice>,
    ostree_arg: String,
    /// Where an update job's output goes.
    log: PathBuf,
    job: Option<Job>,
    /// How the last update job ended.
    last_job: Option<String>,
}

impl Blesser {
    /// The machine's blesser: `/sysroot`, `/etc/lifsea/os.toml`, the real mount calls.
    pub fn machine(ostree_arg: &str) -> Blesser {
        Blesser::new(
            Path::new("/sysroot"),
            ostree_arg,
            Path::new(config::OS_CONFIG),
            Box::new(SysEntryOps),
            Instant::now(),
        )
    }

    /// Sets up from the sysroot's entries; `started` is when the boot's deadline began counting.
    pub fn new(
        sysroot: &Path,
        ostree_arg: &str,
        cfg_path: &Path,
        ops: Box<dyn EntryOps>,
        started: Instant,
    ) -> Blesser {
        let (cfg, config_error) = match config::load(cfg_path) {
            Ok(c) => (c, None),
            Err(e) => {
                log::error!("{e}; using the defaults");
                (OsConfig::default(), Some(e.to_string()))
            }
        };
        let gate = Gate::new(started, cfg.deadline, cfg.healthy_for);
        let mut b = Blesser {
            sysroot: sysroot.to_path_buf(),
            cfg,
            cfg_path: cfg_path.to_path_buf(),
            config_error,
            own: None,
            not_counted: None,
            fallback: None,
            gate,
            error: None,
            ops,
            pending: Vec::new(),
            ostree_arg: ostree_arg.to_string(),
            log: PathBuf::from(crate::paths::RUN_DIR).join("os-update.log"),
            job: None,
            last_job: None,
        };
        let dir = b.entries_dir();
        let entries = match read_entries(&dir) {
            Ok((entries, bad)) => {
                for m in bad {
                    log::warn!("boot entry: {m}");
                }
                entries
            }
            Err(e) => {
                b.not_counted = Some(e.to_string());
                return b;
            }
        };
        let Some(own) = own_entry(&entries, ostree_arg) else {
            b.not_counted = Some(format!("no single boot entry has ostree={ostree_arg}"));
            return b;
        };
        let bad = fallback_from(&entries, own);
        if let Some(newest) = bad.first() {
            // The commit is what an operator knows an upgrade by; the title when it cannot resolve.
            let what = update::deployment_of(sysroot, newest)
                .map(|d| d.checksum)
                .or_else(|| newest.title.clone())
                .unwrap_or_else(|| newest.id.clone());
            let msg = format!(
                "booted the previous deployment ({}) after {} failed tries of {what} ({})",
                own.file_name,
                newest.counter.and_then(|c| c.done).unwrap_or(0),
                newest.file_name
            );
            log::warn!("os: {msg}");
            b.pending.push(Notice::Stamp {
                kind: SubjectKind::Stage,
                name: "os fallback".into(),
                event: TimelineEvent::Failed,
            });
            b.fallback = Some(msg);
        }
        match own.counter {
            None => b.not_counted = Some(format!("{} is blessed", own.file_name)),
            Some(c) => {
                log::info!(
                    "os: booting {} ({} tries left); blessing once healthy",
                    own.file_name,
                    c.left
                );
                b.own = Some(own.file_name.clone());
            }
        }
        b
    }

    fn entries_dir(&self) -> PathBuf {
        self.sysroot.join(ENTRIES_DIR)
    }

    /// Whether /sysroot is a read-only mount now (the window is needed).
    fn sysroot_readonly(&self) -> bool {
        let info = std::fs::read_to_string(crate::paths::MOUNTINFO).unwrap_or_default();
        let target = self.sysroot.to_string_lossy();
        crate::procfs::parse_mountinfo(&info)
            .iter()
            .rev()
            .find(|m| m.mount_point == target)
            .is_some_and(|m| m.options.split(',').any(|o| o == "ro"))
    }

    fn bless(&mut self, out: &mut Vec<Notice>) {
        let Some(own) = self.own.clone() else {
            return;
        };
        let Some(to) = super::bls::parse_entry(&own, "linux /\n")
            .ok()
            .and_then(|e| blessed_name(&e))
        else {
            return;
        };
        let window = self.sysroot_readonly();
        let dir = self.entries_dir();
        match rename_entry(self.ops.as_mut(), &self.sysroot, window, &dir, &own, &to) {
            Ok(()) => {
                log::info!("os: boot blessed: {own} -> {to}");
                self.gate.stage = Stage::Blessed;
                self.own = None;
                self.not_counted = Some(format!("{to} is blessed"));
                out.push(Notice::Stamp {
                    kind: SubjectKind::Stage,
                    name: "os blessed".into(),
                    event: TimelineEvent::Ready,
                });
            }
            Err(e) => {
                // The next try (or the fallback) follows: better than a node stuck half-blessed.
                log::error!("os: cannot bless {own}: {e}");
                self.error = Some(e.to_string());
                self.gate.stage = Stage::Blessed;
            }
        }
    }

    fn act(&mut self, out: &mut Vec<Notice>) {
        match self.gate.stage.clone() {
            Stage::Bless => self.bless(out),
            Stage::Reboot(why) => {
                log::error!("os: this boot is not healthy: {why}; rebooting without blessing");
                out.push(Notice::Stamp {
                    kind: SubjectKind::Stage,
                    name: "os health".into(),
                    event: TimelineEvent::Failed,
                });
                out.push(Notice::Shutdown(ShutdownKind::Reboot));
                // Asked once: the stage stays, nothing more is pushed.
                self.gate.stage = Stage::Reboot(format!("{why} (reboot requested)"));
            }
            _ => {}
        }
    }

    /// Where update jobs log (tests point it into their directory).
    pub fn set_log(&mut self, log: PathBuf) {
        self.log = log;
    }

    fn start_job(&mut self, req: &serde_json::Value) -> Result<serde_json::Value, String> {
        if let Some(j) = &self.job {
            return Err(format!(
                "os {} of {} is still running (pid {})",
                j.action, j.target, j.pid
            ));
        }
        let action = req.get("action").and_then(|v| v.as_str()).unwrap_or("");
        let reboot = req.get("reboot").and_then(|v| v.as_bool()).unwrap_or(false);
        let (entries, _) = read_entries(&self.entries_dir()).map_err(|e| e.to_string())?;
        let own = own_entry(&entries, &self.ostree_arg);
        let booted = own
            .and_then(|e| update::deployment_of(&self.sysroot, e))
            .ok_or_else(|| {
                format!(
                    "cannot find the booted deployment (ostree={})",
                    self.ostree_arg
                )
            })?;
        let target = match action {
            "upgrade" => req
                .get("ref")
                .and_then(|v| v.as_str())
                .filter(|r| crate::control::protocol::valid_refspec(r))
                .ok_or("os upgrade needs a ref")?
                .to_string(),
            "rollback" => {
                let t = update::rollback_target(&entries, own.map(|e| e.id.as_str()))
                    .ok_or("no previous deployment to roll back to")?;
                update::deployment_of(&self.sysroot, t)
                    .ok_or_else(|| format!("{}: its deployment does not resolve", t.file_name))?
                    .checksum
            }
            other => return Err(format!("unknown os action {other:?}")),
        };
        let args = update::deploy_args(&booted.stateroot, &target);
        let pid = update::spawn_ostree(&args, &self.log).map_err(|e| format!("run ostree: {e}"))?;
        log::info!(
            "os: {action} to {target} started (ostree pid {pid}, log {})",
            self.log.display()
        );
        self.job = Some(Job {
            pid,
            action: action.to_string(),
            target: target.clone(),
            reboot,
        });
        Ok(json!({
            "message": format!("os {action} to {target} started; `initctl os status` shows how it ends"),
            "pid": pid,
        }))
    }

    fn job_done(&mut self, job: Job, status: ChildExit, out: &mut Vec<Notice>) {
        if status != ChildExit::Code(0) {
            let tail = update::log_tail(&self.log, 5).join(" | ");
            let msg = format!(
                "os {} to {} failed ({status:?}): {tail}",
                job.action, job.target
            );
            log::error!("{msg}");
            self.last_job = Some(msg);
            return;
        }
        // ostree rewrote every entry (and flipped boot.N): our counter is gone with the old
        // names, so this boot is no longer counted; the new default gets its tries.
        self.own = None;
        self.not_counted = Some(format!("entries rewritten by os {}", job.action));
        let mut msg = format!("os {} to {} deployed", job.action, job.target);
        if job.action == "upgrade" {
            let tries = match config::load(&self.cfg_path) {
                Ok(c) => c.tries,
                Err(e) => {
                    log::warn!("{e}; the new entry gets {} tries", self.cfg.tries);
                    self.cfg.tries
                }
            };
            match read_entries(&self.entries_dir())
                .map(|(e, _)| update::tries_rename(&e, None, tries))
            {
                Ok(Some((from, to))) => {
                    let window = self.sysroot_readonly();
                    let dir = self.entries_dir();
                    match rename_entry(self.ops.as_mut(), &self.sysroot, window, &dir, &from, &to) {
                        Ok(()) => msg.push_str(&format!("; {to} has {tries} tries")),
                        Err(e) => msg.push_str(&format!("; cannot count its tries: {e}")),
                    }
                }
                Ok(None) => msg.push_str("; no new uncounted default entry"),
                Err(e) => msg.push_str(&format!("; {e}")),
            }
        }
        log::info!("{msg}");
        self.last_job = Some(msg);
        if job.reboot {
            out.push(Notice::Shutdown(ShutdownKind::Reboot));
        }
    }

    fn counting(&self) -> bool {
        self.own.is_some()
    }
}

impl Subsystem for Blesser {
    fn name(&self) -> &'static str {
        "os"
    }
    fn poll_fds(&self) -> Vec<(std::os::fd::RawFd, PollFlags)> {
        Vec::new()
    }
    fn deadline(&self) -> Option<Instant> {
        self.counting().then(|| self.gate.next_due()).flatten()
    }
    fn on_ready(&mut self, _: std::os::fd::RawFd, _: PollFlags, _: Instant, _: &mut Vec<Notice>) {}
    fn tick(&mut self, now: Instant, out: &mut Vec<Notice>) {
        out.append(&mut self.pending);
        if self.counting() && self.gate.tick(now) {
            self.act(out);
        }
    }
    fn wants_units(&self) -> bool {
        self.counting() && matches!(self.gate.stage, Stage::Waiting(_) | Stage::Holding(_))
    }
    fn units_seen(&mut self, units: &UnitsView, now: Instant, out: &mut Vec<Notice>) {
        let health = judge(self.cfg.health.as_deref(), units);
        if self.gate.observe(health, now) {
            log::debug!("os: {:?}", self.gate.stage);
            self.act(out);
        }
    }
    fn request(
        &mut self,
        request: &serde_json::Value,
        _out: &mut Vec<Notice>,
    ) -> Result<serde_json::Value, String> {
        self.start_job(request)
    }
    fn child_exited(&mut self, pid: i32, status: ChildExit, out: &mut Vec<Notice>) -> bool {
        match self.job.take() {
            Some(job) if job.pid == pid => {
                self.job_done(job, status, out);
                true
            }
            other => {
                self.job = other;
                false
            }
        }
    }
    fn begin_shutdown(&mut self, _out: &mut Vec<Notice>) {
        // A shutdown before the blessing leaves the try consumed: that is the specification's rule.
        if self.counting() {
            log::info!("os: shutting down before this boot was blessed");
        }
    }
    fn status(&self) -> serde_json::Value {
        let (entries, bad) = read_entries(&self.entries_dir()).unwrap_or_default();
        let stage = match &self.gate.stage {
            Stage::Waiting(w) => format!("waiting: {w}"),
            Stage::Holding(_) => "healthy, holding".to_string(),
            Stage::Bless => "blessing".to_string(),
            Stage::Blessed => "blessed".to_string(),
            Stage::Reboot(w) => format!("unhealthy: {w}"),
        };
        json!({
            "counting": self.own,
            "stage": if self.counting() { Some(stage) } else { None },
            "not_counted": self.not_counted,
            "fallback": self.fallback,
            "error": self.error,
            "config_error": self.config_error,
            "health": self.cfg.health,
            "healthy_for_s": self.cfg.healthy_for.as_secs(),
            "deadline_s": self.cfg.deadline.as_secs(),
            "tries": self.cfg.tries,
            "entries": entries.iter().map(|e| json!({
                "file": e.file_name,
                "title": e.title,
                "version": e.version,
                "ostree": e.option("ostree"),
                "commit": update::deployment_of(&self.sysroot, e).map(|d| d.checksum),
                "booted": e.option("ostree") == Some(self.ostree_arg.as_str()),
                "tries_left": e.tries_left(),
                "tries_done": e.counter.and_then(|c| c.done),
                "blessed": e.blessed(),
                "bad": e.bad(),
            })).collect::<Vec<_>>(),
            "bad_entries": bad,
            "job": self.job.as_ref().map(|j| format!("{} to {} (pid {})", j.action, j.target, j.pid)),
            "last_job": self.last_job,
        })
    }
}

#[cfg(test)]
#[path = "bless_tests.rs"]
mod tests;
