//! The init as PID 1 of a PID namespace: stopping. Kill modes, reverse-dependency shutdown order,
//! stop-timeout escalation, and broken unit files next to good ones. Needs root (unshare).

mod common;

use std::time::{Duration, Instant};

use common::Ns;
use nix::sys::signal::Signal;

const T: Duration = Duration::from_secs(20);

/// A service script that records its start (then reports ready on fd 3, so dependents start after
/// the record) and its SIGTERM, then exits.
fn recorder(name: &str, deps: &str) -> String {
    format!(
        r#"{deps}
ready = {{ fd = 3 }}
exec = ["/bin/sh", "-c", "trap 'echo {name} >> @OUT@/stops; exit 0' TERM; echo {name} >> @OUT@/starts; echo >&3; while :; do sleep 0.05; done"]
"#
    )
}

#[test]
fn ns_shutdown_stops_in_reverse_dependency_order() {
    let mut ns = Ns::new("order");
    ns.unit("base", &recorder("base", ""));
    ns.unit("mid", &recorder("mid", r#"requires = ["base"]"#));
    ns.unit("top", &recorder("top", r#"requires = ["mid"]"#));
    ns.unit("side", &recorder("side", r#"after = ["base"]"#));
    ns.unit("loner", &recorder("loner", ""));
    ns.start();
    assert!(
        ns.wait_for(T, || ns.lines("starts").len() == 5),
        "{}",
        ns.log()
    );
    let starts = ns.lines("starts");
    let pos = |v: &[String], n: &str| v.iter().position(|x| x == n).unwrap();
    assert!(
        pos(&starts, "base") < pos(&starts, "mid") && pos(&starts, "mid") < pos(&starts, "top")
    );
    ns.stop(T);
    let stops = ns.lines("stops");
    assert_eq!(stops.len(), 5, "{stops:?}\n{}", ns.log());
    assert!(pos(&stops, "top") < pos(&stops, "mid"), "{stops:?}");
    assert!(pos(&stops, "mid") < pos(&stops, "base"), "{stops:?}");
    assert!(pos(&stops, "side") < pos(&stops, "base"), "{stops:?}");
    // The init removes the groups it made (its own `init` and the units' `system/*`) on exit.
    assert_eq!(ns.cgroup_children(), Vec::<String>::new());
}

#[test]
fn ns_sigterm_ignoring_service_is_killed_at_stop_timeout() {
    let mut ns = Ns::new("stubborn");
    ns.unit(
        "stubborn",
        r#"stop-timeout = "2s"
exec = ["/bin/sh", "-c", "trap '' TERM; echo up > @OUT@/up; while :; do sleep 0.05; done"]
"#,
    );
    ns.start();
    assert!(
        ns.wait_for(T, || ns.read("up").contains("up")),
        "{}",
        ns.log()
    );
    let t0 = Instant::now();
    ns.signal(Signal::SIGTERM);
    let st = ns.wait_exit(T);
    let took = t0.elapsed();
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", ns.log());
    assert!(
        took >= Duration::from_secs(2),
        "exited before the stop-timeout: {took:?}"
    );
    assert!(
        took < Duration::from_millis(3500),
        "exited too late after the stop-timeout: {took:?}\n{}",
        ns.log()
    );
}

#[test]
fn ns_kill_mode_cgroup_versus_main() {
    let mut ns = Ns::new("killmode");
    ns.unit(
        "whole",
        r#"exec = ["/bin/sh", "-c", "sleep 4567.$0 & exec sleep 4567.$1", "@P@1", "@P@2"]
"#,
    );
    ns.unit(
        "mainonly",
        r#"kill = "main"
exec = ["/bin/sh", "-c", "sleep 4567.$0 & exec sleep 4567.$1", "@P@3", "@P@4"]
"#,
    );
    ns.start();
    let all = ["4567.1", "4567.2", "4567.3", "4567.4"]
        .map(|m| m.replace('.', &format!(".{}", std::process::id())));
    assert!(
        ns.wait_for(T, || all
            .iter()
            .all(|m| !Ns::pids_with(&format!("sleep {m}")).is_empty())),
        "{}",
        ns.log()
    );
    // Removing the unit files and reloading (SIGHUP) stops both units.
    std::fs::remove_file(ns.units.join("whole.toml")).unwrap();
    std::fs::remove_file(ns.units.join("mainonly.toml")).unwrap();
    ns.signal(Signal::SIGHUP);
    let gone = |m: &str| Ns::pids_with(&format!("sleep {m}")).is_empty();
    let [w1, w2, m1, m2] = &all;
    assert!(
        ns.wait_for(T, || gone(w1) && gone(w2) && gone(m2)),
        "{}",
        ns.log()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !gone(m1),
        "kill = \"main\" must leave the background child alive\n{}",
        ns.log()
    );
    // Shutdown still cleans up the survivor.
    ns.stop(T);
    assert!(ns.wait_for(Duration::from_secs(5), || gone(m1)));
}

#[test]
fn ns_broken_unit_and_cycle_next_to_good_ones() {
    let mut ns = Ns::new("broken");
    ns.unit(
        "good",
        r#"exec = ["/bin/sh", "-c", "echo ran > @OUT@/good; exec sleep 100"]"#,
    );
    ns.unit("broken", "exec = \"not-an-array\"\nfrobnicate = true\n");
    ns.unit(
        "needs-broken",
        r#"requires = ["broken"]
exec = ["/bin/sh", "-c", "echo ran > @OUT@/needs-broken"]"#,
    );
    ns.unit(
        "ping",
        r#"requires = ["pong"]
exec = ["/bin/sleep", "100"]"#,
    );
    ns.unit(
        "pong",
        r#"requires = ["ping"]
exec = ["/bin/sleep", "100"]"#,
    );
    ns.unit(
        "after-cycle",
        r#"after = ["ping"]
exec = ["/bin/sh", "-c", "echo ran > @OUT@/after-cycle; exec sleep 100"]"#,
    );
    ns.start();
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    // "boot complete" means every unit was started, not that a shell has
    // written its file yet: on a loaded machine the write comes later.
    let ran = |n: &str| ns.read(n).trim() == "ran";
    assert!(
        ns.wait_for(T, || ran("good") && ran("after-cycle")),
        "{}",
        ns.log()
    );
    assert_eq!(ns.read("needs-broken"), "");
    let log = ns.log();
    assert!(
        log.contains("[FAILED] broken: invalid unit file: "),
        "{log}"
    );
    assert!(log.contains("broken.toml:1"), "{log}");
    assert!(
        log.contains("[FAILED] needs-broken: dependency broken failed: invalid unit file"),
        "{log}"
    );
    assert!(log.contains("dependency cycle"), "{log}");
    let tl = ns.timeline().unwrap();
    let state = |n: &str| {
        tl["units"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == n)
            .map(|u| u["state"].clone())
            .unwrap()
    };
    assert_eq!(state("broken"), "failed");
    assert_eq!(state("ping"), "failed");
    assert_eq!(state("pong"), "failed");
    assert_eq!(state("good"), "running");
    ns.stop(T);
}

#[test]
fn ns_reload_starts_new_restarts_changed_stops_removed() {
    let mut ns = Ns::new("reload");
    let svc = |tag: &str| {
        format!(r#"exec = ["/bin/sh", "-c", "echo {tag} >> @OUT@/$0; exec sleep 100", "{{name}}"]"#)
    };
    ns.unit("keep", &svc("v1").replace("{name}", "keep"));
    ns.unit("change", &svc("v1").replace("{name}", "change"));
    ns.unit("drop", &svc("v1").replace("{name}", "drop"));
    ns.start();
    assert!(
        ns.wait_for(T, || ["keep", "change", "drop"]
            .iter()
            .all(|u| ns.lines(u).len() == 1)),
        "{}",
        ns.log()
    );
    ns.unit("change", &svc("v2").replace("{name}", "change"));
    ns.unit("fresh", &svc("v1").replace("{name}", "fresh"));
    std::fs::remove_file(ns.units.join("drop.toml")).unwrap();
    ns.signal(Signal::SIGHUP);
    assert!(
        ns.wait_for(T, || ns.lines("fresh").len() == 1),
        "{}",
        ns.log()
    );
    assert!(
        ns.wait_for(T, || ns.lines("change") == vec!["v1", "v2"]),
        "{}",
        ns.log()
    );
    assert!(ns.wait_log(T, "[ STOP ] drop"), "{}", ns.log());
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        ns.lines("keep"),
        vec!["v1"],
        "an unchanged unit keeps running"
    );
    // SIGUSR2 asks for a power-off; in container mode that still ends with exit 0.
    ns.signal(Signal::SIGUSR2);
    let st = ns.wait_exit(T);
    assert!(st.is_some_and(|s| s.success()), "{st:?}");
    assert!(
        ns.log().contains("shutting down (Poweroff)"),
        "{}",
        ns.log()
    );
}

#[test]
fn ns_cgroup_stop_waits_for_the_whole_group() {
    let mut ns = Ns::new("groupwait");
    ns.unit(
        "base",
        r#"exec = ["/bin/sh", "-c", "trap 'echo base-stopped >> @OUT@/order; exit 0' TERM; while :; do sleep 0.05; done"]
"#,
    );
    // The main process dies at once on SIGTERM; its child takes 600 ms to finish. The unit is only
    // stopped (and base may only stop) once the child is gone too.
    ns.unit(
        "dep",
        r#"requires = ["base"]
exec = ["/bin/sh", "-c", "/bin/sh -c 'trap \"sleep 0.6; echo dep-child-gone >> @OUT@/order; exit 0\" TERM; echo up > @OUT@/child; while :; do sleep 0.05; done' & wait"]
"#,
    );
    ns.start();
    assert!(
        ns.wait_for(T, || ns.read("child").contains("up")),
        "{}",
        ns.log()
    );
    ns.stop(T);
    if ns.has_cgroup() {
        assert_eq!(
            ns.lines("order"),
            vec!["dep-child-gone", "base-stopped"],
            "{}",
            ns.log()
        );
    }
}
