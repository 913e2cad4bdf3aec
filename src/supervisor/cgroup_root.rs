//! The cgroup root's controllers on a machine, and when they are enabled (issue 11 item 4).
//!
//! Enabling controllers in the root's `cgroup.subtree_control` is the costliest step of stage 1
//! under TCG (60–170 ms: the kernel runs the controllers' attach and css code for the first time
//! in this boot), and containerd needs none of it to exec: runc enables controllers in a
//! container's ancestors itself when it makes the first container, seconds later. So on a
//! machine the root's controllers are *deferred*: `create` makes groups without touching any
//! `subtree_control` and remembers them, the boot dispatch spawns containerd, and
//! `enable_deferred` then enables the root's controllers and, for every group made meanwhile,
//! its ancestors' (what `create` would have done), and moves the init into its own group `init`.
//! cgroup v2 allows all of it: the root is exempt from the no-internal-processes rule (the init
//! may wait there), and the parents (`system`, `podruntime`) hold no process. Moving the init
//! waits too: a first write of cgroup.procs cost ~100 ms of TCG time before the spawn.
//!
//! A unit spawned before the catch-up runs without controllers for those milliseconds, so no limit
//! it asks for could apply: the supervisor catches up *before* the dispatch whenever a unit has a
//! resource limit (`pids-max`), and a limit is never silently dropped.
//!
//! **Held back**: the supervisor now catches up before the dispatch for every catalog, so
//! containerd waits for the controllers again (`boot_units_then_subsystems`). Twice a guest hung
//! for minutes right in the catch-up after containerd's spawn, both CPUs in soft lockups (PID 1 in
//! `cgroup_subtree_control_write` populating the controllers' files, containerd in a page fault),
//! once on a quiet host; 40 loaded boots in between did not show it. The deferral stays in one
//! piece (groups made while deferred, the catch-up of their ancestors); it costs one call before
//! the dispatch.
//!
//! **The likely cause** (2026-11-30, 22:30 UTC): a third variant, a helper child that enabled the
//! root's controllers and made the init's group on the second CPU while PID 1 parsed the units,
//! hung the same way (1 of 45 boots; console in `docs/cgroup-livelock-console.txt`). Every time,
//! one CPU was creating the first groups below the root with the controllers just enabled
//! (`cgroup_mkdir` → `css_populate_dir`, or the subtree_control write's catch-up), and both CPUs
//! sat for minutes at the *same instruction*: the static-branch NOP at `kmem_cache_alloc+0x5d`,
//! the memory controller's kernel-memory check. The first memory group below the root switches
//! that static key on (`memcg_online_kmem`), which rewrites kernel code the other CPU is running
//! through on every allocation; under QEMU's TCG that live code patching between two vCPUs is
//! where they stop. Hence the rule this module now keeps: the controllers are enabled and the first
//! group below the root is made while nothing else runs on the machine, on PID 1's own thread:
//! the root's controllers right before the boot dispatch, and the first unit's group (containerd's)
//! in the dispatch before its spawn. Every later group finds the keys switched already, which is
//! why the init's own group `init` and its move there can wait until after the dispatch
//! (`join_init_group_late`: ~60 ms under TCG off the critical path).

use std::path::Path;

use super::catalog::Catalog;
use super::cgroup::CgroupRoot;
use super::event_loop::Supervisor;

/// Controllers to enable for the whole tree when the kernel offers them.
pub const CGROUP_CONTROLLERS: &[&str] = &[
    "cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc",
];

/// Enables the available `CGROUP_CONTROLLERS` in `cgroup_root`'s subtree_control; returns them.
///
/// All controllers go in one write: each write to subtree_control applies the change to the whole
/// tree (and takes the kernel's cgroup threadgroup lock), so one is the least work. Only when the
/// kernel refuses the whole line is each controller tried alone, so one it refuses does not keep
/// the others off.
pub fn enable_root_controllers(cgroup_root: &Path) -> Vec<String> {
    let available =
        std::fs::read_to_string(cgroup_root.join("cgroup.controllers")).unwrap_or_default();
    let want: Vec<&str> = CGROUP_CONTROLLERS
        .iter()
        .copied()
        .filter(|c| available.split_whitespace().any(|a| a == *c))
        .collect();
    let ctl = cgroup_root.join("cgroup.subtree_control");
    let line: Vec<String> = want.iter().map(|c| format!("+{c}")).collect();
    let mut enabled = Vec::new();
    if want.is_empty() || std::fs::write(&ctl, line.join(" ")).is_ok() {
        enabled.extend(want.iter().map(|c| c.to_string()));
    } else {
        for c in want {
            match std::fs::write(&ctl, format!("+{c}")) {
                Ok(()) => enabled.push(c.to_string()),
                Err(e) => log::warn!("enable cgroup controller {c}: {e}"),
            }
        }
    }
    enabled
}

