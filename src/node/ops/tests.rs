//! The session state machine against a recording launcher: no containerd, no processes.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use super::*;

#[derive(Default)]
struct Log {
    spawned: Vec<(i32, Vec<String>, bool)>,
    signals: Vec<(i32, Signal)>,
}

struct Fake(Rc<RefCell<Log>>);

impl Launcher for Fake {
    fn spawn(&mut self, args: &[String], stdio: Option<[OwnedFd; 3]>) -> std::io::Result<i32> {
        let mut l = self.0.borrow_mut();
        let pid = 100 + l.spawned.len() as i32;
        l.spawned.push((pid, args.to_vec(), stdio.is_some()));
        Ok(pid)
    }
    fn signal(&mut self, pid: i32, sig: Signal) {
        self.0.borrow_mut().signals.push((pid, sig));
    }
}

fn setup(tag: &str) -> (Ops, Rc<RefCell<Log>>, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("lifsea-ops-sm-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("toolbox/bin")).unwrap();
    std::fs::write(dir.join("toolbox/bin/sh"), "").unwrap();
    let mut cfg = OpsConfig::machine(Some(dir.join("log")));
    cfg.toolbox = dir.join("toolbox");
    cfg.term_grace = Duration::from_millis(50);
    cfg.cleanup_timeout = Duration::from_millis(50);
    let log = Rc::new(RefCell::new(Log::default()));
    (Ops::new(cfg, Box::new(Fake(log.clone()))), log, dir)
}

fn stdio() -> Vec<OwnedFd> {
    (0..3)
        .map(|_| OwnedFd::from(std::fs::File::open("/dev/null").unwrap()))
        .collect()
}

fn req(argv: &[&str]) -> OpsRequest {
    OpsRequest {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        ..OpsRequest::default()
    }
}

const PEER: Peer = Peer { uid: 0, pid: 4242 };

#[test]
fn a_session_runs_ctr_with_the_callers_stdio_then_removes_the_container() {
    let (mut ops, log, dir) = setup("normal");
    let key = ops
        .begin(&req(&["cat", "/host/etc/hostname"]), stdio(), PEER)
        .unwrap();
    let (pid, args, with_stdio) = log.borrow().spawned[0].clone();
    assert!(with_stdio);
    assert!(args.contains(&"run".to_string()));
    assert_eq!(
        args[args.len() - 2..],
        ["cat", "/host/etc/hostname"].map(String::from)
    );
    assert_eq!(ops.poll(key), None, "not over while ctr runs");
    let mut out = Vec::new();
    assert!(ops.child_exited(pid, ChildExit::Code(3), &mut out));
    // ctr run ended by itself: only the container record is left to delete.
    let (cpid, cargs, cstdio) = log.borrow().spawned[1].clone();
    assert!(!cstdio);
    assert_eq!(cargs[4..6], ["containers", "delete"].map(String::from));
    assert_eq!(ops.poll(key), None, "not over while the cleanup runs");
    assert!(ops.child_exited(cpid, ChildExit::Code(0), &mut out));
    assert!(
        ops.deadline().is_some(),
        "a finished session wakes the loop"
    );
    let end = ops.poll(key).unwrap();
    assert_eq!((end.exit, end.removed), (3, true));
    assert_eq!(ops.poll(key), None, "collected once");
    assert!(ops.deadline().is_none());
    let text = std::fs::read_to_string(dir.join("log/ops.log")).unwrap();
    assert!(
        text.contains("start uid=0 pid=4242 tty=no command=[\"cat\",\"/host/etc/hostname\"]"),
        "{text}"
    );
    assert!(text.contains("end uid=0 exit=3 (exited 3)"), "{text}");
    assert!(text.contains("cleanup ok"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_caller_that_goes_away_gets_its_session_stopped_and_the_task_deleted() {
    let (mut ops, log, dir) = setup("abandon");
    let key = ops.begin(&req(&["sleep", "100"]), stdio(), PEER).unwrap();
    let pid = log.borrow().spawned[0].0;
    ops.abandon(key);
    assert_eq!(log.borrow().signals, vec![(pid, Signal::SIGTERM)]);
    // ctr ignores SIGTERM: after the grace it is killed.
    let t = ops.deadline().unwrap();
    let mut out = Vec::new();
    ops.tick(t, &mut out);
    assert_eq!(log.borrow().signals[1], (pid, Signal::SIGKILL));
    ops.child_exited(pid, ChildExit::Signal(9), &mut out);
    let first = log.borrow().spawned[1].clone();
    assert_eq!(
        first.1[4..7],
        ["tasks", "delete", "--force"].map(String::from)
    );
    // A cleanup step that hangs is killed at its timeout, and the next one still runs.
    let t = ops.deadline().unwrap();
    ops.tick(t, &mut out);
    assert_eq!(log.borrow().signals[2], (first.0, Signal::SIGKILL));
    ops.child_exited(first.0, ChildExit::Signal(9), &mut out);
    let second = log.borrow().spawned[2].clone();
    assert_eq!(second.1[4..6], ["containers", "delete"].map(String::from));
    ops.child_exited(second.0, ChildExit::Code(0), &mut out);
    // Nobody to collect it: forgotten at once, logged as such.
    assert!(ops.sessions.is_empty());
    assert!(ops.deadline().is_none());
    let text = std::fs::read_to_string(dir.join("log/ops.log")).unwrap();
    assert!(
        text.contains("exit=137 (killed by signal 9, caller gone)"),
        "{text}"
    );
    assert!(text.contains("cleanup failed"), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn refusals_change_nothing() {
    let (mut ops, log, dir) = setup("refuse");
    let mut two = stdio();
    two.pop();
    let e = ops.begin(&req(&[]), two, PEER);
    assert!(e.unwrap_err().contains("2 descriptors came"));
    for _ in 0..4 {
        ops.begin(&req(&["true"]), stdio(), PEER).unwrap();
    }
    assert!(ops
        .begin(&req(&["true"]), stdio(), PEER)
        .unwrap_err()
        .contains("4 ops sessions"));
    assert_eq!(log.borrow().spawned.len(), 4);
    let mut out = Vec::new();
    ops.begin_shutdown(&mut out);
    assert_eq!(
        log.borrow().signals.len(),
        4,
        "every session stopped at shutdown"
    );
    assert!(ops
        .begin(&req(&["true"]), stdio(), PEER)
        .unwrap_err()
        .contains("shutting down"));
    std::fs::remove_file(dir.join("toolbox/bin/sh")).unwrap();
    let mut ops2 = Ops::new(ops.cfg.clone(), Box::new(Fake(log.clone())));
    assert!(ops2
        .begin(&req(&[]), stdio(), PEER)
        .unwrap_err()
        .contains("no toolbox"));
    let _ = std::fs::remove_dir_all(dir);
}
