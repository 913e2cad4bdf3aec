//! The seam between root assembly and the mount syscalls: the ostree assembly (both modes) and
//! stage 0's switch into the new root call these operations in an order that matters (bind before
//! remount, the physical root moved before it is made read-only, pivot before chroot). Behind a
//! trait, that order is unit-tested with a recording implementation and no root; `SysMounts`
//! carries the calls out for real.

use std::path::Path;

use crate::sys::mount as sm;

/// The mount-namespace operations root assembly performs.
pub trait MountOps {
    /// Non-recursive bind mount of `src` onto `dst`.
    fn bind(&mut self, src: &Path, dst: &Path) -> nix::Result<()>;
    /// Makes a bind mount read-only at the mount level (the superblock stays writable).
    fn remount_bind_readonly(&mut self, target: &Path) -> nix::Result<()>;
    /// Makes the superblock under `target` writable.
    fn remount_superblock_rw(&mut self, target: &Path) -> nix::Result<()>;
    fn make_rprivate(&mut self, target: &Path) -> nix::Result<()>;
    fn move_mount(&mut self, src: &Path, dst: &Path) -> nix::Result<()>;
    fn unmount_detach(&mut self, target: &Path) -> nix::Result<()>;
    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> nix::Result<()>;
    fn chroot(&mut self, path: &Path) -> nix::Result<()>;
    fn chdir(&mut self, path: &Path) -> std::io::Result<()>;
}

/// The real thing: each operation is the matching `sys::mount` call.
#[derive(Debug, Default)]
pub struct SysMounts;

impl MountOps for SysMounts {
    fn bind(&mut self, src: &Path, dst: &Path) -> nix::Result<()> {
        sm::bind(src, dst, false)
    }
    fn remount_bind_readonly(&mut self, target: &Path) -> nix::Result<()> {
        sm::remount_bind_readonly(target)
    }
    fn remount_superblock_rw(&mut self, target: &Path) -> nix::Result<()> {
        sm::remount_superblock_rw(target)
    }
    fn make_rprivate(&mut self, target: &Path) -> nix::Result<()> {
        sm::make_rprivate(target)
    }
    fn move_mount(&mut self, src: &Path, dst: &Path) -> nix::Result<()> {
        sm::move_mount(src, dst)
    }
    fn unmount_detach(&mut self, target: &Path) -> nix::Result<()> {
        sm::unmount(target, true)
    }
    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
        sm::pivot_root(new_root, put_old)
    }
    fn chroot(&mut self, path: &Path) -> nix::Result<()> {
        sm::chroot(path)
    }
    fn chdir(&mut self, path: &Path) -> std::io::Result<()> {
        std::env::set_current_dir(path)
    }
}

#[cfg(test)]
/// Records every call as one line (`"bind /a /b"`) and can fail the call whose line starts with
/// a given prefix, so tests check both the order and that a failure stops the sequence.
#[derive(Debug, Default)]
pub struct RecordingMounts {
    pub calls: Vec<String>,
    pub fail_on: Option<String>,
}

#[cfg(test)]
impl RecordingMounts {
    fn rec(&mut self, line: String) -> nix::Result<()> {
        let fail = self.fail_on.as_ref().is_some_and(|f| line.starts_with(f));
        self.calls.push(line);
        if fail {
            Err(nix::Error::EPERM)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
impl MountOps for RecordingMounts {
    fn bind(&mut self, src: &Path, dst: &Path) -> nix::Result<()> {
        self.rec(format!("bind {} {}", src.display(), dst.display()))
    }
    fn remount_bind_readonly(&mut self, target: &Path) -> nix::Result<()> {
        self.rec(format!("ro {}", target.display()))
    }
    fn remount_superblock_rw(&mut self, target: &Path) -> nix::Result<()> {
        self.rec(format!("rw-superblock {}", target.display()))
    }
    fn make_rprivate(&mut self, target: &Path) -> nix::Result<()> {
        self.rec(format!("rprivate {}", target.display()))
    }
    fn move_mount(&mut self, src: &Path, dst: &Path) -> nix::Result<()> {
        self.rec(format!("move {} {}", src.display(), dst.display()))
    }
    fn unmount_detach(&mut self, target: &Path) -> nix::Result<()> {
        self.rec(format!("detach {}", target.display()))
    }
    fn pivot_root(&mut self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
        self.rec(format!(
            "pivot {} {}",
            new_root.display(),
            put_old.display()
        ))
    }
    fn chroot(&mut self, path: &Path) -> nix::Result<()> {
        self.rec(format!("chroot {}", path.display()))
    }
    fn chdir(&mut self, path: &Path) -> std::io::Result<()> {
        self.rec(format!("chdir {}", path.display()))
            .map_err(std::io::Error::from)
    }
}
