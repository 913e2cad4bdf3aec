//! inotify(7) on cgroup.events files: the kernel signals a modification when a group's `populated`
//! flag flips, which is how a stop learns that every process of a unit is gone without sleeping.

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

pub struct FileWatcher {
    ino: Inotify,
}

/// Identifies one watch.
pub type WatchId = WatchDescriptor;

impl FileWatcher {
    /// inotify_init1(IN_NONBLOCK | IN_CLOEXEC).
    pub fn new() -> nix::Result<Self> {
        Ok(Self {
            ino: Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?,
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.ino.as_fd().as_raw_fd()
    }

    /// inotify_add_watch(2) for modifications of `path`.
    pub fn watch_modify(&self, path: &Path) -> nix::Result<WatchId> {
        self.ino.add_watch(path, AddWatchFlags::IN_MODIFY)
    }

    /// inotify_rm_watch(2); a watch whose file is gone is already removed.
    pub fn unwatch(&self, id: WatchId) {
        let _ = self.ino.rm_watch(id);
    }

    /// read(2) of every queued event: the watches that fired (empty when none).
    pub fn fired(&self) -> Vec<WatchId> {
        let mut out = Vec::new();
        while let Ok(evs) = self.ino.read_events() {
            if evs.is_empty() {
                break;
            }
            out.extend(evs.into_iter().map(|e| e.wd));
        }
        out
    }
}
