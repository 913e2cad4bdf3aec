//! Readiness probes for units that announce readiness by side effect: a path appearing, a Unix
//! socket accepting, a TCP port accepting, an HTTP endpoint answering 200 (`http_probe`). The event loop runs them on a short interval while the
//! unit is starting; the unit's ready-timeout bounds the total.

use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};

use super::http_probe::HttpProbe;
use crate::units::schema::Readiness;

/// How often a starting unit's probe runs.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(25);
/// A TCP connect attempt may take at most this long (it blocks the loop meanwhile, so keep it short;
/// a probe is meant for the unit's own, usually local, address).
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_millis(20);

/// Whether this readiness kind is detected by probing.
pub fn is_probe(r: &Readiness) -> bool {
    matches!(
        r,
        Readiness::Path(_) | Readiness::Unix(_) | Readiness::Tcp(_) | Readiness::Http(_)
    )
}

/// A starting unit's probe with what it keeps between ticks (an HTTP exchange in progress).
pub struct Probe {
    kind: Readiness,
    http: Option<HttpProbe>,
}

impl Probe {
    pub fn new(kind: Readiness) -> Self {
        let http = match &kind {
            Readiness::Http(t) => Some(HttpProbe::new(t)),
            _ => None,
        };
        Self { kind, http }
    }

    /// One tick: true when the unit looks ready.
    pub fn poll(&mut self, now: std::time::Instant) -> bool {
        match &mut self.http {
            Some(h) => h.poll(now),
            None => probe(&self.kind),
        }
    }
}

/// Runs one probe; true when the unit looks ready.
pub fn probe(r: &Readiness) -> bool {
    match r {
        Readiness::Path(p) => p.exists(),
        Readiness::Unix(p) => unix_accepts(p),
        Readiness::Tcp(addr) => TcpStream::connect_timeout(addr, TCP_CONNECT_TIMEOUT).is_ok(),
        // Stateful: see `Probe`.
        Readiness::Http(_) | Readiness::Exec | Readiness::Notify | Readiness::Fd(_) => false,
    }
}

/// Whether a Unix stream socket at `path` takes a connection. The connect is non-blocking: a
/// blocking one sleeps for as long as the service's listen backlog stays full, and this runs on
/// PID 1's only thread. A full backlog (EAGAIN) or a connect still in progress counts as "not yet".
fn unix_accepts(path: &Path) -> bool {
    let Ok(addr) = UnixAddr::new(path) else {
        return false;
    };
    let Ok(fd) = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    ) else {
        return false;
    };
    loop {
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => return true,
            Err(Errno::EINTR) => continue,
            // EAGAIN: backlog full; EINPROGRESS: not established yet; anything else: not listening.
            Err(_) => return false,
        }
    }
}

/// The readiness kind as shown by `initctl status`.
pub fn describe(r: &Readiness) -> String {
    match r {
        Readiness::Exec => "exec".into(),
        Readiness::Notify => "notify".into(),
        Readiness::Fd(n) => format!("fd {n}"),
        Readiness::Path(p) => format!("path {}", p.display()),
        Readiness::Unix(p) => format!("unix {}", p.display()),
        Readiness::Tcp(a) => format!("tcp {a}"),
        Readiness::Http(t) => format!("http {t}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_real_sockets_and_paths() {
        let dir = std::env::temp_dir().join(format!("lifsea-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("flag");
        assert!(!probe(&Readiness::Path(p.clone())));
        std::fs::write(&p, "").unwrap();
        assert!(probe(&Readiness::Path(p)));

        let sock = dir.join("s.sock");
        assert!(!probe(&Readiness::Unix(sock.clone())));
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(probe(&Readiness::Unix(sock)));

        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert!(probe(&Readiness::Tcp(addr)));
        drop(l);
        assert!(!probe(&Readiness::Tcp(addr)));
        assert_eq!(describe(&Readiness::Fd(3)), "fd 3");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Finding 1 of issue 12: a Unix listener whose backlog is full (it never accepts) made the
    /// blocking connect sleep forever, freezing PID 1. The probe must answer promptly, "not yet".
    #[test]
    fn unix_probe_returns_promptly_when_backlog_is_full() {
        use nix::sys::socket::{
            bind, connect, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
        };
        use std::os::fd::AsRawFd;
        let dir = std::env::temp_dir().join(format!("lifsea-probe-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("full.sock");
        let _ = std::fs::remove_file(&path);
        let addr = UnixAddr::new(&path).unwrap();
        let listener = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        bind(listener.as_raw_fd(), &addr).unwrap();
        listen(&listener, Backlog::new(0).unwrap()).unwrap();
        // Fill the backlog with connections nobody accepts, until the kernel refuses one more.
        let mut held = Vec::new();
        let full = loop {
            let c = socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                None,
            )
            .unwrap();
            match connect(c.as_raw_fd(), &addr) {
                Ok(()) => held.push(c),
                Err(nix::errno::Errno::EAGAIN) => break true,
                Err(e) => panic!("filling the backlog: {e}"),
            }
            if held.len() > 64 {
                break false;
            }
        };
        assert!(full, "precondition: the listen backlog never filled");
        let (tx, rx) = std::sync::mpsc::channel();
        let probed = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(probe(&Readiness::Unix(probed)));
        });
        let answer = rx.recv_timeout(Duration::from_secs(2));
        assert_eq!(answer, Ok(false), "the probe blocked on a full backlog");
        drop(held);
        drop(listener);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
