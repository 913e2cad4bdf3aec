//! The control socket server, driven by the supervisor's single-threaded event loop.
//!
//! Everything here is non-blocking and bounded, because a stuck client must never stall PID 1: each
//! client has its own input and output buffer, input lines are capped at `MAX_MESSAGE`, output at
//! `Limits::max_output`, and a client that sends half a request, idles, or stops reading is dropped
//! when its timeout passes. Only root is served: the peer's uid comes from SO_PEERCRED at accept
//! time (the socket is also mode 0600, so this is the second of two locks).

use crate::collections::strmap::FdMap;
use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use nix::sys::socket::{getsockopt, send, sockopt::PeerCredentials, MsgFlags};
use nix::sys::stat::{umask, Mode};

use super::dispatch::{dispatch, Outcome};
use super::ops::{Operations, Peer};
use super::protocol::{parse_request, ErrorCode, Response, MAX_MESSAGE};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("control socket {path}: {op}: {source}")]
    Io {
        path: std::path::PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("control socket {0}: exists and is not a socket")]
    NotASocket(PathBuf),
}

/// The control socket's path inside the runtime directory.
pub fn socket_path(run_dir: &Path) -> PathBuf {
    run_dir.join("control.sock")
}

/// Bounds that keep one client from costing the init more than a little memory and no time.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Clients served at once; one more gets a `busy` reply and is closed.
    pub max_clients: usize,
    /// A client with nothing in flight is closed after this long without a request.
    pub idle_timeout: Duration,
    /// A request must be complete (newline received) this long after its first byte.
    pub request_timeout: Duration,
    /// Pending output that makes no progress for this long drops the client.
    pub write_timeout: Duration,
    /// Pending output above this many bytes drops the client at once.
    pub max_output: usize,
    /// How often `logs -f` followers are fed.
    pub follow_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_clients: 32,
            idle_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            max_output: 4 * 1024 * 1024,
            follow_interval: Duration::from_millis(200),
        }
    }
}

struct Follow {
    id: u64,
    unit: String,
    seq: u64,
}

struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    output: Vec<u8>,
    /// Bytes of `output` already sent.
    sent: usize,
    last_request: Instant,
    /// When the first byte of a not yet complete request arrived.
    partial_since: Option<Instant>,
    /// When pending output last made progress (or first became pending).
    stalled_since: Option<Instant>,
    follow: Option<Follow>,
    /// Send what is pending, read nothing more, then close.
    closing: bool,
    dead: bool,
    /// Who is connected (SO_PEERCRED at accept).
    peer: Peer,
    /// Descriptors received (SCM_RIGHTS) and not yet used by a request: an `ops` request takes
    /// them, any other request drops them.
    fds: Vec<OwnedFd>,
    /// An ops session in progress: (request id, session key). The reply comes when it ends.
    session: Option<(u64, u64)>,
}

impl Client {
    fn pending(&self) -> usize {
        self.output.len() - self.sent
    }

    fn queue(&mut self, r: &Response, limits: &Limits) {
        self.output.extend_from_slice(&r.encode());
        if self.pending() > limits.max_output {
            log::warn!(
                "control: dropping a client whose unread output exceeds {} bytes",
                limits.max_output
            );
            self.dead = true;
        }
    }

    /// Writes as much as the socket takes now.
    fn flush(&mut self, now: Instant) {
        while self.pending() > 0 && !self.dead {
            match send(
                self.stream.as_raw_fd(),
                &self.output[self.sent..],
                MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(n) => {
                    self.sent += n;
                    self.stalled_since = Some(now);
                }
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => self.dead = true,
            }
        }
        if self.sent >= COMPACT_AT && self.pending() > 0 {
            // A follower that reads slowly never drains completely: drop what was sent so the
            // buffer holds only pending bytes.
            self.output.drain(..self.sent);
            self.sent = 0;
        }
        if self.pending() == 0 {
            self.output.clear();
            self.sent = 0;
            self.stalled_since = None;
            if self.closing {
                self.dead = true;
            }
        } else if self.stalled_since.is_none() {
            self.stalled_since = Some(now);
        }
    }

