//! The `http` readiness probe as a small state machine the loop advances on every probe tick:
//! connect (non-blocking), send one plain HTTP/1.1 GET, read at most `MAX_RESPONSE` bytes, and
//! call the unit ready when the status line says 200. Nothing here ever blocks: PID 1's single
//! thread runs it, and a service that accepts but never answers must not stall the init. A
//! connection that has not produced a verdict within `ATTEMPT_TIMEOUT` is dropped and a new one
//! opened on a later tick; the unit's ready-timeout bounds the whole wait.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::units::http_url::HttpTarget;

/// Enough for any status line and headers a health endpoint sends; more is not read.
pub const MAX_RESPONSE: usize = 4096;
/// How long one connection may take to answer before it is abandoned for a fresh one.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// What one look at the response so far says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The status line is not complete yet.
    Incomplete,
    Ready,
    /// Any status other than 200, or not HTTP at all.
    NotReady,
}

/// Judges the bytes received so far (pure).
pub fn judge(resp: &[u8]) -> Verdict {
    let Some(end) = resp.windows(2).position(|w| w == b"\r\n") else {
        return if resp.len() >= MAX_RESPONSE
            || (!resp.is_empty() && !b"HTTP/1.".starts_with(&resp[..resp.len().min(7)]))
        {
            Verdict::NotReady
        } else {
            Verdict::Incomplete
        };
    };
    let line = String::from_utf8_lossy(&resp[..end]);
    let mut parts = line.split(' ');
    match (parts.next(), parts.next()) {
        (Some(v), Some("200")) if v.starts_with("HTTP/1.") => Verdict::Ready,
        _ => Verdict::NotReady,
    }
}

/// The request: HTTP/1.1 with `Connection: close`, so the server may end the exchange itself.
pub fn request(t: &HttpTarget) -> Vec<u8> {
    format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: lifsea-init\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        t.path, t.host
    )
    .into_bytes()
}

struct Attempt {
    stream: TcpStream,
    sent: usize,
    resp: Vec<u8>,
    opened: Instant,
}

/// One unit's probe, kept across ticks.
pub struct HttpProbe {
    addr: SocketAddr,
    request: Vec<u8>,
    attempt: Option<Attempt>,
}

impl HttpProbe {
    pub fn new(t: &HttpTarget) -> Self {
        Self {
            addr: t.addr,
            request: request(t),
            attempt: None,
        }
    }

    /// Advances the exchange as far as it goes without waiting; true once a 200 arrived.
    pub fn poll(&mut self, now: Instant) -> bool {
        if self
            .attempt
            .as_ref()
            .is_some_and(|a| now.saturating_duration_since(a.opened) > ATTEMPT_TIMEOUT)
        {
            self.attempt = None;
        }
        if self.attempt.is_none() {
            self.attempt = open(self.addr).map(|stream| Attempt {
                stream,
                sent: 0,
                resp: Vec::new(),
                opened: now,
            });
        }
        let Some(a) = self.attempt.as_mut() else {
            return false;
        };
        let verdict = advance(a, &self.request);
        match verdict {
            Some(Verdict::Ready) => {
                self.attempt = None;
                true
            }
            Some(_) => {
                self.attempt = None;
                false
            }
            None => false,
        }
    }
}

