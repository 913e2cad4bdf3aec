//! cgroup v2 groups for units: creating them (with controllers and optional delegation), killing,
//! signalling and watching their members, reading usage, removing them.
//!
//! A group is how a stop reaches every process a service forked, however it daemonised, and how
//! the supervisor learns the service is really gone (`populated 0` in cgroup.events). Everything
//! here is plain file I/O on the cgroup2 mount, addressed by a path relative to `root`, so tests can
//! run it under any cgroup2 mount (or a temp dir for the file-only parts).

use std::io;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::procfs::{parse_mountinfo, MountInfo};

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

/// Controllers a unit group gets when its ancestors can offer them. Others (hugetlb, rdma,
/// cpuset, misc) are left to whoever needs them, such as a delegated kubelet.
const CONTROLLERS: [&str; 4] = ["cpu", "memory", "pids", "io"];

/// Where `detect` prefers to find cgroup2: the unified layout first, then a hybrid host's.
const PREFERRED: [&str; 2] = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

/// How many passes the signal fallback of `kill` makes, to catch children forked meanwhile.
const KILL_PASSES: usize = 3;

/// The cgroup2 hierarchy the init manages (usually /sys/fs/cgroup).
#[derive(Debug, Clone)]
pub struct CgroupRoot {
    pub root: PathBuf,
    /// Groups this init has written `cgroup.kill` to. Some kernels (seen on 6.18) SIGKILL a child
    /// born into such a group with clone3(CLONE_INTO_CGROUP) as if it had been forked during the
    /// kill, so spawns into these groups take the fork + cgroup.procs path.
    killed: std::cell::RefCell<crate::collections::keyset::StrSet>,
    /// Parents whose `cgroup.subtree_control` already holds every wanted controller the parent
    /// offers (found so, or written by us): creating a thousand unit groups under `system` reads
    /// and parses its two control files once instead of a thousand times. Forgotten whenever a
    /// parent had to be created again (a new group starts with no controllers enabled). Keyed
    /// by the parent's path as text (the set shares the string-keyed tree; a path that is not
    /// UTF-8 is simply not remembered).
    pub(super) enabled: std::cell::RefCell<crate::collections::keyset::StrSet>,
    /// `Some` while the root's controllers wait (`cgroup_root`): the groups made meanwhile.
    pub(super) deferred: std::cell::RefCell<Option<Vec<String>>>,
    /// A group was made below the root by this init (the first one switches the controllers'
    /// static keys on: `cgroup_root`'s module docs).
    pub(super) made_one: std::cell::Cell<bool>,
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

fn read(path: &Path, op: &'static str) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(io_err(path, op))
}

/// Writes to an existing control file (never creating one: a typo must fail, not make a file).
fn write(path: &Path, op: &'static str, data: &str) -> Result<(), CgroupError> {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(data.as_bytes()))
        .map_err(io_err(path, op))
}

/// Chooses the cgroup2 mount to manage: a preferred path when mounted there, else the first one.
pub fn pick_cgroup2(mounts: &[MountInfo]) -> Option<PathBuf> {
    let cgroup2: Vec<&MountInfo> = mounts.iter().filter(|m| m.fs_type == "cgroup2").collect();
    PREFERRED
        .iter()
        .find_map(|p| cgroup2.iter().find(|m| m.mount_point == *p))
        .or_else(|| cgroup2.first())
        .map(|m| PathBuf::from(&m.mount_point))
}

/// `populated` from the text of cgroup.events.
pub fn parse_populated(events: &str) -> Option<bool> {
    events.lines().find_map(|l| match l.split_once(' ')? {
        ("populated", v) => Some(v.trim() == "1"),
        _ => None,
    })
}

/// `usage_usec` from the text of cpu.stat.
pub fn parse_cpu_usage(cpu_stat: &str) -> Option<u64> {
    cpu_stat.lines().find_map(|l| match l.split_once(' ')? {
        ("usage_usec", v) => v.trim().parse().ok(),
        _ => None,
    })
}

/// Pids listed in a cgroup.procs text.
pub fn parse_procs(procs: &str) -> Vec<i32> {
    procs
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Controllers to write into a parent's cgroup.subtree_control: wanted, available, not yet on.
pub fn controllers_to_enable(available: &str, enabled: &str) -> Vec<&'static str> {
    let has = |text: &str, c: &str| text.split_whitespace().any(|w| w == c);
    CONTROLLERS
        .into_iter()
        .filter(|c| has(available, c) && !has(enabled, c))
        .collect()
}

impl CgroupRoot {
    pub fn at(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
            killed: Default::default(),
            enabled: Default::default(),
            deferred: Default::default(),
            made_one: Default::default(),
        }
    }

