//! The init as PID 1 of a PID namespace: reaping, restarts, readiness protocols, readiness timeouts.
//! Needs root (unshare). Each test has its own directories, cgroup and hard timeouts.

mod common;

use std::time::{Duration, Instant};

use common::Ns;
use nix::sys::signal::Signal;

const T: Duration = Duration::from_secs(20);

#[test]
fn ns_thousand_orphans_leave_no_zombies() {
    let mut ns = Ns::new("zombies");
    ns.unit(
        "forker",
        r#"type = "oneshot"
exec = ["/bin/sh", "-c", "i=0; while [ $i -lt 1000 ]; do (true &); i=$((i+1)); done; echo $i > @OUT@/forked"]
ready-timeout = "60s"
"#,
    );
    ns.unit(
        "checker",
        r#"type = "oneshot"
requires = ["forker"]
exec = ["/bin/sh", "-c", "for t in 1 2 3 4 5 6 7 8 9 10; do n=$(grep -l '^State:.*Z' /proc/[0-9]*/status 2>/dev/null | wc -l); [ $n -eq 0 ] && break; sleep 0.2; done; echo $n > @OUT@/zombies"]
"#,
    );
    ns.start();
    assert!(
        ns.wait_for(Duration::from_secs(60), || !ns.read("zombies").is_empty()),
        "{}",
        ns.log()
    );
    assert_eq!(ns.read("forked").trim(), "1000");
    assert_eq!(
        ns.read("zombies").trim(),
        "0",
        "zombies left in the namespace"
    );
    ns.stop(T);
}

#[test]
fn ns_restart_after_crash_and_after_sigkill() {
    let mut ns = Ns::new("restart");
    ns.unit(
        "crashy",
        r#"exec = ["/bin/sh", "-c", "date +%s%N >> @OUT@/crashy; exit 1"]
restart = "on-failure"
restart-delay = "3s"
"#,
    );
    ns.unit(
        "victim",
        r#"exec = ["/bin/sh", "-c", "echo start >> @OUT@/victim; exec sleep 1234.@P@"]
restart = "always"
restart-delay = "5s"
"#,
    );
    ns.start();
    // First restart is immediate; the next waits out restart-delay.
    assert!(
        ns.wait_for(Duration::from_secs(5), || ns.lines("crashy").len() >= 2),
        "{}",
        ns.log()
    );
    let stamps: Vec<u128> = ns
        .lines("crashy")
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    let gap_ms = (stamps[1] - stamps[0]) / 1_000_000;
    assert!(gap_ms < 1000, "first restart took {gap_ms} ms");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        ns.lines("crashy").len(),
        2,
        "second restart must wait for the backoff delay"
    );
    assert!(
        ns.log()
            .contains("[ STOP ] crashy (exited 1, restarting in 0 ms)"),
        "{}",
        ns.log()
    );

    let victim = format!("sleep 1234.{}", std::process::id());
    assert!(ns.wait_for(T, || !Ns::pids_with(&victim).is_empty()));
    let first = Ns::pids_with(&victim);
    let killed_at = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(first[0]), Signal::SIGKILL).unwrap();
    assert!(
        ns.wait_for(Duration::from_secs(3), || ns.lines("victim").len() == 2),
        "{}",
        ns.log()
    );
    assert!(killed_at.elapsed() < Duration::from_secs(2));
    assert!(ns.wait_for(T, || Ns::pids_with(&victim).iter().any(|p| *p != first[0])));
    assert!(
        ns.log()
            .contains("victim (killed by SIGKILL, restarting in 0 ms)"),
        "{}",
        ns.log()
    );
    ns.stop(T);
}

#[test]
fn ns_readiness_orders_dependents_notify_fd_and_socket() {
    let mut ns = Ns::new("ready");
    // Real Debian systemd-notify: it sends from its own pid (with the shell's pid as credentials).
    ns.unit(
        "notifier",
        r#"ready = "notify"
ready-timeout = "10s"
exec = ["/bin/sh", "-c", "sleep 0.4; echo ready-notify >> @OUT@/order; /usr/bin/systemd-notify --ready --status=serving; exec sleep 100"]
"#,
    );
    ns.unit(
        "after-notify",
        r#"requires = ["notifier"]
exec = ["/bin/sh", "-c", "echo dep-notify >> @OUT@/order; exec sleep 100"]
"#,
    );
    ns.unit(
        "fdready",
        r#"ready = { fd = 3 }
ready-timeout = "10s"
exec = ["/bin/sh", "-c", "sleep 0.4; echo ready-fd >> @OUT@/order-fd; echo >&3; exec sleep 100"]
"#,
    );
    ns.unit(
        "after-fd",
        r#"requires = ["fdready"]
exec = ["/bin/sh", "-c", "echo dep-fd >> @OUT@/order-fd; exec sleep 100"]
"#,
    );
    ns.unit(
        "sock",
        r#"ready = { unix = "@OUT@/s.sock" }
ready-timeout = "10s"
exec = ["/usr/bin/python3", "-c", "import socket,time; time.sleep(0.4); open('@OUT@/order-sock','a').write('ready-sock\\n'); s=socket.socket(socket.AF_UNIX); s.bind('@OUT@/s.sock'); s.listen(); time.sleep(100)"]
"#,
    );
    ns.unit(
        "after-sock",
        r#"requires = ["sock"]
exec = ["/bin/sh", "-c", "echo dep-sock >> @OUT@/order-sock; exec sleep 100"]
"#,
    );
    ns.start();
    for (file, first, second) in [
        ("order", "ready-notify", "dep-notify"),
        ("order-fd", "ready-fd", "dep-fd"),
        ("order-sock", "ready-sock", "dep-sock"),
    ] {
        assert!(
            ns.wait_for(T, || ns.lines(file).len() >= 2),
            "{file}: {}",
            ns.log()
        );
        assert_eq!(
            ns.lines(file),
            vec![first.to_string(), second.to_string()],
            "{}",
            ns.log()
        );
    }
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    let tl = ns.timeline().expect("boot-timeline.json");
    let units = tl["units"].as_array().unwrap();
    for u in units {
        assert_eq!(u["state"], "running", "{u}");
        assert!(u["ready_us"].as_u64() >= u["started_us"].as_u64());
    }
    assert!(tl["boot_complete_us"].as_u64().is_some());
    ns.stop(T);
}

