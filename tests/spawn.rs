//! `supervisor::spawn` against real processes: each test starts a child with one restriction and
//! reads the kernel's view of it from /proc/<pid>. Needs root (to change uid, drop capabilities,
//! lower oom_score_adj). Every child is killed and reaped by a guard, even when an assertion fails.

#[path = "common/fixtures.rs"]
mod fixtures;
// fixtures.rs names the library as `crate::units` (it is also compiled inside the library).
use lifsea_init::units;

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use caps::Capability;
use fixtures::test_unit;
use lifsea_init::supervisor::spawn::{spawn, SpawnError, SpawnRequest, Spawned};
use lifsea_init::units::schema::{CapabilitySpec, Limit, Readiness};
use lifsea_init::units::Unit;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::resource::Resource;
use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Kills and reaps the child when the test ends, however it ends.
struct Child {
    pid: Pid,
    spawned: Option<Spawned>,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

impl Child {
    fn proc(&self, file: &str) -> String {
        std::fs::read_to_string(format!("/proc/{}/{file}", self.pid)).unwrap()
    }
    fn status(&self, key: &str) -> String {
        let status = self.proc("status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .unwrap_or_else(|| panic!("{key} missing from status"))
            .trim()
            .to_string()
    }
    /// Waits (bounded) for the child to exit by itself and returns its exit code.
    fn wait_exit(&mut self) -> i32 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match waitpid(self.pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)).unwrap() {
                WaitStatus::Exited(_, code) => {
                    // Reaped: keep Drop from signalling a pid that may be reused.
                    self.pid = Pid::from_raw(i32::MAX);
                    return code;
                }
                WaitStatus::StillAlive => {}
                other => panic!("unexpected {other:?}"),
            }
            assert!(Instant::now() < deadline, "child did not exit in time");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    fn spawned(&self) -> &Spawned {
        self.spawned.as_ref().unwrap()
    }
}

fn start(unit: &Unit, notify: Option<&Path>) -> Result<Child, SpawnError> {
    start_in(unit, notify, Path::new("/etc"))
}

fn start_in(unit: &Unit, notify: Option<&Path>, etc_dir: &Path) -> Result<Child, SpawnError> {
    let req = SpawnRequest {
        unit,
        notify_socket: notify,
        cgroup_dir: None,
        clone_into_cgroup: false,
        etc_dir,
    };
    spawn(&req).map(|s| Child {
        pid: s.pid,
        spawned: Some(s),
    })
}

/// Reads from `fd` until EOF or `TIMEOUT`, whichever comes first.
fn read_all(fd: &OwnedFd) -> String {
    read_until(fd, |_| false)
}

fn read_until(fd: &OwnedFd, done: impl Fn(&[u8]) -> bool) -> String {
    let deadline = Instant::now() + TIMEOUT;
    let mut out = Vec::new();
    let mut file = std::fs::File::from(fd.try_clone().unwrap());
    while !done(&out) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out reading; got {out:?}");
        let mut pfd = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::try_from(left.as_millis().min(10_000) as u32).unwrap();
        if poll(&mut pfd, ms).unwrap() == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn sleeper(name: &str) -> Unit {
    test_unit(name, &["/bin/sleep", "30"])
}

#[test]
fn stdout_and_stderr_arrive_on_pipes() {
    let unit = test_unit("pipes", &["/bin/sh", "-c", "echo to-out; echo to-err >&2"]);
    let mut child = start(&unit, None).unwrap();
    assert_eq!(read_all(&child.spawned().stdout), "to-out\n");
    assert_eq!(read_all(&child.spawned().stderr), "to-err\n");
    assert_eq!(child.wait_exit(), 0);
}

#[test]
fn runs_as_nobody_with_its_groups() {
    let mut unit = sleeper("nobody");
    unit.user = Some("nobody".into());
    let child = start(&unit, None).unwrap();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let entry: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("nobody:"))
        .unwrap()
        .split(':')
        .collect();
    let (uid, gid) = (entry[2], entry[3]);
    assert_eq!(child.status("Uid"), format!("{uid}\t{uid}\t{uid}\t{uid}"));
    assert_eq!(child.status("Gid"), format!("{gid}\t{gid}\t{gid}\t{gid}"));
    assert_eq!(child.status("Groups"), gid);
    assert_eq!(child.status("CapEff"), "0000000000000000");
}

#[test]
fn users_come_from_the_given_etc_dir() {
    let etc = std::env::temp_dir().join(format!("spawn-etc-{}", std::process::id()));
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(
        etc.join("passwd"),
        "svc:x:4242:4343:svc:/var/lib/svc:/bin/false\n",
    )
    .unwrap();
    std::fs::write(
        etc.join("group"),
        "svc:x:4343:\nextra:x:4444:svc\nother:x:4545:\n",
    )
    .unwrap();
    let mut unit = sleeper("etcdir");
    unit.user = Some("svc".into());
    let child = start_in(&unit, None, &etc);
    unit.user = Some("ghost".into());
    let ghost = start_in(&unit, None, &etc).err();
    unit.user = None;
    unit.group = Some("other".into());
    let group_only = start_in(&unit, None, &etc);
    std::fs::remove_dir_all(&etc).unwrap();

    let child = child.unwrap();
    assert_eq!(child.status("Uid"), "4242\t4242\t4242\t4242");
    assert_eq!(child.status("Gid"), "4343\t4343\t4343\t4343");
    assert_eq!(child.status("Groups"), "4343 4444");
    assert!(environ(&child).contains(&"HOME=/var/lib/svc".to_string()));
    let msg = ghost.unwrap().to_string();
    assert!(msg.contains("ghost"), "{msg}");
    let group_only = group_only.unwrap();
    assert_eq!(group_only.status("Uid"), "0\t0\t0\t0");
    assert_eq!(group_only.status("Gid"), "4545\t4545\t4545\t4545");
    assert_eq!(group_only.status("Groups"), "4545");
}

#[test]
fn bounding_and_ambient_capabilities_for_non_root() {
    let mut unit = sleeper("caps");
    unit.user = Some("nobody".into());
    unit.capabilities = Some(CapabilitySpec {
        bounding: Some(vec![
            Capability::CAP_NET_BIND_SERVICE,
            Capability::CAP_CHOWN,
        ]),
        ambient: vec![Capability::CAP_NET_BIND_SERVICE],
    });
    let child = start(&unit, None).unwrap();
    let mask = |v: u64| format!("{v:016x}");
    let bnd = Capability::CAP_NET_BIND_SERVICE.bitmask() | Capability::CAP_CHOWN.bitmask();
    let amb = Capability::CAP_NET_BIND_SERVICE.bitmask();
    assert_eq!(child.status("CapBnd"), mask(bnd));
    assert_eq!(child.status("CapAmb"), mask(amb));
    assert_eq!(child.status("CapEff"), mask(amb));
    assert_eq!(child.status("CapPrm"), mask(amb));
    assert_ne!(child.status("Uid").split('\t').next(), Some("0"));
}

#[test]
fn no_new_privileges_only_when_asked() {
    let mut unit = sleeper("nnp");
    let plain = start(&unit, None).unwrap();
    assert_eq!(plain.status("NoNewPrivs"), "0");
    unit.no_new_privileges = true;
    let child = start(&unit, None).unwrap();
    assert_eq!(child.status("NoNewPrivs"), "1");
}

#[test]
fn resource_limits_applied() {
    let mut unit = sleeper("limits");
    unit.limits = vec![
        Limit {
            resource: Resource::RLIMIT_NOFILE,
            soft: 1234,
            hard: 2345,
        },
        Limit {
            resource: Resource::RLIMIT_CORE,
            soft: u64::MAX,
            hard: u64::MAX,
        },
    ];
    let child = start(&unit, None).unwrap();
    let limits = child.proc("limits");
    let row = |name: &str| -> Vec<String> {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..]
            .split_whitespace()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(row("Max open files")[..2], ["1234", "2345"]);
    assert_eq!(row("Max core file size")[..2], ["unlimited", "unlimited"]);
}

#[test]
fn oom_score_adjust_applied() {
    let mut unit = sleeper("oom");
    // Positive on purpose: lowering the score needs CAP_SYS_RESOURCE, which some test sandboxes
    // (including this build machine's) do not grant even to root.
    unit.oom_score_adjust = Some(321);
    let child = start(&unit, None).unwrap();
    assert_eq!(child.proc("oom_score_adj").trim(), "321");
}

#[test]
fn working_dir_default_and_set() {
    let mut unit = sleeper("cwd");
    let child = start(&unit, None).unwrap();
    let cwd = |c: &Child| std::fs::read_link(format!("/proc/{}/cwd", c.pid)).unwrap();
    assert_eq!(cwd(&child), Path::new("/"));
    let dir = std::env::temp_dir().join(format!("spawn-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    unit.working_dir = Some(dir.clone());
    let child2 = start(&unit, None).unwrap();
    let got = cwd(&child2);
    drop(child2);
    std::fs::remove_dir(&dir).unwrap();
    assert_eq!(got, dir);
}

#[test]
fn missing_working_dir_is_reported() {
    let mut unit = sleeper("badcwd");
    unit.working_dir = Some("/nonexistent-dir-for-spawn-test".into());
    let err = start(&unit, None).err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, SpawnError::Prepare { .. }), "{msg}");
    assert!(
        msg.contains("chdir /nonexistent-dir-for-spawn-test"),
        "{msg}"
    );
    assert!(msg.contains("No such file or directory"), "{msg}");
}

fn environ(child: &Child) -> Vec<String> {
    // `start` returns once the exec has committed (the child left the init's memory), which is
    // before the kernel has laid out the new image's environment: until then the file is empty.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let env: Vec<String> = child
            .proc("environ")
            .split('\0')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if !env.is_empty() || Instant::now() > deadline {
            return env;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn environment_is_clean() {
    let mut unit = sleeper("env");
    unit.user = Some("nobody".into());
    unit.env = vec![
        ("FOO".into(), "bar baz".into()),
        ("USER".into(), "overridden".into()),
    ];
    let child = start(&unit, Some(Path::new("/run/test-notify.sock"))).unwrap();
    let mut env = environ(&child);
    env.sort();
    let mut want = vec![
        "FOO=bar baz",
        "HOME=/nonexistent",
        "LOGNAME=nobody",
        "NOTIFY_SOCKET=/run/test-notify.sock",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "USER=overridden",
    ];
    want.sort();
    assert_eq!(env, want);
    // The test harness itself runs with cargo's variables; none may leak.
    assert!(std::env::vars().any(|(k, _)| k.starts_with("CARGO")));
}

#[test]
fn readiness_fd_receives_newline() {
    let mut unit = test_unit("readyfd", &["/bin/sh", "-c", "echo >&5; exec sleep 30"]);
    unit.ready = Readiness::Fd(5);
    let child = start(&unit, None).unwrap();
    let ready = child.spawned().ready_fd.as_ref().unwrap();
    assert_eq!(read_until(ready, |b| b.contains(&b'\n')), "\n");
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", child.pid))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(fds.contains(&"5".to_string()), "{fds:?}");
}

#[test]
fn signal_mask_and_dispositions_reset() {
    // Block signals in this thread as the supervisor does for its signalfd; fork copies the
    // calling thread's mask. An ignored signal stays ignored across exec unless reset.
    // SAFETY: SIG_IGN installs no handler, so no code runs in signal context.
    unsafe { nix::sys::signal::signal(Signal::SIGUSR2, nix::sys::signal::SigHandler::SigIgn) }
        .unwrap();
    let mut set = SigSet::empty();
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGUSR1);
    set.add(Signal::SIGCHLD);
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old)).unwrap();
    let result = start(&sleeper("signals"), None);
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None).unwrap();
    let child = result.unwrap();
    let me = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    let usr2 = 1u64 << (Signal::SIGUSR2 as i32 - 1);
    let ign = me
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:\t"))
        .unwrap();
    assert_ne!(
        u64::from_str_radix(ign, 16).unwrap() & usr2,
        0,
        "SIGUSR2 not ignored here"
    );
    assert_eq!(child.status("SigBlk"), "0000000000000000");
    assert_eq!(child.status("SigIgn"), "0000000000000000");
}

