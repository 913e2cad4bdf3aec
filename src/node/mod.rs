//! `lifsea-init node-prep`: what a Kubernetes node needs before kubelet starts, declared in files an
//! administrator can override rather than hard-coded: kernel modules (modules-load.d(5), the
//! standard format), sysctls (the init's sysctl.d directories, applied again now that modules such as
//! br_netfilter are loaded and their keys exist), swap off, the cgroup controllers kubelet needs
//! enabled down to `/kubepods`, and the directories kubelet and the CNI plugins expect
//! (`/usr/lib/lifsea/node.toml`, replaced as a whole by `/etc/lifsea/node.toml`).
//!
//! It runs as the oneshot unit `node-prep` that kubelet requires, so none of it sits on containerd's
//! critical path (containerd needs only overlay, which the kernel requests through our modprobe).
//! A separate process, not PID 1 code: loading modules blocks in finit_module. Docs: docs/node.md.

pub mod drain;
pub mod ops;

use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::units::tomldoc::{self, DocError, Fields};

use crate::paths;

/// Errors of one step; node-prep reports every one and exits 1 if there was any.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("create directory {path}: {source}")]
    Directory {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("enable controller {controller} in {path}: {source}")]
    Controller {
        controller: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("create cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("swapoff {path}: {source}")]
    Swap { path: PathBuf, source: nix::Error },
    #[error("loading modules {modules:?} failed (see the modprobe lines above)")]
    Modules { modules: Vec<String> },
}

/// The declared prerequisites (docs/node.md lists the keys and defaults).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Created (with parents, mode 0755) when missing.
    pub directories: Vec<PathBuf>,
    /// Enabled in the root's and the pods group's `cgroup.subtree_control`, where the kernel has them.
    pub cgroup_controllers: Vec<String>,
    /// The pods' parent group, relative to the cgroup root (kubelet's cgroupfs default).
    pub pods_cgroup: String,
    /// Turn off every swap area in /proc/swaps.
    pub swap_off: bool,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            directories: Vec::new(),
            cgroup_controllers: Vec::new(),
            pods_cgroup: "kubepods".into(),
            swap_off: true,
        }
    }
}

/// Sorts node.toml's keys into NodeConfig: the first unknown key or wrongly shaped value ends it.
fn raw_config(text: &str) -> Result<NodeConfig, DocError> {
    let doc = tomldoc::parse(text)?;
    let mut cfg = NodeConfig::default();
    let keys = &[
        "directories",
        "cgroup-controllers",
        "pods-cgroup",
        "swap-off",
    ];
    let mut fields = Fields::new(doc.get_ref(), keys);
    while let Some((i, v)) = fields.next_field()? {
        let strings = |expected: &'static str| {
            tomldoc::array_of(v, |s| tomldoc::string_as(s, expected))
                .map(|l| l.into_iter().map(Spanned::into_inner).collect::<Vec<_>>())
        };
        match i {
            0 => {
                let dirs = strings("path string")?;
                cfg.directories = dirs.into_iter().map(PathBuf::from).collect();
            }
            1 => cfg.cgroup_controllers = strings("a string")?,
            2 => cfg.pods_cgroup = tomldoc::to_string(v)?.into_inner(),
            _ => cfg.swap_off = tomldoc::to_bool(v)?,
        }
    }
    Ok(cfg)
}

/// Parses node.toml; the message carries line and column.
pub fn parse_config(text: &str) -> Result<NodeConfig, String> {
    let cfg = raw_config(text).map_err(|e| {
        let (line, col) = e
            .span
            .map(|s| crate::units::parse::line_col(text, s.start))
            .unwrap_or((0, 0));
        format!("{line}:{col}: {}", e.message.trim())
    })?;
    if let Err(m) = crate::units::parse::check_cgroup_path(&cfg.pods_cgroup) {
        return Err(format!("pods-cgroup: {m}"));
    }
    if let Some(d) = cfg.directories.iter().find(|d| !d.is_absolute()) {
        return Err(format!("directories: must be absolute paths, got {d:?}"));
    }
    if let Some(c) = cfg
        .cgroup_controllers
        .iter()
        .find(|c| c.is_empty() || !c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    {
        return Err(format!("cgroup-controllers: invalid controller name {c:?}"));
    }
    Ok(cfg)
}

/// Module names of one modules-load.d file: one per line, `#` and `;` start comments.
pub fn parse_modules_load(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .map(str::to_string)
        .collect()
}

/// The swap areas of /proc/swaps (its first line is a header; spaces in names are `\040`).
pub fn parse_swaps(text: &str) -> Vec<PathBuf> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(|f| PathBuf::from(f.replace("\\040", " ")))
        .collect()
}

/// Which wanted controllers the kernel offers (`cgroup.controllers`), and which it does not.
pub fn split_controllers(wanted: &[String], available: &str) -> (Vec<String>, Vec<String>) {
    let have: Vec<&str> = available.split_whitespace().collect();
    wanted
        .iter()
        .cloned()
        .partition(|c| have.contains(&c.as_str()))
}

/// Where node-prep looks: the real machine, or a prefix in tests.
pub struct Paths {
    pub root: PathBuf,
    pub cgroup_root: PathBuf,
}

impl Paths {
    fn at(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }
}

/// Reads the admin node.toml if present, else the vendor one; none at all means nothing declared.
pub fn load_config(p: &Paths) -> Result<NodeConfig, NodeError> {
    for path in [
        p.at(paths::ADMIN_NODE_CONFIG),
        p.at(paths::VENDOR_NODE_CONFIG),
    ] {
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                return parse_config(&text).map_err(|message| NodeError::Config { path, message })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(NodeError::Read { path, source }),
        }
    }
    Ok(NodeConfig::default())
}

