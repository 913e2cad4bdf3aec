//! The `modprobe` face of this binary, so that an image needs no kmod: the kernel runs
//! `/proc/sys/kernel/modprobe -q -- NAME` when it wants a module (containerd mounting overlay,
//! iptables wanting `xt_*`, a driver's request_module), and the devices subsystem runs
//! `lifsea-init modprobe --origin hotplug -a MODALIAS...` and `lifsea-init modprobe --coldplug`
//! as helper processes so PID 1 never blocks in finit_module.
//!
//! ```text
//! modprobe [-q] [-n] [-b] [-a] [-d ROOT] [-S KVER] [--origin WHO] [--] NAME [PARAM=VALUE...]
//! modprobe --coldplug [--all] [-d ROOT] [-S KVER]
//! ```
//!
//! `-n` prints the plan (`insmod PATH PARAMS` lines) without loading; `-b` applies the blacklist
//! to names too; `-a` treats every argument as a module; `-d` prefixes every path (tests);
//! `--origin` names who asked in the record (default: `coldplug` with `--coldplug`, `kernel`
//! when the parent is a kernel thread, else `command`). `--coldplug` loads the modules of every device present, in rounds until one
//! loads nothing (a bus driver creates new devices), skipping `cpu:` modaliases unless `--all`.
//! Exit status: 0 when every required module is loaded (or built in), 1 otherwise.

use crate::collections::keyset::{KeySet, StrSet};
use std::path::{Path, PathBuf};

use super::coldplug::{collect_modaliases, SKIPPED_BY_DEFAULT};
use super::loader::{module_dir, Loader, RECORD_FILE};
use super::modprobe_d;

/// Parsed command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    pub quiet: bool,
    pub dry_run: bool,
    pub use_blacklist: bool,
    pub all: bool,
    pub root: Option<PathBuf>,
    pub kver: Option<String>,
    pub origin: Option<String>,
    pub coldplug: bool,
    pub coldplug_all: bool,
    pub names: Vec<String>,
    /// Parameters after the module name (without `-a`).
    pub params: Vec<String>,
}

pub fn parse_args(args: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = args.iter();
    let mut positional = Vec::new();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "-q" | "--quiet" => a.quiet = true,
            "-n" | "--dry-run" | "--show" => a.dry_run = true,
            "-b" | "--use-blacklist" => a.use_blacklist = true,
            "-a" | "--all" if !a.coldplug => a.all = true,
            "--all" => a.coldplug_all = true,
            "-d" | "--dirname" => a.root = Some(PathBuf::from(value(arg)?)),
            "-S" | "--set-version" => a.kver = Some(value(arg)?),
            "--origin" => a.origin = Some(value(arg)?),
            "--coldplug" => a.coldplug = true,
            "-v" | "--verbose" => {}
            "--" => {
                positional.extend(it.by_ref().cloned());
                break;
            }
            "-r" | "--remove" => return Err("removing modules is not supported".into()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => positional.push(s.to_string()),
        }
    }
    if a.coldplug {
        if !positional.is_empty() {
            return Err("--coldplug takes no module names".into());
        }
    } else if a.all {
        a.names = positional;
    } else if let Some((first, rest)) = positional.split_first() {
        a.names = vec![first.clone()];
        a.params = rest.to_vec();
    }
    if !a.coldplug && a.names.is_empty() {
        return Err("no module name given".into());
    }
    Ok(a)
}

fn origin_default() -> String {
    // The kernel's module requests run as children of a kernel thread (kthreadd, or the kworker
    // that waits for them), and kernel threads have an empty command line.
    let ppid = nix::unistd::getppid().as_raw();
    let kernel_parent =
        ppid == 2 || std::fs::read(format!("/proc/{ppid}/cmdline")).is_ok_and(|c| c.is_empty());
    if kernel_parent {
        "kernel".into()
    } else {
        "command".into()
    }
}