/// Zombie children of this process that were forked by the current thread (a child that never
/// exec'd keeps the forking thread's name as its comm).
fn my_zombies() -> Vec<i32> {
    let me = std::process::id().to_string();
    let comm = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((head, rest)) = stat.rsplit_once(") ") else {
                return false;
            };
            let f: Vec<&str> = rest.split(' ').collect();
            let name = head.split_once(" (").map(|(_, n)| n).unwrap_or("");
            f[0] == "Z" && f[1] == me && comm.trim() == name
        })
        .collect()
}

#[test]
fn missing_binary_is_an_exec_error_without_zombie() {
    let unit = test_unit("missing", &["/nonexistent/spawn-test-binary", "x"]);
    let err = start(&unit, None).err().unwrap();
    let msg = err.to_string();
    match &err {
        SpawnError::Exec { path, source, .. } => {
            assert_eq!(path, "/nonexistent/spawn-test-binary");
            assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
        }
        other => panic!("wrong error {other:?}"),
    }
    assert!(
        msg.contains("exec /nonexistent/spawn-test-binary failed: No such file or directory"),
        "{msg}"
    );
    assert_eq!(my_zombies(), Vec::<i32>::new());
}

#[test]
fn parent_fds_do_not_leak() {
    // Inheritable descriptors in the parent (no O_CLOEXEC), as a careless library might leave:
    // one low, one high among where the init parks its long-lived descriptors.
    let leaky = nix::unistd::dup(1).unwrap();
    let leaky_high = nix::fcntl::fcntl(1, nix::fcntl::FcntlArg::F_DUPFD(900)).unwrap();
    let mut unit = sleeper("fds");
    unit.ready = Readiness::Fd(7);
    let result = start(&unit, None);
    let _ = nix::unistd::close(leaky);
    let _ = nix::unistd::close(leaky_high);
    let child = result.unwrap();
    let mut fds: Vec<i32> = std::fs::read_dir(format!("/proc/{}/fd", child.pid))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect();
    fds.sort();
    assert_eq!(fds, vec![0, 1, 2, 7]);
    let stdin = std::fs::read_link(format!("/proc/{}/fd/0", child.pid)).unwrap();
    assert_eq!(stdin, Path::new("/dev/null"));
}

