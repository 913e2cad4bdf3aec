//! Turns the text of one unit file into a validated [`Unit`], or into every error found in it.
//!
//! serde reads the TOML into private "raw" structs that refuse unknown keys but keep values loosely
//! typed (`toml::Value`) and wrapped in `Spanned`, so that this module, not serde, judges each value:
//! one bad key then does not hide the next one, and every message carries a line and column.
//! Nothing downstream of this file ever interprets a string of the unit file again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::{Spanned, Value};

pub use super::fields::check_cgroup_path;
use super::fields::{
    absolute_path, account, boolean, capabilities, cgroup, choice, duration, env, exec, limits,
    names, readiness, span, string, Errors, RawCapabilities, RawCgroup, Sp, SpArray, SpTable,
};
use super::schema::{KillMode, Readiness, RestartPolicy, Unit, UnitType};
use super::tomldoc::{self, DocError, Fields};
use super::values::{format_duration, is_fact, parse_signal, valid_unit_name, MAX_UNIT_NAME};

/// Defaults documented in docs/units.md; keep the two in step.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(90);
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_millis(100);
pub const DEFAULT_RESTART_DELAY_MAX: Duration = Duration::from_secs(30);
pub const DEFAULT_RESTART_RESET_AFTER: Duration = Duration::from_secs(60);
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The keys of a unit file, each kept as written (with its span) for `validate` to judge.
#[derive(Default)]
struct RawUnit {
    description: Option<Sp>,
    exec: Option<SpArray>,
    env: Option<SpTable>,
    working_dir: Option<Sp>,
    user: Option<Sp>,
    group: Option<Sp>,
    kind: Option<Sp>,
    requires: Option<SpArray>,
    wants: Option<SpArray>,
    after: Option<SpArray>,
    ready: Option<Sp>,
    ready_timeout: Option<Sp>,
    restart: Option<Sp>,
    restart_delay: Option<Sp>,
    restart_delay_max: Option<Sp>,
    restart_reset_after: Option<Sp>,
    stop_signal: Option<Sp>,
    stop_timeout: Option<Sp>,
    kill: Option<Sp>,
    cgroup: Option<Spanned<RawCgroup>>,
    oom_score_adjust: Option<Sp>,
    limits: Option<SpTable>,
    capabilities: Option<Spanned<RawCapabilities>>,
    no_new_privileges: Option<Sp>,
    enabled: Option<Sp>,
    condition: Option<SpTable>,
}

/// Converts a byte offset of `text` into a 1-based (line, column), columns counted in characters.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

/// Rewords a toml/serde message for a unit author: one line, TOML's words instead of serde's, and
/// the key named when the error sits right after `key =` (serde's type errors do not name it).
fn serde_message(text: &str, offset: usize, message: &str) -> String {
    let mut msg = message
        .trim()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(": ")
        .replace("a sequence", "an array")
        .replace("a map", "a table");
    for raw in [
        "struct RawCgroup",
        "struct RawCapabilities",
        "struct RawUnit",
    ] {
        msg = msg.replace(raw, "a table");
    }
    let before = text.get(..offset).unwrap_or("");
    let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
    if let Some(key) = line.trim_end().strip_suffix('=') {
        let key = key.trim();
        if !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return format!("{key}: {msg}");
        }
    }
    msg
}

/// Checks a file-derived unit name; the message explains the rule.
pub fn check_unit_name(name: &str) -> Result<(), String> {
    if !valid_unit_name(name) {
        Err(format!(
            "invalid unit name {name:?}: use letters, digits, '_', '.', '@' and '-', start with a \
             letter or digit, at most {MAX_UNIT_NAME} characters"
        ))
    } else if is_fact(name) {
        Err(format!(
            "unit name {name:?} is reserved for a built-in fact"
        ))
    } else {
        Ok(())
    }
}

/// One problem in one unit file, with its location; Display is "path:line:col: message".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitFileError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// The unit this error belongs to (derived from the file name), when the name itself was valid.
    pub unit: Option<String>,
    pub message: String,
}

