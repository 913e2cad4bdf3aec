//! The early-mounts table and /proc/self/mountinfo parsing.
//!
//! Boot is data: the kernel filesystems a container host needs are two const tables, applied in
//! order by `apply_early_mounts`: `EARLY_MOUNTS` before the supervisor (what containerd's exec
//! needs), `LATE_MOUNTS` right after the boot dispatch has spawned it (`super::late_mounts`, which
//! then reaches the fact `mounts`). `apply_early_mounts` which skips what is already mounted (the kernel's devtmpfs
//! automount, or an initramfs that moved its mounts over) and logs each failure without aborting.
//!
//! Chosen: proc, sysfs, devtmpfs, devpts (ptys for containers and consoles), /dev/shm, /run,
//! cgroup2 with `nsdelegate` (containerd and kubelet need it; delegation to podruntime), securityfs
//! (AppArmor/IMA policy loading by the runtime), bpf (Cilium-style CNIs pin maps there; must be
//! the host's instance) and mqueue (POSIX queues for pods).
//! Left out: debugfs and tracefs (they expose kernel internals; mount them on demand when
//! debugging), hugetlbfs (the runtime mounts it per container when pods ask for huge pages) and
//! configfs (a module in Debian's cloud kernel, so the mount would fail on every boot; only
//! nvmet/iSCSI targets use it, and they load the module and mount it themselves).

use std::path::{Path, PathBuf};

use crate::procfs::parse_mountinfo;

const NOSUID: libc::c_ulong = libc::MS_NOSUID;
const NODEV: libc::c_ulong = libc::MS_NODEV;
const NOEXEC: libc::c_ulong = libc::MS_NOEXEC;

/// One row of the early-mounts table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarlyMount {
    pub source: &'static str,
    /// Absolute path in the final root.
    pub target: &'static str,
    pub fstype: &'static str,
    /// `MS_*` flags.
    pub flags: libc::c_ulong,
    pub data: &'static str,
}

/// The kernel filesystems containerd's exec needs, parents before children: /proc, /sys, /dev,
/// /run (its state and sockets) and the cgroup2 hierarchy (its cgroup and every unit's). Stage 0
/// applies the first three itself.
pub const EARLY_MOUNTS: &[EarlyMount] = &[
    EarlyMount {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID | NODEV | NOEXEC,
        data: "",
    },
    EarlyMount {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID | NODEV | NOEXEC,
        data: "",
    },
    EarlyMount {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: NOSUID,
        data: "mode=0755",
    },
    EarlyMount {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID | NODEV,
        data: "mode=0755",
    },
    EarlyMount {
        source: "cgroup2",
        target: "/sys/fs/cgroup",
        fstype: "cgroup2",
        flags: NOSUID | NODEV | NOEXEC,
        data: "nsdelegate",
    },
];

/// The rest of the table, mounted right after the boot dispatch has spawned containerd (issue 11
/// item 4: under TCG each filesystem's first mount runs its code for the first time, ~2–3 ms
/// apiece on a quiet host): nothing in it is needed to exec a runtime, and units that use it
/// order themselves `after = ["mounts"]` (`late_mounts`). Their parents are all in `EARLY_MOUNTS`.
pub const LATE_MOUNTS: &[EarlyMount] = &[
    EarlyMount {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: NOSUID | NOEXEC,
        data: "mode=0620,gid=5,ptmxmode=0666",
    },
    EarlyMount {
        source: "tmpfs",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: NOSUID | NODEV,
        data: "mode=1777",
    },
    EarlyMount {
        source: "mqueue",
        target: "/dev/mqueue",
        fstype: "mqueue",
        flags: NOSUID | NODEV | NOEXEC,
        data: "",
    },
    EarlyMount {
        source: "securityfs",
        target: "/sys/kernel/security",
        fstype: "securityfs",
        flags: NOSUID | NODEV | NOEXEC,
        data: "",
    },
    EarlyMount {
        source: "bpf",
        target: "/sys/fs/bpf",
        fstype: "bpf",
        flags: NOSUID | NODEV | NOEXEC,
        data: "mode=0700",
    },
];

/// What happened to one table row.
#[derive(Debug, PartialEq, Eq)]
pub enum MountOutcome {
    Mounted,
    AlreadyMounted,
    Failed(nix::Error),
}

/// Mounts each row under `root` (`/` on a machine, a temp dir in tests) unless mountinfo already
/// lists it; creates missing mount points; logs and records failures, never stops early.
/// Mountinfo is read once, when it can be: before /proc is mounted it cannot, so it is read
/// again after each row until that works (the kernel's devtmpfs may already be on /dev).
/// Rows go parents first, so a child listed as mounted is one that was there before we started.
pub fn apply_early_mounts(
    table: &[EarlyMount],
    root: &Path,
    mountinfo_path: &Path,
) -> Vec<(PathBuf, MountOutcome)> {
    let mut mounted: Option<std::collections::HashSet<String>> = None;
    let mut out = Vec::with_capacity(table.len());
    for m in table {
        if mounted.is_none() {
            mounted = std::fs::read_to_string(mountinfo_path).ok().map(|t| {
                parse_mountinfo(&t)
                    .into_iter()
                    .map(|mi| mi.mount_point)
                    .collect()
            });
        }
        let target = root.join(m.target.trim_start_matches('/'));
        let already = mounted
            .as_ref()
            .is_some_and(|set| set.contains(target.to_string_lossy().as_ref()));
        let outcome = if already {
            MountOutcome::AlreadyMounted
        } else {
            let _ = std::fs::create_dir_all(&target);
            match crate::sys::mount::mount_fs(m.source, &target, m.fstype, m.flags, m.data) {
                Ok(()) => MountOutcome::Mounted,
                Err(e) => {
                    log::warn!(
                        "early mount {} ({}) failed: {e}",
                        target.display(),
                        m.fstype
                    );
                    MountOutcome::Failed(e)
                }
            }
        };
        out.push((target, outcome));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs::is_mounted;

    #[test]
    fn table_has_parents_before_children_and_absolute_targets() {
        let table: Vec<EarlyMount> = EARLY_MOUNTS.iter().chain(LATE_MOUNTS).copied().collect();
        for (i, m) in table.iter().enumerate() {
            assert!(m.target.starts_with('/'));
            for later in &table[i + 1..] {
                assert!(
                    !m.target.starts_with(&format!("{}/", later.target)),
                    "{} after its child",
                    later.target
                );
            }
        }
        // Stage 0 applies the first three rows itself.
        let first: Vec<&str> = EARLY_MOUNTS[..3].iter().map(|m| m.target).collect();
        assert_eq!(first, ["/proc", "/sys", "/dev"]);
        // What containerd's exec needs is early; the rest waits for the boot dispatch.
        let late: Vec<&str> = LATE_MOUNTS.iter().map(|m| m.target).collect();
        for needed in ["/run", "/sys/fs/cgroup"] {
            assert!(EARLY_MOUNTS.iter().any(|m| m.target == needed), "{needed}");
            assert!(!late.contains(&needed), "{needed}");
        }
        assert!(is_mounted(
            "22 27 0:21 / /proc rw - proc proc rw\n",
            "/proc"
        ));
        assert!(!is_mounted(
            "22 27 0:21 / /proc rw - proc proc rw\n",
            "/sys"
        ));
    }
}
