//! The control server's side of `ops` sessions over a real Unix socket, with a recording
//! `Operations` fake: descriptors sent with the request (SCM_RIGHTS) reach `ops_begin` and are
//! real (the fake writes through the passed stdout), the one reply comes when the session ends,
//! a session connection takes no other request, and a client that disconnects mid-session gets
//! its session abandoned. The real sessions (containerd, ctr) are tested in tests/ns_ops.rs.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lifsea_init::control::ops::{
    OpError, Operations, Peer, ReloadReport, SessionEnd, ShutdownKind, UnitStatus,
};
use lifsea_init::control::protocol::{OpsRequest, Response};
use lifsea_init::control::server::{socket_path, ControlServer, Limits};
use lifsea_init::sys::fdpass::send_with_fds;
use lifsea_init::timeline::Stamp;
use lifsea_init::unitlog::LogLine;
use nix::poll::{poll, PollFd, PollTimeout};

#[derive(Default)]
struct State {
    calls: Vec<String>,
    /// Sessions the test has ended, with their exit status.
    ended: Vec<(u64, i32)>,
}

struct Fake(Arc<Mutex<State>>);

impl Operations for Fake {
    fn list(&self) -> Vec<UnitStatus> {
        Vec::new()
    }
    fn status(&self, u: &str) -> Result<UnitStatus, OpError> {
        Err(OpError::NoSuchUnit(u.into()))
    }
    fn start(&mut self, u: &str) -> Result<(), OpError> {
        Err(OpError::NoSuchUnit(u.into()))
    }
    fn stop(&mut self, u: &str) -> Result<(), OpError> {
        Err(OpError::NoSuchUnit(u.into()))
    }
    fn restart(&mut self, u: &str) -> Result<(), OpError> {
        Err(OpError::NoSuchUnit(u.into()))
    }
    fn reload(&mut self) -> Result<ReloadReport, OpError> {
        Ok(ReloadReport::default())
    }
    fn admin_unit_dir(&self) -> PathBuf {
        PathBuf::from("/nonexistent")
    }
    fn logs_tail(&self, u: &str, _n: usize) -> Result<Vec<LogLine>, OpError> {
        Err(OpError::NoSuchUnit(u.into()))
    }
    fn logs_since(&self, u: &str, _s: u64) -> Result<Vec<LogLine>, OpError> {
        Err(OpError::NoSuchUnit(u.into()))
    }
    fn timeline(&self) -> Vec<Stamp> {
        Vec::new()
    }
    fn shutdown(&mut self, _k: ShutdownKind) {}
    fn subsystem(&self, name: &str) -> Result<serde_json::Value, OpError> {
        Err(OpError::Failed(name.into()))
    }
    fn ops_begin(
        &mut self,
        req: &OpsRequest,
        stdio: Vec<OwnedFd>,
        peer: Peer,
    ) -> Result<u64, OpError> {
        let mut st = self.0.lock().unwrap();
        st.calls.push(format!(
            "begin {:?} fds={} uid={}",
            req.argv,
            stdio.len(),
            peer.uid
        ));
        if stdio.len() != 3 {
            return Err(OpError::Refused(format!(
                "{} descriptors came",
                stdio.len()
            )));
        }
        // Prove the descriptors are the caller's: write through its stdout.
        let mut out = std::fs::File::from(stdio.into_iter().nth(1).unwrap());
        let _ = out.write_all(b"written by the init\n");
        Ok(st.calls.len() as u64)
    }
    fn ops_poll(&mut self, key: u64) -> Option<SessionEnd> {
        let st = self.0.lock().unwrap();
        st.ended
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, exit)| SessionEnd {
                id: format!("ops-{key}"),
                exit: *exit,
                detail: format!("exited {exit}"),
                removed: true,
                duration_ms: 1,
            })
    }
    fn ops_abandon(&mut self, key: u64) {
        self.0.lock().unwrap().calls.push(format!("abandon {key}"));
    }
}

