//! When the cgroup root's controllers are enabled on a machine (issue 11 item 4, `cgroup_root`):
//! before the boot dispatch, with or without a unit asking for a limit, and the init's own move
//! into `init` after it. (Enabling them after containerd's spawn was tried and is held back: a
//! guest livelocked in the catch-up; see `cgroup_root`'s module docs.)
//!
//! A directory tree shaped like cgroupfs stands for the hierarchy (the spawn falls back from
//! clone3 into the group to a write of cgroup.procs, which here is a plain file), so the order is
//! checked on the files the supervisor writes and on its timeline, without a machine.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::catalog;
use super::cgroup::CgroupRoot;
use super::event_loop::Supervisor;
use super::subsystem::Subsystem;
use super::Config;
use crate::timeline::{SubjectKind, Timeline, TimelineEvent};

const OFFERED: &str = "cpu io memory pids\n";

/// The root and `system/first` with the control files the kernel would show (an empty file
/// stands for each control file the supervisor writes).
fn fake_cgroupfs(root: &Path) {
    for (dir, files) in [
        ("", &["cgroup.controllers", "cgroup.subtree_control"][..]),
        (
            "system",
            &["cgroup.controllers", "cgroup.subtree_control"][..],
        ),
        (
            "system/first",
            &["cgroup.procs", "cgroup.events", "pids.max"][..],
        ),
        ("init", &["cgroup.procs"][..]),
    ] {
        let d = root.join(dir);
        std::fs::create_dir_all(&d).unwrap();
        for f in files {
            let text = if *f == "cgroup.controllers" {
                OFFERED
            } else {
                ""
            };
            std::fs::write(d.join(f), text).unwrap();
        }
    }
}

struct Booted {
    pid: Option<i32>,
    stamps: Vec<crate::timeline::Stamp>,
    /// The root's subtree_control when the subsystems were built.
    root_control_at_build: Option<String>,
}