    /// Whether this init has written `cgroup.kill` for the group (see `killed`).
    pub fn was_killed(&self, rel: &str) -> bool {
        self.killed.borrow().contains(rel.trim_matches('/'))
    }

    /// Finds a mounted cgroup2 filesystem in /proc/self/mountinfo.
    pub fn detect() -> Result<Self, CgroupError> {
        let path = Path::new("/proc/self/mountinfo");
        let text = read(path, "read mountinfo")?;
        pick_cgroup2(&parse_mountinfo(&text))
            .map(|root| Self::at(&root))
            .ok_or(CgroupError::NotFound)
    }

    /// Absolute path of a group; `rel` must stay below the root (no `..`, not absolute).
    fn dir(&self, rel: &str, op: &'static str) -> Result<PathBuf, CgroupError> {
        let rel_path = Path::new(rel);
        if rel_path
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            Ok(self.root.join(rel_path))
        } else {
            Err(CgroupError::Io {
                path: self.root.join(rel_path),
                op,
                source: io::Error::new(io::ErrorKind::InvalidInput, "path leaves the cgroup root"),
            })
        }
    }

    /// Creates `rel` (and parents) and enables the available controllers on the way down (later,
    /// while the root's are deferred: `cgroup_root`); with
    /// `delegate`, chowns the group and its delegatable files to `owner` so the service can manage
    /// its own subtree.
    pub fn create(
        &self,
        rel: &str,
        delegate: bool,
        owner: Option<(u32, u32)>,
    ) -> Result<PathBuf, CgroupError> {
        self.create_fresh(rel, delegate, owner).map(|(dir, _)| dir)
    }

    /// `create`, also saying whether the group itself was made now (true) or existed already:
    /// a fresh group holds the kernel's defaults (`pids.max` is `max`), so nothing needs undoing.
    pub fn create_fresh(
        &self,
        rel: &str,
        delegate: bool,
        owner: Option<(u32, u32)>,
    ) -> Result<(PathBuf, bool), CgroupError> {
        let dir = self.dir(rel, "create")?;
        let fresh = self.make_dir(&dir)?;
        self.made_one.set(true);

        if !self.defer_group(rel) {
            self.enable_ancestors(rel, false)?;
        }

        if delegate {
            if let Some((uid, gid)) = owner {
                let files = [
                    "",
                    "cgroup.procs",
                    "cgroup.subtree_control",
                    "cgroup.threads",
                ];
                for f in files {
                    let path = if f.is_empty() {
                        dir.clone()
                    } else {
                        dir.join(f)
                    };
                    std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                        .map_err(io_err(&path, "chown"))?;
                }
            }
        }
        Ok((dir, fresh))
    }

    /// mkdir of the group: one call when its parent exists (the usual case: a unit under
    /// `system`). True when made now, false when it existed.
    fn make_dir(&self, dir: &Path) -> Result<bool, CgroupError> {
        match std::fs::create_dir(dir) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A parent is missing: every parent made now starts without controllers.
                self.enabled.borrow_mut().clear();
                std::fs::create_dir_all(dir).map_err(io_err(dir, "mkdir"))?;
                Ok(true)
            }
            Err(e) => Err(io_err(dir, "mkdir")(e)),
        }
    }

    /// Each ancestor's subtree_control decides what its children get, so this walks from the root
    /// (or its child, with `skip_root`) to the group's parent. The group's own subtree_control
    /// stays empty: a group with processes may not enable controllers for children (the
    /// no-internal-processes rule).
    pub(super) fn enable_ancestors(&self, rel: &str, skip_root: bool) -> Result<(), CgroupError> {
        let mut parent = self.root.clone();
        for (i, part) in Path::new(rel).components().enumerate() {
            if i > 0 || !skip_root {
                let text = parent.to_str();
                let known = text.is_some_and(|t| self.enabled.borrow().contains(t));
                if !known && self.enable_controllers(&parent)? {
                    if let Some(t) = text {
                        self.enabled.borrow_mut().insert(t.to_owned());
                    }
                }
            }
            parent.push(part);
        }
        Ok(())
    }

    /// Writes the group's `pids.max` (`None` writes `max`, lifting an earlier limit). Without the
    /// pids controller the file is missing: an error when a limit was asked for (the caller says
    /// the unit runs unbounded), nothing to undo otherwise.
    pub fn set_pids_max(&self, rel: &str, limit: Option<u64>) -> Result<(), CgroupError> {
        let path = self.dir(rel, "set pids.max")?.join("pids.max");
        let value = limit.map_or_else(|| "max".to_string(), |n| n.to_string());
        match write(&path, "write pids.max", &value) {
            Err(CgroupError::Io { source, .. })
                if limit.is_none() && source.kind() == io::ErrorKind::NotFound =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Best effort: on a hybrid host the controllers are bound to v1 hierarchies and cannot be
    /// enabled; a parent with processes of its own refuses with EBUSY. Neither stops a unit.
    /// True when every wanted controller the parent offers is on now (nothing to do next time);
    /// false after such a refusal, which a later call tries again (the init's own container base
    /// refuses until the init has moved out of it).
    fn enable_controllers(&self, dir: &Path) -> Result<bool, CgroupError> {
        let available = read(&dir.join("cgroup.controllers"), "read controllers")?;
        let control = dir.join("cgroup.subtree_control");
        let enabled = read(&control, "read subtree_control")?;
        let wanted = controllers_to_enable(&available, &enabled);
        if wanted.is_empty() {
            return Ok(true);
        }
        let line: Vec<String> = wanted.iter().map(|c| format!("+{c}")).collect();
        match write(&control, "enable controllers", &line.join(" ")) {
            Err(CgroupError::Io { source, .. })
                if matches!(
                    source.raw_os_error().map(Errno::from_raw),
                    Some(Errno::EBUSY | Errno::ENOENT | Errno::EOPNOTSUPP)
                ) =>
            {
                log::debug!(
                    "cgroup {}: controllers {} not enabled: {source}",
                    control.display(),
                    line.join(" ")
                );
                Ok(false)
            }
            other => other.map(|()| true),
        }
    }

    /// Kills every process in the subtree: writes 1 to cgroup.kill, or, on kernels before 5.14
    /// (no cgroup.kill), sends SIGKILL to every listed pid. A group that does not exist has
    /// nothing to kill.
    pub fn kill(&self, rel: &str) -> Result<(), CgroupError> {
        let dir = self.dir(rel, "kill")?;
        if !dir.exists() {
            return Ok(());
        }
        let path = dir.join("cgroup.kill");
        self.killed
            .borrow_mut()
            .insert(rel.trim_matches('/').to_string());
        match write(&path, "write cgroup.kill", "1") {
            Err(CgroupError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                for _ in 0..KILL_PASSES {
                    if self.signal_count(rel, Signal::SIGKILL)? == 0 {
                        break;
                    }
                }
                Ok(())
            }
            other => other,
        }
    }

    /// Sends a signal to every process listed in the group's cgroup.procs (recursively).
    /// Processes that exit meanwhile are skipped.
    pub fn signal_all(&self, rel: &str, sig: Signal) -> Result<(), CgroupError> {
        self.signal_count(rel, sig).map(drop)
    }

    /// `signal_all`, returning how many processes were signalled.
    fn signal_count(&self, rel: &str, sig: Signal) -> Result<usize, CgroupError> {
        let mut sent = 0;
        for pid in self.pids(rel)? {
            match nix::sys::signal::kill(Pid::from_raw(pid), sig) {
                Ok(()) => sent += 1,
                Err(Errno::ESRCH) => {}
                Err(e) => {
                    return Err(CgroupError::Io {
                        path: self.root.join(rel),
                        op: "signal",
                        source: e.into(),
                    })
                }
            }
        }
        Ok(sent)
    }

    /// Every pid in the group and its descendants.
    pub fn pids(&self, rel: &str) -> Result<Vec<i32>, CgroupError> {
        let mut out = Vec::new();
        collect_pids(&self.dir(rel, "list pids")?, &mut out)?;
        Ok(out)
    }

    /// Reads `populated` from cgroup.events.
    pub fn is_populated(&self, rel: &str) -> Result<bool, CgroupError> {
        let path = self.events_path(rel);
        let text = read(&path, "read cgroup.events")?;
        parse_populated(&text).ok_or_else(|| CgroupError::Io {
            path,
            op: "parse cgroup.events",
            source: io::Error::new(io::ErrorKind::InvalidData, "no populated line"),
        })
    }

    /// Path of the group's cgroup.events: the supervisor watches it (inotify IN_MODIFY) to learn
    /// when the group empties, instead of sleeping.
    pub fn events_path(&self, rel: &str) -> PathBuf {
        self.root.join(rel).join("cgroup.events")
    }

    /// Memory and CPU usage; a figure is `None` when its controller is not enabled here.
    pub fn stats(&self, rel: &str) -> CgroupStats {
        let dir = self.root.join(rel);
        let text = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
        CgroupStats {
            memory_current: text("memory.current").and_then(|t| t.trim().parse().ok()),
            cpu_usage_usec: text("cpu.stat").and_then(|t| parse_cpu_usage(&t)),
        }
    }

    /// Removes an empty group and any empty groups below it (rmdir, children first); parents
    /// are left. A group still holding processes fails with EBUSY; a missing group is fine.
    pub fn remove(&self, rel: &str) -> Result<(), CgroupError> {
        let dir = self.dir(rel, "remove")?;
        match remove_tree(&dir) {
            Err(CgroupError::Io {
                source, ref path, ..
            }) if source.kind() == io::ErrorKind::NotFound && *path == dir => Ok(()),
            other => other,
        }
    }

    /// Moves a process into the group (writes cgroup.procs).
    pub fn attach(&self, rel: &str, pid: i32) -> Result<(), CgroupError> {
        let path = self.dir(rel, "attach")?.join("cgroup.procs");
        write(&path, "write cgroup.procs", &pid.to_string())
    }
}

/// Child groups of `dir` (its subdirectories; control files are regular files).
fn child_groups(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let entries = std::fs::read_dir(dir).map_err(io_err(dir, "list children"))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err(dir, "list children"))?;
        let is_dir = entry
            .file_type()
            .map_err(io_err(&entry.path(), "stat"))?
            .is_dir();
        if is_dir {
            out.push(entry.path());
        }
    }
    Ok(out)
}

