//! `lifsea-init mkinitramfs`, the image builders' tool: writes a newc cpio with this static binary
//! as `/init` and the kernel modules needed to reach the root disk, with their modules.dep closure
//! and matching modules.alias lines. What that `/init` does at boot is stage 0
//! (`crate::boot::stage0`); this module is not boot-time code.
//!
//! Compression: `--compress gzip` pipes the archive through an external `gzip -9 -n` (every build
//! host has it and every distribution kernel can unpack it; no compressor in our binary);
//! `--compress none` writes it plain. The default is gzip when `gzip` is on PATH, else none.

pub mod cpio;

use crate::collections::keyset::{KeySet, StrSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::devices::modalias::{normalize, parse_aliases, DepTable};
use cpio::CpioWriter;

#[derive(Debug, thiserror::Error)]
pub enum MkinitramfsError {
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

fn parse_args(args: &[String]) -> Result<MkOptions, MkinitramfsError> {
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
                .ok_or_else(|| MkinitramfsError::Usage(format!("{a} needs a value")))
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
                    return Err(MkinitramfsError::Usage(format!(
                        "--compress {other}: expected gzip or none"
                    )))
                }
            },
            "-o" | "--output" => o.output = Some(PathBuf::from(val()?)),
            "--list" => o.list = true,
            other => return Err(MkinitramfsError::Usage(format!("unknown argument {other}"))),
        }
    }
    if o.module_dir.as_os_str().is_empty() {
        return Err(MkinitramfsError::Usage(
            "--kernel-modules DIR is required".into(),
        ));
    }
    if o.modules.is_empty() {
        o.modules = DEFAULT_MODULES.iter().map(|m| m.to_string()).collect();
    }
    if o.output.is_none() && !o.list {
        return Err(MkinitramfsError::Usage(
            "-o FILE (or --list) is required".into(),
        ));
    }
    Ok(o)
}

/// Module names built into the kernel (modules.builtin), which need no file.
pub fn builtin_modules(text: &str) -> StrSet {
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
pub fn plan_modules(module_dir: &Path, wanted: &[String]) -> Result<ModulePlan, MkinitramfsError> {
    let read = |f: &str| {
        let p = module_dir.join(f);
        std::fs::read_to_string(&p).map_err(|source| MkinitramfsError::Read { path: p, source })
    };
    let dep = DepTable::parse(&read("modules.dep")?);
    let builtins = builtin_modules(&read("modules.builtin").unwrap_or_default());
    let (order, unknown) = dep.load_order(wanted);
    let (builtin, missing): (Vec<String>, Vec<String>) =
        unknown.into_iter().partition(|n| builtins.contains(n));
    if !missing.is_empty() {
        return Err(MkinitramfsError::UnknownModules {
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
    done: &mut StrSet,
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
) -> Result<(), MkinitramfsError> {
    let kver = match &opts.kver {
        Some(k) => k.clone(),
        None => opts
            .module_dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| MkinitramfsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let wr = |source| MkinitramfsError::Write {
        path: opts.output.clone().unwrap_or_default(),
        source,
    };
    let mut w = CpioWriter::new(out);
    let mut dirs = KeySet::new();
    for d in ["dev", "proc", "sys", "run", "sysroot", "lib", "lib/modules"] {
        dirs.insert(d.to_string());
        w.dir(d, 0o755).map_err(wr)?;
    }
    w.char_device("dev/console", 0o600, 5, 1).map_err(wr)?;
    w.file("init", 0o755, &read(&opts.binary)?).map_err(wr)?;
    let base = format!("lib/modules/{kver}");
    let mut names = KeySet::new();
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

fn mkinitramfs(opts: &MkOptions) -> Result<(), MkinitramfsError> {
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
    let werr = |source| MkinitramfsError::Write {
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
            .map_err(MkinitramfsError::Gzip)?;
        let result = match child.stdin.take() {
            Some(stdin) => write_archive(std::io::BufWriter::new(stdin), opts, &plan),
            None => Err(MkinitramfsError::Gzip(std::io::Error::other(
                "no stdin pipe",
            ))),
        };
        let status = child.wait().map_err(MkinitramfsError::Gzip)?;
        result?;
        if !status.success() {
            return Err(MkinitramfsError::Gzip(std::io::Error::other(format!(
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
        Err(e @ MkinitramfsError::Usage(_)) => {
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
