//! The control server over a real Unix socket, driven by a small poll loop like the supervisor's,
//! with a recording `Operations` fake; clients are raw sockets, the library's `Connection`, and the
//! real `initctl` binary (also run as uid 65534 for the refusal test).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::control::{initctl_as, svg_unit_bars};
use lifsea_init::control::client::Connection;
use lifsea_init::control::ops::{OpError, Operations, ReloadReport, ShutdownKind, UnitStatus};
use lifsea_init::control::protocol::{ErrorCode, Op, Response};
use lifsea_init::control::server::{socket_path, ControlServer, Limits};
use lifsea_init::timeline::{Stamp, SubjectKind, TimelineEvent};
use lifsea_init::unitlog::{LogLine, Stream};
use nix::poll::{poll, PollFd, PollTimeout};

type Calls = Arc<Mutex<Vec<String>>>;
type Lines = Arc<Mutex<Vec<LogLine>>>;

struct Fake {
    calls: Calls,
    lines: Lines,
    admin: PathBuf,
}

fn unit(name: &str, state: &str, after: &[&str]) -> UnitStatus {
    UnitStatus {
        name: name.into(),
        description: format!("the {name} service"),
        state: state.into(),
        enabled: true,
        pid: Some(100),
        since_us: 1_000,
        readiness: "exec".into(),
        memory_bytes: Some(2048),
        after: after.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

impl Fake {
    fn rec(&self, s: String) {
        self.calls.lock().unwrap().push(s);
    }
    fn known(&self, u: &str) -> Result<(), OpError> {
        if ["alpha", "beta", "broken"].contains(&u) {
            Ok(())
        } else {
            Err(OpError::NoSuchUnit(u.into()))
        }
    }
}

impl Operations for Fake {
    fn list(&self) -> Vec<UnitStatus> {
        self.rec("list".into());
        vec![
            unit("alpha", "ready", &[]),
            unit("beta", "running", &["alpha"]),
            unit("broken", "failed", &[]),
        ]
    }
    fn status(&self, u: &str) -> Result<UnitStatus, OpError> {
        self.rec(format!("status {u}"));
        self.known(u)?;
        Ok(unit(u, if u == "broken" { "failed" } else { "ready" }, &[]))
    }
    fn start(&mut self, u: &str) -> Result<(), OpError> {
        self.rec(format!("start {u}"));
        self.known(u)
    }
    fn stop(&mut self, u: &str) -> Result<(), OpError> {
        self.rec(format!("stop {u}"));
        self.known(u)
    }
    fn restart(&mut self, u: &str) -> Result<(), OpError> {
        self.rec(format!("restart {u}"));
        self.known(u)
    }
    fn reload(&mut self) -> Result<ReloadReport, OpError> {
        self.rec("reload".into());
        Ok(ReloadReport {
            started: vec!["gamma".into()],
            ..Default::default()
        })
    }
    fn admin_unit_dir(&self) -> PathBuf {
        self.admin.clone()
    }
    fn logs_tail(&self, u: &str, n: usize) -> Result<Vec<LogLine>, OpError> {
        self.known(u)?;
        let l = self.lines.lock().unwrap();
        Ok(l[l.len().saturating_sub(n)..].to_vec())
    }
    fn logs_since(&self, u: &str, seq: u64) -> Result<Vec<LogLine>, OpError> {
        self.known(u)?;
        Ok(self
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.seq > seq)
            .cloned()
            .collect())
    }
    fn timeline(&self) -> Vec<Stamp> {
        self.rec("timeline".into());
        let s = |ms: u64, name: &str, event| Stamp {
            at_us: ms * 1000,
            kind: SubjectKind::Unit,
            name: name.into(),
            event,
        };
        vec![
            s(100, "alpha", TimelineEvent::Start),
            s(400, "alpha", TimelineEvent::Ready),
            s(400, "beta", TimelineEvent::Start),
            s(900, "beta", TimelineEvent::Ready),
            s(150, "broken", TimelineEvent::Start),
            s(200, "broken", TimelineEvent::Failed),
        ]
    }
    fn shutdown(&mut self, kind: ShutdownKind) {
        self.rec(format!("shutdown {kind:?}"));
    }

    fn subsystem(&self, name: &str) -> Result<serde_json::Value, OpError> {
        self.rec(format!("subsystem {name}"));
        match name {
            "net" => Ok(serde_json::json!({"links": []})),
            _ => Err(OpError::Failed(format!("no subsystem {name} is running"))),
        }
    }
}

struct Harness {
    dir: PathBuf,
    calls: Calls,
    lines: Lines,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Harness {
    fn start(limits: Limits) -> Harness {
        let dir = std::env::temp_dir().join(format!(
            "lifsea-ctl-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let calls: Calls = Arc::default();
        let lines: Lines = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut server = ControlServer::bind_with(&socket_path(&dir), limits).unwrap();
        let mut fake = Fake {
            calls: calls.clone(),
            lines: lines.clone(),
            admin: dir.join("admin"),
        };
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let now = Instant::now();
                let wait = server
                    .next_deadline()
                    .map_or(Duration::from_millis(50), |d| {
                        d.saturating_duration_since(now)
                    })
                    .min(Duration::from_millis(50));
                let ready: Vec<_> = {
                    let fds = server.poll_fds_borrowed();
                    let mut pfds: Vec<PollFd> =
                        fds.iter().map(|(fd, f)| PollFd::new(*fd, *f)).collect();
                    poll(&mut pfds, PollTimeout::try_from(wait).unwrap()).unwrap();
                    pfds.iter()
                        .zip(&fds)
                        .filter_map(|(p, (fd, _))| {
                            p.revents()
                                .filter(|r| !r.is_empty())
                                .map(|r| (fd.as_raw_fd(), r))
                        })
                        .collect()
                };
                for (fd, rev) in ready {
                    server.on_ready(fd, rev, &mut fake, Instant::now());
                }
                server.tick(&mut fake, Instant::now());
            }
        });
        Harness {
            dir,
            calls,
            lines,
            stop,
            thread: Some(thread),
        }
    }

    fn sock(&self) -> PathBuf {
        socket_path(&self.dir)
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn raw(&self) -> UnixStream {
        let s = UnixStream::connect(self.sock()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s
    }

    fn add_line(&self, text: &str) {
        let mut l = self.lines.lock().unwrap();
        let seq = l.len() as u64 + 1;
        l.push(LogLine {
            seq,
            realtime_us: 1_700_000_000_000_000 + seq,
            stream: Stream::Stdout,
            text: text.into(),
        });
    }

    fn initctl(&self, args: &[&str]) -> (i32, String, String) {
        initctl_as(&self.dir, args, None)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_response(r: &mut impl BufRead) -> Response {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad response {line:?}: {e}"))
}

fn code_of(r: &Response) -> ErrorCode {
    assert!(!r.ok, "{r:?}");
    r.error.as_ref().unwrap().code
}

#[test]
fn every_verb_dispatches_to_operations() {
    let h = Harness::start(Limits::default());
    let mode = std::fs::metadata(h.sock()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    h.add_line("hello");
    h.add_line("world");
    let mut c = Connection::open(&h.sock()).unwrap();
    let ops = [
        Op::List,
        Op::Status {
            unit: "alpha".into(),
        },
        Op::Start {
            unit: "alpha".into(),
        },
        Op::Stop {
            unit: "beta".into(),
        },
        Op::Restart {
            unit: "alpha".into(),
        },
        Op::Enable {
            unit: "beta".into(),
        },
        Op::Disable {
            unit: "alpha".into(),
        },
        Op::Reload,
        Op::Timeline,
        Op::Shutdown(ShutdownKind::Poweroff),
        Op::Shutdown(ShutdownKind::Reboot),
    ];
    for op in ops {
        c.call(op).unwrap();
    }
    let logs = c
        .call(Op::Logs {
            unit: "alpha".into(),
            n: 1,
            follow: false,
        })
        .unwrap();
    assert_eq!(logs["lines"][0]["text"], "world");
    assert_eq!(logs["lines"].as_array().unwrap().len(), 1);
    assert_eq!(c.call(Op::Version).unwrap()["protocol"], 1);
    assert_eq!(
        h.calls(),
        [
            "list",
            "status alpha",
            "start alpha",
            "stop beta",
            "restart alpha",
            "status beta",
            "start beta",
            "status alpha",
            "stop alpha",
            "reload",
            "timeline",
            "shutdown Poweroff",
            "shutdown Reboot",
            "status alpha",
        ]
    );
    let admin = h.dir.join("admin");
    assert!(admin.join("beta.enabled").exists());
    assert!(admin.join("alpha.disabled").exists());
    // Re-enabling removes the opposite marker.
    let r = c
        .call(Op::Enable {
            unit: "alpha".into(),
        })
        .unwrap();
    assert!(admin.join("alpha.enabled").exists());
    assert!(!admin.join("alpha.disabled").exists());
    assert_eq!(r["removed"], admin.join("alpha.disabled").to_str().unwrap());
    assert_eq!(r["action"], "start");
}

#[test]
fn bad_requests_get_errors_and_change_nothing() {
    let h = Harness::start(Limits::default());
    let s = h.raw();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let cases: [(&str, ErrorCode); 8] = [
        ("{\"v\":1,\"id\":1,\"op\":\"start\"", ErrorCode::BadJson),
        ("not json at all", ErrorCode::BadJson),
        (r#"{"v":1,"id":2,"op":"format-disk"}"#, ErrorCode::UnknownOp),
        (
            r#"{"v":7,"id":3,"op":"start","unit":"alpha"}"#,
            ErrorCode::BadVersion,
        ),
        (
            r#"{"v":1,"id":4,"op":"start","unit":"../../etc/passwd"}"#,
            ErrorCode::InvalidName,
        ),
        (
            r#"{"v":1,"id":5,"op":"enable","unit":"/etc/x"}"#,
            ErrorCode::InvalidName,
        ),
        (
            r#"{"v":1,"id":6,"op":"stop","unit":"alpha","force":true}"#,
            ErrorCode::BadRequest,
        ),
        (
            r#"{"v":1,"id":7,"op":"start","unit":"nosuch"}"#,
            ErrorCode::NoSuchUnit,
        ),
    ];
    for (line, want) in cases {
        writeln!(w, "{line}").unwrap();
        let resp = read_response(&mut r);
        assert_eq!(code_of(&resp), want, "{line}");
    }
    // Nothing but the lookup of the unknown unit reached the supervisor; no marker was written.
    assert_eq!(h.calls(), ["start nosuch"]);
    assert!(!h.dir.join("admin").exists());
    // The connection is still usable after errors.
    writeln!(w, r#"{{"v":1,"id":8,"op":"version"}}"#).unwrap();
    let resp = read_response(&mut r);
    assert!(resp.ok && resp.id == Some(8));
}

#[test]
fn oversized_request_is_refused_and_closed() {
    let h = Harness::start(Limits::default());
    let s = h.raw();
    let mut w = s.try_clone().unwrap();
    let big = format!(
        r#"{{"v":1,"id":1,"op":"start","unit":"{}"}}"#,
        "a".repeat(100_000)
    );
    // The server may close before we finish writing: that is the point.
    let _ = w.write_all(big.as_bytes());
    let _ = w.write_all(b"\n");
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r);
    assert_eq!(code_of(&resp), ErrorCode::TooLarge);
    let mut rest = Vec::new();
    assert_eq!(
        r.read_to_end(&mut rest).unwrap_or(0),
        0,
        "connection closed after too-large"
    );
    assert!(h.calls().is_empty());
}

#[test]
fn non_root_client_is_refused() {
    let h = Harness::start(Limits::default());
    // With the socket at 0600, uid 65534 cannot even connect.
    let (code, _, err) = initctl_as(&h.dir, &["status", "alpha"], Some(65534));
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("cannot connect to")
            && err.contains("ermission denied")
            && err.contains("(the control API serves root only)"),
        "{err}"
    );
    // Open the file lock to test the second one: SO_PEERCRED.
    std::fs::set_permissions(h.sock(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let (code, out, err) = initctl_as(&h.dir, &["start", "alpha"], Some(65534));
    assert_eq!(code, 3, "{out}{err}");
    assert!(
        err.contains("permission denied: the control API serves root only (peer uid 65534)"),
        "{err}"
    );
    assert!(h.calls().is_empty(), "{:?}", h.calls());
}

#[test]
fn stuck_client_does_not_delay_others_and_is_dropped() {
    // A server that waited on the stuck client would keep the others for the whole write timeout,
    // so the timeout is well above the bound the others are held to (a slow host stays on the
    // right side of both).
    let limits = Limits {
        write_timeout: Duration::from_secs(2),
        max_output: 256 * 1024,
        ..Limits::default()
    };
    let h = Harness::start(limits);
    // Asks for a lot and never reads.
    let stuck = h.raw();
    stuck.set_nonblocking(true).unwrap();
    let req = br#"{"v":1,"id":1,"op":"list"}
"#
    .repeat(400);
    let mut w = &stuck;
    let _ = w.write_all(&req);
    // Another that connects and sends half a request.
    let mut half = h.raw();
    half.write_all(br#"{"v":1,"id":1,"op":"#).unwrap();
    // A well-behaved client is served promptly meanwhile.
    for _ in 0..5 {
        let t = Instant::now();
        let mut c = Connection::open(&h.sock()).unwrap();
        c.call(Op::Status {
            unit: "alpha".into(),
        })
        .unwrap();
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    }
    // The stuck client is dropped (its output bound or write timeout): its socket reaches EOF.
    stuck.set_nonblocking(false).unwrap();
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let t = Instant::now();
    let mut buf = vec![0u8; 65536];
    let mut total = 0;
    loop {
        match (&stuck).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) => panic!("stuck client was not dropped: {e}"),
        }
    }
    assert!(t.elapsed() < Duration::from_secs(6));
    assert!(
        total < 400 * 1000,
        "it got all its output ({total}) instead of being dropped"
    );
    drop(half);
}

#[test]
fn half_request_and_idle_clients_time_out() {
    let limits = Limits {
        request_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(600),
        ..Limits::default()
    };
    let h = Harness::start(limits);
    let mut half = h.raw();
    half.write_all(br#"{"v":1,"#).unwrap();
    let idle = h.raw();
    let t = Instant::now();
    let mut buf = [0u8; 16];
    assert_eq!((&half).read(&mut buf).unwrap(), 0);
    let half_after = t.elapsed();
    assert_eq!((&idle).read(&mut buf).unwrap(), 0);
    let idle_after = t.elapsed();
    assert!(half_after >= Duration::from_millis(250) && half_after < Duration::from_secs(3));
    assert!(idle_after >= Duration::from_millis(550) && idle_after < Duration::from_secs(3));
}

#[test]
fn too_many_clients_get_busy() {
    let h = Harness::start(Limits {
        max_clients: 2,
        ..Limits::default()
    });
    let mut a = Connection::open(&h.sock()).unwrap();
    let mut b = Connection::open(&h.sock()).unwrap();
    a.call(Op::Version).unwrap();
    b.call(Op::Version).unwrap();
    let mut r = BufReader::new(h.raw());
    assert_eq!(code_of(&read_response(&mut r)), ErrorCode::Busy);
    let (code, _, err) = h.initctl(&["list"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("busy"), "{err}");
    drop(a);
    // A slot frees up once a client leaves.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut c = Connection::open(&h.sock()).unwrap();
        match c.call(Op::Version) {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("slot never freed: {e}"),
        }
    }
}

#[test]
fn logs_follow_streams_new_lines() {
    let h = Harness::start(Limits {
        follow_interval: Duration::from_millis(20),
        ..Limits::default()
    });
    h.add_line("old");
    let s = h.raw();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    writeln!(
        w,
        r#"{{"v":1,"id":3,"op":"logs","unit":"alpha","n":5,"follow":true}}"#
    )
    .unwrap();
    let first = read_response(&mut r);
    assert!(first.ok && first.more);
    assert_eq!(first.result.unwrap()["lines"][0]["text"], "old");
    h.add_line("new one");
    h.add_line("new two");
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let resp = read_response(&mut r);
        assert!(resp.ok && resp.more && resp.id == Some(3));
        for l in resp.result.unwrap()["lines"].as_array().unwrap() {
            seen.push(l["text"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen, ["new one", "new two"]);
    // `logs -f` of an unknown unit fails at once instead of waiting.
    let (code, _, err) = h.initctl(&["logs", "nosuch", "-f"]);
    assert_eq!(code, 4, "{err}");
}

#[test]
fn initctl_renders_and_exits_by_the_documented_codes() {
    let h = Harness::start(Limits::default());
    let (code, out, _) = h.initctl(&["list"]);
    assert_eq!(code, 1, "a failed unit makes list exit 1: {out}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("UNIT    STATE    ENABLED"), "{out}");
    let col = lines[0].find("STATE").unwrap();
    assert!(
        lines
            .iter()
            .skip(1)
            .all(|l| l[col..].starts_with(|c: char| c.is_alphabetic())),
        "{out}"
    );
    let (code, out, _) = h.initctl(&["status", "alpha"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("state: ready") && out.contains("memory: 2.0K"),
        "{out}"
    );
    assert_eq!(h.initctl(&["status", "broken"]).0, 1);
    let (code, _, err) = h.initctl(&["status", "nosuch"]);
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("no such unit: nosuch"), "{err}");
    let (code, _, err) = h.initctl(&["start", "../x"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(h.initctl(&["frobnicate"]).0, 2);
    assert_eq!(h.initctl(&[]).0, 2);
    let (code, out, _) = h.initctl(&["--json", "status", "alpha"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["name"], "alpha");
    let (code, out, _) = h.initctl(&["reload"]);
    assert_eq!(code, 0);
    assert!(out.contains("started: gamma"), "{out}");
    let (code, out, _) = h.initctl(&["analyze"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("beta @0.400s +500ms\n└─alpha @0.100s +300ms"),
        "{out}"
    );
    let svg = h.dir.join("chart.svg");
    let (code, _, err) = h.initctl(&["analyze", "--svg", svg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(svg_unit_bars(&svg), 3);
    // The same binary answers to the name initctl.
    let link = h.dir.join("initctl");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_lifsea-init"), &link).unwrap();
    let out = Command::new(&link)
        .args(["--run-dir", h.dir.to_str().unwrap(), "version"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"protocol\": 1"),
        "{out:?}"
    );
    // Nobody listening: exit 3 with a hint.
    let (code, _, err) = initctl_as(&h.dir.join("nowhere"), &["list"], None);
    assert_eq!(code, 3);
    assert!(
        err.contains("is lifsea-init running? use --run-dir"),
        "{err}"
    );
}

#[test]
fn follower_that_never_reads_is_dropped_by_the_write_timeout() {
    let h = Harness::start(Limits {
        write_timeout: Duration::from_millis(300),
        max_output: 64 * 1024 * 1024,
        follow_interval: Duration::from_millis(10),
        ..Limits::default()
    });
    let s = h.raw();
    writeln!(
        &s,
        r#"{{"v":1,"id":1,"op":"logs","unit":"alpha","n":0,"follow":true}}"#
    )
    .unwrap();
    // Far more output than a socket buffer holds, below the output bound: only the timeout can
    // end this client.
    let filler = "x".repeat(200);
    for _ in 0..20_000 {
        h.add_line(&filler);
    }
    std::thread::sleep(Duration::from_millis(100));
    // Others are still served meanwhile.
    let mut c = Connection::open(&h.sock()).unwrap();
    c.call(Op::Version).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    loop {
        match (&s).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("follower was not dropped: {e}"),
        }
    }
    assert!(
        got < 20_000 * 200,
        "it received everything ({got}) instead of being dropped"
    );
}