/// Enables the controllers in the root's subtree_control, creates the pods group and enables them
/// there too, so kubelet's QoS groups below it get every controller. Missing ones are reported.
pub fn prepare_cgroups(
    cfg: &NodeConfig,
    cgroup_root: &Path,
    errors: &mut Vec<NodeError>,
) -> Vec<String> {
    let ctl = cgroup_root.join("cgroup.controllers");
    let available = match std::fs::read_to_string(&ctl) {
        Ok(t) => t,
        Err(source) => {
            errors.push(NodeError::Read { path: ctl, source });
            return Vec::new();
        }
    };
    let (present, absent) = split_controllers(&cfg.cgroup_controllers, &available);
    // Every level from the root to the pods group needs them (two levels for "kubepods").
    let mut groups = vec![cgroup_root.to_path_buf()];
    let mut cur = cgroup_root.to_path_buf();
    for part in cfg.pods_cgroup.split('/') {
        cur = cur.join(part);
        groups.push(cur.clone());
    }
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            if let Err(source) = std::fs::create_dir(g) {
                if source.kind() != std::io::ErrorKind::AlreadyExists {
                    errors.push(NodeError::Cgroup {
                        path: g.clone(),
                        source,
                    });
                    return absent;
                }
            }
        }
        // One write per controller: one the kernel refuses must not keep the others off.
        let sc = g.join("cgroup.subtree_control");
        for c in &present {
            if let Err(source) = std::fs::write(&sc, format!("+{c}")) {
                errors.push(NodeError::Controller {
                    controller: c.clone(),
                    path: sc.clone(),
                    source,
                });
            }
        }
    }
    absent
}

/// Entry point: `lifsea-init node-prep [--root DIR] [--cgroup-root DIR]`; returns the exit status.
pub fn main(args: &[String]) -> i32 {
    let mut p = Paths {
        root: PathBuf::from("/"),
        cgroup_root: PathBuf::from(paths::CGROUP_ROOT),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--root", Some(v)) => p.root = PathBuf::from(v),
            ("--cgroup-root", Some(v)) => p.cgroup_root = PathBuf::from(v),
            _ => {
                eprintln!(
                    "node-prep: usage: lifsea-init node-prep [--root DIR] [--cgroup-root DIR]"
                );
                return 2;
            }
        }
    }
    let errors = run(&p);
    for e in &errors {
        eprintln!("node-prep: {e}");
    }
    i32::from(!errors.is_empty())
}

/// Every step, in order; returns what went wrong.
pub fn run(p: &Paths) -> Vec<NodeError> {
    let mut errors = Vec::new();
    let cfg = match load_config(p) {
        Ok(c) => c,
        Err(e) => {
            // A broken file must not silently mean "nothing declared".
            errors.push(e);
            return errors;
        }
    };
    // 1. Modules, so that the sysctls of br_netfilter exist when they are written.
    let dirs: Vec<PathBuf> = paths::MODULES_LOAD_DIRS.iter().map(|d| p.at(d)).collect();
    let mut modules = Vec::new();
    for f in crate::paths::conf_files(&dirs) {
        match std::fs::read_to_string(&f) {
            Ok(t) => modules.extend(parse_modules_load(&t)),
            Err(source) => errors.push(NodeError::Read { path: f, source }),
        }
    }
    if !modules.is_empty() {
        let mut margs: Vec<String> = vec!["--origin".into(), "node-prep".into()];
        if p.root != Path::new("/") {
            margs.extend(["-d".into(), p.root.display().to_string()]);
        }
        margs.push("-a".into());
        margs.extend(modules.iter().cloned());
        if crate::devices::modprobe::main(&margs) != 0 {
            errors.push(NodeError::Modules { modules });
        } else {
            eprintln!("node-prep: modules loaded: {}", modules.join(" "));
        }
    }
    // 2. sysctls again: stage 1 wrote them before these modules were there.
    let sysctl_dirs = [
        p.at(paths::VENDOR_SYSCTL_DIR),
        p.at(paths::ADMIN_SYSCTL_DIR),
    ];
    let (applied, sysctl_errors) =
        crate::boot::machine::apply_sysctl(&sysctl_dirs, &p.at("/proc/sys"));
    for e in sysctl_errors {
        eprintln!("node-prep: {e}");
    }
    eprintln!("node-prep: {applied} sysctl settings applied");
    // 3. Swap.
    if cfg.swap_off {
        let swaps = std::fs::read_to_string(p.at("/proc/swaps")).unwrap_or_default();
        for s in parse_swaps(&swaps) {
            match crate::sys::swap::swap_off(&s) {
                Ok(()) => eprintln!("node-prep: swap {} off", s.display()),
                Err(source) => errors.push(NodeError::Swap { path: s, source }),
            }
        }
    }
    // 4. cgroup controllers down to the pods group.
    let absent = prepare_cgroups(&cfg, &p.cgroup_root, &mut errors);
    if !absent.is_empty() {
        eprintln!(
            "node-prep: controllers not offered by this kernel: {}",
            absent.join(" ")
        );
    }
    // 5. Directories.
    for d in &cfg.directories {
        let path = p.at(&d.display().to_string());
        if let Err(source) = std::fs::create_dir_all(&path) {
            errors.push(NodeError::Directory { path, source });
        }
    }
    errors
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
