//! Shutdown ends in bounded time (issue 12, finding 11): a global deadline after which the init
//! kills what is still stopping and goes on, and repeated SIGTERM/SIGINT force the end at once.
//! Needs root (unshare).

mod common;

use std::time::{Duration, Instant};

use common::Ns;
use nix::sys::signal::Signal;

const T: Duration = Duration::from_secs(20);

/// A unit that ignores SIGTERM and has a long stop-timeout.
const STUBBORN: &str = r#"stop-timeout = "60s"
exec = ["/bin/sh", "-c", "trap '' TERM; echo up > @OUT@/up; while :; do sleep 0.05; done"]
"#;

#[test]
fn ns_shutdown_deadline_forces_the_end() {
    let mut ns = Ns::new("deadline");
    ns.env("LIFSEA_SHUTDOWN_TIMEOUT", "2s");
    ns.unit("stubborn", STUBBORN);
    ns.start();
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    assert!(ns.wait_for(T, || !ns.read("up").is_empty()));
    let asked = Instant::now();
    ns.stop(Duration::from_secs(10));
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "shutdown took {took:?}\n{}",
        ns.log()
    );
    assert!(
        ns.log()
            .contains("shutdown deadline (2s) passed: stubborn still stopping"),
        "{}",
        ns.log()
    );
}

/// A second SIGTERM/SIGINT while a shutdown is under way forces its end at once (it took three).
#[test]
fn ns_second_sigterm_forces_the_end() {
    let mut ns = Ns::new("sigterm2");
    ns.unit("stubborn", STUBBORN);
    ns.start();
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    assert!(ns.wait_for(T, || !ns.read("up").is_empty()));
    let asked = Instant::now();
    ns.signal(Signal::SIGTERM);
    assert!(ns.wait_log(T, "stopping stubborn"), "{}", ns.log());
    ns.signal(Signal::SIGINT);
    let st = ns.wait_exit(Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", ns.log());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "took {:?}",
        asked.elapsed()
    );
    assert!(ns.log().contains("stubborn still stopping"), "{}", ns.log());
}

/// A hung stop: the unit's cgroup is frozen, so its SIGTERM handler cannot run (as in
/// uninterruptible sleep; a default-action SIGTERM would still kill a frozen task, the handler is
/// what makes it hang); shutdown still ends at the unit's stop-timeout (SIGKILL and cgroup.kill
/// reach frozen processes), not at the global deadline.
#[test]
fn ns_frozen_unit_does_not_stall_shutdown_past_its_stop_timeout() {
    for (name, kill) in [("frozen-group", "cgroup"), ("frozen-main", "main")] {
        let mut ns = Ns::new(name);
        let Some(cg) = ns.cgroup_dir().map(|p| p.to_path_buf()) else {
            panic!("needs a cgroup2 hierarchy to freeze the unit's group");
        };
        ns.unit(
            "icy",
            &format!(
                "stop-timeout = \"2s\"\nkill = \"{kill}\"\nexec = [\"/bin/sh\", \"-c\", \"trap 'exit 0' TERM; echo up > @OUT@/up; while :; do sleep 0.1; done\"]\n"
            ),
        );
        ns.start();
        assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
        assert!(ns.wait_for(T, || !ns.read("up").is_empty()));
        let group = cg.join("system").join("icy");
        std::fs::write(group.join("cgroup.freeze"), "1").unwrap();
        assert!(
            ns.wait_for(T, || std::fs::read_to_string(group.join("cgroup.events"))
                .unwrap_or_default()
                .contains("frozen 1")),
            "the group did not freeze"
        );
        let asked = Instant::now();
        ns.stop(Duration::from_secs(30));
        let took = asked.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(8),
            "kill = {kill}: shutdown took {took:?}\n{}",
            ns.log()
        );
        assert!(!ns.log().contains("shutdown deadline"), "{}", ns.log());
    }
}

/// Units that do not depend on each other stop in parallel: two that each take 1.5 s to stop
/// cost 1.5 s, not 3 s (a dependent chain still stops in order; the global deadline bounds it).
#[test]
fn ns_independent_units_stop_in_parallel() {
    const SLOW_STOP: &str = r#"stop-timeout = "20s"
exec = ["/bin/sh", "-c", "trap 'sleep 1.5; echo done >> @OUT@/NAME; exit 0' TERM; echo up >> @OUT@/NAME; while :; do sleep 0.05; done"]
"#;
    let mut ns = Ns::new("parallel");
    ns.unit("slow-a", &SLOW_STOP.replace("NAME", "a"));
    ns.unit("slow-b", &SLOW_STOP.replace("NAME", "b"));
    ns.start();
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    assert!(ns.wait_for(T, || !ns.read("a").is_empty() && !ns.read("b").is_empty()));
    let asked = Instant::now();
    ns.stop(Duration::from_secs(20));
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(2700),
        "two independent 1.5 s stops took {took:?}\n{}",
        ns.log()
    );
    assert_eq!(ns.lines("a"), ["up", "done"]);
    assert_eq!(ns.lines("b"), ["up", "done"]);
}
