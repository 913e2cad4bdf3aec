//! The boot sequence, in order: stage 0 (initramfs), stage 1 (machine setup), stage 2 (supervise),
//! stage 3 (shutdown). Container mode runs only stages 2 and 3.
//!
//! Machine mode starts here as PID 1 whatever the kernel called us: `/init` in an initramfs
//! (stage 0, then exec of the deployment's init), `/sbin/init`, or ostree's
//! `/usr/lib/ostree/ostree-prepare-root` path (direct mode: we assemble the deployment ourselves
//! and keep running; see `ostree` for why there is no re-exec).
//!
//! Where each step lives: `stage0` (the initramfs, then exec), `cmdline` (the kernel command
//! line), `ostree` (resolving and assembling the deployment
//! through the `mount_ops` seam), `mounts` (the early-mounts table), `machine`
//! (hostname, machine-id, sysctl) applied by `identity` right after containerd's spawn, stage 2 in `crate::supervisor`, `shutdown` (stage 3, with
//! `bounded` for its sync and unmounts), and
//! `fatal` (a boot that cannot continue).

use std::path::{Path, PathBuf};

pub mod bounded;
pub mod cmdline;
pub mod done_step;
mod fatal;
pub mod identity;
pub mod late_mounts;
pub mod machine;
pub mod mount_ops;
pub mod mounts;
pub mod ostree;
pub mod shutdown;
pub mod stage0;

pub use fatal::fatal;

use crate::cli;
use crate::paths::{ADMIN_UNIT_DIR, CGROUP_ROOT, LOG_DIR, MOUNTINFO, RUN_DIR, VENDOR_UNIT_DIR};
use crate::procfs;
use crate::supervisor;
use crate::sys;
use crate::timeline::{SubjectKind, Timeline, TimelineEvent};
use crate::units::schema::FACTS;
use mount_ops::SysMounts;

/// Runs the init with its own arguments (after argv[0]); returns an exit code only in container mode
/// or when the arguments are wrong and we are not PID 1.
pub fn main(args: &[String]) -> i32 {
    // The first thing the init does: the start of its own critical path in the timeline.
    let entered_us = crate::timeline::boottime_us();
    let container_env = std::env::var("container").ok();
    let opts = match cli::parse(args, container_env.as_deref()) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("lifsea-init: {e}");
            if std::process::id() != 1 {
                return 2;
            }
            cli::InitOptions::default()
        }
    };
    crate::klog::init(false);
    if opts.container {
        run_container(&opts, entered_us)
    } else {
        run_machine(&opts, entered_us)
    }
}

fn run_container(opts: &cli::InitOptions, entered_us: u64) -> i32 {
    let mut timeline = Timeline::new();
    // The same `startup` span as on a machine, so that the critical path (startup to containerd's
    // spawn) reads the same in both modes (`qemu/crit-path --native` compares them).
    mark_startup(&mut timeline, entered_us);
    timeline.mark(SubjectKind::Stage, "supervise", TimelineEvent::Start);
    let unit_dirs = if opts.unit_dirs.is_empty() {
        vec![
            PathBuf::from(VENDOR_UNIT_DIR),
            PathBuf::from(ADMIN_UNIT_DIR),
        ]
    } else {
        opts.unit_dirs.clone()
    };
    let cfg = supervisor::Config {
        unit_dirs,
        run_dir: opts
            .run_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(RUN_DIR)),
        log_dir: opts.log_dir.clone(),
        container: true,
        cgroup_root: None,
        cgroup_base: String::new(),
        root_controllers: false,
        etc_dir: PathBuf::from("/etc"),
        facts_reached: FACTS
            .iter()
            .filter(|f| opts.net_config.is_none() || !f.starts_with("network"))
            .map(|f| f.to_string())
            .collect(),
    };
    let mut subsystems = match &opts.net_config {
        Some(path) => match crate::net::boot::container(path, &cfg.run_dir) {
            Ok(net) => net,
            Err(e) => {
                eprintln!("lifsea-init: --net: {e}");
                return 2;
            }
        },
        None => Vec::new(),
    };
    // The container manager owns /dev: `device:` facts only look for their paths.
    subsystems.push(Box::new(crate::devices::facts::ContainerDeviceFacts::new(
        Path::new("/dev"),
        crate::devices::subsystem::DEVICE_TIMEOUT,
    )));
    // Ops sessions only when the environment names a containerd (tests/ns_ops.rs).
    if let Some(o) = crate::node::ops::Ops::from_env(opts.log_dir.clone()) {
        subsystems.push(Box::new(o));
    }
    let finished = supervisor::run(cfg, timeline, move || subsystems);
    shutdown::finish_container(finished.cgroup_cleanup.as_ref());
    0
}

