//! Building the net subsystem for stage 1 (machine mode: kernel `ip=`, /etc/lifsea/network.toml)
//! and for container mode (`--net FILE`, used by the namespace tests).

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::config::{self, NetworkConfig};
use super::ipconfig;
use super::manager::{NetManager, NetOptions};
use crate::supervisor::Subsystem;

pub const LEASE_DIR: &str = "/var/lib/lifsea";
pub const RESOLV_FILE: &str = "/run/lifsea/resolv.conf";

#[derive(Debug, thiserror::Error)]
pub enum NetBootError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no such file")]
    Missing { path: PathBuf },
    #[error("{} error(s) in {path}", errors.len())]
    Invalid {
        path: PathBuf,
        errors: Vec<config::ConfigError>,
    },
}

/// Reads and validates a network.toml (`None` when there is none); every error is logged and
/// printed on the console.
fn read_config(path: &Path) -> Result<Option<NetworkConfig>, NetBootError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            let e = NetBootError::Read {
                path: path.to_path_buf(),
                source,
            };
            log::warn!("net: {e}");
            return Err(e);
        }
    };
    config::parse(path, &text).map(Some).map_err(|errors| {
        for e in &errors {
            log::error!("{e}");
            eprintln!("lifsea-init: {e}");
        }
        NetBootError::Invalid {
            path: path.to_path_buf(),
            errors,
        }
    })
}

/// Stage 1: `lo` up at once (local clients need it before anything else), then the subsystem.
pub fn machine() -> Vec<Box<dyn Subsystem>> {
    if let Err(e) = crate::sys::netif::set_link_up("lo") {
        log::warn!("bring up lo: {e}");
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let (ip, timeout, errors) = ipconfig::from_cmdline(&crate::procfs::cmdline_words(&cmdline));
    for e in errors {
        log::warn!("kernel command line: {e}");
    }
    // A broken network.toml falls back to the default plan: a reachable node can be repaired.
    let file = read_config(Path::new(config::DEFAULT_PATH)).unwrap_or(None);
    let physical_only = file.is_none();
    let opts = NetOptions {
        config: config::plan(file, &ip, timeout),
        physical_only,
        resolv_file: RESOLV_FILE.into(),
        etc_resolv: Some("/etc/resolv.conf".into()),
        lease_dir: LEASE_DIR.into(),
        sys_class_net: "/sys/class/net".into(),
        set_hostname: true,
    };
    vec![Box::new(NetManager::new(opts, Instant::now()))]
}

/// Container mode with `--net FILE`: links matched by the file only, resolv.conf and leases under
/// the run directory, /etc and the hostname untouched. A missing or invalid file is an error.
pub fn container(path: &Path, run_dir: &Path) -> Result<Vec<Box<dyn Subsystem>>, NetBootError> {
    let cfg = read_config(path)?.ok_or_else(|| NetBootError::Missing {
        path: path.to_path_buf(),
    })?;
    let opts = NetOptions {
        config: cfg,
        physical_only: false,
        resolv_file: run_dir.join("resolv.conf"),
        etc_resolv: None,
        lease_dir: run_dir.join("leases"),
        sys_class_net: "/sys/class/net".into(),
        set_hostname: false,
    };
    Ok(vec![Box::new(NetManager::new(opts, Instant::now()))])
}
