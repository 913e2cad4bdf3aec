//! Shutdown in bounded time. Each unit's stop is bounded (stop-timeout, then SIGKILL, then 5 s),
//! but units stop dependents first, so a chain of slow units adds up, and a process stuck where
//! SIGKILL cannot reach it would hold every unit that depends on it. A global deadline bounds the
//! whole: once it passes (or a SIGTERM/SIGINT arrives while the shutdown already runs: Ctrl-Alt-Del
//! pressed twice), the init logs what was still busy, SIGKILLs it and goes on to the end of the
//! shutdown (stage 3, which bounds its own sync and unmounts: `boot::shutdown`).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::event_loop::Supervisor;
use super::state::{fmt_duration, KillScope, Phase};
use crate::units::values::parse_duration;

/// How long the supervisor's part of a shutdown may take by default.
pub const DEFAULT_SHUTDOWN_LIMIT: Duration = Duration::from_secs(90);
/// Environment variable (on a machine: a kernel command-line word `LIFSEA_SHUTDOWN_TIMEOUT=30s`)
/// that replaces the default.
pub const SHUTDOWN_LIMIT_ENV: &str = "LIFSEA_SHUTDOWN_TIMEOUT";

/// The shutdown limit from the environment, or the default (with a warning if the value is bad).
pub fn shutdown_limit_from_env() -> Duration {
    match std::env::var(SHUTDOWN_LIMIT_ENV) {
        Err(_) => DEFAULT_SHUTDOWN_LIMIT,
        Ok(v) => parse_duration(&v).unwrap_or_else(|e| {
            log::warn!(
                "{SHUTDOWN_LIMIT_ENV}: {e}; using {}",
                fmt_duration(DEFAULT_SHUTDOWN_LIMIT)
            );
            DEFAULT_SHUTDOWN_LIMIT
        }),
    }
}

impl Supervisor {
    /// The shutdown must end now: its deadline passed or it was forced by signals.
    pub(super) fn shutdown_overdue(&self, now: Instant) -> bool {
        self.shutdown.forced || self.shutdown.deadline.is_some_and(|d| d <= now)
    }

    /// Logs every unit still up and SIGKILLs it, so the loop can end.
    pub(super) fn force_end_of_shutdown(&mut self) {
        let why = if self.shutdown.forced {
            "shutdown forced by a second signal".to_string()
        } else {
            format!(
                "shutdown deadline ({}) passed",
                fmt_duration(self.shutdown.limit)
            )
        };
        let busy: Vec<(String, Phase, bool)> = self
            .core
            .entries()
            .filter(|(_, e)| !matches!(e.phase, Phase::Inactive | Phase::Failed))
            .map(|(n, e)| (n.clone(), e.phase, e.spec.group_kill()))
            .collect();
        for (name, phase, group) in busy {
            log::warn!("{why}: {name} still {}; killing it", phase.as_str());
            let scope = if group {
                KillScope::Group
            } else {
                KillScope::Main
            };
            self.kill_unit(&name, Signal::SIGKILL, scope);
        }
    }
}
