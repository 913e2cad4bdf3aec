//! The "devices" subsystem: coldplug beside the supervisor instead of before it, hotplug from
//! kernel uevents, `/dev/disk` links, node modes, the power button, and `device:` facts.
//!
//! Nothing here blocks PID 1. Modules are loaded by helper processes (`lifsea-init modprobe
//! --coldplug`, `... --origin hotplug -a MODALIAS...`) that the event loop reaps and hands back
//! through `child_exited`; the `devices` fact is reached when the coldplug helper has exited.
//! Uevents that ask for drivers while coldplug still runs are queued and handed to one helper
//! after it, since coldplug's later rounds would load most of them anyway. Links are made here
//! (a superblock read of a few kilobytes per disk) so their table has one owner.
//!
//! Facts: `devices` when coldplug settles; a `device:/dev/PATH` fact that a unit names (the
//! supervisor offers them through `facts_wanted`) when PATH exists, checked on every loop pass,
//! or failed after `device_timeout` (units that require it fail, units ordered after it go on).

use crate::collections::strmap::{FdMap, StrMap};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use super::facts::DeviceFacts;
use super::links::{self, BlockInfo, LinkTable};
use super::loader::{parse_records, RECORD_FILE};
use super::power::{self, PowerButtons};
use super::probe_jobs::ProbeJobs;
use super::rules::{self, Rule};
use super::uevent::{self, Action, Uevent, UeventError, MAX_UEVENT_LEN};
use crate::control::ops::ShutdownKind;
use crate::supervisor::subsystem::{ChildExit, Notice, PollFlags, Subsystem};
use crate::sys::uevent_socket::{Received, UeventSocket};
use crate::timeline::{SubjectKind, TimelineEvent};

/// Where the subsystem works; tests point every path into a temporary tree.
#[derive(Debug, Clone)]
pub struct DevicesConfig {
    pub dev_root: PathBuf,
    pub sys_root: PathBuf,
    /// `/run/lifsea`: where helpers append the load record.
    pub run_dir: PathBuf,
    /// The binary run as the module-loading helper (`/proc/self/exe`); `None` loads nothing.
    pub helper: Option<PathBuf>,
    /// Also coldplug `cpu:` modaliases (`lifsea.coldplug=all`).
    pub coldplug_all: bool,
    /// How long a `device:` fact may stay unreached before it fails.
    pub device_timeout: Duration,
    /// Rules files, vendor then admin.
    pub rules_files: Vec<PathBuf>,
    /// Where passwd and group are read for the rules.
    pub etc_dir: PathBuf,
    /// The binary run to read superblocks (`/proc/self/exe probe-block`); `None` reads them in
    /// this process (tests).
    pub probe_helper: Option<PathBuf>,
    /// How long a superblock probe helper may take before it is abandoned.
    pub probe_timeout: Duration,
}

impl DevicesConfig {
    /// The machine's paths.
    pub fn machine(coldplug_all: bool) -> DevicesConfig {
        DevicesConfig {
            dev_root: PathBuf::from("/dev"),
            sys_root: PathBuf::from("/sys"),
            run_dir: PathBuf::from(crate::paths::RUN_DIR),
            helper: Some(PathBuf::from("/proc/self/exe")),
            coldplug_all,
            device_timeout: DEVICE_TIMEOUT,
            rules_files: vec![
                PathBuf::from(rules::VENDOR_RULES),
                PathBuf::from(rules::ADMIN_RULES),
            ],
            etc_dir: PathBuf::from("/etc"),
            probe_helper: Some(PathBuf::from("/proc/self/exe")),
            probe_timeout: PROBE_TIMEOUT,
        }
    }
}

/// How long reading one batch of superblocks may take: a healthy disk answers in milliseconds,
/// even under TCG.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long units wait for a `device:` fact by default (systemd's device timeout).
pub const DEVICE_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coldplug {
    NotStarted,
    Running { pid: i32, since: Instant },
    Done { took: Duration },
}

/// Counters for `initctl devices`.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    uevents: u64,
    dropped: u64,
    foreign: u64,
    helpers: u64,
}

