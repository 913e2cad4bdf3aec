//! Stage 0 (lifsea-init as `/init` of an initramfs) and `lifsea-init mkinitramfs`, which writes
//! that initramfs: a newc cpio with the static binary as `/init` and the kernel modules needed to
//! reach the root disk, with their modules.dep closure and matching modules.alias lines.
//!
//! Stage 0: mount /proc, /sys, /dev; load modules by modalias (coldplug, repeated while waiting);
//! wait for `root=` (bounded by `lifsea.rootwait`); mount it at /sysroot; assemble the ostree
//! deployment at /deploy with the physical root under its `sysroot`; move /dev, /proc, /sys into
//! it; delete the initramfs files (never crossing into mounts); MS_MOVE the new root onto `/`,
//! chroot; exec `init=` or /sbin/init — lifsea-init again, whose stage 1 finds the root assembled.
//!
//! Compression: `--compress gzip` pipes the archive through an external `gzip -9 -n` (every build
//! host has it and every distribution kernel can unpack it; no compressor in our binary);
//! `--compress none` writes it plain. The default is gzip when `gzip` is on PATH, else none.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cmdline::{self, BootParams};
use crate::cpio::CpioWriter;
use crate::devices::coldplug::Coldplug;
use crate::devices::modalias::{normalize, parse_aliases, DepTable};
use crate::timeline::{SubjectKind, Timeline, TimelineEvent};
use crate::{blockdev, ostree, sys};

/// Where stage 0 mounts the physical root and assembles the deployment.
pub const SYSROOT: &str = "/sysroot";
pub const DEPLOY_TARGET: &str = "/deploy";
/// Carries stage 0's timeline stamps across the exec into stage 1.
pub const TIMELINE_ENV: &str = "LIFSEA_TIMELINE";

#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    #[error("{0}")]
    Usage(String),
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("modules not found in {dir}/modules.dep (run depmod?): {}", .names.join(", "))]
    UnknownModules { dir: PathBuf, names: Vec<String> },
    #[error("run gzip: {0}")]
    Gzip(std::io::Error),
    #[error("cannot mount root device {dev} on {target}: {}", .attempts.iter().map(|(t, e)| format!("{t}: {e}")).collect::<Vec<_>>().join("; "))]
    MountRoot {
        dev: PathBuf,
        target: PathBuf,
        /// Each filesystem type tried and why it failed.
        attempts: Vec<(String, nix::Error)>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MkOptions {
    pub module_dir: PathBuf,
    pub modules: Vec<String>,
    pub binary: PathBuf,
    pub gzip: bool,
    pub output: Option<PathBuf>,
    pub list: bool,
    /// The kernel release the modules go under; default: the module directory's name.
    pub kver: Option<String>,
}

/// Modules included when `--modules` is not given: what reaches a root disk on common clouds
/// and QEMU (virtio-blk, NVMe) and the root filesystem; built-in ones are skipped. virtio-scsi
/// is left out by default: it pulls in scsi_mod (560 KB); ask for it with `--modules`.
pub const DEFAULT_MODULES: &[&str] = &["virtio_pci", "virtio_blk", "nvme", "ext4"];

fn parse_args(args: &[String]) -> Result<MkOptions, InitramfsError> {
    let mut o = MkOptions {
        module_dir: PathBuf::new(),
        modules: Vec::new(),
        binary: PathBuf::from("/proc/self/exe"),
        gzip: Command::new("gzip")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok(),
        output: None,
        list: false,
        kver: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| InitramfsError::Usage(format!("{a} needs a value")))
        };
        match a.as_str() {
            "--kernel-modules" | "--modules-dir" => o.module_dir = PathBuf::from(val()?),
            "--kver" => o.kver = Some(val()?),
            "--modules" => o
                .modules
                .extend(val()?.split(',').filter(|m| !m.is_empty()).map(normalize)),
            "--binary" => o.binary = PathBuf::from(val()?),
            "--compress" => match val()?.as_str() {
                "gzip" => o.gzip = true,
                "none" => o.gzip = false,
                other => {
                    return Err(InitramfsError::Usage(format!(
                        "--compress {other}: expected gzip or none"
                    )))
                }
            },
            "-o" | "--output" => o.output = Some(PathBuf::from(val()?)),
            "--list" => o.list = true,
            other => return Err(InitramfsError::Usage(format!("unknown argument {other}"))),
        }
    }
    if o.module_dir.as_os_str().is_empty() {
        return Err(InitramfsError::Usage(
            "--kernel-modules DIR is required".into(),
        ));
    }
    if o.modules.is_empty() {
        o.modules = DEFAULT_MODULES.iter().map(|m| m.to_string()).collect();
    }
    if o.output.is_none() && !o.list {
        return Err(InitramfsError::Usage(
            "-o FILE (or --list) is required".into(),
        ));
    }
    Ok(o)
}