    /// When this client must be dropped if nothing happens before.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        if let Some(t) = self.stalled_since {
            return Some(t + limits.write_timeout);
        }
        if let Some(t) = self.partial_since {
            return Some(t + limits.request_timeout);
        }
        if self.follow.is_some() || self.session.is_some() {
            return None;
        }
        Some(self.last_request + limits.idle_timeout)
    }
}

pub struct ControlServer {
    path: PathBuf,
    /// Device and inode of the socket we bound, so dropping removes only our own file.
    ident: Option<(u64, u64)>,
    listener: UnixListener,
    clients: FdMap<Client>,
    limits: Limits,
    next_follow: Option<Instant>,
}

/// Most connections taken from the backlog in one readiness event, so a flood cannot keep the loop here.
const ACCEPT_BATCH: usize = 64;
/// Sent bytes kept at the front of an output buffer before it is compacted.
const COMPACT_AT: usize = 64 * 1024;
/// Most bytes read from one client in one readiness event.
const READ_BATCH: usize = 4 * MAX_MESSAGE;

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> ServerError + 'a {
    move |source| ServerError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

/// A reply to a connection we will not serve; best effort, as the socket is closed right after.
fn refuse(stream: &UnixStream, r: &Response) {
    let _ = send(
        stream.as_raw_fd(),
        &r.encode(),
        MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
    );
}

impl ControlServer {
    /// Binds the socket (mode 0600, replacing a stale one) and listens, non-blocking.
    pub fn bind(socket_path: &Path) -> Result<Self, ServerError> {
        Self::bind_with(socket_path, Limits::default())
    }

