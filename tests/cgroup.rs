//! `supervisor::cgroup` on the real cgroup2 mount: children started by `spawn` land in a fresh
//! group, `kill` empties it (observed through cgroup.events), and the group is removed. Needs root.
//! Each test works in its own uniquely named group and removes it, also when an assertion fails.

#[path = "common/fixtures.rs"]
mod fixtures;
// fixtures.rs names the library as `crate::units` (it is also compiled inside the library).
use lifsea_init::units;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fixtures::test_unit;
use lifsea_init::supervisor::cgroup::CgroupRoot;
use lifsea_init::supervisor::spawn::{spawn, unit_owner, SpawnRequest};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A test group: on drop, kills what is left, reaps our children and removes the group.
struct Group {
    root: CgroupRoot,
    top: String,
    rel: String,
    children: Vec<Pid>,
}

impl Group {
    /// A fresh group under the real cgroup2 hierarchy. These tests need root and cgroup2 (CI has
    /// both): without them they fail rather than pass having tested nothing.
    fn new(tag: &str) -> Group {
        static N: AtomicUsize = AtomicUsize::new(0);
        // Grandchildren orphaned by a kill must come back to us to be reaped, not to PID 1.
        lifsea_init::sys::power::become_subreaper().unwrap();
        let root = CgroupRoot::detect()
            .unwrap_or_else(|e| panic!("needs a writable cgroup2 hierarchy (run as root): {e}"));
        let top = format!(
            "lifsea-test-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let rel = format!("{top}/svc");
        Group {
            root,
            top,
            rel,
            children: Vec::new(),
        }
    }

    fn dir(&self) -> PathBuf {
        self.root.root.join(&self.rel)
    }

    fn start(&mut self, script: &str) -> Pid {
        let unit = test_unit("cg", &["/bin/sh", "-c", script]);
        let req = SpawnRequest {
            unit: &unit,
            notify_socket: None,
            cgroup_dir: Some(self.dir()),
            clone_into_cgroup: !self.root.was_killed(&self.rel),
            etc_dir: Path::new("/etc"),
        };
        let spawned = spawn(&req).unwrap();
        self.children.push(spawned.pid);
        spawned.pid
    }

    fn wait_populated(&self, want: bool) {
        let deadline = Instant::now() + TIMEOUT;
        while self.root.is_populated(&self.rel).unwrap() != want {
            assert!(Instant::now() < deadline, "populated never became {want}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Reaps one of our children (or an orphan on its way to us) with a bounded wait and
    /// returns how it ended.
    fn reap(&mut self, pid: Pid) -> WaitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => {}
                Ok(st) => {
                    self.children.retain(|p| *p != pid);
                    return st;
                }
                Err(e) => panic!("waitpid {pid}: {e}"),
            }
            assert!(Instant::now() < deadline, "child {pid} did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = self.root.kill(&self.top);
        for pid in std::mem::take(&mut self.children) {
            let _ = kill(pid, Signal::SIGKILL);
            // Bounded: an orphan may take a moment to be reparented to us (ECHILD until then).
            let deadline = Instant::now() + TIMEOUT;
            while matches!(
                waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD)
            ) && Instant::now() < deadline
                && Path::new(&format!("/proc/{pid}")).exists()
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let deadline = Instant::now() + TIMEOUT;
        while self.root.is_populated(&self.top).unwrap_or(false) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.root.remove(&self.top);
    }
}

#[test]
fn spawned_children_join_and_kill_empties_the_group() {
    let mut g = Group::new("kill");
    let dir = g.root.create(&g.rel, false, None).unwrap();
    assert!(dir.join("cgroup.procs").exists());
    assert!(!g.root.is_populated(&g.rel).unwrap());

    let a = g.start("exec sleep 30");
    // A daemonising child: its grandchild must be in the group too, outliving the shell.
    let b = g.start("sleep 30 & wait");
    g.wait_populated(true);
    let deadline = Instant::now() + TIMEOUT;
    let pids = loop {
        let pids = g.root.pids(&g.top).unwrap();
        if pids.len() >= 3 || Instant::now() > deadline {
            break pids;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    g.children.extend(pids.iter().map(|p| Pid::from_raw(*p)));
    g.children.dedup();
    assert!(pids.contains(&a.as_raw()), "{pids:?}");
    assert!(pids.contains(&b.as_raw()), "{pids:?}");
    assert_eq!(pids.len(), 3, "{pids:?}");
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == a.as_raw().to_string()));

    let stats = g.root.stats(&g.rel);
    assert!(stats.cpu_usage_usec.is_some(), "{stats:?}");

    g.root.kill(&g.rel).unwrap();
    g.wait_populated(false);
    assert!(g.root.pids(&g.rel).unwrap().is_empty());
    // All three, the orphaned grandchild included (we are its subreaper), died of SIGKILL.
    for pid in pids.iter().map(|p| Pid::from_raw(*p)) {
        assert_eq!(
            g.reap(pid),
            WaitStatus::Signaled(pid, Signal::SIGKILL, false)
        );
    }

    g.root.remove(&g.top).unwrap();
    assert!(!g.root.root.join(&g.top).exists());
    // Removing what is gone is not an error: stop paths may run twice.
    g.root.remove(&g.top).unwrap();
    g.root.kill(&g.top).unwrap();
}

#[test]
fn busy_group_is_not_removed_and_signal_all_reaches_members() {
    let mut g = Group::new("busy");
    g.root.create(&g.rel, false, None).unwrap();
    let a = g.start("exec sleep 30");
    g.wait_populated(true);
    let err = g.root.remove(&g.top).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("rmdir"), "{msg}");
    assert!(msg.contains(&g.rel), "{msg}");
    assert!(g.root.root.join(&g.rel).exists());

    g.root.signal_all(&g.top, Signal::SIGTERM).unwrap();
    assert_eq!(g.reap(a), WaitStatus::Signaled(a, Signal::SIGTERM, false));
    g.wait_populated(false);
    g.root.remove(&g.top).unwrap();
}

#[test]
fn attach_moves_a_process() {
    let mut g = Group::new("attach");
    g.root.create(&g.top, false, None).unwrap();
    // Started without a cgroup, then moved in.
    let unit = test_unit("cg", &["/bin/sleep", "30"]);
    let req = SpawnRequest {
        unit: &unit,
        notify_socket: None,
        cgroup_dir: None,
        clone_into_cgroup: false,
        etc_dir: Path::new("/etc"),
    };
    let pid = spawn(&req).unwrap().pid;
    g.children.push(pid);
    g.root.create(&g.rel, false, None).unwrap();
    g.root.attach(&g.rel, pid.as_raw()).unwrap();
    assert_eq!(g.root.pids(&g.rel).unwrap(), vec![pid.as_raw()]);
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(own.contains(&format!("0::/{}", g.rel)), "{own}");
}

#[test]
fn delegated_group_is_owned_by_the_service_user() {
    let g = Group::new("delegate");
    let mut unit = test_unit("delegated", &["/bin/true"]);
    unit.user = Some("nobody".into());
    let owner = unit_owner(&unit, Path::new("/etc")).unwrap();
    assert_eq!(owner, Some((65534, 65534)));
    let dir = g.root.create(&g.rel, true, owner).unwrap();
    use std::os::unix::fs::MetadataExt;
    for f in [
        "",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.threads",
    ] {
        let meta = std::fs::metadata(dir.join(f)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534), "{f}");
    }
    // Not delegated: stays root's.
    let meta = std::fs::metadata(g.root.root.join(&g.top)).unwrap();
    assert_eq!(meta.uid(), 0);
}

/// A child born in its group (clone3 CLONE_INTO_CGROUP) is there from its first instruction; after
/// the group was killed once, spawning into it again still yields a live member (the supervisor's
/// restart path), whatever the kernel does with killed groups and CLONE_INTO_CGROUP.
#[test]
fn spawn_into_a_killed_group_survives() {
    let mut g = Group::new("rekill");
    g.root.create(&g.rel, false, None).unwrap();
    assert!(!g.root.was_killed(&g.rel));
    let first = g.start("cat /proc/self/cgroup > /dev/stderr; exec sleep 100");
    g.wait_populated(true);
    g.root.kill(&g.rel).unwrap();
    assert!(g.root.was_killed(&g.rel));
    assert!(matches!(
        g.reap(first),
        WaitStatus::Signaled(_, Signal::SIGKILL, _)
    ));
    g.wait_populated(false);
    let second = g.start("exec sleep 100");
    std::thread::sleep(Duration::from_millis(200));
    let procs = std::fs::read_to_string(g.dir().join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|l| l.trim() == second.to_string()),
        "respawned child {second} is not alive in its group: {procs:?}"
    );
}
