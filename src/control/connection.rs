//! A connection to the control socket, for initctl and for tests or tools written in Rust: connect
//! with a timeout, send requests, read the matching responses with time-bounded blocking reads.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use serde_json::Value;

use super::protocol::{
    encode_request, parse_response, ErrorBody, ErrorCode, Op, Request, Response,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// initctl's exit codes (documented in docs/control-api.md); errors map onto them here.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_UNREACHABLE: i32 = 3;
pub const EXIT_NO_SUCH_UNIT: i32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot connect to {}: {source} ({hint})", path.display())]
    Connect {
        path: PathBuf,
        source: std::io::Error,
        hint: &'static str,
    },
    #[error("talking to {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unreadable reply from the init: {0}")]
    Reply(String),
    #[error("{}", .0.message)]
    Remote(ErrorBody),
    #[error("writing {}: {source}", path.display())]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl ClientError {
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Usage(_) => EXIT_USAGE,
            ClientError::Connect { .. } => EXIT_UNREACHABLE,
            ClientError::Remote(b) => match b.code {
                ErrorCode::PermissionDenied | ErrorCode::Busy => EXIT_UNREACHABLE,
                ErrorCode::NoSuchUnit => EXIT_NO_SUCH_UNIT,
                ErrorCode::InvalidName | ErrorCode::BadRequest => EXIT_USAGE,
                _ => EXIT_FAILED,
            },
            _ => EXIT_FAILED,
        }
    }
}

/// A connection to the control socket with blocking, time-bounded reads.
pub struct Connection {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

/// connect(2) on a non-blocking socket, retried while the server's backlog is full, so that an
/// init too busy to accept makes initctl fail after `timeout` instead of hanging.
fn connect_with_timeout(path: &Path, timeout: Duration) -> std::io::Result<UnixStream> {
    let addr = UnixAddr::new(path).map_err(std::io::Error::from)?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(std::io::Error::from)?;
    let start = Instant::now();
    loop {
        use std::os::fd::AsRawFd;
        match connect(fd.as_raw_fd(), &addr) {
            Ok(()) => break,
            Err(Errno::EINTR) => continue,
            Err(Errno::EAGAIN) if start.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(Errno::EAGAIN) => return Err(std::io::Error::from(std::io::ErrorKind::TimedOut)),
            Err(e) => return Err(e.into()),
        }
    }
    let stream = UnixStream::from(fd);
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    Ok(stream)
}

impl Connection {
    pub fn open(path: &Path) -> Result<Self, ClientError> {
        let stream =
            connect_with_timeout(path, CONNECT_TIMEOUT).map_err(|source| ClientError::Connect {
                path: path.to_path_buf(),
                hint: match source.kind() {
                    std::io::ErrorKind::PermissionDenied => "the control API serves root only",
                    std::io::ErrorKind::TimedOut => "the init is not accepting connections",
                    _ => "is lifsea-init running? use --run-dir",
                },
                source,
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            next_id: 1,
        })
    }

    fn io(&self, source: std::io::Error) -> ClientError {
        ClientError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Sends a request; returns its id.
    pub fn send(&mut self, op: Op) -> Result<u64, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let line = encode_request(&Request { id, op });
        if let Err(e) = self.reader.get_mut().write_all(line.as_bytes()) {
            // The server may have refused us and closed before reading: its reason is still
            // waiting in our receive queue and says more than EPIPE.
            return match self.read_response(id) {
                Ok(_) => Err(self.io(e)),
                Err(remote @ ClientError::Remote(_)) => Err(remote),
                Err(_) => Err(self.io(e)),
            };
        }
        Ok(id)
    }

    /// Sends a request with descriptors attached to its first byte (SCM_RIGHTS); returns its id.
    pub fn send_with_fds(
        &mut self,
        op: Op,
        fds: &[std::os::fd::BorrowedFd<'_>],
    ) -> Result<u64, ClientError> {
        use std::os::fd::AsFd;
        let id = self.next_id;
        self.next_id += 1;
        let line = encode_request(&Request { id, op });
        let sent =
            crate::sys::fdpass::send_with_fds(self.reader.get_ref().as_fd(), line.as_bytes(), fds)
                .map_err(|e| self.io(e))?;
        if let Err(e) = self.reader.get_mut().write_all(&line.as_bytes()[sent..]) {
            return Err(self.io(e));
        }
        Ok(id)
    }

    /// Reads the next response for `id`; a connection-level error (no id) also ends the wait.
    pub fn read_response(&mut self, id: u64) -> Result<Response, ClientError> {
        loop {
            let mut line = Vec::new();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|e| self.io(e))?;
            if n == 0 {
                return Err(self.io(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the init closed the connection",
                )));
            }
            let r = parse_response(&line).map_err(|e| ClientError::Reply(e.to_string()))?;
            if r.id.is_some() && r.id != Some(id) {
                continue;
            }
            if !r.ok {
                let body = r.error.unwrap_or(ErrorBody {
                    code: ErrorCode::Failed,
                    message: "error without a description".into(),
                });
                return Err(ClientError::Remote(body));
            }
            return Ok(r);
        }
    }

    /// One request, one result.
    pub fn call(&mut self, op: Op) -> Result<Value, ClientError> {
        let id = self.send(op)?;
        let r = self.read_response(id)?;
        Ok(r.result.unwrap_or(Value::Null))
    }

    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> Result<(), ClientError> {
        self.reader
            .get_ref()
            .set_read_timeout(t)
            .map_err(|e| self.io(e))
    }
}