    /// `bind` with explicit limits (tests use short timeouts).
    pub fn bind_with(socket_path: &Path, limits: Limits) -> Result<Self, ServerError> {
        let path = socket_path.to_path_buf();
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent, "create directory"))?;
        }
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_socket() => {
                std::fs::remove_file(&path).map_err(io_err(&path, "remove stale socket"))?
            }
            Ok(_) => return Err(ServerError::NotASocket(path)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path, "stat")(e)),
        }
        // The umask makes the socket 0600 from the moment it exists; the chmod after is for a
        // umask that somebody changed under us. The init is single-threaded, so the process-wide
        // umask change cannot race.
        let old = umask(Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(&path);
        umask(old);
        let listener = bound.map_err(io_err(&path, "bind"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(&path, "chmod"))?;
        listener
            .set_nonblocking(true)
            .map_err(io_err(&path, "set non-blocking"))?;
        let ident = std::fs::symlink_metadata(&path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        Ok(Self {
            path,
            ident,
            listener,
            clients: FdMap::new(),
            limits,
            next_follow: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fds the event loop should poll now, with the events wanted for each.
    pub fn poll_fds(&self) -> Vec<(RawFd, PollFlags)> {
        self.poll_fds_borrowed()
            .into_iter()
            .map(|(fd, f)| (fd.as_raw_fd(), f))
            .collect()
    }

    /// `poll_fds` as borrowed descriptors, ready for `nix::poll::PollFd::new` without any unsafe
    /// `borrow_raw` on the caller's side; the borrow ends before `on_ready` may close one.
    pub fn poll_fds_borrowed(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let mut v = vec![(self.listener.as_fd(), PollFlags::POLLIN)];
        for c in self.clients.values() {
            let mut f = PollFlags::empty();
            if !c.closing {
                f |= PollFlags::POLLIN;
            }
            if c.pending() > 0 {
                f |= PollFlags::POLLOUT;
            }
            v.push((c.stream.as_fd(), f));
        }
        v
    }

    /// Called for each fd from `poll_fds` that poll reported ready.
    pub fn on_ready(
        &mut self,
        fd: RawFd,
        revents: PollFlags,
        ops: &mut dyn Operations,
        now: Instant,
    ) {
        if fd == self.listener.as_raw_fd() {
            self.accept_all(now);
            return;
        }
        let limits = self.limits.clone();
        let Some(c) = self.clients.get_mut(&fd) else {
            return;
        };
        if revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR)
            && !c.closing
        {
            read_and_serve(c, ops, &limits, now);
        }
        if revents.contains(PollFlags::POLLNVAL) {
            c.dead = true;
        }
        c.flush(now);
        if c.dead {
            if let Some(c) = self.clients.remove(&fd) {
                super::session::forget(&c.session, ops);
            }
        }
    }

    /// Called once per loop iteration: feeds followers (`logs -f`), expires idle or stuck clients.
    pub fn tick(&mut self, ops: &mut dyn Operations, now: Instant) {
        let limits = self.limits.clone();
        let any_follower = self.clients.values().any(|c| c.follow.is_some());
        if !any_follower {
            self.next_follow = None;
        } else if self.next_follow.map_or(true, |t| now >= t) {
            for c in self.clients.values_mut() {
                feed_follower(c, ops, &limits);
                c.flush(now);
            }
            self.next_follow = Some(now + limits.follow_interval);
        }
        for c in self.clients.values_mut() {
            if let Some((id, key)) = c.session {
                if let Some(end) = ops.ops_poll(key) {
                    c.session = None;
                    c.queue(&super::session::end_response(id, &end), &limits);
                    c.closing = true;
                    c.flush(now);
                }
            }
            if c.deadline(&limits).is_some_and(|d| now >= d) {
                c.dead = true;
            }
        }
        self.clients.retain(|_, c| {
            if c.dead {
                super::session::forget(&c.session, ops);
            }
            !c.dead
        });
    }

    /// The earliest time `tick` needs to run again, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.clients
            .values()
            .filter_map(|c| c.deadline(&self.limits))
            .chain(self.next_follow)
            .min()
    }

    fn accept_all(&mut self, now: Instant) {
        for _ in 0..ACCEPT_BATCH {
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::warn!("control: accept on {}: {e}", self.path.display());
                    return;
                }
            };
            if stream.set_nonblocking(true).is_err() {
                continue;
            }
            let (uid, pid) = match getsockopt(&stream, PeerCredentials) {
                Ok(cred) => (cred.uid(), cred.pid()),
                Err(e) => {
                    log::warn!("control: cannot read peer credentials: {e}");
                    continue;
                }
            };
            if uid != 0 {
                log::warn!("control: refused a client with uid {uid}");
                refuse(
                    &stream,
                    &Response::error(
                        None,
                        ErrorCode::PermissionDenied,
                        format!(
                            "permission denied: the control API serves root only (peer uid {uid})"
                        ),
                    ),
                );
                continue;
            }
            if self.clients.len() >= self.limits.max_clients {
                refuse(
                    &stream,
                    &Response::error(
                        None,
                        ErrorCode::Busy,
                        format!("busy: {} clients connected, try again", self.clients.len()),
                    ),
                );
                continue;
            }
            let fd = stream.as_raw_fd();
            self.clients.insert(
                fd,
                Client {
                    stream,
                    input: Vec::new(),
                    output: Vec::new(),
                    sent: 0,
                    last_request: now,
                    partial_since: None,
                    stalled_since: None,
                    follow: None,
                    closing: false,
                    dead: false,
                    peer: Peer { uid, pid },
                    fds: Vec::new(),
                    session: None,
                },
            );
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if ours.is_some() && ours == self.ident {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Reads what the client sent and answers every complete request line.
fn read_and_serve(c: &mut Client, ops: &mut dyn Operations, limits: &Limits, now: Instant) {
    let mut buf = [0u8; 16 * 1024];
    let mut total = 0;
    let mut eof = false;
    while total < READ_BATCH {
        match crate::sys::fdpass::recv_with_fds(c.stream.as_fd(), &mut buf) {
            Ok(r) if r.len == 0 => {
                eof = true;
                break;
            }
            Ok(r) => {
                let n = r.len;
                super::session::keep_fds(&mut c.fds, r);
                total += n;
                c.input.extend_from_slice(&buf[..n]);
                serve_lines(c, ops, limits, now);
                if c.closing || c.dead {
                    return;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                c.dead = true;
                return;
            }
        }
    }
    if eof && c.session.is_some() {
        // The caller of an ops session is gone: there is nobody to answer.
        super::session::forget(&c.session.take(), ops);
        c.dead = true;
        return;
    }
    if eof {
        // A last request without its newline still counts (`printf '...' | socat`).
        if !c.input.is_empty() && c.follow.is_none() {
            c.input.push(b'\n');
            serve_lines(c, ops, limits, now);
        }
        // The client is done sending: answer what is pending, end a follow, then close.
        c.follow = None;
        c.closing = true;
    }
}

fn serve_lines(c: &mut Client, ops: &mut dyn Operations, limits: &Limits, now: Instant) {
    while let Some(pos) = c.input.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = c.input.drain(..=pos).collect();
        let line = &line[..line.len() - 1];
        if line.len() >= MAX_MESSAGE {
            too_large(c, limits);
            return;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        c.last_request = now;
        let req = match parse_request(line) {
            Ok(r) => r,
            Err(e) => {
                c.queue(&Response::from_proto_error(&e), limits);
                continue;
            }
        };
        // Descriptors belong to the request they came with: only an ops request takes them.
        let fds = std::mem::take(&mut c.fds);
        if c.follow.is_some() || c.session.is_some() {
            c.queue(
                &Response::error(
                    Some(req.id),
                    ErrorCode::BadRequest,
                    "this connection is busy (following logs or an ops session) and takes no more requests",
                ),
                limits,
            );
            continue;
        }
        if let super::protocol::Op::Ops(r) = &req.op {
            match ops.ops_begin(r, fds, c.peer) {
                Ok(key) => c.session = Some((req.id, key)),
                Err(e) => c.queue(&Response::from_op_error(req.id, &e), limits),
            }
            continue;
        }
        drop(fds);
        match dispatch(&req, ops) {
            Outcome::Reply(r) => c.queue(&r, limits),
            Outcome::Follow { first, unit, seq } => {
                c.queue(&first, limits);
                c.follow = Some(Follow {
                    id: req.id,
                    unit,
                    seq,
                });
            }
        }
    }
    if c.input.len() >= MAX_MESSAGE {
        too_large(c, limits);
    } else if c.input.is_empty() {
        c.partial_since = None;
    } else if c.partial_since.is_none() {
        c.partial_since = Some(now);
    }
}

fn too_large(c: &mut Client, limits: &Limits) {
    c.input.clear();
    c.partial_since = None;
    c.follow = None;
    c.queue(
        &Response::error(
            None,
            ErrorCode::TooLarge,
            format!("request longer than {MAX_MESSAGE} bytes; closing the connection"),
        ),
        limits,
    );
    c.closing = true;
}

fn feed_follower(c: &mut Client, ops: &mut dyn Operations, limits: &Limits) {
    let Some(f) = c.follow.as_mut() else {
        return;
    };
    match ops.logs_since(&f.unit, f.seq) {
        Ok(lines) if lines.is_empty() => {}
        Ok(lines) => {
            if let Some(last) = lines.last() {
                f.seq = last.seq;
            }
            let mut r = Response::ok(f.id, serde_json::json!({ "lines": lines }));
            r.more = true;
            c.queue(&r, limits);
        }
        Err(e) => {
            let r = Response::from_op_error(f.id, &e);
            c.follow = None;
            c.queue(&r, limits);
            c.closing = true;
        }
    }
}