struct Harness {
    dir: PathBuf,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Harness {
    fn start(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("lifsea-ctlops-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let state: Arc<Mutex<State>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut server = ControlServer::bind_with(&socket_path(&dir), Limits::default()).unwrap();
        let mut fake = Fake(state.clone());
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let ready: Vec<_> = {
                    let fds = server.poll_fds_borrowed();
                    let mut pfds: Vec<PollFd> =
                        fds.iter().map(|(fd, f)| PollFd::new(*fd, *f)).collect();
                    poll(&mut pfds, PollTimeout::from(20u8)).unwrap();
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
            state,
            stop,
            thread: Some(thread),
        }
    }

    fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    fn wait_calls(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.calls().len() < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.calls()
    }

    fn connect(&self) -> UnixStream {
        let s = UnixStream::connect(socket_path(&self.dir)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
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

const OPS: &[u8] = b"{\"v\":1,\"id\":1,\"op\":\"ops\",\"argv\":[\"true\"]}\n";

#[test]
fn descriptors_reach_the_session_and_the_reply_waits_for_its_end() {
    let h = Harness::start("end");
    let s = h.connect();
    let (mut out_r, out_w) = UnixStream::pair().unwrap();
    let devnull = std::fs::File::open("/dev/null").unwrap();
    send_with_fds(
        s.as_fd(),
        OPS,
        &[devnull.as_fd(), out_w.as_fd(), devnull.as_fd()],
    )
    .unwrap();
    let calls = h.wait_calls(1);
    assert_eq!(calls, ["begin [\"true\"] fds=3 uid=0"]);
    drop(out_w);
    let mut written = String::new();
    out_r.read_to_string(&mut written).unwrap();
    assert_eq!(written, "written by the init\n");
    // Busy while the session runs; no reply to the ops request yet.
    let mut w = s.try_clone().unwrap();
    w.write_all(b"{\"v\":1,\"id\":2,\"op\":\"list\"}\n")
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let busy = read_response(&mut r);
    assert_eq!(busy.id, Some(2));
    assert!(!busy.ok);
    h.state.lock().unwrap().ended.push((1, 5));
    let end = read_response(&mut r);
    assert_eq!(end.id, Some(1));
    assert!(end.ok, "{end:?}");
    let result = end.result.unwrap();
    assert_eq!(result["exit"], 5);
    assert_eq!(result["removed"], true);
    // One reply, then the server closes the connection.
    let mut rest = String::new();
    r.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "");
    assert!(!h.calls().iter().any(|c| c.starts_with("abandon")));
}

#[test]
fn without_descriptors_the_request_is_refused() {
    let h = Harness::start("nofds");
    let mut s = h.connect();
    s.write_all(OPS).unwrap();
    let r = read_response(&mut BufReader::new(s.try_clone().unwrap()));
    assert!(!r.ok);
    assert!(r.error.unwrap().message.contains("0 descriptors came"));
    // Descriptors sent with another request are not kept for a later ops request.
    let devnull = std::fs::File::open("/dev/null").unwrap();
    let list = b"{\"v\":1,\"id\":3,\"op\":\"list\"}\n";
    send_with_fds(s.as_fd(), list, &[devnull.as_fd(); 3]).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert!(read_response(&mut r).ok);
    s.write_all(OPS).unwrap();
    assert!(!read_response(&mut r).ok);
    assert_eq!(h.wait_calls(2)[1], "begin [\"true\"] fds=0 uid=0");
}

#[test]
fn a_client_gone_mid_session_abandons_it() {
    let h = Harness::start("gone");
    let s = h.connect();
    let devnull = std::fs::File::open("/dev/null").unwrap();
    send_with_fds(s.as_fd(), OPS, &[devnull.as_fd(); 3]).unwrap();
    h.wait_calls(1);
    drop(s);
    assert_eq!(
        h.wait_calls(2),
        ["begin [\"true\"] fds=3 uid=0", "abandon 1"]
    );
}
