//! The boot sequence, in order: stage 0 (initramfs), stage 1 (machine setup), stage 2 (supervise),
//! stage 3 (shutdown). Container mode runs only stages 2 and 3.

use std::path::PathBuf;

use crate::cli;
use crate::control::ops::ShutdownKind;
use crate::supervisor;
use crate::timeline::{SubjectKind, Timeline, TimelineEvent};
use crate::units::schema::FACTS;

pub const VENDOR_UNIT_DIR: &str = "/usr/lib/lifsea/units";
pub const ADMIN_UNIT_DIR: &str = "/etc/lifsea/units";
pub const RUN_DIR: &str = "/run/lifsea";
pub const LOG_DIR: &str = "/var/log/lifsea";

/// Runs the init with its own arguments (after argv[0]); returns an exit code only in container mode
/// or when the arguments are wrong and we are not PID 1.
pub fn main(args: &[String]) -> i32 {
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
        run_container(&opts)
    } else {
        run_machine(&opts)
    }
}

fn run_container(opts: &cli::InitOptions) -> i32 {
    let mut timeline = Timeline::new();
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
        etc_dir: PathBuf::from("/etc"),
        facts_reached: FACTS.iter().map(|f| f.to_string()).collect(),
    };
    let _kind: ShutdownKind = supervisor::run(cfg, timeline);
    crate::shutdown::finish_container();
    0
}

fn run_machine(opts: &cli::InitOptions) -> i32 {
    let _ = opts;
    eprintln!("lifsea-init: machine mode not implemented yet");
    1
}