#[test]
fn ns_readiness_timeout_fails_unit_and_hard_dependents() {
    let mut ns = Ns::new("timeout");
    ns.unit(
        "mute",
        r#"ready = "notify"
ready-timeout = "1s"
exec = ["/bin/sh", "-c", "exec sleep 3456.@P@"]
"#,
    );
    ns.unit(
        "needs-mute",
        r#"requires = ["mute"]
exec = ["/bin/sh", "-c", "echo ran > @OUT@/needs-mute; exec sleep 100"]
"#,
    );
    ns.unit(
        "independent",
        r#"exec = ["/bin/sh", "-c", "echo ran > @OUT@/independent; exec sleep 100"]
"#,
    );
    let started = Instant::now();
    ns.start();
    assert!(
        ns.wait_log(
            T,
            "[FAILED] needs-mute: dependency mute failed: not ready within 1s"
        ),
        "{}",
        ns.log()
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
    // The unit itself is marked failed once its stop completes, just after its requirer.
    assert!(
        ns.wait_log(T, "[FAILED] mute: not ready within 1s"),
        "{}",
        ns.log()
    );
    assert!(
        ns.wait_for(T, || Ns::pids_with(&format!(
            "sleep 3456.{}",
            std::process::id()
        ))
        .is_empty()),
        "the unready unit must be killed"
    );
    assert_eq!(ns.read("needs-mute"), "");
    assert!(
        ns.wait_for(T, || ns.read("independent").trim() == "ran"),
        "{}",
        ns.log()
    );
    assert!(ns.wait_log(T, "boot complete in"));
    let tl = ns.timeline().unwrap();
    let failure = tl["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "needs-mute")
        .map(|u| u["failure"].clone())
        .unwrap();
    assert_eq!(failure, "dependency mute failed: not ready within 1s");
    ns.stop(T);
}

#[test]
fn ns_not_pid1_adopts_orphans_and_kills_only_descendants() {
    let mut ns = Ns::new("subreaper");
    ns.unit(
        "orphaner",
        r#"type = "oneshot"
exec = ["/bin/sh", "-c", "(sleep 5678.@P@9 &); echo done > @OUT@/done"]
"#,
    );
    // Something outside the init that must survive its shutdown.
    let mut bystander = std::process::Command::new("sleep")
        .arg(format!("5678.{}8", std::process::id()))
        .spawn()
        .unwrap();
    ns.start_plain();
    assert!(
        ns.wait_for(T, || ns.read("done").contains("done")),
        "{}",
        ns.log()
    );
    let init = ns.init_pid().unwrap();
    let orphan_cmd = format!("sleep 5678.{}9", std::process::id());
    assert!(ns.wait_for(T, || !Ns::pids_with(&orphan_cmd).is_empty()));
    let orphan = Ns::pids_with(&orphan_cmd)[0];
    assert_eq!(
        Ns::ppid(orphan),
        Some(init),
        "the orphan is reparented to the subreaper init"
    );
    ns.stop(T);
    assert!(
        ns.wait_for(Duration::from_secs(3), || Ns::pids_with(&orphan_cmd)
            .is_empty())
    );
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "a process outside the init was killed"
    );
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

/// Container mode has no devices subsystem, yet `device:` facts must not wait out their 90 s
/// timeout: a path the container manager put in /dev reaches its fact at once, a missing one is
/// shown as waited for.
#[test]
fn ns_container_device_facts_look_for_their_path() {
    let mut ns = Ns::new("devfacts");
    ns.unit(
        "needs-null",
        r#"type = "oneshot"
requires = ["device:/dev/null"]
exec = ["/bin/sh", "-c", "echo ok > @OUT@/null"]
"#,
    );
    ns.unit(
        "needs-absent",
        r#"type = "oneshot"
requires = ["device:/dev/lifsea-absent-@P@"]
exec = ["/bin/sh", "-c", "echo started > @OUT@/absent"]
"#,
    );
    ns.start();
    assert!(
        ns.wait_for(Duration::from_secs(10), || ns.read("null").trim() == "ok"),
        "a unit requiring an existing /dev path did not start: {}",
        ns.log()
    );
    let (code, out, err) = common::control::initctl_as(&ns.run, &["devices"], None);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("lifsea-absent-{}", std::process::id())),
        "initctl devices does not show the waited-for path: {out}"
    );
    assert!(ns.read("absent").is_empty(), "started without its device");
    ns.stop(T);
}