fn collect_pids(dir: &Path, out: &mut Vec<i32>) -> Result<(), CgroupError> {
    out.extend(parse_procs(&read(
        &dir.join("cgroup.procs"),
        "read cgroup.procs",
    )?));
    for child in child_groups(dir)? {
        collect_pids(&child, out)?;
    }
    Ok(())
}

fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    for child in child_groups(dir)? {
        remove_tree(&child)?;
    }
    std::fs::remove_dir(dir).map_err(io_err(dir, "rmdir"))
}

/// The cgroups a container-mode init created, removed once everything in them is dead. The
/// supervisor fills it in as it creates groups and hands it back when it ends; stage 3 removes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CgroupCleanup {
    pub root: PathBuf,
    pub base: String,
    /// The base itself was created by us (not the group we were started in).
    pub remove_base: bool,
    /// First components of the groups created under the base (`init`, `system`, ...).
    pub tops: crate::collections::keyset::StrSet,
}

impl CgroupCleanup {
    /// Remember to remove what we create under `root/base` (and `base` itself when `remove_base`).
    pub fn new(root: PathBuf, base: String, remove_base: bool) -> Self {
        Self {
            root,
            base,
            remove_base,
            tops: ["init".to_string()].into_iter().collect(),
        }
    }

    /// Records a group path (relative to the base) created for a unit.
    pub fn note_created(&mut self, rel_to_base: &str) {
        if let Some(top) = rel_to_base.split('/').next().filter(|t| !t.is_empty()) {
            self.tops.insert(top.to_string());
        }
    }