pub struct Devices {
    cfg: DevicesConfig,
    socket: Option<UeventSocket>,
    links: LinkTable,
    rules: Vec<Rule>,
    coldplug: Coldplug,
    /// Running hotplug helpers: pid → the modaliases they were given.
    helpers: FdMap<Vec<String>>,
    /// Modaliases from uevents that arrived while coldplug ran.
    queued: Vec<String>,
    buttons: PowerButtons,
    shutting_down: bool,
    counters: Counters,
    /// Last few dropped messages' reasons, for `initctl devices`.
    last_errors: Vec<String>,
    /// `device:` facts units wait for.
    facts: DeviceFacts,
    /// Superblock readers under way (none without a helper: then PID 1 reads, as in tests).
    probes: Option<ProbeJobs>,
    /// Devices to probe, gathered over one pass.
    to_probe: Vec<String>,
    /// The probe whose answer completes coldplug (the `devices` fact waits for it).
    settle_probe: Option<i32>,
}

const MAX_ERRORS_KEPT: usize = 8;

impl Devices {
    /// Sets the subsystem up; `socket` is the uevent source (the kernel's, or a test's).
    pub fn new(cfg: DevicesConfig, socket: Option<UeventSocket>) -> Devices {
        let (rules, errors) = rules::load(&cfg.rules_files, &cfg.etc_dir);
        for e in errors {
            log::warn!("devices: {e}");
        }
        Devices {
            links: LinkTable::new(&cfg.dev_root),
            facts: DeviceFacts::new(&cfg.dev_root, cfg.device_timeout),
            probes: cfg.probe_helper.as_ref().map(|h| {
                ProbeJobs::new(
                    h,
                    &cfg.sys_root.join("class/block"),
                    &cfg.dev_root,
                    cfg.probe_timeout,
                )
            }),
            to_probe: Vec::new(),
            settle_probe: None,
            cfg,
            socket,
            rules,
            coldplug: Coldplug::NotStarted,
            helpers: FdMap::new(),
            queued: Vec::new(),
            buttons: PowerButtons::default(),
            shutting_down: false,
            counters: Counters::default(),
            last_errors: Vec::new(),
        }
    }

