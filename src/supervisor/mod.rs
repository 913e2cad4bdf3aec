//! The supervisor: stage 2 of the init. One event loop runs every unit through its state machine.
//!
//! Layout: `model` (phases, events, actions) and `state` (the pure core: phase × event → actions,
//! its table in docs/supervisor.md) with `backoff` (pure restart delays); `event_loop` (poll over
//! signals, notify socket, pipes, cgroup watches, the control server and the subsystems), `actions`
//! (carrying out the core's actions), `inputs` (what arrives on descriptors); `subsystem` (the seam
//! for networking, devices and the power button) and `notices` (the loop's side of it);
//! `milestones` (what a transition leaves: timeline, console, unit log; boot complete);
//! `notify`/`readiness`/`output` (the protocols
//! services speak); `catalog` (loading and reload); `conditions` (re-evaluating unit conditions); `ops_impl` (the control API's `Operations`);
//! `report` (boot-timeline.json); `spawn`/`cgroup` (processes and their groups).

pub mod actions;
pub mod backoff;
#[cfg(test)]
mod boot_order_tests;
pub mod catalog;
pub mod cgroup;
#[cfg(test)]
mod cgroup_order_tests;
pub mod cgroup_root;
mod conditions;
pub mod deadline;
pub mod event_loop;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod http_probe;
pub mod inputs;
mod milestones;
pub mod model;
mod notices;
pub mod notify;
pub mod ops_impl;
pub mod output;
mod parts;
pub mod readiness;
mod recovery;
pub mod report;
pub mod shield;
pub mod spawn;
mod spawn_batch;
pub mod state;
#[cfg(test)]
mod state_tests;
pub mod subsystem;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::control::ops::ShutdownKind;
use crate::control::server::ControlServer;
use crate::sys::notify_socket::NotifySocket;
use crate::timeline::Timeline;
use cgroup::{CgroupCleanup, CgroupRoot};
use event_loop::{LoopIo, Supervisor};
use state::Event;
pub use subsystem::{ChildExit, Notice, Subsystem, UnitsView};

/// Everything the supervisor needs to know about where it runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Unit directories in priority order (later replaces earlier): vendor, then admin.
    pub unit_dirs: Vec<PathBuf>,
    /// Runtime directory: control socket, notify socket, boot-timeline.json (`/run/lifsea`).
    pub run_dir: PathBuf,
    /// Where unit logs are persisted once writable (`/var/log/lifsea`); `None` keeps them in memory.
    pub log_dir: Option<PathBuf>,
    /// Container mode: no machine setup, exit 0 on shutdown instead of reboot(2).
    pub container: bool,
    /// cgroup2 mount to use; `None` detects it from /proc/self/mountinfo (no cgroups if none found).
    pub cgroup_root: Option<PathBuf>,
    /// The cgroup (relative to `cgroup_root`) under which unit groups are created ("" on a machine).
    /// In container mode an empty base means "the cgroup the init was started in".
    pub cgroup_base: String,
    /// The hierarchy is the machine's own: the supervisor enables the root's controllers, after
    /// the boot dispatch unless a unit asks for a limit (`cgroup_root`, issue 11).
    pub root_controllers: bool,
    /// Where /etc/passwd and /etc/group are read from.
    pub etc_dir: PathBuf,
    /// Facts already true when the supervisor starts (in container mode: all of them).
    pub facts_reached: Vec<String>,
}

/// The init's own cgroup (from /proc/self/cgroup), relative to the cgroup2 root.
fn own_cgroup() -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| crate::procfs::parse_proc_cgroup(&t))
        .map(|p| p.trim_matches('/').to_string())
        .unwrap_or_default()
}

/// Finds the cgroup2 hierarchy and the base for unit groups; moves the init into `<base>/init` so
/// that `<base>` holds no processes itself (cgroup v2's rule for enabling controllers below it).
#[cfg(test)]
impl Config {
    /// A container-mode configuration for the lib's own tests: units from `unit_dirs`, sockets in
    /// `run_dir`, no cgroups, no facts reached yet.
    pub(crate) fn for_test(unit_dirs: Vec<PathBuf>, run_dir: PathBuf) -> Config {
        Config {
            unit_dirs,
            run_dir,
            log_dir: None,
            container: true,
            cgroup_root: None,
            cgroup_base: String::new(),
            root_controllers: false,
            etc_dir: PathBuf::from("/etc"),
            facts_reached: vec![],
        }
    }
}