    /// Leaves `<base>/init` (a group one is in cannot be removed), then removes the groups we made,
    /// deepest first (rmdir only succeeds on empty groups).
    pub fn remove(&self) {
        let base = self.root.join(&self.base);
        let home = if self.remove_base {
            self.root.clone()
        } else {
            base.clone()
        };
        if let Err(e) = std::fs::write(home.join("cgroup.procs"), std::process::id().to_string()) {
            log::debug!("cannot leave the init cgroup: {e}");
            return;
        }
        for top in &self.tops {
            if let Err(e) = remove_tree(&base.join(top)) {
                log::debug!("{e}");
            }
        }
        if self.remove_base {
            let _ = std::fs::remove_dir(&base);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(point: &str, fs: &str) -> MountInfo {
        MountInfo {
            id: 1,
            parent: 0,
            root: "/".into(),
            mount_point: point.into(),
            options: "rw".into(),
            fs_type: fs.into(),
            source: fs.into(),
        }
    }

    #[test]
    fn picks_preferred_cgroup2_mount() {
        let hybrid = [
            mount("/sys/fs/cgroup", "tmpfs"),
            mount("/sys/fs/cgroup/memory", "cgroup"),
            mount("/sys/fs/cgroup/unified", "cgroup2"),
        ];
        assert_eq!(
            pick_cgroup2(&hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified = [
            mount("/mnt/other", "cgroup2"),
            mount("/sys/fs/cgroup", "cgroup2"),
        ];
        assert_eq!(
            pick_cgroup2(&unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            pick_cgroup2(&[mount("/mnt/other", "cgroup2")]),
            Some(PathBuf::from("/mnt/other"))
        );
        assert_eq!(pick_cgroup2(&[mount("/sys/fs/cgroup/cpu", "cgroup")]), None);
    }

    #[test]
    fn parses_control_files() {
        assert_eq!(parse_populated("populated 1\nfrozen 0\n"), Some(true));
        assert_eq!(parse_populated("populated 0\nfrozen 0\n"), Some(false));
        assert_eq!(parse_populated("frozen 0\n"), None);
        let cpu = "usage_usec 12345\nuser_usec 10000\nsystem_usec 2345\n";
        assert_eq!(parse_cpu_usage(cpu), Some(12345));
        assert_eq!(parse_cpu_usage("user_usec 1\n"), None);
        assert_eq!(parse_procs("12\n345\n\n"), vec![12, 345]);
    }

    #[test]
    fn enables_only_available_missing_controllers() {
        assert_eq!(
            controllers_to_enable("cpuset cpu io memory hugetlb pids", "cpu"),
            vec!["memory", "pids", "io"]
        );
        assert!(controllers_to_enable("hugetlb", "").is_empty());
        assert!(controllers_to_enable("cpu memory pids io", "cpu memory pids io").is_empty());
    }

    /// A directory tree shaped like cgroupfs (control files present), for the walk in `create`.
    fn fake_tree(tag: &str, groups: &[&str], available: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("cgroup-fake-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for g in groups {
            let d = root.join(g);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("cgroup.controllers"), available).unwrap();
            std::fs::write(d.join("cgroup.subtree_control"), "").unwrap();
        }
        root
    }

    #[test]
    fn create_enables_controllers_from_root_to_parent() {
        let root = fake_tree("walk", &["", "system"], "cpuset cpu io memory pids\n");
        let cg = CgroupRoot::at(&root);
        let dir = cg.create("system/svc", false, None).unwrap();
        let control = |d: &Path| std::fs::read_to_string(d.join("cgroup.subtree_control")).unwrap();
        assert_eq!(dir, root.join("system/svc"));
        assert!(dir.is_dir());
        assert_eq!(control(&root), "+cpu +memory +pids +io");
        assert_eq!(control(&root.join("system")), "+cpu +memory +pids +io");
        // The leaf's own subtree stays off (it will hold processes).
        assert!(!dir.join("cgroup.subtree_control").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn create_writes_nothing_when_no_wanted_controller_is_available() {
        let root = fake_tree("none", &[""], "hugetlb\n");
        let cg = CgroupRoot::at(&root);
        cg.create("svc", false, None).unwrap();
        let control = std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap();
        assert_eq!(control, "");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn parents_are_read_once_and_again_after_being_made_anew() {
        let root = fake_tree("cache", &["", "system"], "cpu pids\n");
        let cg = CgroupRoot::at(&root);
        let control = root.join("system/cgroup.subtree_control");
        let (dir, fresh) = cg.create_fresh("system/a", false, None).unwrap();
        assert!(fresh && dir.is_dir());
        assert_eq!(std::fs::read_to_string(&control).unwrap(), "+cpu +pids");
        // Known enabled: the next group under it neither reads nor writes the parent again.
        std::fs::write(&control, "").unwrap();
        assert!(cg.create_fresh("system/b", false, None).unwrap().1);
        assert_eq!(std::fs::read_to_string(&control).unwrap(), "");
        // An existing group is reported as such.
        assert!(!cg.create_fresh("system/b", false, None).unwrap().1);
        // A parent made anew starts without controllers, so it is looked at again: in this
        // plain directory (no control files, unlike cgroupfs) that read is what fails.
        std::fs::remove_dir_all(root.join("system")).unwrap();
        let err = cg.create_fresh("system/c", false, None).unwrap_err();
        assert!(
            err.to_string().contains("system/cgroup.controllers"),
            "{err}"
        );
        assert!(root.join("system/c").is_dir());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn pids_max_is_written_and_lifted_and_missing_controller_reported() {
        let root = fake_tree("pids", &["", "with", "without"], "pids\n");
        // An empty file stands for the kernel's control file (which a write replaces whole).
        std::fs::write(root.join("with/pids.max"), "").unwrap();
        let cg = CgroupRoot::at(&root);
        cg.set_pids_max("with", Some(64)).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("with/pids.max")).unwrap(),
            "64"
        );
        std::fs::write(root.join("with/pids.max"), "").unwrap();
        cg.set_pids_max("with", None).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("with/pids.max")).unwrap(),
            "max"
        );
        // No pids controller: a limit asked for is an error naming the file, no limit is fine, and
        // no control file is invented.
        let err = cg.set_pids_max("without", Some(8)).unwrap_err().to_string();
        assert!(err.contains("without/pids.max: write pids.max"), "{err}");
        cg.set_pids_max("without", None).unwrap();
        assert!(!root.join("without/pids.max").exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn refuses_paths_leaving_the_root() {
        let root = CgroupRoot::at(Path::new("/nonexistent-cgroup-root"));
        assert!(root.create("../etc", false, None).is_err());
        assert!(root.attach("/abs", 1).is_err());
        assert!(root.remove("a/../../b").is_err());
    }
}