/// Entry point for `modprobe ...` / `lifsea-init modprobe ...`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let a = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("modprobe: {e}");
            return 1;
        }
    };
    let root = a.root.clone().unwrap_or_else(|| PathBuf::from("/"));
    let kver = a.kver.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_string()
    });
    let Some(dir) = module_dir(&root, &kver) else {
        eprintln!(
            "modprobe: FATAL: no modules.dep for kernel {kver} under {}",
            root.join("lib/modules").display()
        );
        return 1;
    };
    // modprobe.d problems are logged once, by the init when it starts; helpers stay quiet.
    let (mut cfg, _) = modprobe_d::load_system(&root);
    if let Some(name) = a.names.first() {
        if !a.params.is_empty() {
            let key = super::modalias::normalize(name);
            cfg.options
                .entry(key)
                .or_default()
                .extend(a.params.iter().cloned());
        }
    }
    let run_dir = root.join(crate::paths::RUN_DIR.trim_start_matches('/'));
    let record = run_dir.is_dir().then(|| run_dir.join(RECORD_FILE));
    let origin = match (&a.origin, a.coldplug) {
        (Some(o), _) => o.clone(),
        (None, true) => "coldplug".into(),
        (None, false) => origin_default(),
    };
    let mut loader = Loader::new(&dir, cfg, &root.join("proc/modules"), &origin, record);
    loader.dry_run = a.dry_run;
    if a.coldplug {
        coldplug(&mut loader, &root.join("sys"), a.coldplug_all, a.quiet);
        return 0;
    }
    let mut status = 0;
    for name in &a.names {
        if a.dry_run {
            match loader.steps_for(name, a.use_blacklist) {
                Ok(steps) => {
                    for s in steps {
                        let p = loader.module_dir.join(&s.path);
                        println!("insmod {} {}", p.display(), s.params);
                    }
                }
                Err(e) => {
                    eprintln!("modprobe: FATAL: {e}");
                    status = 1;
                }
            }
            continue;
        }
        if let Err(e) = loader.load(name, a.use_blacklist) {
            eprintln!("modprobe: FATAL: {e}");
            status = 1;
        }
    }
    status
}

/// Loads the modules of every device under `sys` in rounds, until a round loads nothing.
fn coldplug(loader: &mut Loader, sys: &Path, all: bool, quiet: bool) {
    let skip: &[&str] = if all { &[] } else { SKIPPED_BY_DEFAULT };
    let mut seen: StrSet = KeySet::new();
    for _ in 0..5 {
        let fresh: Vec<String> = collect_modaliases(sys)
            .into_iter()
            .filter(|m| !seen.contains(m) && !skip.iter().any(|p| m.starts_with(p)))
            .collect();
        seen.extend(fresh.iter().cloned());
        let mut loaded_any = false;
        for m in &fresh {
            match loader.load(m, true) {
                Ok(done) => loaded_any |= !done.is_empty(),
                // A device without a driver is normal (most of the PCI bridges).
                Err(super::loader::LoaderError::NotFound { .. }) => {}
                Err(e) => {
                    if !quiet {
                        eprintln!("lifsea-init coldplug: {e}");
                    }
                }
            }
        }
        if !loaded_any {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_the_kernels_call_and_ours() {
        let a = parse_args(&s(&["-q", "--", "fs-overlay"])).unwrap();
        assert!(a.quiet && !a.all);
        assert_eq!(a.names, s(&["fs-overlay"]));
        let a = parse_args(&s(&["nvme", "poll_queues=2", "x=1"])).unwrap();
        assert_eq!(a.names, s(&["nvme"]));
        assert_eq!(a.params, s(&["poll_queues=2", "x=1"]));
        let a = parse_args(&s(&["--origin", "hotplug", "-a", "virtio:d1", "pci:v2"])).unwrap();
        assert_eq!(a.origin.as_deref(), Some("hotplug"));
        assert_eq!(a.names, s(&["virtio:d1", "pci:v2"]));
        let a = parse_args(&s(&["--coldplug", "--all", "-d", "/tmp/r", "-S", "6.1.0"])).unwrap();
        assert!(a.coldplug && a.coldplug_all);
        assert_eq!(a.root, Some(PathBuf::from("/tmp/r")));
        assert_eq!(a.kver.as_deref(), Some("6.1.0"));
        assert_eq!(parse_args(&s(&["-q"])), Err("no module name given".into()));
        assert_eq!(
            parse_args(&s(&["-x", "a"])),
            Err("unknown option -x".into())
        );
        assert_eq!(parse_args(&s(&["-d"])), Err("-d needs a value".into()));
        assert_eq!(
            parse_args(&s(&["-r", "a"])),
            Err("removing modules is not supported".into())
        );
    }
}