/// A non-blocking connect; `None` when it failed outright (nobody listening yet).
fn open(addr: SocketAddr) -> Option<TcpStream> {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .ok()?;
    let sa = SockaddrStorage::from(addr);
    loop {
        match connect(fd.as_raw_fd(), &sa) {
            Ok(()) | Err(Errno::EINPROGRESS) => return Some(TcpStream::from(fd)),
            Err(Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Sends what is left of the request and reads what has arrived. `None`: no verdict yet (still
/// connecting, or the answer is partial); `Some(NotReady)` also for a connection that failed.
fn advance(a: &mut Attempt, request: &[u8]) -> Option<Verdict> {
    while a.sent < request.len() {
        match a.stream.write(&request[a.sent..]) {
            Ok(0) => return Some(Verdict::NotReady),
            Ok(n) => a.sent += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // Still connecting (or the send buffer is full): try on the next tick.
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(_) => return Some(Verdict::NotReady),
        }
    }
    let mut buf = [0u8; 1024];
    loop {
        let room = MAX_RESPONSE.saturating_sub(a.resp.len()).min(buf.len());
        if room == 0 {
            // judge() already calls a full buffer without a status line not ready.
            return Some(judge(&a.resp));
        }
        match a.stream.read(&mut buf[..room]) {
            Ok(0) => {
                return Some(match judge(&a.resp) {
                    Verdict::Incomplete => Verdict::NotReady,
                    v => v,
                })
            }
            Ok(n) => {
                a.resp.extend_from_slice(&buf[..n]);
                if judge(&a.resp) != Verdict::Incomplete {
                    return Some(judge(&a.resp));
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
            Err(_) => return Some(Verdict::NotReady),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    use super::*;
    use crate::units::http_url::parse_http_url;

    #[test]
    fn judges_status_lines() {
        assert_eq!(judge(b""), Verdict::Incomplete);
        assert_eq!(judge(b"HTTP/1.1 20"), Verdict::Incomplete);
        assert_eq!(judge(b"HTTP/1.1 200 OK\r\n"), Verdict::Ready);
        assert_eq!(
            judge(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            Verdict::Ready
        );
        assert_eq!(
            judge(b"HTTP/1.1 500 Internal Server Error\r\n"),
            Verdict::NotReady
        );
        assert_eq!(judge(b"HTTP/1.1 2000 x\r\n"), Verdict::NotReady);
        assert_eq!(judge(b"SSH-2.0-OpenSSH\r\n"), Verdict::NotReady);
        assert_eq!(judge(b"SSH-2.0"), Verdict::NotReady);
        assert_eq!(judge(&[b'H'; MAX_RESPONSE]), Verdict::NotReady);
    }

    fn poll_until(p: &mut HttpProbe, limit: Duration) -> (bool, Duration) {
        let start = Instant::now();
        let mut slowest = Duration::ZERO;
        while start.elapsed() < limit {
            let t = Instant::now();
            let ok = p.poll(Instant::now());
            slowest = slowest.max(t.elapsed());
            if ok {
                return (true, slowest);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (false, slowest)
    }

    /// A real server on loopback: the probe's request is well-formed, a 503 is not ready, a 200
    /// is; nobody listening is not ready.
    #[test]
    fn probes_a_real_server() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}/healthz");
        let t = parse_http_url(&url).unwrap();
        let server = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for status in ["503 Service Unavailable", "200 OK"] {
                let (s, _) = l.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                r.read_line(&mut first).unwrap();
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h == "\r\n" || h.is_empty() {
                        break;
                    }
                    seen.push(h.trim().to_string());
                }
                seen.push(first.trim().to_string());
                let mut s = s;
                write!(s, "HTTP/1.1 {status}\r\nContent-Length: 2\r\n\r\nok").unwrap();
            }
            seen
        });
        let mut p = HttpProbe::new(&t);
        let (ok, slowest) = poll_until(&mut p, Duration::from_secs(10));
        assert!(ok, "never ready");
        assert!(
            slowest < Duration::from_millis(50),
            "a poll took {slowest:?}"
        );
        let seen = server.join().unwrap();
        assert!(
            seen.contains(&"GET /healthz HTTP/1.1".to_string()),
            "{seen:?}"
        );
        assert!(
            seen.contains(&format!("Host: 127.0.0.1:{port}")),
            "{seen:?}"
        );
        assert!(seen.contains(&"Connection: close".to_string()), "{seen:?}");
        // The 503 came first: two connections were needed.
        assert_eq!(seen.iter().filter(|s| s.starts_with("GET ")).count(), 2);

        // The listener is gone: refused, not ready.
        let mut p = HttpProbe::new(&t);
        assert!(!p.poll(Instant::now()));
    }

    /// A server that accepts and never answers must not stall the caller: every poll returns at
    /// once, and the attempt is replaced after ATTEMPT_TIMEOUT.
    #[test]
    fn a_silent_server_never_blocks_the_probe() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let t = parse_http_url(&format!("http://{}/", l.local_addr().unwrap())).unwrap();
        let mut p = HttpProbe::new(&t);
        let (ok, slowest) = poll_until(&mut p, Duration::from_millis(300));
        assert!(!ok);
        assert!(
            slowest < Duration::from_millis(50),
            "a poll took {slowest:?}"
        );
        let first = l.accept().unwrap();
        drop(first);
        // Past the attempt timeout the probe opens a new connection.
        assert!(!p.poll(Instant::now() + ATTEMPT_TIMEOUT + Duration::from_millis(1)));
        l.set_nonblocking(true).unwrap();
        let again = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(5));
            l.accept().is_ok()
        });
        assert!(again, "no second connection after the attempt timeout");
    }
}
