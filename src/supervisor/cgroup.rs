//! cgroup v2 groups for units. CONTRACT STUB: the spawn helper replaces the bodies.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("no cgroup2 filesystem found")]
    NotFound,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupStats {
    pub memory_current: Option<u64>,
    pub cpu_usage_usec: Option<u64>,
}

/// The cgroup2 hierarchy the init manages (usually /sys/fs/cgroup).
#[derive(Debug, Clone)]
pub struct CgroupRoot {
    pub root: PathBuf,
}

impl CgroupRoot {
    pub fn at(root: &Path) -> Self {
        Self { root: root.to_path_buf() }
    }
    /// Finds a mounted cgroup2 filesystem in /proc/self/mountinfo.
    pub fn detect() -> Result<Self, CgroupError> {
        Err(CgroupError::NotFound)
    }
    /// Creates `rel` (and parents); with `delegate`, chowns it to `owner` and enables controllers.
    pub fn create(&self, rel: &str, delegate: bool, owner: Option<(u32, u32)>) -> Result<PathBuf, CgroupError> {
        let _ = (delegate, owner);
        Ok(self.root.join(rel))
    }
    /// Writes 1 to cgroup.kill (SIGKILL to every process in the subtree).
    pub fn kill(&self, rel: &str) -> Result<(), CgroupError> {
        let _ = rel;
        Ok(())
    }
    /// Sends a signal to every process listed in the group's cgroup.procs (recursively).
    pub fn signal_all(&self, rel: &str, sig: nix::sys::signal::Signal) -> Result<(), CgroupError> {
        let _ = (rel, sig);
        Ok(())
    }
    /// Reads `populated` from cgroup.events.
    pub fn is_populated(&self, rel: &str) -> Result<bool, CgroupError> {
        let _ = rel;
        Ok(false)
    }
    /// Path of the group's cgroup.events: the supervisor watches it (inotify IN_MODIFY) to learn
    /// when the group empties, instead of sleeping.
    pub fn events_path(&self, rel: &str) -> PathBuf {
        self.root.join(rel).join("cgroup.events")
    }
    pub fn stats(&self, rel: &str) -> CgroupStats {
        let _ = rel;
        CgroupStats::default()
    }
    /// Removes an empty group (rmdir); parents are left.
    pub fn remove(&self, rel: &str) -> Result<(), CgroupError> {
        let _ = rel;
        Ok(())
    }
    /// Moves a process into the group (writes cgroup.procs).
    pub fn attach(&self, rel: &str, pid: i32) -> Result<(), CgroupError> {
        let _ = (rel, pid);
        Ok(())
    }
}