fn setup_cgroups(cfg: &Config) -> (Option<CgroupRoot>, String, Option<CgroupCleanup>) {
    let root = match &cfg.cgroup_root {
        Some(p) => Some(CgroupRoot::at(p)),
        None => CgroupRoot::detect().ok(),
    }
    .map(|r| match cfg.root_controllers {
        true => r.with_deferred_controllers(),
        false => r,
    });
    let Some(root) = root else {
        log::info!("no cgroup2 filesystem: units share the init's cgroup; stops signal each unit's main pid and its process group");
        return (None, String::new(), None);
    };
    let mut cleanup = None;
    let base = if cfg.cgroup_base.is_empty() && cfg.container {
        let own = own_cgroup();
        // Started from a host's root cgroup: make a group of our own rather than spreading `init`
        // and `system/*` over the host's top level, where another instance would collide.
        let (base, own_group) = if own.is_empty() {
            (
                format!("lifsea-init-{}", crate::timeline::boottime_us()),
                true,
            )
        } else {
            (own, false)
        };
        cleanup = Some(CgroupCleanup::new(
            root.root.clone(),
            base.clone(),
            own_group,
        ));
        base
    } else {
        cfg.cgroup_base.trim_matches('/').to_string()
    };
    // A machine's init joins its group with the root's controllers, after the boot dispatch
    // (`cgroup_root`): nothing a unit needs, and a write of cgroup.procs costs under TCG.
    if !root.controllers_deferred() {
        cgroup_root::join_init_group(&root, &base);
    }
    log::debug!("unit cgroups under {}/{base}", root.root.display());
    (Some(root), base, cleanup)
}

/// Installs the units and dispatches the boot, which spawns every unit whose dependencies are
/// met, and only then builds the subsystems (their set-up is off the units' critical path).
fn boot_units_then_subsystems(
    sup: &mut Supervisor,
    catalog: Option<catalog::Catalog>,
    subsystems: impl FnOnce() -> Vec<Box<dyn Subsystem>>,
) {
    use crate::timeline::{SubjectKind::Stage, TimelineEvent};
    // The root's controllers are enabled here, before the boot dispatch, for every catalog, not
    // only one with resource limits (`cgroup_root::limits_need_controllers`). Enabling them after
    // containerd's spawn took them off its critical path, but twice a guest then hung for minutes
    // with both CPUs in soft lockups: PID 1 in cgroup_subtree_control_write (populating the new
    // controllers' files) and containerd in a page fault (vm_bench at load 9-16, vm_os on a
    // quiet host; issue 11's note). The first groups below the root switch kernel static keys on
    // (live code patching), which must not race with another CPU under TCG (`cgroup_root`'s
    // docs), so containerd waits for them.
    sup.catch_up_controllers();
    if let Some(catalog) = catalog {
        if recovery::guarded("installing units", || sup.install(catalog)).is_none() {
            sup.needs_recovery = true;
        }
    }
    sup.boot
        .timeline
        .mark(Stage, "supervisor-state", TimelineEvent::Ready);
    sup.boot
        .timeline
        .mark(Stage, "boot-dispatch", TimelineEvent::Start);
    let dispatched = recovery::guarded("the boot dispatch", || sup.dispatch(Event::Boot));
    sup.boot
        .timeline
        .mark(Stage, "boot-dispatch", TimelineEvent::Ready);
    if dispatched.is_none() {
        sup.needs_recovery = true;
        if !sup.core.booted() {
            // Lost before the core saw it: once more (a second panic on it is logged and dropped).
            sup.queue.push_front(Event::Boot);
        }
    }
    // After the boot dispatch: units spawned before it inherit the init's own oom_score_adj and
    // nice value, which is what they would be given back (`shield`); a first read and write of
    // /proc/self/oom_score_adj costs under TCG (issue 11). Before the subsystems: their helpers
    // (softdog's modprobe for the watchdog) are the init's own work and run with its boost, so the
    // watchdog is armed early in the boot, not after containerd and coldplug have had the CPUs.
    // Before anything else runs, if no unit's group switched the controllers' static keys on.
    sup.join_init_group_if_first();
    shield::shield_self(std::path::Path::new("/proc/self"));
    shield::after_dispatch();
    sup.boot
        .timeline
        .mark(Stage, "subsystems", TimelineEvent::Start);
    sup.subsystems = recovery::guarded("starting subsystems", subsystems).unwrap_or_default();
    sup.boot
        .timeline
        .mark(Stage, "subsystems", TimelineEvent::Ready);
    // Last: nothing waits for the init's own group, and the move costs tens of milliseconds under
    // TCG (`cgroup_root::join_init_group_late`).
    sup.join_init_group_late();
}

/// What the supervisor hands to stage 3 when every unit is down.
#[derive(Debug)]
pub struct Finished {
    pub kind: ShutdownKind,
    /// Container mode: the cgroups it created, to remove once everything is dead.
    pub cgroup_cleanup: Option<CgroupCleanup>,
    /// When the whole shutdown should be over (`LIFSEA_SHUTDOWN_TIMEOUT` after it began): stage 3
    /// bounds its sync and unmounts by what is left of it.
    pub deadline: Option<std::time::Instant>,
}

