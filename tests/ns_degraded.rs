//! The init keeps its promises when the machine misbehaves (issue 12): a notify socket that cannot
//! be bound (finding 6: a run directory whose socket paths exceed the 108 bytes of `sun_path` used
//! to make it retry the bind every second forever, with SIGTERM blocked and no child reaped) and a
//! service that hangs before exec (finding 10: the spawn report read blocked PID 1 until exec).
//! Needs root (unshare).

mod common;

use std::time::{Duration, Instant};

use common::Ns;

const T: Duration = Duration::from_secs(20);

#[test]
fn ns_unbindable_notify_socket_degrades_and_still_obeys_sigterm() {
    let mut ns = Ns::new("degraded");
    let long = ns.root.join("r".repeat(120));
    std::fs::create_dir_all(&long).unwrap();
    assert!(long.join("notify.sock").as_os_str().len() > 108);
    ns.run = long;
    ns.unit(
        "worker",
        r#"exec = ["/bin/sh", "-c", "echo up > @OUT@/worker; exec sleep 100"]
"#,
    );
    ns.unit(
        "once",
        r#"type = "oneshot"
exec = ["/bin/sh", "-c", "for i in 1 2 3; do (true &); done; echo done > @OUT@/once"]
"#,
    );
    ns.start();
    assert!(
        ns.wait_for(T, || !ns.read("worker").is_empty()
            && !ns.read("once").is_empty()),
        "{}",
        ns.log()
    );
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    assert!(ns.log().contains("notify.sock"), "{}", ns.log());
    let asked = Instant::now();
    ns.stop(Duration::from_secs(10));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
}

/// A child frozen before exec (its cgroup frozen, as a hung filesystem would hold it) used to
/// block the init in the spawn-report read forever: nothing else started and SIGTERM went unread.
#[test]
fn ns_service_hanging_before_exec_does_not_stall_the_init() {
    let mut ns = Ns::new("hang");
    let Some(cg) = ns.cgroup_dir().map(|p| p.to_path_buf()) else {
        panic!("needs a cgroup2 hierarchy to freeze the unit's group");
    };
    let frozen = cg.join("system").join("a-hang");
    std::fs::create_dir_all(&frozen).unwrap();
    std::fs::write(frozen.join("cgroup.freeze"), "1").unwrap();
    ns.unit(
        "a-hang",
        r#"exec = ["/bin/sh", "-c", "echo ran > @OUT@/hang; exec sleep 100"]
"#,
    );
    ns.unit(
        "b-other",
        r#"exec = ["/bin/sh", "-c", "echo up > @OUT@/other; exec sleep 100"]
"#,
    );
    ns.start();
    assert!(
        ns.wait_for(T, || !ns.read("other").is_empty()),
        "{}",
        ns.log()
    );
    assert!(
        ns.wait_log(T, "[FAILED] a-hang: spawn failed:"),
        "{}",
        ns.log()
    );
    assert!(ns.log().contains("did not exec within 5s"), "{}", ns.log());
    assert!(ns.read("hang").is_empty());
    let _ = std::fs::write(frozen.join("cgroup.freeze"), "0");
    ns.stop(T);
}
