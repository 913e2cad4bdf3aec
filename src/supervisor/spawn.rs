//! Starting a service process: everything between fork and exec, with the least privilege its unit
//! asks for. CONTRACT STUB: the spawn helper replaces the bodies; signatures are shared with the supervisor.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use crate::units::Unit;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("unit {unit}: {message}")]
    Prepare { unit: String, message: String },
    #[error("unit {unit}: fork failed: {source}")]
    Fork { unit: String, source: nix::Error },
    #[error("unit {unit}: exec {path} failed: {source}")]
    Exec { unit: String, path: String, source: std::io::Error },
}

/// What the supervisor hands to `spawn`.
pub struct SpawnRequest<'a> {
    pub unit: &'a Unit,
    /// Sets `NOTIFY_SOCKET` in the child when the unit's readiness is `notify` (and always harmless).
    pub notify_socket: Option<&'a Path>,
    /// Absolute cgroup directory the child joins before exec (already created by the caller).
    pub cgroup_dir: Option<PathBuf>,
    /// Root for /etc/passwd and /etc/group lookups (`/` on a machine; tests may point elsewhere).
    pub etc_dir: &'a Path,
}

/// A running child: its pid and the parent's ends of its pipes.
pub struct Spawned {
    pub pid: Pid,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Read end of the s6-style readiness pipe when the unit's readiness is `{ fd = N }`.
    pub ready_fd: Option<OwnedFd>,
}

pub fn spawn(req: &SpawnRequest<'_>) -> Result<Spawned, SpawnError> {
    Err(SpawnError::Prepare {
        unit: req.unit.name.clone(),
        message: "spawn not implemented yet".into(),
    })
}
