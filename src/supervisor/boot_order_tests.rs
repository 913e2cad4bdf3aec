//! The boot's order on the critical path (issue 11 item 4): units whose dependencies are met are
//! spawned by the boot dispatch before the subsystems (netlink sockets, link dumps, modprobe.d)
//! are even built, so none of their set-up delays containerd.

use std::cell::RefCell;
use std::rc::Rc;

use super::catalog;
use super::event_loop::Supervisor;
use super::subsystem::Subsystem;
use super::Config;
use crate::timeline::Timeline;

/// The pids of this thread's children, as the kernel lists them.
fn children_of_this_thread() -> Vec<i32> {
    std::fs::read_to_string("/proc/thread-self/children")
        .expect("/proc/thread-self/children (CONFIG_PROC_CHILDREN)")
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect()
}

fn sup_with_unit(dir: &std::path::Path, unit: &str) -> Supervisor {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("first.toml"), unit).unwrap();
    let cfg = Config {
        facts_reached: crate::units::schema::FACTS
            .iter()
            .map(|f| f.to_string())
            .collect(),
        ..Config::for_test(vec![dir.to_path_buf()], dir.join("run"))
    };
    Supervisor::new(cfg, Timeline::new(), None, String::new())
}

#[test]
fn units_are_spawned_before_subsystems_are_built() {
    let dir = std::env::temp_dir().join(format!("lifsea-boot-order-{}", std::process::id()));
    let mut sup = sup_with_unit(&dir, "exec = [\"/bin/sleep\", \"30\"]\nrestart = \"no\"\n");
    let cat = catalog::load(std::slice::from_ref(&dir));
    let before = children_of_this_thread();
    let seen: Rc<RefCell<Option<Vec<i32>>>> = Rc::default();
    let seen_in = Rc::clone(&seen);
    super::boot_units_then_subsystems(&mut sup, Some(cat), move || {
        *seen_in.borrow_mut() = Some(children_of_this_thread());
        Vec::<Box<dyn Subsystem>>::new()
    });
    let pid = sup
        .core
        .get("first")
        .and_then(|e| e.pid)
        .expect("the boot dispatch spawned the unit");
    // Clean up before asserting, so a failure leaves no process behind.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!before.contains(&pid), "the unit's process is new");
    let seen = seen.borrow().clone().expect("the subsystems were built");
    assert!(
        seen.contains(&pid),
        "unit pid {pid} already running when the subsystems were built (children then: {seen:?})"
    );
}

#[test]
fn subsystems_are_built_even_when_no_unit_is_loaded() {
    let dir = std::env::temp_dir().join(format!("lifsea-boot-order-none-{}", std::process::id()));
    let mut sup = sup_with_unit(&dir, "exec = 1\n");
    let built = Rc::new(RefCell::new(false));
    let built_in = Rc::clone(&built);
    super::boot_units_then_subsystems(&mut sup, None, move || {
        *built_in.borrow_mut() = true;
        Vec::<Box<dyn Subsystem>>::new()
    });
    let _ = std::fs::remove_dir_all(&dir);
    assert!(*built.borrow());
    assert!(sup.core.booted());
}

fn kill_and_reap(pid: i32) {
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(pid, None);
}

