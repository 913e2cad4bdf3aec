//! The control socket server, driven by the supervisor's event loop. CONTRACT STUB: the control
//! helper replaces the bodies; the supervisor's event loop calls exactly these methods.

use std::os::fd::RawFd;
use std::path::Path;
use std::time::Instant;

use nix::poll::PollFlags;

use super::ops::Operations;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("control socket {path}: {op}: {source}")]
    Io {
        path: std::path::PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
}

pub struct ControlServer {}

impl ControlServer {
    /// Binds the socket (mode 0600, replacing a stale one) and listens, non-blocking.
    pub fn bind(socket_path: &Path) -> Result<Self, ServerError> {
        let _ = socket_path;
        Ok(Self {})
    }
    /// The fds the event loop should poll now, with the events wanted for each.
    pub fn poll_fds(&self) -> Vec<(RawFd, PollFlags)> {
        Vec::new()
    }
    /// Called for each fd from `poll_fds` that poll reported ready.
    pub fn on_ready(
        &mut self,
        fd: RawFd,
        revents: PollFlags,
        ops: &mut dyn Operations,
        now: Instant,
    ) {
        let _ = (fd, revents, ops, now);
    }
    /// Called once per loop iteration: feeds followers (`logs -f`), expires idle or stuck clients.
    pub fn tick(&mut self, ops: &mut dyn Operations, now: Instant) {
        let _ = (ops, now);
    }
    /// The earliest time `tick` needs to run again, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        None
    }
}
