//! Stage 3 on a node: after the units stopped (kubelet before containerd, by their dependency),
//! what runs below `/kubepods`, containerd's subtree (its shims) and the ops sessions' groups is
//! not stopped by anyone: containerd's `kill = "main"` leaves shims and containers running on
//! purpose, so that a restart of containerd does not take the node's containers down. Before the
//! init's final SIGTERM-to-everyone (which gives one second), containers get their own SIGTERM and
//! up to `DRAIN_TIMEOUT` to exit, then cgroup.kill; whatever is still there is logged by name
//! before the filesystems are unmounted. Bounded throughout; stage 3 no longer runs the event loop,
//! so waiting here blocks nothing else.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::supervisor::cgroup::CgroupRoot;

/// The node's container groups, relative to the cgroup root (docs/node.md, cgroup layout).
pub const NODE_GROUPS: &[&str] = &["kubepods", "podruntime/containerd", "system/ops"];
/// How long containers get after SIGTERM: containerd's own stop timeout.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// After cgroup.kill, how long until the groups must be empty.
const KILL_WAIT: Duration = Duration::from_secs(2);

/// What was left in one group: pid and command name.
pub type Left = Vec<(String, Vec<(i32, String)>)>;

/// "kubepods: 412 (pause), 433 (nginx); system/ops: 501 (sh)".
pub fn describe(left: &Left) -> String {
    left.iter()
        .map(|(g, procs)| {
            let p: Vec<String> = procs
                .iter()
                .map(|(pid, c)| format!("{pid} ({c})"))
                .collect();
            format!("{g}: {}", p.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The groups that still hold processes, with them.
fn populated(cg: &CgroupRoot, groups: &[&str]) -> Left {
    groups
        .iter()
        .filter_map(|g| {
            let pids = cg.pids(g).unwrap_or_default();
            (!pids.is_empty())
                .then(|| (g.to_string(), pids.iter().map(|&p| (p, comm(p))).collect()))
        })
        .collect()
}

/// Waits until every group is empty or `limit` passes, reaping orphans meanwhile; returns what is
/// left.
fn wait_empty(cg: &CgroupRoot, groups: &[&str], limit: Duration) -> Left {
    // `None`: a limit beyond what `Instant` holds, i.e. no limit.
    let deadline = Instant::now().checked_add(limit);
    loop {
        while crate::sys::reap::reap_one().is_some() {}
        let left = populated(cg, groups);
        if left.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM to the node's containers, a bounded wait, cgroup.kill, a last bounded wait; logs what
/// it did and what is left. Returns what is left (empty when the groups were emptied).
pub fn drain(root: &Path, groups: &[&str], timeout: Duration) -> Left {
    let cg = CgroupRoot::at(root);
    let left = populated(&cg, groups);
    if left.is_empty() {
        return left;
    }
    log::info!("stopping the node's containers: {}", describe(&left));
    let started = Instant::now();
    for (g, _) in &left {
        if let Err(e) = cg.signal_all(g, Signal::SIGTERM) {
            log::warn!("{e}");
        }
    }
    let left = wait_empty(&cg, groups, timeout);
    if left.is_empty() {
        log::info!(
            "the node's containers stopped in {} ms",
            started.elapsed().as_millis()
        );
        return left;
    }
    log::warn!(
        "still running {} s after SIGTERM, killing: {}",
        timeout.as_secs(),
        describe(&left)
    );
    for (g, _) in &left {
        if let Err(e) = cg.kill(g) {
            log::warn!("{e}");
        }
    }
    let left = wait_empty(&cg, groups, KILL_WAIT);
    if left.is_empty() {
        log::info!(
            "the node's containers killed in {} ms",
            started.elapsed().as_millis()
        );
    } else {
        log::error!(
            "left in the node's cgroups before unmount: {}",
            describe(&left)
        );
    }
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("lifsea-drain-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for g in NODE_GROUPS {
            std::fs::create_dir_all(d.join(g)).unwrap();
            std::fs::write(d.join(g).join("cgroup.procs"), "").unwrap();
            std::fs::write(d.join(g).join("cgroup.kill"), "").unwrap();
        }
        d
    }

    #[test]
    fn empty_groups_return_at_once() {
        let d = tree("empty");
        let t = Instant::now();
        assert!(drain(&d, NODE_GROUPS, Duration::from_secs(5)).is_empty());
        assert!(t.elapsed() < Duration::from_secs(1));
        // A group that does not exist counts as empty.
        assert!(drain(&d, &["nonexistent"], Duration::from_secs(5)).is_empty());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn a_group_that_stays_populated_is_killed_reported_and_the_wait_is_bounded() {
        let d = tree("stuck");
        // A pid that cannot exist (above pid_max's ceiling): signals find nobody, the file stays.
        std::fs::write(d.join("kubepods/cgroup.procs"), "4194305\n").unwrap();
        let t = Instant::now();
        let left = drain(&d, NODE_GROUPS, Duration::from_millis(200));
        assert!(t.elapsed() < Duration::from_millis(200) + KILL_WAIT + Duration::from_secs(1));
        assert_eq!(
            left,
            vec![("kubepods".to_string(), vec![(4194305, "?".to_string())])]
        );
        assert_eq!(describe(&left), "kubepods: 4194305 (?)");
        // cgroup.kill was written for the stuck group.
        assert_eq!(
            std::fs::read_to_string(d.join("kubepods/cgroup.kill")).unwrap(),
            "1"
        );
        std::fs::remove_dir_all(d).unwrap();
    }
}