/// What the standard descriptors of this process are: (device, inode) of each.
fn own_stdio() -> Vec<(u64, u64)> {
    (0..3)
        .map(|fd| {
            let st = nix::sys::stat::fstat(fd).unwrap();
            (st.st_dev as u64, st.st_ino as u64)
        })
        .collect()
}

#[test]
fn the_parents_descriptors_stay_as_they_were() {
    // The child shares the parent's descriptor table until its first step and then places its
    // own stdio: had it not taken a table of its own first, ours would now be its pipes.
    let before = own_stdio();
    let child = start(&sleeper("stdio"), None).unwrap();
    let stdout = std::fs::read_link(format!("/proc/{}/fd/1", child.pid)).unwrap();
    assert!(stdout.to_string_lossy().starts_with("pipe:"), "{stdout:?}");
    assert_eq!(own_stdio(), before);
    let out = child.spawned().stdout.as_fd();
    assert!(
        std::os::fd::AsRawFd::as_raw_fd(&out) >= lifsea_init::sys::process::PARK_AT,
        "the read end is parked high"
    );
}

/// Children started back to back with `begin` and settled afterwards, in another order: each
/// gets its own outcome (pid, or the failed step with its errno and path), and a child that
/// failed is reaped by its `finish`.
#[test]
fn begun_children_settle_each_with_its_own_outcome() {
    use lifsea_init::supervisor::spawn::begin;
    let good = test_unit("good", &["/bin/sleep", "100"]);
    let missing = test_unit("missing", &["/nonexistent/spawn-begin-binary"]);
    let mut nodir = test_unit("nodir", &["/bin/sleep", "100"]);
    nodir.working_dir = Some("/nonexistent-dir-for-begin-test".into());
    let good2 = test_unit("good2", &["/bin/sleep", "100"]);
    let req = |unit| SpawnRequest {
        unit,
        notify_socket: None,
        cgroup_dir: None,
        clone_into_cgroup: false,
        etc_dir: Path::new("/etc"),
    };
    let pending: Vec<_> = [&good, &missing, &nodir, &good2]
        .into_iter()
        .map(|u| begin(&req(u)).expect("begin"))
        .collect();
    let pids: Vec<Pid> = pending.iter().map(|p| p.pid()).collect();
    assert_eq!(
        pending.iter().map(|p| p.unit()).collect::<Vec<_>>(),
        ["good", "missing", "nodir", "good2"]
    );
    let mut results: Vec<_> = pending.into_iter().rev().map(|p| p.finish()).collect();
    results.reverse();
    let mut guards = Vec::new();
    for (i, r) in results.into_iter().enumerate() {
        match (i, r) {
            (0 | 3, Ok((started, output))) => {
                assert_eq!(started.pid, pids[i]);
                assert!(output.is_some(), "begin made output pipes");
                let child = Child {
                    pid: started.pid,
                    spawned: None,
                };
                let deadline = Instant::now() + TIMEOUT;
                while child.proc("comm").trim() != "sleep" {
                    assert!(Instant::now() < deadline, "child {i} never became sleep");
                    std::thread::sleep(Duration::from_millis(5));
                }
                guards.push(child);
            }
            (1, Err(SpawnError::Exec { path, source, .. })) => {
                assert_eq!(path, "/nonexistent/spawn-begin-binary");
                assert_eq!(source.raw_os_error(), Some(libc::ENOENT));
            }
            (2, Err(e)) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("chdir /nonexistent-dir-for-begin-test"),
                    "{msg}"
                );
            }
            (i, r) => panic!("child {i}: unexpected {:?}", r.map(|(s, _)| s.pid)),
        }
    }
    // The failed ones were reaped by their finish: nothing left to wait for.
    for pid in [pids[1], pids[2]] {
        assert_eq!(waitpid(pid, None), Err(nix::errno::Errno::ECHILD));
    }
}