fn run_machine(opts: &cli::InitOptions, entered_us: u64) -> i32 {
    let _ = opts;
    if std::process::id() != 1 {
        eprintln!("lifsea-init: machine mode runs only as PID 1 (use --container otherwise)");
        return 2;
    }
    let argv0 = std::env::args().next().unwrap_or_default();
    let mut timeline = Timeline::new();
    if stage0::in_initramfs(&argv0) {
        stage0::stage0(&mut timeline)
    }
    restore_stage0_stamps(&mut timeline);
    mark_startup(&mut timeline, entered_us);
    let finished = stage1(&mut timeline);
    shutdown::finish_machine(finished.kind, finished.deadline)
}

/// `startup`: from main() (`entered_us`) to now, stage 1 or the supervisor (the logger, the
/// arguments; stage 0 when it ran).
fn mark_startup(timeline: &mut Timeline, entered_us: u64) {
    timeline.mark_at(
        entered_us,
        SubjectKind::Stage,
        "startup",
        TimelineEvent::Start,
    );
    timeline.mark(SubjectKind::Stage, "startup", TimelineEvent::Ready);
}

/// Stage 1, in order: /proc → kernel command line → ostree root (direct mode) → early mounts
/// → supervise: units whose dependencies are met are spawned first (containerd), then the rest
/// of the mounts (fact `mounts`), the identity (hostname, machine-id, sysctl: fact `machine`) is applied and the subsystems that
/// run beside the units start (`machine_subsystems`). Each
/// step logs and degrades on failure; only an unusable root (bad `ostree=`) is fatal.
fn stage1(timeline: &mut Timeline) -> supervisor::Finished {
    use SubjectKind::Stage;
    use TimelineEvent::{Ready, Start};
    milestone(timeline, Stage, "machine-setup", Start);
    let params = read_cmdline();
    timeline.mark(Stage, "cmdline", Ready);
    timeline.mark(Stage, "root", Start);
    let ostree_booted = ostree_root(&params);
    milestone(timeline, Stage, "root", Ready);
    early_mounts(timeline, ostree_booted);
    let coldplug_all = params.coldplug_all;
    let bless = params.ostree.clone().filter(|_| ostree_booted);
    milestone(timeline, Stage, "machine-setup", Ready);
    timeline.mark(Stage, "supervise", Start);
    // Built only once the boot dispatch has spawned containerd (supervisor::run): none of this
    // is on its critical path, and it all runs beside it. The identity (hostname, machine-id,
    // sysctl.d) goes first, and units that need it wait for the fact `machine`.
    // The rest of the mounts table goes first (fact `mounts`), then the identity.
    let subsystems = move || {
        let late = late_mounts::LateMounts::apply(
            mounts::LATE_MOUNTS,
            Path::new("/"),
            Path::new(MOUNTINFO),
        );
        let identity = identity::Identity::apply(&identity::Identity::machine_paths());
        let mut subs: Vec<Box<dyn supervisor::Subsystem>> =
            vec![Box::new(late), Box::new(identity)];
        subs.extend(machine_subsystems(coldplug_all, bless.as_deref()));
        subs
    };
    supervise(std::mem::take(timeline), subsystems)
}

/// The subsystems that run beside the units on a machine: devices (coldplug, hotplug, the power
/// button; it reaches `devices` itself), the network (links, DHCP; `network`, `network-online`),
/// boot counting (bless this boot's entry once healthy) and the watchdog when os.toml arms one.
fn machine_subsystems(
    coldplug_all: bool,
    bless: Option<&str>,
) -> Vec<Box<dyn supervisor::Subsystem>> {
    let devices = crate::devices::subsystem::Devices::machine(coldplug_all);
    let mut subsystems = crate::net::boot::machine();
    subsystems.push(Box::new(devices));
    if let Some(arg) = bless {
        subsystems.push(Box::new(crate::os::bless::Blesser::machine(arg)));
    }
    if let Some(t) = crate::os::config::load(std::path::Path::new(crate::os::config::OS_CONFIG))
        .ok()
        .and_then(|c| c.watchdog)
    {
        subsystems.push(Box::new(crate::os::watchdog::WatchdogSub::machine(t)));
    }
    // Ops container sessions on request (`initctl ops`; nothing runs until one is asked for).
    subsystems.push(Box::new(crate::node::ops::Ops::machine(Some(
        PathBuf::from(LOG_DIR),
    ))));
    subsystems
}