    /// The machine's subsystem: the kernel's uevent socket, the standard paths. modprobe.d
    /// problems are logged here, once per boot (the helpers stay quiet about them).
    pub fn machine(coldplug_all: bool) -> Devices {
        let socket = match UeventSocket::open_kernel() {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!("devices: uevent socket: {e}; no hotplug");
                None
            }
        };
        let (_, errors) = super::modprobe_d::load_system(Path::new("/"));
        for e in errors {
            log::warn!("modprobe.d: {e}");
        }
        if let Some(p) = set_kernel_modprobe(Path::new(KERNEL_MODPROBE), KERNEL_MODPROBE_CANDIDATES)
        {
            log::info!("devices: kernel module requests go to {}", p.display());
        }
        Devices::new(DevicesConfig::machine(coldplug_all), socket)
    }

    /// Starts coldplug: the helper, plus links, modes and power buttons of what is present.
    fn start(&mut self, out: &mut Vec<Notice>) {
        out.push(stamp("coldplug", TimelineEvent::Start));
        for e in links::standard_links(&self.cfg.dev_root) {
            log::debug!("devices: {e}");
        }
        let (_, errors) = rules::apply_existing(&self.rules, &self.cfg.dev_root);
        for e in errors {
            log::warn!("devices: {e}");
        }
        self.scan_block_devices();
        self.flush_probes();
        self.scan_power_buttons();
        let mut args = vec!["--coldplug".to_string()];
        if self.cfg.coldplug_all {
            args.push("--all".into());
        }
        match self.spawn_helper(&args) {
            Some(pid) => {
                self.coldplug = Coldplug::Running {
                    pid,
                    since: Instant::now(),
                }
            }
            None => self.finish_coldplug(Duration::ZERO, out),
        }
    }

    fn finish_coldplug(&mut self, took: Duration, out: &mut Vec<Notice>) {
        self.coldplug = Coldplug::Done { took };
        log::info!("devices: coldplug done in {} ms", took.as_millis());
        // Drivers loaded by coldplug made new disks and input devices: their uevents come too,
        // but a scan now does not depend on that.
        self.scan_block_devices();
        self.settle_probe = self.flush_probes();
        self.scan_power_buttons();
        if self.settle_probe.is_none() {
            self.reach_settled(out);
        }
        if !self.queued.is_empty() {
            let q = std::mem::take(&mut self.queued);
            self.load_for(q);
        }
    }

    /// Coldplug's drivers are loaded and the disks present then have their links.
    fn reach_settled(&mut self, out: &mut Vec<Notice>) {
        self.settle_probe = None;
        out.push(stamp("coldplug", TimelineEvent::Ready));
        out.push(Notice::FactReached("devices".into()));
    }

    /// Probes the devices gathered this pass in one helper; returns its pid. Without a helper
    /// (tests) PID 1 reads them itself.
    fn flush_probes(&mut self) -> Option<i32> {
        if self.to_probe.is_empty() {
            return None;
        }
        let devs = std::mem::take(&mut self.to_probe);
        let class = self.cfg.sys_root.join("class/block");
        let Some(jobs) = self.probes.as_mut() else {
            for d in devs {
                let info = links::probe(&d, &class, &self.cfg.dev_root);
                self.apply_probe(&info);
            }
            return None;
        };
        match jobs.start(&devs, Instant::now()) {
            Ok(pids) => pids.last().copied(),
            Err(e) => {
                log::warn!(
                    "devices: cannot start the probe helper ({e}): no /dev/disk links for {}",
                    devs.join(" ")
                );
                None
            }
        }
    }

    /// Makes the links for what a probe found.
    fn apply_probe(&mut self, info: &BlockInfo) {
        let devname = &info.devname;
        let names = links::link_names(info);
        let (created, errors) = self.links.set(devname, names);
        for e in errors {
            log::warn!("devices: {e}");
        }
        for l in created {
            log::debug!("devices: link /dev/{l} -> {devname}");
        }
    }

    /// Runs `helper modprobe ARGS...`; returns its pid.
    fn spawn_helper(&mut self, args: &[String]) -> Option<i32> {
        let helper = self.cfg.helper.as_ref()?;
        let mut cmd = Command::new(helper);
        std::os::unix::process::CommandExt::arg0(&mut cmd, "lifsea-init");
        cmd.arg("modprobe").args(args).stdin(Stdio::null());
        crate::supervisor::shield::unboost(&mut cmd);
        match cmd.spawn() {
            Ok(child) => {
                self.counters.helpers += 1;
                // The event loop reaps it (waitpid(-1)); the Child handle is not waited on.
                Some(child.id() as i32)
            }
            Err(e) => {
                log::warn!("devices: run {}: {e}", helper.display());
                None
            }
        }
    }

    /// Loads the drivers for modaliases in one hotplug helper.
    fn load_for(&mut self, modaliases: Vec<String>) {
        if modaliases.is_empty() {
            return;
        }
        let mut args: Vec<String> = ["--origin", "hotplug", "-q", "-a", "--"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(modaliases.iter().cloned());
        if let Some(pid) = self.spawn_helper(&args) {
            self.helpers.insert(pid, modaliases);
        }
    }

    fn scan_block_devices(&mut self) {
        let class = self.cfg.sys_root.join("class/block");
        for name in crate::devices::blockdev::list_block_devices(&class) {
            self.update_links(&name);
        }
    }

    /// Queues `devname` for the pass's probe (`flush_probes`).
    fn update_links(&mut self, devname: &str) {
        if !self.to_probe.iter().any(|d| d == devname) {
            self.to_probe.push(devname.to_string());
        }
    }

    fn scan_power_buttons(&mut self) {
        let class = self.cfg.sys_root.join("class/input");
        for ev in power::find_power_buttons(&class) {
            self.open_button(&ev);
        }
    }

    fn open_button(&mut self, event: &str) {
        match self.buttons.open(&self.cfg.dev_root, event) {
            Ok(true) => log::info!("devices: power button on /dev/input/{event}"),
            Ok(false) => {}
            Err(e) => log::warn!("devices: open /dev/input/{event}: {e}"),
        }
    }

    fn drop_message(&mut self, e: &UeventError) {
        self.counters.dropped += 1;
        // udevd's re-broadcasts are expected where udevd runs (tests on a host); not worth a line.
        if *e != UeventError::Libudev {
            log::warn!("devices: dropped uevent: {e}");
            if self.last_errors.len() == MAX_ERRORS_KEPT {
                self.last_errors.remove(0);
            }
            self.last_errors.push(e.to_string());
        }
    }

    /// Handles one raw uevent datagram (from the socket, or a test).
    pub fn handle_message(&mut self, buf: &[u8], out: &mut Vec<Notice>) {
        self.handle_one(buf, out);
        self.flush_probes();
    }

    /// One message; block devices it names are probed at the end of the batch.
    fn handle_one(&mut self, buf: &[u8], out: &mut Vec<Notice>) {
        match uevent::parse(buf) {
            Ok(ev) => {
                self.counters.uevents += 1;
                let mut modaliases = Vec::new();
                self.handle(&ev, &mut modaliases);
                self.request_drivers(modaliases);
                self.facts.check(Instant::now(), out);
            }
            Err(e) => self.drop_message(&e),
        }
    }

    fn request_drivers(&mut self, modaliases: Vec<String>) {
        if modaliases.is_empty() {
            return;
        }
        match self.coldplug {
            Coldplug::Done { .. } => self.load_for(modaliases),
            _ => self.queued.extend(modaliases),
        }
    }

    fn handle(&mut self, ev: &Uevent, modaliases: &mut Vec<String>) {
        log::debug!("devices: uevent {:?} {}", ev.action, ev.devpath);
        if ev.action == Action::Add {
            if let Some(m) = ev.modalias() {
                if !m.is_empty() && !modaliases.iter().any(|x| x == m) {
                    modaliases.push(m.to_string());
                }
            }
        }
        let Some(devname) = ev.devname() else {
            return;
        };
        let block = ev.subsystem() == Some("block");
        match ev.action {
            Action::Add | Action::Change => {
                if ev.action == Action::Add {
                    if let Err(e) = rules::apply(&self.rules, &self.cfg.dev_root, devname) {
                        log::warn!("devices: {e}");
                    }
                }
                if block {
                    self.update_links(devname);
                }
                if ev.subsystem() == Some("input") && ev.action == Action::Add {
                    if let Some(event) = devname.strip_prefix("input/") {
                        let class = self.cfg.sys_root.join("class/input");
                        if power::is_power_button(&class, event) {
                            self.open_button(event);
                        }
                    }
                }
            }
            Action::Remove => {
                if block {
                    self.to_probe.retain(|d| d != devname);
                    if let Some(p) = self.probes.as_mut() {
                        p.invalidate(devname);
                    }
                    let (removed, errors) = self.links.remove(devname);
                    for e in errors {
                        log::warn!("devices: {e}");
                    }
                    for l in removed {
                        log::debug!("devices: removed /dev/{l}");
                    }
                }
                if let Some(event) = devname.strip_prefix("input/") {
                    self.buttons.close(event);
                }
            }
            _ => {}
        }
    }

    fn read_socket(&mut self, out: &mut Vec<Notice>) {
        let mut buf = vec![0u8; MAX_UEVENT_LEN + 1];
        // Bounded: a flood must not starve the rest of the loop; poll reports the rest.
        for _ in 0..256 {
            let Some(sock) = &self.socket else { return };
            match sock.receive(&mut buf) {
                Ok(Received::Message(n)) => {
                    let msg = buf[..n].to_vec();
                    self.handle_one(&msg, out);
                }
                Ok(Received::Foreign(pid)) => {
                    self.counters.foreign += 1;
                    log::debug!("devices: dropped uevent from port {pid} (not the kernel)");
                }
                Ok(Received::Empty) => break,
                Err(e) => {
                    // ENOBUFS: the kernel dropped messages for us; nothing to do but go on.
                    log::warn!("devices: uevent socket: {e}");
                    break;
                }
            }
        }
        self.flush_probes();
    }

    /// A probe helper's answer: links for what it found, and the `devices` fact when it was
    /// coldplug's last.
    fn probe_finished(&mut self, pid: i32, answers: Vec<BlockInfo>, out: &mut Vec<Notice>) {
        for info in &answers {
            self.apply_probe(info);
        }
        if self.settle_probe == Some(pid) {
            self.reach_settled(out);
        }
        self.facts.check(Instant::now(), out);
    }

    /// Gives up on probes past their bound: a disk that does not answer gets no links, and
    /// coldplug does not wait for it.
    fn abandon_overdue(&mut self, now: Instant, out: &mut Vec<Notice>) {
        let Some(jobs) = self.probes.as_mut() else {
            return;
        };
        if !jobs.next_deadline().is_some_and(|d| now >= d) {
            return;
        }
        let settle = self.settle_probe;
        let mut settled = false;
        for (pid, missing, answers) in jobs.overdue(now) {
            log::warn!(
                "devices: reading the superblock of {} took over {} s (a hung disk?): abandoned, \
                 no /dev/disk links for it",
                missing.join(" "),
                self.cfg.probe_timeout.as_secs()
            );
            for info in &answers {
                self.apply_probe(info);
            }
            settled |= settle == Some(pid);
        }
        if settled {
            self.reach_settled(out);
        }
    }

    /// Whether the `devices` fact has been reached.
    pub fn settled(&self) -> bool {
        matches!(self.coldplug, Coldplug::Done { .. }) && self.settle_probe.is_none()
    }

    /// Links made so far, by device.
    pub fn links(&self) -> &StrMap<Vec<(String, String)>> {
        self.links.all()
    }

    /// Open power buttons (`eventN`).
    pub fn power_buttons(&self) -> Vec<String> {
        self.buttons.names()
    }
}

