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

/// What a boot of two units showed: `early` (no dependencies) and `late` (`after` a fact that a
/// subsystem reaches on the loop's first pass).
struct TwoUnitBoot {
    /// early's pid once the dispatch was over.
    early: Option<i32>,
    /// late's pid before the first pass (none expected) and after it.
    late_before: Option<i32>,
    late: Option<i32>,
    /// This thread's children when the subsystems were built.
    at_build: Vec<i32>,
    stamps: Vec<crate::timeline::Stamp>,
}

impl TwoUnitBoot {
    /// Writes the two units in `dir/units`, dispatches the boot with `subsystems` built as the
    /// supervisor builds them, runs the subsystems' first pass, and kills what it started.
    fn run(
        dir: &std::path::Path,
        fact: &str,
        facts_reached: Vec<String>,
        subsystems: impl FnOnce() -> Vec<Box<dyn Subsystem>>,
    ) -> TwoUnitBoot {
        let units = dir.join("units");
        std::fs::create_dir_all(&units).unwrap();
        std::fs::write(
            units.join("early.toml"),
            "exec = [\"/bin/sleep\", \"30\"]\n",
        )
        .unwrap();
        std::fs::write(
            units.join("late.toml"),
            format!("exec = [\"/bin/sleep\", \"30\"]\nafter = [\"{fact}\"]\n"),
        )
        .unwrap();
        let cfg = Config {
            facts_reached,
            ..Config::for_test(vec![units.clone()], dir.join("run"))
        };
        let mut sup = Supervisor::new(cfg, Timeline::new(), None, String::new());
        let cat = catalog::load(std::slice::from_ref(&units));
        let children_at_build: Rc<RefCell<Option<Vec<i32>>>> = Rc::default();
        let seen = Rc::clone(&children_at_build);
        super::boot_units_then_subsystems(&mut sup, Some(cat), move || {
            *seen.borrow_mut() = Some(children_of_this_thread());
            subsystems()
        });
        let early = sup.core.get("early").and_then(|e| e.pid);
        let late_before = sup.core.get("late").and_then(|e| e.pid);
        let mut notices = Vec::new();
        for s in &mut sup.subsystems {
            s.tick(std::time::Instant::now(), &mut notices);
        }
        sup.apply_notices(notices);
        let late = sup.core.get("late").and_then(|e| e.pid);
        for pid in [early, late].into_iter().flatten() {
            kill_and_reap(pid);
        }
        let at_build = children_at_build
            .borrow()
            .clone()
            .expect("subsystems built");
        TwoUnitBoot {
            early,
            late_before,
            late,
            at_build,
            stamps: sup.boot.timeline.entries().to_vec(),
        }
    }

    /// Checks early before the subsystems, late only after the fact, and returns the stamps of
    /// early's start, the stage's start and end, the fact and late's start, in that order.
    fn order(&self, fact: &str, stage: &str) -> [u64; 5] {
        use crate::timeline::{SubjectKind, TimelineEvent};
        let early = self
            .early
            .expect("the boot dispatch spawned the unit without dependencies");
        assert!(self.at_build.contains(&early), "early ran before {stage}");
        assert_eq!(
            self.late_before, None,
            "late started before the fact `{fact}`"
        );
        assert!(
            self.late.is_some(),
            "late did not start once `{fact}` was reached"
        );
        let at = |kind, name: &str, event| {
            self.stamps
                .iter()
                .find(|s| s.kind == kind && s.name == name && s.event == event)
                .map(|s| s.at_us)
                .unwrap_or_else(|| panic!("no {name} {event:?} stamp in {:?}", self.stamps))
        };
        [
            at(SubjectKind::Unit, "early", TimelineEvent::Start),
            at(SubjectKind::Stage, stage, TimelineEvent::Start),
            at(SubjectKind::Stage, stage, TimelineEvent::Ready),
            at(SubjectKind::Fact, fact, TimelineEvent::Ready),
            at(SubjectKind::Unit, "late", TimelineEvent::Start),
        ]
    }
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
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    let paths = IdentityPaths {
        etc: dir.join("etc"),
        sysctl_dirs: vec![],
        proc_sys: dir.join("proc-sys"),
    };
    let hostname: Rc<RefCell<Option<std::ffi::OsString>>> = Rc::default();
    let seen = Rc::clone(&hostname);
    let boot = TwoUnitBoot::run(&dir, FACT, vec!["mounts".into()], move || {
        let id = Identity::apply(&paths);
        *seen.borrow_mut() = nix::unistd::gethostname().ok();
        vec![Box::new(id) as Box<dyn Subsystem>]
    });
    let _ = std::fs::remove_dir_all(&dir);
    let [early, start, ready, fact, late] = boot.order(FACT, "identity");
    assert_eq!(
        hostname.borrow().as_deref(),
        Some(std::ffi::OsStr::new("lifsea")),
        "the identity was applied at build time"
    );
    assert!(
        early <= start && start <= ready && ready <= fact && fact <= late,
        "order: early {early}, identity {start}..{ready}, fact {fact}, late {late}"
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
    std::fs::create_dir_all(&dir).unwrap();
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
    let root = dir.clone();
    let boot = TwoUnitBoot::run(&dir, FACT, vec![], move || {
        let table = [EarlyMount {
            source: "tmpfs",
            target: "/dev/shm",
            fstype: "tmpfs",
            flags: 0,
            data: "",
        }];
        vec![Box::new(LateMounts::apply(&table, &root, &mountinfo)) as Box<dyn Subsystem>]
    });
    let _ = std::fs::remove_dir_all(&dir);
    let [early, start, ready, fact, late] = boot.order(FACT, "late-mounts");
    assert!(
        early <= start && start <= ready && ready <= fact && fact <= late,
        "order: early {early}, mounts {start}..{ready}, fact {fact}, late {late}"
    );
}