/// Module names built into the kernel (modules.builtin), which need no file.
pub fn builtin_modules(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(crate::devices::modalias::module_name)
        .collect()
}

/// The plan: modules in load order, plus requested names that are built in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePlan {
    pub order: Vec<String>,
    pub builtin: Vec<String>,
    pub dep: DepTable,
}

/// Resolves the requested modules against a module tree; unknown (neither loadable nor built in)
/// names are an error listing all of them.
pub fn plan_modules(module_dir: &Path, wanted: &[String]) -> Result<ModulePlan, InitramfsError> {
    let read = |f: &str| {
        let p = module_dir.join(f);
        std::fs::read_to_string(&p).map_err(|source| InitramfsError::Read { path: p, source })
    };
    let dep = DepTable::parse(&read("modules.dep")?);
    let builtins = builtin_modules(&read("modules.builtin").unwrap_or_default());
    let (order, unknown) = dep.load_order(wanted);
    let (builtin, missing): (Vec<String>, Vec<String>) =
        unknown.into_iter().partition(|n| builtins.contains(n));
    if !missing.is_empty() {
        return Err(InitramfsError::UnknownModules {
            dir: module_dir.to_path_buf(),
            names: missing,
        });
    }
    Ok(ModulePlan {
        order,
        builtin,
        dep,
    })
}

fn add_parents(
    w: &mut CpioWriter<impl Write>,
    done: &mut BTreeSet<String>,
    path: &str,
) -> std::io::Result<()> {
    let mut acc = String::new();
    let parts: Vec<&str> = path.split('/').collect();
    for p in &parts[..parts.len().saturating_sub(1)] {
        if !acc.is_empty() {
            acc.push('/');
        }
        acc.push_str(p);
        if done.insert(acc.clone()) {
            w.dir(&acc, 0o755)?;
        }
    }
    Ok(())
}