/// Boots one unit `first` (`unit` is its file) on a fake hierarchy with deferred controllers.
fn boot_one(tag: &str, unit: &str) -> (PathBuf, Booted) {
    let dir = std::env::temp_dir().join(format!("lifsea-cg-order-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let units = dir.join("units");
    let cg = dir.join("cgroup");
    std::fs::create_dir_all(&units).unwrap();
    fake_cgroupfs(&cg);
    std::fs::write(units.join("first.toml"), unit).unwrap();
    let cfg = Config {
        facts_reached: crate::units::schema::FACTS
            .iter()
            .map(|f| f.to_string())
            .collect(),
        root_controllers: true,
        ..Config::for_test(vec![units.clone()], dir.join("run"))
    };
    let root = CgroupRoot::at(&cg).with_deferred_controllers();
    let mut sup = Supervisor::new(cfg, Timeline::new(), Some(root), String::new());
    let cat = catalog::load(std::slice::from_ref(&units));
    let seen: Rc<RefCell<Option<String>>> = Rc::default();
    let seen_in = Rc::clone(&seen);
    let control = cg.join("cgroup.subtree_control");
    super::boot_units_then_subsystems(&mut sup, Some(cat), move || {
        *seen_in.borrow_mut() = std::fs::read_to_string(&control).ok();
        Vec::<Box<dyn Subsystem>>::new()
    });
    let pid = sup.core.get("first").and_then(|e| e.pid);
    if let Some(pid) = pid {
        let pid = nix::unistd::Pid::from_raw(pid);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
    let root_control_at_build = seen.borrow().clone();
    let booted = Booted {
        pid,
        stamps: sup.boot.timeline.entries().to_vec(),
        root_control_at_build,
    };
    (dir, booted)
}

/// Index of a stamp in the timeline (the order things happened in, whatever the clock says).
fn position(stamps: &[crate::timeline::Stamp], kind: SubjectKind, name: &str) -> usize {
    stamps
        .iter()
        .position(|s| s.kind == kind && s.name == name && s.event == TimelineEvent::Start)
        .unwrap_or_else(|| panic!("no {name} start in {stamps:?}"))
}

/// How many times a stage started.
fn starts(stamps: &[crate::timeline::Stamp], name: &str) -> usize {
    stamps
        .iter()
        .filter(|s| s.name == name && s.event == TimelineEvent::Start)
        .count()
}

/// The controllers a subtree_control write (or cgroup.controllers) names, in a fixed order: the
/// fake files keep the last line written, where the kernel would list the controllers on.
fn enabled_set(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .split_whitespace()
        .map(|w| w.trim_start_matches('+').to_string())
        .collect();
    v.sort();
    v
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn controllers_are_enabled_before_the_spawn_without_limits_too() {
    let (dir, b) = boot_one(
        "after",
        "exec = [\"/bin/sleep\", \"30\"]\nrestart = \"no\"\n",
    );
    let cg = dir.join("cgroup");
    let (root_now, system_now, procs, init_procs) = (
        read(cg.join("cgroup.subtree_control")),
        read(cg.join("system/cgroup.subtree_control")),
        read(cg.join("system/first/cgroup.procs")),
        read(cg.join("init/cgroup.procs")),
    );
    let _ = std::fs::remove_dir_all(&dir);
    let pid = b.pid.expect("the boot dispatch spawned the unit");
    // The child joined its group itself ("0": the writer) once clone3 refused the fake group.
    assert_eq!(procs, "0", "the unit joined its group (pid {pid})");
    assert_eq!(
        init_procs,
        std::process::id().to_string(),
        "the init joined `init` with the controllers"
    );
    let spawned = position(&b.stamps, SubjectKind::Unit, "first");
    let enabled = position(&b.stamps, SubjectKind::Stage, "cgroup-controllers");
    assert!(
        enabled < spawned,
        "controllers enabled after the spawn: {:?}",
        b.stamps
    );
    // The init's move waits until the unit is spawned (its group, the first below the root, was
    // made before the spawn), and comes once.
    let moved = position(&b.stamps, SubjectKind::Stage, "init-group");
    assert!(
        spawned < moved,
        "the init moved before the spawn: {:?}",
        b.stamps
    );
    let dispatched = b
        .stamps
        .iter()
        .position(|s| s.name == "boot-dispatch" && s.event == TimelineEvent::Ready)
        .expect("the dispatch ended");
    assert!(dispatched < moved);
    // Last, after the subsystems: the unit's group switched the static keys already.
    let built = b
        .stamps
        .iter()
        .position(|s| s.name == "subsystems" && s.event == TimelineEvent::Ready)
        .expect("the subsystems were built");
    assert!(built < moved, "{:?}", b.stamps);
    assert_eq!(starts(&b.stamps, "init-group"), 1);
    // The root's controllers, then the ones `create` skipped for the unit's parent.
    assert_eq!(enabled_set(&root_now), enabled_set(OFFERED));
    assert_eq!(enabled_set(&system_now), enabled_set(OFFERED));
    assert_eq!(
        b.root_control_at_build.as_deref().map(enabled_set),
        Some(enabled_set(OFFERED)),
        "the subsystems were built before the controllers were enabled"
    );
}

#[test]
fn a_unit_with_a_limit_gets_the_controllers_before_its_spawn() {
    let (dir, b) = boot_one(
        "limit",
        "exec = [\"/bin/sleep\", \"30\"]\nrestart = \"no\"\ncgroup = { pids-max = 16 }\n",
    );
    let cg = dir.join("cgroup");
    let (pids_max, system_now) = (
        read(cg.join("system/first/pids.max")),
        read(cg.join("system/cgroup.subtree_control")),
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(b.pid.is_some(), "the boot dispatch spawned the unit");
    let spawned = position(&b.stamps, SubjectKind::Unit, "first");
    let enabled = position(&b.stamps, SubjectKind::Stage, "cgroup-controllers");
    assert!(enabled < spawned, "spawned before its limit could apply");
    assert_eq!(pids_max, "16");
    assert_eq!(enabled_set(&system_now), enabled_set(OFFERED));
    // Once, not again after the dispatch.
    assert_eq!(starts(&b.stamps, "cgroup-controllers"), 1);
}

/// With no unit startable at boot, no group below the root exists after the dispatch: `init`
/// would be the first (the one that switches the controllers' static keys on), so it is made
/// before the subsystems start anything beside it.
#[test]
fn the_init_group_comes_first_when_the_dispatch_made_none() {
    let (dir, b) = boot_one(
        "skipped",
        "exec = [\"/bin/sleep\", \"30\"]\nrestart = \"no\"\n\
         condition = { path-exists = \"/nonexistent-lifsea-cg-order\" }\n",
    );
    let init_procs = read(dir.join("cgroup/init/cgroup.procs"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(b.pid.is_none(), "the unit was skipped, not spawned");
    assert_eq!(init_procs, std::process::id().to_string());
    let moved = position(&b.stamps, SubjectKind::Stage, "init-group");
    let subsystems = position(&b.stamps, SubjectKind::Stage, "subsystems");
    assert!(moved < subsystems, "{:?}", b.stamps);
    assert_eq!(starts(&b.stamps, "init-group"), 1);
}