/// The kernel's module-request helper setting.
pub const KERNEL_MODPROBE: &str = "/proc/sys/kernel/modprobe";

/// Where an image ships this binary as `modprobe` (a link to it): the first one present is given
/// to the kernel. `/sbin/modprobe`, the kernel's default, needs no setting.
pub const KERNEL_MODPROBE_CANDIDATES: &[&str] = &["/usr/lib/lifsea/modprobe"];

/// Points the kernel's module requests at the first candidate that exists; returns it.
pub fn set_kernel_modprobe(setting: &Path, candidates: &[&str]) -> Option<PathBuf> {
    let found = candidates.iter().map(PathBuf::from).find(|p| p.exists())?;
    match std::fs::write(setting, found.as_os_str().as_encoded_bytes()) {
        Ok(()) => Some(found),
        Err(e) => {
            log::warn!("devices: write {}: {e}", setting.display());
            None
        }
    }
}

fn stamp(name: &str, event: TimelineEvent) -> Notice {
    Notice::Stamp {
        kind: SubjectKind::Stage,
        name: name.to_string(),
        event,
    }
}

impl Subsystem for Devices {
    fn name(&self) -> &'static str {
        "devices"
    }

    fn poll_fds(&self) -> Vec<(RawFd, PollFlags)> {
        let mut v: Vec<(RawFd, PollFlags)> = self
            .socket
            .iter()
            .map(|s| (s.raw_fd(), PollFlags::POLLIN))
            .collect();
        v.extend(
            self.buttons
                .fds()
                .into_iter()
                .map(|fd| (fd, PollFlags::POLLIN)),
        );
        if let Some(p) = &self.probes {
            v.extend(p.fds().into_iter().map(|fd| (fd, PollFlags::POLLIN)));
        }
        v
    }

    fn deadline(&self) -> Option<Instant> {
        // Coldplug starts on the first pass of the loop.
        if self.coldplug == Coldplug::NotStarted {
            return Some(Instant::now());
        }
        let probe = self.probes.as_ref().and_then(ProbeJobs::next_deadline);
        [self.facts.next_deadline(), probe]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_ready(&mut self, fd: RawFd, _revents: PollFlags, _now: Instant, out: &mut Vec<Notice>) {
        if self.socket.as_ref().is_some_and(|s| s.raw_fd() == fd) {
            self.read_socket(out);
        } else if self.probes.as_mut().is_some_and(|p| p.read_ready(fd)) {
            // Answers are taken when the helper is reaped.
        } else if self.buttons.read(fd) {
            if self.shutting_down {
                log::info!("devices: power button pressed again; shutdown already under way");
            } else {
                log::info!("devices: power button pressed: powering off");
                self.shutting_down = true;
                out.push(Notice::Shutdown(ShutdownKind::Poweroff));
            }
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Notice>) {
        if self.coldplug == Coldplug::NotStarted {
            self.start(out);
        }
        self.abandon_overdue(now, out);
        self.facts.check(now, out);
    }

    fn facts_wanted(&mut self, facts: &[String], now: Instant, out: &mut Vec<Notice>) {
        self.facts.want(facts, now);
        self.facts.check(now, out);
    }

    fn child_exited(&mut self, pid: i32, status: ChildExit, out: &mut Vec<Notice>) -> bool {
        if let Some(answers) = self.probes.as_mut().and_then(|p| p.finished(pid)) {
            if status != ChildExit::Code(0) {
                log::warn!("devices: probe helper ended with {status:?}");
            }
            self.probe_finished(pid, answers, out);
            return true;
        }
        if let Coldplug::Running { pid: p, since } = self.coldplug {
            if p == pid {
                if status != ChildExit::Code(0) {
                    log::warn!("devices: coldplug helper ended with {status:?}");
                }
                self.finish_coldplug(since.elapsed(), out);
                return true;
            }
        }
        match self.helpers.remove(&pid) {
            Some(m) => {
                // Most devices have no driver module (bridges, input devices): a helper that
                // found none exits 1. Real load failures are in the record (`initctl devices`).
                if status != ChildExit::Code(0) {
                    log::debug!(
                        "devices: hotplug helper for {} ended {status:?}",
                        m.join(" ")
                    );
                }
                true
            }
            None => false,
        }
    }

    fn begin_shutdown(&mut self, _out: &mut Vec<Notice>) {
        self.shutting_down = true;
    }

    fn status(&self) -> serde_json::Value {
        let (state, ms) = match self.coldplug {
            Coldplug::NotStarted => ("not started", None),
            Coldplug::Running { since, .. } => {
                ("running", Some(since.elapsed().as_millis() as u64))
            }
            Coldplug::Done { took } => ("done", Some(took.as_millis() as u64)),
        };
        let records = std::fs::read_to_string(self.cfg.run_dir.join(RECORD_FILE))
            .map(|t| parse_records(&t))
            .unwrap_or_default();
        // serde_json's own (sorted) map: the same object as a serialised `BTreeMap`, without a
        // B-tree and a serializer of its own for this one table. Inserted one by one: `collect`
        // would sort first (a sort instance of its own).
        let mut links = serde_json::Map::new();
        for (dev, l) in self.links.all() {
            links.insert(
                dev.clone(),
                json!(l.iter().map(|(n, _)| n).collect::<Vec<_>>()),
            );
        }
        json!({
            "coldplug": { "state": state, "ms": ms },
            "modules": records,
            "links": links,
            "power_buttons": self.buttons.names(),
            "uevents": {
                "handled": self.counters.uevents,
                "dropped": self.counters.dropped,
                "foreign": self.counters.foreign,
                "last_errors": self.last_errors,
            },
            "helpers": { "started": self.counters.helpers, "running": self.helpers.len() },
            "probes_running": self.probes.as_ref().map_or(0, ProbeJobs::running),
            "rules": self.rules.len(),
            "waiting_for": self.facts.waiting_for(),
        })
    }
}

#[cfg(test)]
#[path = "subsystem_tests.rs"]
mod tests;
