//! Output pipes of `kill = "main"` leftovers (issue 12, finding 8): every instance of such a unit
//! used to get its own stdout/stderr pipes, which stayed open in the init for as long as any
//! leftover of that instance lived, so each restart that left a process behind grew PID 1's
//! descriptors by two. Now the unit has one pair for all its instances: the init's descriptors
//! stay flat, and the leftovers keep writing (nobody closes a read end they use: no SIGPIPE).
//! Needs root (unshare).

mod common;

use std::time::Duration;

use common::control::initctl_as;
use common::Ns;

const T: Duration = Duration::from_secs(30);

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn starts(ns: &Ns) -> usize {
    ns.lines("starts").len()
}

#[test]
fn ns_leftovers_of_kill_main_share_one_output_pipe_pair() {
    let mut ns = Ns::new("leftpipes");
    let marker = format!("leftover-writer-{}", std::process::id());
    ns.unit(
        "shimmy",
        &format!(
            r#"kill = "main"
restart = "always"
restart-delay = "50ms"
restart-delay-max = "100ms"
exec = ["/bin/sh", "-c", "/bin/sh -c 'trap \"\" TERM; while :; do echo alive; sleep 0.05; done' {marker} & echo started >> @OUT@/starts; sleep 0.3; exit 1"]
"#
        ),
    );
    ns.start();
    assert!(ns.wait_for(T, || starts(&ns) >= 2), "{}", ns.log());
    let init = ns.init_pid().unwrap();
    let before = fd_count(init);
    assert!(ns.wait_for(T, || starts(&ns) >= 8), "{}", ns.log());
    // Let the last restart settle (its spawn's own descriptors are closed by now).
    std::thread::sleep(Duration::from_millis(100));
    let after = fd_count(init);
    let cmd =
        format!("/bin/sh -c trap \"\" TERM; while :; do echo alive; sleep 0.05; done {marker}");
    let leftovers = Ns::pids_with(&cmd);
    assert!(
        leftovers.len() >= 7,
        "leftovers died (SIGPIPE?): {} alive\n{}",
        leftovers.len(),
        ns.log()
    );
    assert!(
        after <= before + 1,
        "PID 1 descriptors grew from {before} to {after} over {} restarts",
        starts(&ns) - 2
    );
    // Their output still reaches the unit's log.
    let (code, logs, _) = initctl_as(&ns.run, &["logs", "shimmy", "-n", "50"], None);
    assert_eq!(code, 0);
    assert!(logs.contains("alive"), "{logs}");
    ns.stop(T);
}