impl CgroupRoot {
    /// This root's controllers are not enabled yet: `create` leaves every subtree_control alone
    /// until `enable_deferred`.
    pub fn with_deferred_controllers(self) -> Self {
        *self.deferred.borrow_mut() = Some(Vec::new());
        self
    }

    /// Whether the root's controllers still wait for `enable_deferred`.
    pub fn controllers_deferred(&self) -> bool {
        self.deferred.borrow().is_some()
    }

    /// Called by `create`: while deferred, remembers `rel` for the catch-up and says to skip the
    /// controllers now.
    pub(super) fn defer_group(&self, rel: &str) -> bool {
        match self.deferred.borrow_mut().as_mut() {
            Some(groups) => {
                groups.push(rel.to_string());
                true
            }
            None => false,
        }
    }

    /// Enables the root's controllers, then those of the ancestors of every group `create` made
    /// while they were deferred; afterwards `create` enables them as it goes. Returns the root's
    /// controllers (none when nothing was deferred). Failures are logged: a unit keeps running
    /// without a controller rather than not at all.
    pub fn enable_deferred(&self) -> Vec<String> {
        let Some(groups) = self.deferred.borrow_mut().take() else {
            return Vec::new();
        };
        // What the parents offer changes now: nothing known about them before still holds.
        self.enabled.borrow_mut().clear();
        let enabled = enable_root_controllers(&self.root);
        for rel in groups {
            if let Err(e) = self.enable_ancestors(&rel, true) {
                log::warn!("{e}");
            }
        }
        enabled
    }
}

/// Moves the init into `<base>/init`, so that `<base>` holds no processes itself (cgroup v2's rule
/// for enabling controllers below it; the root is exempt, which is why a machine's init can wait
/// in the root until after the boot dispatch).
pub(super) fn join_init_group(root: &CgroupRoot, base: &str) {
    let group = if base.is_empty() {
        "init".to_string()
    } else {
        format!("{base}/init")
    };
    match root.create(&group, false, None) {
        // Already there (a restart of the supervisor's set-up): another write to cgroup.procs
        // would only cost another trip through the kernel's threadgroup lock (issue 11).
        Ok(_) if super::own_cgroup() == group => {}
        Ok(_) => {
            if let Err(e) = root.attach(&group, std::process::id() as i32) {
                log::warn!("cannot move the init into its cgroup: {e}");
            }
        }
        Err(e) => log::warn!("{e}"),
    }
}

/// Whether a unit asks for a resource limit, which only an enabled controller can apply: then the
/// controllers are enabled before the boot dispatch, so no unit ever runs without its limit.
pub fn limits_need_controllers(catalog: &Catalog) -> bool {
    catalog.units.values().any(|u| u.cgroup.pids_max.is_some())
}

impl Supervisor {
    /// Enables the root's deferred controllers (a `cgroup-controllers` span in the timeline);
    /// nothing when none wait. Called right before the boot dispatch, so every spawn finds them
    /// enabled; the init's own move into `init` waits for `join_init_group_late`.
    pub(super) fn catch_up_controllers(&mut self) {
        let Some(cg) = self
            .env
            .cgroups
            .as_ref()
            .filter(|c| c.controllers_deferred())
        else {
            return;
        };
        let enabled = self
            .boot
            .timeline
            .span("cgroup-controllers", || cg.enable_deferred());
        self.env.init_group_pending = true;
        log::debug!("cgroup controllers enabled: {}", enabled.join(" "));
    }

