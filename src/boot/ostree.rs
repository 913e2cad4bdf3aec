//! The ostree root: resolve `ostree=` to a deployment, then assemble the root the way
//! ostree-prepare-root does, so `ostree admin status` recognises the booted deployment.
//!
//! Layout: `ostree=/ostree/boot.N/OS/BOOTCSUM/SERIAL` where `boot.N → boot.N.M`, and
//! `boot.N.M/OS/BOOTCSUM/SERIAL → ../../../deploy/OS/deploy/CSUM.SERIAL`. Resolution follows those
//! relative symlinks inside the sysroot (never escaping it, even for absolute links).
//!
//! Assembly (both modes): make `/` private; bind the deployment onto itself; bind `/boot` from the
//! sysroot when it has a loader; bind `/ostree/deploy/OS/var` onto `<deploy>/var`; bind `/usr` onto
//! itself read-only. `/etc` is a plain directory of the deployment and stays writable.
//! - Direct mode (we are PID 1 on the physical root): chdir into the deployment,
//!   `pivot_root(".", "sysroot")`, `chroot(".")`. The physical root ends at `/sysroot`.
//! - Initramfs mode: the deployment is assembled at a separate mount point, the physical root is
//!   moved under its `sysroot`, and stage 0 switches root into it.
//!
//! `/sysroot` is made read-only at the mount level (ostree's `sysroot.readonly=true`) unless the
//! kernel command line says `lifsea.sysroot=rw`; the superblock stays writable because `/etc` and
//! `/var` live on it. The kernel's own `ro`/`rw` does not decide this: ostree images commonly
//! carry `rw` only so the root filesystem is mounted writable.
//!
//! No re-exec after the pivot in direct mode: the kernel already started the deployment's own
//! binary (ostree's `init=` path points into the deployment), so a re-exec would only repeat startup
//! and lose the in-memory timeline; the only difference is the path /proc/self/exe shows.

use std::path::{Component, Path, PathBuf};

use super::mount_ops::MountOps;

#[derive(Debug, thiserror::Error)]
pub enum OstreeError {
    #[error("ostree={arg}: cannot resolve {path}: {source}")]
    Resolve {
        arg: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ostree={arg}: too many symlinks")]
    Loop { arg: String },
    #[error("ostree={arg}: resolves to {target}, which is not a deployment (ostree/deploy/OS/deploy/CSUM.SERIAL)")]
    NotDeployment { arg: String, target: PathBuf },
    #[error("mount {what} on {target}: {source}")]
    Mount {
        what: &'static str,
        target: PathBuf,
        source: nix::Error,
    },
    #[error("create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A resolved deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// Relative to the sysroot: `ostree/deploy/OS/deploy/CSUM.SERIAL`.
    pub path: PathBuf,
    /// The OS name (ostree's "stateroot").
    pub stateroot: String,
    pub checksum: String,
    pub serial: u32,
}

/// Follows `path` (absolute or relative to the sysroot) inside `sysroot`, resolving every symlink
/// component with the sysroot as `/`; returns the result relative to the sysroot.
pub fn resolve_in(sysroot: &Path, path: &str, arg: &str) -> Result<PathBuf, OstreeError> {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(str::to_string)
        .collect();
    let mut done = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let candidate = done.join(&c);
        let full = sysroot.join(&candidate);
        let meta = std::fs::symlink_metadata(&full).map_err(|e| OstreeError::Resolve {
            arg: arg.to_string(),
            path: full.clone(),
            source: e,
        })?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return Err(OstreeError::Loop {
                    arg: arg.to_string(),
                });
            }
            let target = std::fs::read_link(&full).map_err(|e| OstreeError::Resolve {
                arg: arg.to_string(),
                path: full.clone(),
                source: e,
            })?;
            if target.is_absolute() {
                done = PathBuf::new();
            }
            for comp in target.components().rev() {
                match comp {
                    Component::Normal(s) => todo.push(s.to_string_lossy().into_owned()),
                    Component::ParentDir => todo.push("..".into()),
                    Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
                }
            }
        } else {
            done = candidate;
        }
    }
    Ok(done)
}

/// Parses a resolved path `ostree/deploy/OS/deploy/CSUM.SERIAL`.
pub fn parse_deployment_path(rel: &Path) -> Option<Deployment> {
    let parts: Vec<&str> = rel.iter().filter_map(|c| c.to_str()).collect();
    match parts.as_slice() {
        ["ostree", "deploy", os, "deploy", leaf] => {
            let (csum, serial) = leaf.rsplit_once('.')?;
            Some(Deployment {
                path: rel.to_path_buf(),
                stateroot: os.to_string(),
                checksum: csum.to_string(),
                serial: serial.parse().ok()?,
            })
        }
        _ => None,
    }
}