impl std::fmt::Display for UnitFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// Parses and validates the unit `name` read from `source`.
pub fn parse_unit(name: &str, source: &Path, text: &str) -> Result<Unit, Vec<UnitFileError>> {
    let mut errs = Errors::default();
    let unit = match raw_unit(text) {
        Ok(raw) => Some(validate(name, source, raw, &mut errs)),
        Err(e) => {
            match e.span {
                Some(span) => {
                    let msg = serde_message(text, span.start, &e.message);
                    errs.at(span, msg)
                }
                None => errs.nowhere(serde_message(text, 0, &e.message)),
            }
            None
        }
    };
    // Report in file order; errors without a position (a missing key) come first.
    crate::collections::sort::sort_by_key(&mut errs.0, |(span, _)| span.as_ref().map(|s| s.start));
    match unit {
        Some(u) if errs.0.is_empty() => Ok(u),
        _ => Err(errs
            .0
            .into_iter()
            .map(|(span, message)| {
                let pos = span.map(|s| line_col(text, s.start));
                UnitFileError {
                    path: source.to_path_buf(),
                    line: pos.map(|p| p.0),
                    column: pos.map(|p| p.1),
                    unit: Some(name.to_string()),
                    message,
                }
            })
            .collect()),
    }
}

/// The keys of RawUnit as a unit file spells them, in declaration order (serde's error lists them so).
const UNIT_KEYS: &[&str] = &[
    "description",
    "exec",
    "env",
    "working-dir",
    "user",
    "group",
    "type",
    "requires",
    "wants",
    "after",
    "ready",
    "ready-timeout",
    "restart",
    "restart-delay",
    "restart-delay-max",
    "restart-reset-after",
    "stop-signal",
    "stop-timeout",
    "kill",
    "cgroup",
    "oom-score-adjust",
    "limits",
    "capabilities",
    "no-new-privileges",
    "enabled",
    "condition",
];

/// Sorts the file's keys into RawUnit: the first unknown key or wrongly shaped value ends it.
fn raw_unit(text: &str) -> Result<RawUnit, DocError> {
    let doc = tomldoc::parse(text)?;
    let mut raw = RawUnit::default();
    let mut fields = Fields::new(doc.get_ref(), UNIT_KEYS);
    while let Some((i, v)) = fields.next_field()? {
        let sp = || tomldoc::to_sp(v).map(Some);
        let arr = || tomldoc::to_sp_array(v).map(Some);
        let tab = || tomldoc::to_sp_table(v).map(Some);
        match i {
            0 => raw.description = sp()?,
            1 => raw.exec = arr()?,
            2 => raw.env = tab()?,
            3 => raw.working_dir = sp()?,
            4 => raw.user = sp()?,
            5 => raw.group = sp()?,
            6 => raw.kind = sp()?,
            7 => raw.requires = arr()?,
            8 => raw.wants = arr()?,
            9 => raw.after = arr()?,
            10 => raw.ready = sp()?,
            11 => raw.ready_timeout = sp()?,
            12 => raw.restart = sp()?,
            13 => raw.restart_delay = sp()?,
            14 => raw.restart_delay_max = sp()?,
            15 => raw.restart_reset_after = sp()?,
            16 => raw.stop_signal = sp()?,
            17 => raw.stop_timeout = sp()?,
            18 => raw.kill = sp()?,
            19 => raw.cgroup = Some(RawCgroup::read(v)?),
            20 => raw.oom_score_adjust = sp()?,
            21 => raw.limits = tab()?,
            22 => raw.capabilities = Some(RawCapabilities::read(v)?),
            23 => raw.no_new_privileges = sp()?,
            24 => raw.enabled = sp()?,
            _ => raw.condition = tab()?,
        }
    }
    Ok(raw)
}

