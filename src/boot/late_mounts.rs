//! The kernel filesystems containerd does not need to exec (devpts, /dev/shm, mqueue, securityfs,
//! bpf: `mounts::LATE_MOUNTS`), mounted right after the boot dispatch has spawned it, and
//! announced as the fact `mounts`.
//!
//! Why not before: under TCG each filesystem's first mount runs that filesystem's code for the
//! first time (QEMU translates every new guest block), and none of these is used by containerd
//! before it serves its socket (runc gives containers their own devpts, shm and mqueue; the host's
//! securityfs and bpf matter to containers and CNIs that come seconds later). Units that use them
//! say `after = ["mounts"]`: the ordering stays a dependency the core enforces. The fact is
//! reached even when a row fails (logged, kept in the status): a dependent must not hang on a
//! degraded step, as before, when a failed early mount did not hold the fact back either.
//!
//! Same shape as `identity`: the work runs when the subsystems are built; the fact and the step's
//! own timeline stamps are reported on the first loop pass.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::done_step::DoneStep;
use super::mounts::{apply_early_mounts, EarlyMount, MountOutcome};
use crate::supervisor::subsystem::{Notice, Subsystem};
use crate::timeline::boottime_us;

/// The fact reached once every row has been tried (see docs/units.md).
pub const FACT: &str = "mounts";

/// The step's outcome, kept for `initctl` (status) and reported once as the fact.
pub struct LateMounts {
    mounted: Vec<PathBuf>,
    failed: Vec<String>,
    step: DoneStep,
}

impl LateMounts {
    /// Mounts `table` under `root` now (skipping what `mountinfo` lists already).
    pub fn apply(table: &[EarlyMount], root: &Path, mountinfo: &Path) -> LateMounts {
        let started_us = boottime_us();
        let mut mounted = Vec::new();
        let mut failed = Vec::new();
        for (target, outcome) in apply_early_mounts(table, root, mountinfo) {
            match outcome {
                MountOutcome::Mounted | MountOutcome::AlreadyMounted => mounted.push(target),
                MountOutcome::Failed(e) => failed.push(format!("{}: {e}", target.display())),
            }
        }
        LateMounts {
            mounted,
            failed,
            step: DoneStep::finished_now("late-mounts", FACT, started_us),
        }
    }
}

impl Subsystem for LateMounts {
    fn name(&self) -> &'static str {
        "mounts"
    }

    fn deadline(&self) -> Option<Instant> {
        self.step.deadline()
    }

    fn tick(&mut self, _now: Instant, out: &mut Vec<Notice>) {
        self.step.report(out);
    }

    fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "mounted": self.mounted.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "failed": self.failed,
            "reached": self.step.reported(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::TimelineEvent;

    /// Rows whose targets mountinfo already lists are not mounted again: the work done at
    /// construction, the fact after it with the step's own stamps, once.
    #[test]
    fn reaches_mounts_once_after_the_rows() {
        let dir = std::env::temp_dir().join(format!("lifsea-late-mounts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("dev/shm");
        let mountinfo = dir.join("mountinfo");
        std::fs::write(
            &mountinfo,
            format!(
                "30 25 0:26 / {} rw - tmpfs tmpfs rw\n",
                target.to_string_lossy()
            ),
        )
        .unwrap();
        let table = [EarlyMount {
            source: "tmpfs",
            target: "/dev/shm",
            fstype: "tmpfs",
            flags: 0,
            data: "",
        }];
        let before = boottime_us();
        let mut step = LateMounts::apply(&table, &dir, &mountinfo);
        assert_eq!(step.mounted, vec![target]);
        assert!(step.failed.is_empty());
        let mut out = Vec::new();
        step.tick(Instant::now(), &mut out);
        let _ = std::fs::remove_dir_all(&dir);
        let stamps: Vec<(u64, TimelineEvent)> = out
            .iter()
            .filter_map(|n| match n {
                Notice::StampAt {
                    at_us, name, event, ..
                } if name == "late-mounts" => Some((*at_us, *event)),
                _ => None,
            })
            .collect();
        assert_eq!(stamps.len(), 2, "{out:?}");
        assert_eq!(stamps[0].1, TimelineEvent::Start);
        assert!(before <= stamps[0].0 && stamps[0].0 <= stamps[1].0);
        assert_eq!(out.last(), Some(&Notice::FactReached(FACT.into())));
        let mut again = Vec::new();
        step.tick(Instant::now(), &mut again);
        assert!(again.is_empty(), "reported twice: {again:?}");
        assert!(step.deadline().is_none());
    }

    /// A row that fails (an unknown filesystem) is kept in the status and still reaches the fact.
    #[test]
    fn a_failed_row_still_reaches_the_fact() {
        let dir = std::env::temp_dir().join(format!("lifsea-late-fail-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("mountinfo"), "").unwrap();
        let table = [EarlyMount {
            source: "x",
            target: "/bogus",
            fstype: "no-such-fs",
            flags: 0,
            data: "",
        }];
        let mut step = LateMounts::apply(&table, &dir, &dir.join("mountinfo"));
        let mut out = Vec::new();
        step.tick(Instant::now(), &mut out);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(out.contains(&Notice::FactReached(FACT.into())));
        assert_eq!(step.status()["failed"].as_array().map(Vec::len), Some(1));
    }
}