/// Resolves the `ostree=` argument against a sysroot directory.
pub fn resolve_deployment(sysroot: &Path, ostree_arg: &str) -> Result<Deployment, OstreeError> {
    let rel = resolve_in(sysroot, ostree_arg, ostree_arg)?;
    let not = || OstreeError::NotDeployment {
        arg: ostree_arg.to_string(),
        target: rel.clone(),
    };
    let d = parse_deployment_path(&rel).ok_or_else(not)?;
    if !sysroot.join(&d.path).is_dir() {
        return Err(not());
    }
    Ok(d)
}

fn mnt<'a>(what: &'static str, target: &'a Path) -> impl FnOnce(nix::Error) -> OstreeError + 'a {
    move |source| OstreeError::Mount {
        what,
        target: target.to_path_buf(),
        source,
    }
}

/// Mounts the deployment's `/usr` (read-only), `/var` and `/boot` under `deploy_mnt`, which is
/// already a mount of the deployment directory.
pub fn mount_deployment_parts(
    m: &mut dyn MountOps,
    sysroot: &Path,
    deployment: &Deployment,
    deploy_mnt: &Path,
) -> Result<(), OstreeError> {
    let boot = sysroot.join("boot");
    let dboot = deploy_mnt.join("boot");
    if boot.join("loader").exists() && dboot.is_dir() {
        m.bind(&boot, &dboot).map_err(mnt("/boot", &dboot))?;
    }
    let var = sysroot
        .join("ostree/deploy")
        .join(&deployment.stateroot)
        .join("var");
    let dvar = deploy_mnt.join("var");
    m.bind(&var, &dvar).map_err(mnt("/var", &dvar))?;
    let usr = deploy_mnt.join("usr");
    m.bind(&usr, &usr).map_err(mnt("/usr", &usr))?;
    m.remount_bind_readonly(&usr)
        .map_err(mnt("/usr read-only", &usr))?;
    Ok(())
}

/// Direct (PID 1, no initramfs) assembly: `sysroot` is the current root (`/`). After return the
/// process runs inside the deployment with the physical root at `/sysroot`.
pub fn assemble_direct(
    m: &mut dyn MountOps,
    sysroot: &Path,
    deployment: &Deployment,
    root_is_readonly: bool,
    sysroot_readonly: bool,
) -> Result<(), OstreeError> {
    m.make_rprivate(sysroot).map_err(mnt("private", sysroot))?;
    // The kernel mounts the root read-only unless told `rw`; /etc and /var need a writable superblock.
    if root_is_readonly {
        m.remount_superblock_rw(sysroot)
            .map_err(mnt("read-write", sysroot))?;
    }
    let deploy = sysroot.join(&deployment.path);
    m.bind(&deploy, &deploy)
        .map_err(mnt("deployment", &deploy))?;
    mount_deployment_parts(m, sysroot, deployment, &deploy)?;
    m.chdir(&deploy).map_err(|e| OstreeError::Create {
        path: deploy.clone(),
        source: e,
    })?;
    m.pivot_root(Path::new("."), Path::new("sysroot"))
        .map_err(mnt("pivot_root", &deploy))?;
    m.chroot(Path::new(".")).map_err(mnt("chroot", &deploy))?;
    let _ = m.chdir(Path::new("/"));
    if sysroot_readonly {
        let s = Path::new("/sysroot");
        m.remount_bind_readonly(s)
            .map_err(mnt("/sysroot read-only", s))?;
    }
    Ok(())
}

/// Initramfs assembly: `sysroot` is where the physical root is mounted (e.g. `/sysroot`);
/// the deployment is bound at `target` (an empty directory) with the physical root moved to
/// `target/sysroot`. Stage 0 then switches root into `target`.
pub fn assemble_at(
    m: &mut dyn MountOps,
    sysroot: &Path,
    deployment: &Deployment,
    target: &Path,
    sysroot_readonly: bool,
) -> Result<(), OstreeError> {
    std::fs::create_dir_all(target).map_err(|e| OstreeError::Create {
        path: target.to_path_buf(),
        source: e,
    })?;
    let deploy = sysroot.join(&deployment.path);
    m.bind(&deploy, target).map_err(mnt("deployment", target))?;
    mount_deployment_parts(m, sysroot, deployment, target)?;
    let inner = target.join("sysroot");
    m.move_mount(sysroot, &inner)
        .map_err(mnt("physical root", &inner))?;
    if sysroot_readonly {
        m.remount_bind_readonly(&inner)
            .map_err(mnt("/sysroot read-only", &inner))?;
    }
    Ok(())
}

/// Marks the system as booted from ostree (`/run/ostree-booted`), which `ostree admin status`
/// and rpm-ostree look for.
pub fn mark_booted(run_dir: &Path) -> Result<(), OstreeError> {
    let p = run_dir.join("ostree-booted");
    std::fs::write(&p, b"").map_err(|e| OstreeError::Create { path: p, source: e })
}