fn validate(name: &str, source: &Path, raw: RawUnit, errs: &mut Errors) -> Unit {
    let kind = raw
        .kind
        .as_ref()
        .and_then(|v| {
            choice(
                errs,
                "type",
                v,
                &[("daemon", UnitType::Daemon), ("oneshot", UnitType::Oneshot)],
            )
        })
        .unwrap_or(UnitType::Daemon);
    let ready = match (&raw.ready, kind) {
        (None, _) => Readiness::Exec,
        (Some(v), UnitType::Oneshot) => {
            errs.at(
                span(v),
                "ready: a oneshot unit is ready when it exits with status 0; remove ready",
            );
            Readiness::Exec
        }
        (Some(v), UnitType::Daemon) => readiness(errs, v).unwrap_or(Readiness::Exec),
    };
    let default_restart = match kind {
        UnitType::Daemon => RestartPolicy::OnFailure,
        UnitType::Oneshot => RestartPolicy::No,
    };
    let restart_choices = [
        ("no", RestartPolicy::No),
        ("on-failure", RestartPolicy::OnFailure),
        ("always", RestartPolicy::Always),
    ];
    let restart = match &raw.restart {
        None => default_restart,
        Some(v) => match choice(errs, "restart", v, &restart_choices) {
            Some(RestartPolicy::Always) if kind == UnitType::Oneshot => {
                errs.at(
                    span(v),
                    "restart: \"always\" would rerun a oneshot unit forever; use \"on-failure\" \
                     or make it a daemon",
                );
                default_restart
            }
            Some(r) => r,
            None => default_restart,
        },
    };
    let restart_delay = duration(
        errs,
        "restart-delay",
        raw.restart_delay.as_ref(),
        DEFAULT_RESTART_DELAY,
    );
    let restart_delay_max = duration(
        errs,
        "restart-delay-max",
        raw.restart_delay_max.as_ref(),
        DEFAULT_RESTART_DELAY_MAX.max(restart_delay),
    );
    if restart_delay_max < restart_delay {
        if let Some(v) = &raw.restart_delay_max {
            errs.at(
                span(v),
                format!(
                    "restart-delay-max: must not be shorter than restart-delay ({})",
                    format_duration(restart_delay)
                ),
            );
        }
    }
    let oom_score_adjust = raw
        .oom_score_adjust
        .as_ref()
        .and_then(|v| match v.get_ref() {
            Value::Integer(n) if (-1000..=1000).contains(n) => i32::try_from(*n).ok(),
            Value::Integer(n) => {
                errs.at(
                    span(v),
                    format!("oom-score-adjust: must be between -1000 and 1000, got {n}"),
                );
                None
            }
            other => {
                errs.at(
                    span(v),
                    format!(
                        "oom-score-adjust: expected an integer, found {}",
                        other.type_str()
                    ),
                );
                None
            }
        });
    Unit {
        name: name.to_string(),
        source: source.to_path_buf(),
        description: raw
            .description
            .as_ref()
            .and_then(|v| string(errs, "description", v))
            .unwrap_or_default(),
        exec: exec(errs, raw.exec.as_ref()),
        env: env(errs, raw.env.as_ref()),
        working_dir: raw
            .working_dir
            .as_ref()
            .and_then(|v| absolute_path(errs, "working-dir", v)),
        user: raw.user.as_ref().and_then(|v| account(errs, "user", v)),
        group: raw.group.as_ref().and_then(|v| account(errs, "group", v)),
        kind,
        requires: names(errs, "requires", raw.requires.as_ref()),
        wants: names(errs, "wants", raw.wants.as_ref()),
        after: names(errs, "after", raw.after.as_ref()),
        ready,
        ready_timeout: duration(
            errs,
            "ready-timeout",
            raw.ready_timeout.as_ref(),
            DEFAULT_READY_TIMEOUT,
        ),
        restart,
        restart_delay,
        restart_delay_max,
        restart_reset_after: duration(
            errs,
            "restart-reset-after",
            raw.restart_reset_after.as_ref(),
            DEFAULT_RESTART_RESET_AFTER,
        ),
        stop_signal: raw
            .stop_signal
            .as_ref()
            .and_then(|v| {
                let s = string(errs, "stop-signal", v)?;
                parse_signal(&s)
                    .map_err(|m| errs.at(span(v), format!("stop-signal: {m}")))
                    .ok()
            })
            .unwrap_or(nix::sys::signal::Signal::SIGTERM),
        stop_timeout: duration(
            errs,
            "stop-timeout",
            raw.stop_timeout.as_ref(),
            DEFAULT_STOP_TIMEOUT,
        ),
        kill_mode: raw
            .kill
            .as_ref()
            .and_then(|v| {
                choice(
                    errs,
                    "kill",
                    v,
                    &[("cgroup", KillMode::Cgroup), ("main", KillMode::Main)],
                )
            })
            .unwrap_or(KillMode::Cgroup),
        cgroup: cgroup(errs, name, raw.cgroup.as_ref()),
        oom_score_adjust,
        limits: limits(errs, raw.limits.as_ref()),
        capabilities: capabilities(errs, raw.capabilities.as_ref()),
        no_new_privileges: boolean(
            errs,
            "no-new-privileges",
            raw.no_new_privileges.as_ref(),
            false,
        ),
        enabled: boolean(errs, "enabled", raw.enabled.as_ref(), true),
        conditions: super::condition::conditions(errs, raw.condition.as_ref()),
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
