//! Superblocks are read by a helper process, not PID 1: the real `lifsea-init probe-block`
//! answers through a pipe and the links follow; a helper that hangs (a disk that stops
//! answering) is abandoned after its bound while the subsystem keeps working, and coldplug's
//! `devices` fact does not wait for it.
//!
//! One test function: it reaps with waitpid(-1), which would steal other tests' children.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lifsea_init::devices::subsystem::{Devices, DevicesConfig};
use lifsea_init::devices::uevent::encode;
use lifsea_init::supervisor::subsystem::{ChildExit, Notice, PollFlags, Subsystem};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};

const FAT16: &[u8] = include_bytes!("../src/devices/fixtures/fat16.sb");

fn tree(tag: &str) -> PathBuf {
    let t = std::env::temp_dir().join(format!("lifsea-probe-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&t);
    for d in ["dev", "sys/class/block/vdc", "run", "etc"] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    let mut head = FAT16.to_vec();
    head.resize(70 * 1024, 0);
    std::fs::write(t.join("dev/vdc"), head).unwrap();
    t
}

fn config(t: &Path, probe_helper: PathBuf, probe_timeout: Duration) -> DevicesConfig {
    DevicesConfig {
        dev_root: t.join("dev"),
        sys_root: t.join("sys"),
        run_dir: t.join("run"),
        helper: None,
        coldplug_all: false,
        device_timeout: Duration::from_secs(30),
        rules_files: vec![],
        etc_dir: t.join("etc"),
        probe_helper: Some(probe_helper),
        probe_timeout,
    }
}

fn reached(out: &[Notice], fact: &str) -> bool {
    out.iter()
        .any(|n| matches!(n, Notice::FactReached(f) if f == fact))
}

/// Plays the event loop until `done` or `limit`: polls the subsystem's descriptors, reaps
/// children, ticks. Returns whether `done` became true, and the longest single call.
fn run_loop(
    d: &mut Devices,
    out: &mut Vec<Notice>,
    limit: Duration,
    mut done: impl FnMut(&Devices, &[Notice]) -> bool,
) -> (bool, Duration) {
    let t0 = Instant::now();
    let mut slowest = Duration::ZERO;
    while t0.elapsed() < limit {
        let call = Instant::now();
        for (fd, _) in d.poll_fds() {
            d.on_ready(fd, PollFlags::POLLIN, Instant::now(), out);
        }
        while let Ok(st) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            let (pid, exit) = match st {
                WaitStatus::Exited(p, c) => (p, ChildExit::Code(c)),
                WaitStatus::Signaled(p, s, _) => (p, ChildExit::Signal(s as i32)),
                _ => break,
            };
            assert!(
                d.child_exited(pid.as_raw(), exit, out),
                "a child the subsystem does not know: {pid}"
            );
        }
        d.tick(Instant::now(), out);
        slowest = slowest.max(call.elapsed());
        if done(d, out) {
            return (true, slowest);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (false, slowest)
}

#[test]
fn superblocks_are_read_by_a_helper_and_a_hung_one_is_abandoned() {
    // The real helper: coldplug's links come from its answer, and `devices` waits for it.
    let t = tree("real");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_lifsea-init"));
    let mut d = Devices::new(config(&t, bin, Duration::from_secs(20)), None);
    let mut out = Vec::new();
    d.tick(Instant::now(), &mut out);
    assert!(
        !reached(&out, "devices"),
        "devices reached before the probe answered"
    );
    assert!(!t.join("dev/disk/by-uuid/0BAD-CAFE").exists());
    let (ok, _) = run_loop(&mut d, &mut out, Duration::from_secs(20), |d, out| {
        d.settled() && reached(out, "devices")
    });
    assert!(ok, "the probe helper never answered: {out:?}");
    assert_eq!(
        std::fs::read_link(t.join("dev/disk/by-label/BOOT\\x20DISK")).unwrap(),
        Path::new("../../vdc")
    );
    assert!(t.join("dev/disk/by-uuid/0BAD-CAFE").is_symlink());

    // A helper that never answers: coldplug still settles at its bound, the loop never waits on
    // it, and a disk added later is probed by a new helper (here: also hung, also abandoned).
    let t = tree("hung");
    let script = t.join("hang.sh");
    std::fs::write(&script, "#!/bin/sh\nexec sleep 60\n").unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let bound = Duration::from_millis(400);
    let mut d = Devices::new(config(&t, script, bound), None);
    let mut out = Vec::new();
    let t0 = Instant::now();
    d.tick(t0, &mut out);
    assert!(!d.settled());
    let (ok, slowest) = run_loop(&mut d, &mut out, Duration::from_secs(10), |d, _| {
        d.settled()
    });
    assert!(ok, "coldplug waited on a hung probe past its bound");
    assert!(
        t0.elapsed() >= bound,
        "settled before the bound: the hung probe was not waited for at all"
    );
    assert!(
        slowest < Duration::from_millis(200),
        "a subsystem call took {slowest:?}: something blocked"
    );
    assert!(reached(&out, "devices"));
    assert!(!t.join("dev/disk").exists(), "links from nowhere");

    // Hot-added disk while the old helper is still being killed: handled, then abandoned too.
    std::fs::create_dir_all(t.join("sys/class/block/vdd")).unwrap();
    d.handle_message(
        &encode(
            "add",
            "/devices/virtio9/block/vdd",
            &[("SUBSYSTEM", "block"), ("DEVNAME", "vdd")],
        ),
        &mut out,
    );
    let status = d.status();
    assert!(
        status["probes_running"].as_u64().unwrap_or(0) >= 1,
        "{status}"
    );
    let (ok, slowest) = run_loop(&mut d, &mut out, Duration::from_secs(10), |d, _| {
        d.status()["probes_running"] == 0
    });
    assert!(ok, "the hotplug probe was not abandoned");
    assert!(slowest < Duration::from_millis(200), "{slowest:?}");
    // The killed helpers are reaped and claimed (run_loop asserts every child is known).
    let (_, _) = run_loop(&mut d, &mut out, Duration::from_millis(500), |_, _| false);
}
