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