    /// Moves the init into its own group `init` once the boot dispatch is over (an `init-group`
    /// span); nothing when `catch_up_controllers` did not leave it pending.
    ///
    /// Why after the dispatch: the move was 22–43 ms of the critical path under TCG (its mkdir
    /// another ~25 ms), and no unit needs it: on a machine the init waits in the root, which
    /// cgroup v2 exempts from the no-internal-processes rule. Why it is safe there: by now the
    /// first group below the root (the first unit's, made before its spawn with nothing else
    /// running) has switched the controllers' static keys on, so this mkdir patches no kernel code
    /// (module docs), and a move creates no group at all. Helpers the subsystems start before it
    /// (softdog's modprobe) run in the root's group for their few milliseconds.
    ///
    /// When the dispatch made no group (no unit startable at boot), `init` would be the first
    /// group below the root, so it is made at once, before anything else runs
    /// (`join_init_group_if_first`).
    pub(super) fn join_init_group_late(&mut self) {
        if !std::mem::take(&mut self.env.init_group_pending) {
            return;
        }
        let Some(cg) = self.env.cgroups.as_ref() else {
            return;
        };
        let base = &self.env.cgroup_base;
        self.boot
            .timeline
            .span("init-group", || join_init_group(cg, base));
    }

    /// `join_init_group_late` now when no group below the root exists yet: then `init` is the
    /// first one, whose creation switches the static keys, and it must be made while nothing
    /// else runs, i.e. before the subsystems start their helpers.
    pub(super) fn join_init_group_if_first(&mut self) {
        let first = self
            .env
            .cgroups
            .as_ref()
            .is_some_and(|cg| !cg.made_one.get());
        if first {
            self.join_init_group_late();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_root(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("lifsea-cgdefer-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Writes cgroupfs-like control files into `dir` (a real cgroupfs makes them itself).
    fn control_files(dir: &Path, available: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("cgroup.controllers"), available).unwrap();
        std::fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
    }

    #[test]
    fn root_controllers_go_in_one_write_of_what_is_offered() {
        let d = fake_root("one");
        std::fs::write(d.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        let enabled = enable_root_controllers(&d);
        assert_eq!(enabled, vec!["cpuset", "cpu", "io", "memory", "pids"]);
        assert_eq!(
            std::fs::read_to_string(d.join("cgroup.subtree_control")).unwrap(),
            "+cpuset +cpu +io +memory +pids"
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// While deferred, `create` writes no subtree_control at all (the root's first: that write is
    /// the cost being moved); the catch-up then does the root's and every remembered group's
    /// ancestors', exactly what `create` would have done, and later groups are handled at once.
    #[test]
    fn deferred_create_touches_no_controller_until_the_catch_up() {
        let d = fake_root("defer");
        let offered = "cpuset cpu io memory pids\n";
        control_files(&d, offered);
        let cg = CgroupRoot::at(&d).with_deferred_controllers();
        assert!(cg.controllers_deferred());
        let control = |rel: &str| {
            std::fs::read_to_string(d.join(rel).join("cgroup.subtree_control")).unwrap()
        };
        cg.create("podruntime/containerd", false, None).unwrap();
        assert_eq!(control(""), "");
        // What the kernel shows in a new group once the root's controllers are on.
        control_files(&d.join("podruntime"), offered);
        let enabled = cg.enable_deferred();
        assert!(!cg.controllers_deferred());
        assert_eq!(enabled, vec!["cpuset", "cpu", "io", "memory", "pids"]);
        assert_eq!(control(""), "+cpuset +cpu +io +memory +pids");
        assert_eq!(control("podruntime"), "+cpu +memory +pids +io");
        // The leaf holds the unit's processes: its own subtree stays off.
        assert!(!d
            .join("podruntime/containerd/cgroup.subtree_control")
            .exists());
        // Nothing left to catch up; new groups get their ancestors' controllers as they go.
        assert!(cg.enable_deferred().is_empty());
        control_files(&d.join("system"), "cpu memory pids io\n");
        cg.create("system/svc", false, None).unwrap();
        assert_eq!(control("system"), "+cpu +memory +pids +io");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_root_made_without_deferral_has_nothing_to_catch_up() {
        let d = fake_root("plain");
        control_files(&d, "cpu memory\n");
        let cg = CgroupRoot::at(&d);
        assert!(!cg.controllers_deferred());
        assert!(cg.enable_deferred().is_empty());
        assert_eq!(
            std::fs::read_to_string(d.join("cgroup.subtree_control")).unwrap(),
            ""
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
