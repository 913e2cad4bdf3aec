//! Stage 0: lifsea-init as `/init` of an initramfs written by `lifsea-init mkinitramfs`.
//!
//! Mount /proc, /sys, /dev; load modules by modalias (coldplug, repeated while waiting); wait for
//! `root=` (bounded by `lifsea.rootwait`); mount it at /sysroot; assemble the ostree deployment at
//! /deploy with the physical root under its `sysroot`; move /dev, /proc, /sys into it; delete the
//! initramfs files (never crossing into mounts); MS_MOVE the new root onto `/`, chroot; exec
//! `init=` or /sbin/init — lifsea-init again, whose stage 1 finds the root assembled.

use std::path::{Path, PathBuf};

use super::cmdline::{self, BootParams};
use super::mount_ops::{MountOps, SysMounts};
use super::ostree;
use crate::devices::blockdev;
use crate::devices::coldplug::Coldplug;
use crate::sys;
use crate::timeline::{SubjectKind, Timeline, TimelineEvent};

/// Where stage 0 mounts the physical root and assembles the deployment.
pub const SYSROOT: &str = "/sysroot";
pub const DEPLOY_TARGET: &str = "/deploy";
/// Carries stage 0's timeline stamps across the exec into stage 1.
pub const TIMELINE_ENV: &str = "LIFSEA_TIMELINE";

#[derive(Debug, thiserror::Error)]
pub enum Stage0Error {
    #[error("cannot mount root device {dev} on {target}: {}", .attempts.iter().map(|(t, e)| format!("{t}: {e}")).collect::<Vec<_>>().join("; "))]
    MountRoot {
        dev: PathBuf,
        target: PathBuf,
        /// Each filesystem type tried and why it failed.
        attempts: Vec<(String, nix::Error)>,
    },
}

/// Whether this process is `/init` of an initramfs: PID 1 and either called `/init` or running
/// on a ramfs/tmpfs root.
pub fn in_initramfs(argv0: &str) -> bool {
    std::process::id() == 1 && (argv0 == "/init" || sys::mount::root_is_ramfs())
}

/// Filesystem types to try when `rootfstype=` is absent: block-device filesystems the kernel knows.
/// ext4 goes first: it is the usual root and also mounts ext2/ext3, which it registers ahead of
/// itself (trying those first only adds failed attempts and console noise).
pub fn block_fstypes(proc_filesystems: &str) -> Vec<String> {
    let mut v: Vec<String> = proc_filesystems
        .lines()
        .filter(|l| !l.starts_with("nodev"))
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(i) = v.iter().position(|t| t == "ext4") {
        let t = v.remove(i);
        v.insert(0, t);
    }
    v
}