/// Runs units until a shutdown is requested and carried out (units stopped in reverse dependency
/// order); returns what kind of shutdown was asked for and what stage 3 must clean up. Never panics out: a panic inside one loop
/// iteration is caught, logged and the loop goes on.
///
/// `subsystems` is called only after the boot dispatch has spawned every unit whose
/// dependencies are met: opening netlink sockets, dumping links and reading modprobe.d are
/// nothing containerd needs, so they run after its spawn, not before (issue 11: the init's own
/// critical path).
pub fn run(
    cfg: Config,
    mut timeline: Timeline,
    subsystems: impl FnOnce() -> Vec<Box<dyn Subsystem>>,
) -> Finished {
    timeline.mark(
        crate::timeline::SubjectKind::Stage,
        "signals",
        crate::timeline::TimelineEvent::Start,
    );
    if let Err(e) = crate::sys::signal::block_handled() {
        log::error!("cannot block signals: {e}");
    }
    let signals = match crate::sys::signal::open_signalfd() {
        Ok(s) => s,
        Err(e) => {
            // Without a signalfd we can neither reap nor hear shutdown requests: give up cleanly.
            log::error!("cannot create signalfd: {e}; shutting down");
            return Finished {
                kind: ShutdownKind::Reboot,
                cgroup_cleanup: None,
                deadline: None,
            };
        }
    };
    if std::process::id() != 1 {
        if let Err(e) = crate::sys::power::become_subreaper() {
            log::warn!("cannot become child subreaper: {e}; orphans will not be reaped by us");
        }
    } else if !cfg.container {
        if let Err(e) = crate::sys::power::disable_ctrl_alt_del() {
            log::warn!("cannot route Ctrl-Alt-Del to SIGINT: {e}");
        }
        crate::klog::lift_kmsg_ratelimit(std::path::Path::new("/proc"));
    }
    timeline.mark(
        crate::timeline::SubjectKind::Stage,
        "signals",
        crate::timeline::TimelineEvent::Ready,
    );
    timeline.mark(
        crate::timeline::SubjectKind::Stage,
        "notify-socket",
        crate::timeline::TimelineEvent::Start,
    );
    if let Err(e) = std::fs::create_dir_all(&cfg.run_dir).and_then(|_| {
        std::fs::set_permissions(&cfg.run_dir, std::fs::Permissions::from_mode(0o755))
    }) {
        log::error!("cannot create {}: {e}", cfg.run_dir.display());
    }
    let notify_path = cfg.run_dir.join("notify.sock");
    // Never wait for it here: signals are blocked and nothing is reaped until the loop runs.
    let (notify, notify_retry_at) = match NotifySocket::bind(&notify_path) {
        Ok(n) => (Some(n), None),
        Err(e) => {
            log::error!(
                "cannot bind {}: {e}; running without sd_notify (units with ready = \"notify\" \
                 time out), retrying every {} s",
                notify_path.display(),
                event_loop::NOTIFY_RETRY.as_secs()
            );
            (
                None,
                std::time::Instant::now().checked_add(event_loop::NOTIFY_RETRY),
            )
        }
    };
    timeline.mark(
        crate::timeline::SubjectKind::Stage,
        "notify-socket",
        crate::timeline::TimelineEvent::Ready,
    );
    // Setup and the boot dispatch run under the same guard as the loop: a panic here would
    // otherwise end PID 1 before the loop that catches them ever ran.
    let (cgroups, base, cgroup_cleanup) = timeline
        .span("init-cgroup", || {
            recovery::guarded("cgroup setup", || setup_cgroups(&cfg))
        })
        .unwrap_or((None, String::new(), None));
    let dirs = cfg.unit_dirs.clone();
    // Two spans: under TCG the cold reads and the parser's first run cost apart (issue 11).
    let files = timeline.span("unit-files", || {
        recovery::guarded("reading units", || crate::units::load::read_dirs(&dirs))
    });
    let catalog = timeline.span("load-units", || {
        files.and_then(|f| {
            recovery::guarded("loading units", || {
                catalog::from_outcome(crate::units::load::parse_files(f))
            })
        })
    });
    timeline.mark(
        crate::timeline::SubjectKind::Stage,
        "supervisor-state",
        crate::timeline::TimelineEvent::Start,
    );
    let mut sup = Supervisor::new(cfg, timeline, cgroups, base);
    sup.env.cgroup_cleanup = cgroup_cleanup;
    sup.shutdown.limit = deadline::shutdown_limit_from_env();
    let control_path = sup.env.cfg.run_dir.join("control.sock");
    boot_units_then_subsystems(&mut sup, catalog, subsystems);
    // After the boot dispatch: no unit waits for the API, and no client can be served before
    // the loop runs anyway (issue 11: the init's own critical path).
    let server = sup.boot.timeline.span("control-socket", || {
        match ControlServer::bind(&control_path) {
            Ok(s) => Some(s),
            Err(e) => {
                log::error!("{e}; running without the control API");
                None
            }
        }
    });
    sup.open_log_dir();
    let mut io = LoopIo {
        signals,
        notify,
        notify_path,
        notify_retry_at,
        server,
    };
    let kind = event_loop::run_loop(&mut sup, &mut io);
    Finished {
        kind,
        cgroup_cleanup: sup.env.cgroup_cleanup.take(),
        deadline: sup.shutdown.deadline,
    }
}
