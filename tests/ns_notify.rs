//! The sd_notify socket against Debian's real `systemd-notify` (issue 12): `MAINPID=` is believed
//! only for a pid of the unit's own (finding 4) and a unit running as a non-root user can notify
//! (finding 5). Needs root (unshare).

mod common;

use std::time::Duration;

use common::control::initctl_as;
use common::Ns;

const T: Duration = Duration::from_secs(20);

fn main_pid(ns: &Ns, unit: &str) -> Option<i64> {
    let (code, out, err) = initctl_as(&ns.run, &["--json", "status", unit], None);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["pid"].as_i64()
}

#[test]
fn ns_mainpid_outside_the_unit_is_refused_inside_accepted() {
    let mut ns = Ns::new("mainpid");
    ns.unit(
        "other",
        r#"exec = ["/bin/sh", "-c", "echo $$ > @OUT@/other.pid; exec sleep 4321.@P@"]
"#,
    );
    // Claims PID 1, then another unit's main process, as its own main pid; then ready.
    ns.unit(
        "liar",
        r#"ready = "notify"
ready-timeout = "10s"
exec = ["/bin/sh", "-c", "while [ ! -s @OUT@/other.pid ]; do sleep 0.02; done; systemd-notify MAINPID=1; systemd-notify MAINPID=$(cat @OUT@/other.pid); systemd-notify --ready; echo $$ > @OUT@/liar.pid; exec sleep 5555.@P@"]
"#,
    );
    // Hands its main-process role to a child of its own (real systemd-notify --pid=), then exits:
    // the child is reparented to the init, whose reaper sees its end.
    ns.unit(
        "honest",
        r#"ready = "notify"
ready-timeout = "10s"
exec = ["/bin/sh", "-c", "sleep 7777.@P@ & echo $! > @OUT@/honest.child; systemd-notify --pid=$! --ready"]
"#,
    );
    ns.start();
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    assert!(ns.wait_for(T, || !ns.read("liar.pid").is_empty()
        && !ns.read("honest.child").is_empty()));
    let liar: i64 = ns.read("liar.pid").trim().parse().unwrap();
    let child: i64 = ns.read("honest.child").trim().parse().unwrap();
    assert_eq!(main_pid(&ns, "liar"), Some(liar), "{}", ns.log());
    assert_eq!(main_pid(&ns, "honest"), Some(child), "{}", ns.log());
    assert!(
        ns.log().contains("refused MAINPID=1"),
        "no refusal logged\n{}",
        ns.log()
    );

    // Stopping the liar touches neither PID 1 nor the other unit.
    let (code, _, err) = initctl_as(&ns.run, &["stop", "liar"], None);
    assert_eq!(code, 0, "{err}");
    assert!(ns.wait_for(T, || Ns::pids_with(&format!(
        "sleep 5555.{}",
        std::process::id()
    ))
    .is_empty()));
    std::thread::sleep(Duration::from_millis(300));
    assert!(!ns.log().contains("shutting down"), "{}", ns.log());
    assert_eq!(
        Ns::pids_with(&format!("sleep 4321.{}", std::process::id())).len(),
        1,
        "the other unit was killed\n{}",
        ns.log()
    );
    // The accepted MAINPID counts: its end is the unit's end.
    let host_child = Ns::pids_with(&format!("sleep 7777.{}", std::process::id()));
    assert_eq!(host_child.len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(host_child[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(ns.wait_log(T, "honest (killed by SIGKILL"), "{}", ns.log());
    ns.stop(T);
}

/// Finding 5: the socket was 0755 (owner root), so a unit with `user = "nobody"` could not send
/// READY=1 and always hit its ready-timeout.
#[test]
fn ns_non_root_unit_can_notify() {
    let mut ns = Ns::new("notify-user");
    ns.unit(
        "unprivileged",
        r#"ready = "notify"
ready-timeout = "5s"
user = "nobody"
exec = ["/bin/sh", "-c", "systemd-notify --ready --status=serving-as-$(id -un); exec sleep 100"]
"#,
    );
    ns.start();
    assert!(
        ns.wait_log(T, "[  OK  ] unprivileged ready"),
        "{}",
        ns.log()
    );
    let (code, out, err) = initctl_as(&ns.run, &["--json", "status", "unprivileged"], None);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "running", "{v}");
    assert_eq!(v["status_text"], "serving-as-nobody", "{v}");
    ns.stop(T);
}