/// Writes the uncompressed archive for a plan.
pub fn write_archive(
    out: impl Write,
    opts: &MkOptions,
    plan: &ModulePlan,
) -> Result<(), InitramfsError> {
    let kver = match &opts.kver {
        Some(k) => k.clone(),
        None => opts
            .module_dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| InitramfsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let wr = |source| InitramfsError::Write {
        path: opts.output.clone().unwrap_or_default(),
        source,
    };
    let mut w = CpioWriter::new(out);
    let mut dirs = BTreeSet::new();
    for d in ["dev", "proc", "sys", "run", "sysroot", "lib", "lib/modules"] {
        dirs.insert(d.to_string());
        w.dir(d, 0o755).map_err(wr)?;
    }
    w.char_device("dev/console", 0o600, 5, 1).map_err(wr)?;
    w.file("init", 0o755, &read(&opts.binary)?).map_err(wr)?;
    let base = format!("lib/modules/{kver}");
    let mut names = BTreeSet::new();
    for name in &plan.order {
        let Some(rel) = plan.dep.path_of(name) else {
            continue;
        };
        let dest = format!("{base}/{rel}");
        add_parents(&mut w, &mut dirs, &dest).map_err(wr)?;
        w.file(&dest, 0o644, &read(&opts.module_dir.join(rel))?)
            .map_err(wr)?;
        names.insert(name.clone());
    }
    add_parents(&mut w, &mut dirs, &format!("{base}/x")).map_err(wr)?;
    w.file(
        &format!("{base}/modules.dep"),
        0o644,
        plan.dep.render_subset(&names).as_bytes(),
    )
    .map_err(wr)?;
    let aliases =
        std::fs::read_to_string(opts.module_dir.join("modules.alias")).unwrap_or_default();
    let subset: String = parse_aliases(&aliases)
        .into_iter()
        .filter(|a| names.contains(&a.module))
        .map(|a| format!("alias {} {}\n", a.pattern, a.module))
        .collect();
    w.file(&format!("{base}/modules.alias"), 0o644, subset.as_bytes())
        .map_err(wr)?;
    w.finish().map_err(wr)?;
    Ok(())
}

fn mkinitramfs(opts: &MkOptions) -> Result<(), InitramfsError> {
    let plan = plan_modules(&opts.module_dir, &opts.modules)?;
    for b in &plan.builtin {
        eprintln!("mkinitramfs: {b} is built into the kernel; nothing to add");
    }
    if opts.list {
        for n in &plan.order {
            println!("{n}");
        }
    }
    let Some(out) = &opts.output else {
        return Ok(());
    };
    let werr = |source| InitramfsError::Write {
        path: out.clone(),
        source,
    };
    let file = std::fs::File::create(out).map_err(werr)?;
    if opts.gzip {
        let mut child = Command::new("gzip")
            .args(["-9", "-n", "-c"])
            .stdin(Stdio::piped())
            .stdout(Stdio::from(file))
            .spawn()
            .map_err(InitramfsError::Gzip)?;
        let result = match child.stdin.take() {
            Some(stdin) => write_archive(std::io::BufWriter::new(stdin), opts, &plan),
            None => Err(InitramfsError::Gzip(std::io::Error::other("no stdin pipe"))),
        };
        let status = child.wait().map_err(InitramfsError::Gzip)?;
        result?;
        if !status.success() {
            return Err(InitramfsError::Gzip(std::io::Error::other(format!(
                "gzip exited with {status}"
            ))));
        }
        Ok(())
    } else {
        write_archive(std::io::BufWriter::new(file), opts, &plan)
    }
}

/// `lifsea-init mkinitramfs ...`; returns the process exit code.
pub fn mkinitramfs_main(args: &[String]) -> i32 {
    let result = parse_args(args).and_then(|o| mkinitramfs(&o));
    match result {
        Ok(()) => 0,
        Err(e @ InitramfsError::Usage(_)) => {
            eprintln!("mkinitramfs: {e}");
            eprintln!(
                "usage: lifsea-init mkinitramfs --kernel-modules /lib/modules/KVER [--kver KVER] \
                 [--modules a,b,...] [--binary PATH] [--compress gzip|none] [--list] -o FILE"
            );
            2
        }
        Err(e) => {
            eprintln!("mkinitramfs: {e}");
            1
        }
    }
}

/// Whether this process is `/init` of an initramfs: PID 1 and either called `/init` or running
/// on a ramfs/tmpfs root.
pub fn in_initramfs(argv0: &str) -> bool {
    sys::bootexec::pid() == 1 && (argv0 == "/init" || sys::mount::root_is_ramfs())
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
    crate::mounts::apply_early_mounts(
        &crate::mounts::EARLY_MOUNTS[..3],
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
        crate::boot::fatal(
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
        Err(e) => crate::boot::fatal(&params, &e.to_string()),
    };
    if let Err(e) = mount_root(&dev, &params) {
        crate::boot::fatal(&params, &e.to_string());
    }
    let new_root = match &params.ostree {
        Some(arg) => {
            let assembled = ostree::resolve_deployment(Path::new(SYSROOT), arg).and_then(|d| {
                let _ = sys::mount::make_rprivate(Path::new("/"));
                ostree::assemble_at(
                    Path::new(SYSROOT),
                    &d,
                    Path::new(DEPLOY_TARGET),
                    !params.sysroot_rw,
                )
            });
            if let Err(e) = assembled {
                crate::boot::fatal(&params, &e.to_string());
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

fn mount_root(dev: &Path, params: &BootParams) -> Result<(), InitramfsError> {
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
    Err(InitramfsError::MountRoot {
        dev: dev.to_path_buf(),
        target: target.to_path_buf(),
        attempts: errors,
    })
}

fn switch_root(new_root: &Path, params: &BootParams, timeline: &Timeline) -> ! {
    for api in ["dev", "proc", "sys"] {
        let from = Path::new("/").join(api);
        let to = new_root.join(api);
        if let Err(e) = sys::mount::move_mount(&from, &to) {
            log::warn!("move {} to {}: {e}", from.display(), to.display());
            let _ = sys::mount::unmount_detach(&from);
        }
    }
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::symlink_metadata("/") {
        remove_tree_on_dev(Path::new("/"), m.dev(), new_root);
    }
    let switched = std::env::set_current_dir(new_root)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            sys::mount::move_mount(Path::new("."), Path::new("/"))
                .map_err(|e| format!("move {} to /: {e}", new_root.display()))
        })
        .and_then(|()| sys::mount::chroot(Path::new(".")).map_err(|e| format!("chroot: {e}")))
        .and_then(|()| std::env::set_current_dir("/").map_err(|e| e.to_string()));
    if let Err(e) = switched {
        crate::boot::fatal(
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
    crate::boot::fatal(
        params,
        &format!(
            "no init to execute in the new root (tried {}): {}",
            candidates.join(", "),
            errors.join("; ")
        ),
    )
}