/// Issue 11 item 4: hostname, machine-id and sysctl.d moved off containerd's path, but a unit
/// ordered `after = ["machine"]` (kubelet, node-prep) still starts only once they are applied. On a
/// machine no fact is reached when the supervisor starts; the identity is applied while the
/// subsystems are built, after the boot dispatch, and its fact comes on the loop's first pass.
#[test]
fn units_after_machine_wait_for_the_identity() {
    use crate::boot::identity::{Identity, IdentityPaths, FACT};
    // Identity::apply sets the hostname: keep the host's out of it.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS)
        .expect("unshare(CLONE_NEWUTS): this test needs root");
    let dir = std::env::temp_dir().join(format!("lifsea-boot-order-id-{}", std::process::id()));
    let units = dir.join("units");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::write(
        units.join("early.toml"),
        "exec = [\"/bin/sleep\", \"30\"]\n",
    )
    .unwrap();
    std::fs::write(
        units.join("late.toml"),
        "exec = [\"/bin/sleep\", \"30\"]\nafter = [\"machine\"]\n",
    )
    .unwrap();
    let cfg = Config {
        facts_reached: vec!["mounts".into()],
        ..Config::for_test(vec![units.clone()], dir.join("run"))
    };
    let mut sup = Supervisor::new(cfg, Timeline::new(), None, String::new());
    let cat = catalog::load(std::slice::from_ref(&units));
    let paths = IdentityPaths {
        etc: dir.join("etc"),
        sysctl_dirs: vec![],
        proc_sys: dir.join("proc-sys"),
    };
    let children_at_build: Rc<RefCell<Option<Vec<i32>>>> = Rc::default();
    let seen = Rc::clone(&children_at_build);
    super::boot_units_then_subsystems(&mut sup, Some(cat), move || {
        *seen.borrow_mut() = Some(children_of_this_thread());
        vec![Box::new(Identity::apply(&paths)) as Box<dyn Subsystem>]
    });
    let early = sup.core.get("early").and_then(|e| e.pid);
    let late_before = sup.core.get("late").and_then(|e| e.pid);
    let hostname_after_build = nix::unistd::gethostname().unwrap();
    // The loop's first pass: the identity reports its stamps and the fact.
    let mut notices = Vec::new();
    for s in &mut sup.subsystems {
        s.tick(std::time::Instant::now(), &mut notices);
    }
    sup.apply_notices(notices);
    let late = sup.core.get("late").and_then(|e| e.pid);
    let stamps = sup.boot.timeline.entries().to_vec();
    for pid in [early, late].into_iter().flatten() {
        kill_and_reap(pid);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let early = early.expect("the boot dispatch spawned the unit without dependencies");
    let at_build = children_at_build
        .borrow()
        .clone()
        .expect("subsystems built");
    assert!(
        at_build.contains(&early),
        "early ran before the identity was applied"
    );
    assert_eq!(late_before, None, "late started before the fact `{FACT}`");
    assert_eq!(
        hostname_after_build, "lifsea",
        "the identity was applied at build time"
    );
    assert!(
        late.is_some(),
        "late did not start once `{FACT}` was reached"
    );
    let at = |kind, name: &str, event| {
        stamps
            .iter()
            .find(|s| s.kind == kind && s.name == name && s.event == event)
            .map(|s| s.at_us)
            .unwrap_or_else(|| panic!("no {name} {event:?} stamp in {stamps:?}"))
    };
    use crate::timeline::{SubjectKind, TimelineEvent};
    let early_start = at(SubjectKind::Unit, "early", TimelineEvent::Start);
    let id_start = at(SubjectKind::Stage, "identity", TimelineEvent::Start);
    let id_ready = at(SubjectKind::Stage, "identity", TimelineEvent::Ready);
    let fact = at(SubjectKind::Fact, FACT, TimelineEvent::Ready);
    let late_start = at(SubjectKind::Unit, "late", TimelineEvent::Start);
    assert!(
        early_start <= id_start && id_start <= id_ready && id_ready <= fact && fact <= late_start,
        "order: early {early_start}, identity {id_start}..{id_ready}, fact {fact}, late {late_start}"
    );
}

/// Issue 11 item 4: devpts, /dev/shm, mqueue, securityfs and bpf are mounted after the boot
/// dispatch, and a unit ordered `after = ["mounts"]` (kubelet, node-prep) starts only once they
/// are: on a machine no fact is reached when the supervisor starts; the late mounts run while the
/// subsystems are built and their fact comes on the loop's first pass.
#[test]
fn units_after_mounts_wait_for_the_late_mounts() {
    use crate::boot::late_mounts::{LateMounts, FACT};
    use crate::boot::mounts::EarlyMount;
    let dir = std::env::temp_dir().join(format!("lifsea-boot-order-mnt-{}", std::process::id()));
    let units = dir.join("units");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(
        units.join("early.toml"),
        "exec = [\"/bin/sleep\", \"30\"]\n",
    )
    .unwrap();
    std::fs::write(
        units.join("late.toml"),
        "exec = [\"/bin/sleep\", \"30\"]\nafter = [\"mounts\"]\n",
    )
    .unwrap();
    // The row's target is listed as mounted already: the step runs without mounting anything.
    let mountinfo = dir.join("mountinfo");
    std::fs::write(
        &mountinfo,
        format!(
            "30 25 0:26 / {}/dev/shm rw - tmpfs tmpfs rw\n",
            dir.display()
        ),
    )
    .unwrap();
    let cfg = Config {
        facts_reached: vec![],
        ..Config::for_test(vec![units.clone()], dir.join("run"))
    };
    let mut sup = Supervisor::new(cfg, Timeline::new(), None, String::new());
    let cat = catalog::load(std::slice::from_ref(&units));
    let root = dir.clone();
    let children_at_build: Rc<RefCell<Option<Vec<i32>>>> = Rc::default();
    let seen = Rc::clone(&children_at_build);
    super::boot_units_then_subsystems(&mut sup, Some(cat), move || {
        *seen.borrow_mut() = Some(children_of_this_thread());
        let table = [EarlyMount {
            source: "tmpfs",
            target: "/dev/shm",
            fstype: "tmpfs",
            flags: 0,
            data: "",
        }];
        vec![Box::new(LateMounts::apply(&table, &root, &mountinfo)) as Box<dyn Subsystem>]
    });
    let early = sup.core.get("early").and_then(|e| e.pid);
    let late_before = sup.core.get("late").and_then(|e| e.pid);
    let mut notices = Vec::new();
    for s in &mut sup.subsystems {
        s.tick(std::time::Instant::now(), &mut notices);
    }
    sup.apply_notices(notices);
    let late = sup.core.get("late").and_then(|e| e.pid);
    let stamps = sup.boot.timeline.entries().to_vec();
    for pid in [early, late].into_iter().flatten() {
        kill_and_reap(pid);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let early = early.expect("the boot dispatch spawned the unit without dependencies");
    let at_build = children_at_build
        .borrow()
        .clone()
        .expect("subsystems built");
    assert!(
        at_build.contains(&early),
        "early ran before the late mounts"
    );
    assert_eq!(late_before, None, "late started before the fact `{FACT}`");
    assert!(
        late.is_some(),
        "late did not start once `{FACT}` was reached"
    );
    use crate::timeline::{SubjectKind, TimelineEvent};
    let at = |kind, name: &str, event| {
        stamps
            .iter()
            .find(|s| s.kind == kind && s.name == name && s.event == event)
            .map(|s| s.at_us)
            .unwrap_or_else(|| panic!("no {name} {event:?} stamp in {stamps:?}"))
    };
    let early_start = at(SubjectKind::Unit, "early", TimelineEvent::Start);
    let mnt_start = at(SubjectKind::Stage, "late-mounts", TimelineEvent::Start);
    let mnt_ready = at(SubjectKind::Stage, "late-mounts", TimelineEvent::Ready);
    let fact = at(SubjectKind::Fact, FACT, TimelineEvent::Ready);
    let late_start = at(SubjectKind::Unit, "late", TimelineEvent::Start);
    assert!(
        early_start <= mnt_start
            && mnt_start <= mnt_ready
            && mnt_ready <= fact
            && fact <= late_start,
        "order: early {early_start}, mounts {mnt_start}..{mnt_ready}, fact {fact}, late {late_start}"
    );
}