/// Mounts /proc (the command line and mountinfo live there; the rest of the table waits until
/// after the pivot so it lands in the deployment) and parses /proc/cmdline.
fn read_cmdline() -> cmdline::BootParams {
    let proc_only = &mounts::EARLY_MOUNTS[..1];
    mounts::apply_early_mounts(proc_only, Path::new("/"), Path::new(MOUNTINFO));
    let params = cmdline::parse(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
    if params.debug {
        log::set_max_level(log::LevelFilter::Debug);
    }
    for w in &params.warnings {
        log::warn!("kernel command line: {w}");
    }
    params
}

/// The early-mounts table and `/run/ostree-booted` once /run is a tmpfs. The cgroup root's
/// controllers and the init's own group come after containerd's spawn (`supervisor::cgroup_root`).
fn early_mounts(timeline: &mut Timeline, ostree_booted: bool) {
    timeline.span("early-mounts", || {
        mounts::apply_early_mounts(mounts::EARLY_MOUNTS, Path::new("/"), Path::new(MOUNTINFO))
    });
    if ostree_booted {
        if let Err(e) = ostree::mark_booted(Path::new("/run")) {
            log::warn!("{e}");
        }
    }
}

/// Stage 2: the supervisor with the machine's directories and the facts reached so far.
fn supervise(
    timeline: Timeline,
    subsystems: impl FnOnce() -> Vec<Box<dyn supervisor::Subsystem>>,
) -> supervisor::Finished {
    let cfg = supervisor::Config {
        unit_dirs: vec![
            PathBuf::from(VENDOR_UNIT_DIR),
            PathBuf::from(ADMIN_UNIT_DIR),
        ],
        run_dir: PathBuf::from(RUN_DIR),
        log_dir: Some(PathBuf::from(LOG_DIR)),
        container: false,
        cgroup_root: Some(PathBuf::from(CGROUP_ROOT)),
        cgroup_base: String::new(),
        root_controllers: true,
        etc_dir: PathBuf::from("/etc"),
        // `mounts` comes with the late mounts, after the boot dispatch (`late_mounts`).
        facts_reached: Vec::new(),
    };
    supervisor::run(cfg, timeline, subsystems)
}

/// Stamps a stage in the timeline and prints it on the console with the guest uptime, so a
/// harness can time the boot from the serial log alone.
fn milestone(timeline: &mut Timeline, kind: SubjectKind, name: &str, event: TimelineEvent) {
    timeline.mark(kind, name, event);
    let us = timeline.entries().last().map(|s| s.at_us).unwrap_or(0);
    eprintln!(
        "lifsea-init: [{}.{:06}] {name} {event:?}",
        us / 1_000_000,
        us % 1_000_000
    );
}

/// Stage 0's stamps, carried across its exec in an environment variable (removed so units do
/// not inherit it).
fn restore_stage0_stamps(timeline: &mut Timeline) {
    let Ok(json) = std::env::var(stage0::TIMELINE_ENV) else {
        return;
    };
    std::env::remove_var(stage0::TIMELINE_ENV);
    if let Ok(stamps) = serde_json::from_slice::<Vec<crate::timeline::Stamp>>(json.as_bytes()) {
        for s in stamps {
            timeline.mark_at(s.at_us, s.kind, &s.name, s.event);
        }
    }
}

/// Direct mode: assemble the ostree deployment when `ostree=` is given and `/` is not one yet
/// (stage 0 already assembled it when `/sysroot` is a mount). Returns whether we run on an
/// ostree deployment. A deployment that cannot be assembled is fatal: the physical root holds
/// no operating system to run.
fn ostree_root(params: &cmdline::BootParams) -> bool {
    let Some(arg) = &params.ostree else {
        return false;
    };
    let info = std::fs::read_to_string(MOUNTINFO).unwrap_or_default();
    if procfs::is_mounted(&info, "/sysroot") {
        return true;
    }
    let root = Path::new("/");
    let root_ro = procfs::parse_mountinfo(&info)
        .iter()
        .rev()
        .find(|m| m.mount_point == "/")
        .is_some_and(|m| m.options.split(',').any(|o| o == "ro"));
    let assembled = ostree::resolve_deployment(root, arg).and_then(|d| {
        log::info!(
            "ostree: booting {} (stateroot {})",
            d.path.display(),
            d.stateroot
        );
        ostree::assemble_direct(&mut SysMounts, root, &d, root_ro, !params.sysroot_rw)
    });
    if let Err(e) = assembled {
        fatal(params, &e.to_string());
    }
    // The kernel's devtmpfs and our /proc stayed on the physical root: move them into the
    // deployment so the early-mounts table finds them in place.
    let info = std::fs::read_to_string(MOUNTINFO).unwrap_or_default();
    for api in ["dev", "proc", "sys", "run"] {
        let old = Path::new("/sysroot").join(api);
        if procfs::is_mounted(&info, &old.to_string_lossy()) {
            if let Err(e) = sys::mount::move_mount(&old, &Path::new("/").join(api)) {
                log::warn!("move {} into the deployment: {e}", old.display());
            }
        }
    }
    true
}

#[cfg(test)]
mod mount_order_tests;