/// Removes the initramfs' own files below `dir`, never descending into other filesystems
/// (`root_dev`), so the new root and moved mounts are untouched.
pub fn remove_tree_on_dev(dir: &Path, root_dev: u64, keep: &Path) {
    use std::os::unix::fs::MetadataExt;
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p == keep {
            continue;
        }
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.dev() != root_dev {
            continue;
        }
        if m.is_dir() {
            remove_tree_on_dev(&p, root_dev, keep);
            let _ = std::fs::remove_dir(&p);
        } else {
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Stage 0; never returns (execs the next init, or handles a fatal error).
pub fn stage0(timeline: &mut Timeline) -> ! {
    timeline.mark(SubjectKind::Stage, "initramfs", TimelineEvent::Start);
    // The first three rows of the table: /proc, /sys, /dev (moved into the new root later).
    super::mounts::apply_early_mounts(
        &super::mounts::EARLY_MOUNTS[..3],
        Path::new("/"),
        Path::new("/proc/self/mountinfo"),
    );
    let params = cmdline::parse(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
    if params.debug {
        log::set_max_level(log::LevelFilter::Debug);
    }
    for w in &params.warnings {
        log::warn!("kernel command line: {w}");
    }
    let kver = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let module_dir = PathBuf::from("/lib/modules").join(kver.trim());
    let mut coldplug = Coldplug::new(
        &module_dir,
        Path::new("/proc/modules"),
        params.module_blacklist.clone(),
        params.coldplug_all,
    );
    coldplug.run(Path::new("/sys"), 5);
    timeline.mark(
        SubjectKind::Stage,
        "initramfs-modules",
        TimelineEvent::Ready,
    );

    let Some(spec) = params.root.clone() else {
        super::fatal(
            &params,
            "no root= on the kernel command line; cannot find the root device",
        )
    };
    let dev = match blockdev::find_root(
        &spec,
        Path::new("/dev"),
        Path::new("/sys/class/block"),
        params.rootwait,
        || {
            coldplug.round(Path::new("/sys"));
        },
    ) {
        Ok(d) => d,
        Err(e) => super::fatal(&params, &e.to_string()),
    };
    if let Err(e) = mount_root(&dev, &params) {
        super::fatal(&params, &e.to_string());
    }
    let new_root = match &params.ostree {
        Some(arg) => {
            let assembled = ostree::resolve_deployment(Path::new(SYSROOT), arg).and_then(|d| {
                let m = &mut SysMounts;
                let _ = m.make_rprivate(Path::new("/"));
                ostree::assemble_at(
                    m,
                    Path::new(SYSROOT),
                    &d,
                    Path::new(DEPLOY_TARGET),
                    !params.sysroot_rw,
                )
            });
            if let Err(e) = assembled {
                super::fatal(&params, &e.to_string());
            }
            PathBuf::from(DEPLOY_TARGET)
        }
        None => PathBuf::from(SYSROOT),
    };
    timeline.mark(SubjectKind::Stage, "root-assembled", TimelineEvent::Ready);
    let us = crate::timeline::boottime_us();
    eprintln!(
        "lifsea-init: [{}.{:06}] initramfs root assembled",
        us / 1_000_000,
        us % 1_000_000
    );
    switch_root(&new_root, &params, timeline)
}

fn mount_root(dev: &Path, params: &BootParams) -> Result<(), Stage0Error> {
    let types = match &params.rootfstype {
        Some(t) => vec![t.clone()],
        None => block_fstypes(&std::fs::read_to_string("/proc/filesystems").unwrap_or_default()),
    };
    let data = params.rootflags.as_deref().unwrap_or("");
    // An ostree root is mounted read-write (its /etc and /var live there) and made read-only at
    // the /sysroot mount afterwards; a plain root follows the kernel's ro/rw.
    let flags = if params.ostree.is_none() && !params.rw {
        libc::MS_RDONLY
    } else {
        0
    };
    let target = Path::new(SYSROOT);
    let _ = std::fs::create_dir_all(target);
    let dev_s = dev.to_string_lossy();
    let mut errors = Vec::new();
    for t in &types {
        match sys::mount::mount_fs(&dev_s, target, t, flags, data) {
            Ok(()) => {
                log::info!("mounted {dev_s} ({t}) on {SYSROOT}");
                return Ok(());
            }
            Err(e) => errors.push((t.clone(), e)),
        }
    }
    Err(Stage0Error::MountRoot {
        dev: dev.to_path_buf(),
        target: target.to_path_buf(),
        attempts: errors,
    })
}

/// Moves the API filesystems into the new root; one that cannot move is detached (the new root's
/// stage 1 mounts it again) rather than left pinning the initramfs.
pub fn move_api_mounts(m: &mut dyn MountOps, new_root: &Path) {
    for api in ["dev", "proc", "sys"] {
        let from = Path::new("/").join(api);
        let to = new_root.join(api);
        if let Err(e) = m.move_mount(&from, &to) {
            log::warn!("move {} to {}: {e}", from.display(), to.display());
            let _ = m.unmount_detach(&from);
        }
    }
}

/// The switch itself (the initramfs files are gone by now): the new root moved over `/`, then
/// chroot into it, the way switch_root(8) does it.
pub fn enter_root(m: &mut dyn MountOps, new_root: &Path) -> Result<(), String> {
    m.chdir(new_root)
        .map_err(|e| format!("chdir {}: {e}", new_root.display()))?;
    m.move_mount(Path::new("."), Path::new("/"))
        .map_err(|e| format!("move {} to /: {e}", new_root.display()))?;
    m.chroot(Path::new("."))
        .map_err(|e| format!("chroot: {e}"))?;
    m.chdir(Path::new("/")).map_err(|e| format!("chdir /: {e}"))
}

fn switch_root(new_root: &Path, params: &BootParams, timeline: &Timeline) -> ! {
    let m = &mut SysMounts;
    move_api_mounts(m, new_root);
    use std::os::unix::fs::MetadataExt;
    if let Ok(meta) = std::fs::symlink_metadata("/") {
        remove_tree_on_dev(Path::new("/"), meta.dev(), new_root);
    }
    if let Err(e) = enter_root(m, new_root) {
        super::fatal(
            params,
            &format!("switch root to {}: {e}", new_root.display()),
        );
    }
    if let Ok(json) = serde_json::to_string(timeline.entries()) {
        std::env::set_var(TIMELINE_ENV, json);
    }
    let mut candidates: Vec<String> = params.init.iter().cloned().collect();
    candidates.extend(["/sbin/init".to_string(), "/usr/sbin/init".to_string()]);
    let mut errors = Vec::new();
    for init in &candidates {
        if !Path::new(init).exists() {
            continue;
        }
        // The kernel's leftover arguments (e.g. `single`) go on to the next init, as it gave them.
        let argv: Vec<String> = std::iter::once(init.clone())
            .chain(std::env::args().skip(1))
            .collect();
        let e = sys::bootexec::exec(init, &argv);
        errors.push(format!("{init}: {e}"));
    }
    super::fatal(
        params,
        &format!(
            "no init to execute in the new root (tried {}): {}",
            candidates.join(", "),
            errors.join("; ")
        ),
    )
}
