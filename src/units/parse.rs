//! Turns the text of one unit file into a validated [`Unit`], or into every error found in it.
//!
//! serde reads the TOML into private "raw" structs that refuse unknown keys but keep values loosely
//! typed (`toml::Value`) and wrapped in `Spanned`, so that this module, not serde, judges each value:
//! one bad key then does not hide the next one, and every message carries a line and column.
//! Nothing downstream of this file ever interprets a string of the unit file again.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::load::UnitFileError;
use super::schema::{
    CapabilitySpec, CgroupSpec, KillMode, Limit, Readiness, RestartPolicy, Unit, UnitType,
};
use super::values::{
    check_limit_order, format_duration, is_fact, parse_capability, parse_duration, parse_limit,
    parse_signal, resource_by_name, valid_account_name, valid_env_name, valid_unit_name,
    MAX_UNIT_NAME, RESOURCES,
};

/// Defaults documented in docs/units.md; keep the two in step.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(90);
pub const DEFAULT_RESTART_DELAY: Duration = Duration::from_millis(100);
pub const DEFAULT_RESTART_DELAY_MAX: Duration = Duration::from_secs(30);
pub const DEFAULT_RESTART_RESET_AFTER: Duration = Duration::from_secs(60);
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

type Sp = Spanned<Value>;
type SpTable = Spanned<BTreeMap<Spanned<String>, Sp>>;
type SpArray = Spanned<Vec<Sp>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawUnit {
    description: Option<Sp>,
    exec: Option<SpArray>,
    env: Option<SpTable>,
    working_dir: Option<Sp>,
    user: Option<Sp>,
    group: Option<Sp>,
    #[serde(rename = "type")]
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCgroup {
    path: Option<Sp>,
    delegate: Option<Sp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawCapabilities {
    bounding: Option<SpArray>,
    ambient: Option<SpArray>,
}

/// Errors of one file, as (byte span, message); turned into line:col once at the end.
#[derive(Default)]
struct Errors(Vec<(Option<Range<usize>>, String)>);

impl Errors {
    fn at(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.0.push((Some(span), msg.into()));
    }
    fn nowhere(&mut self, msg: impl Into<String>) {
        self.0.push((None, msg.into()));
    }
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

/// Parses and validates the unit `name` read from `source`.
pub fn parse_unit(name: &str, source: &Path, text: &str) -> Result<Unit, Vec<UnitFileError>> {
    let mut errs = Errors::default();
    let unit = match toml::from_str::<RawUnit>(text) {
        Ok(raw) => validate(name, source, raw, &mut errs),
        Err(e) => {
            match e.span() {
                Some(span) => {
                    let msg = serde_message(text, span.start, e.message());
                    errs.at(span, msg)
                }
                None => errs.nowhere(serde_message(text, 0, e.message())),
            }
            None
        }
    };
    // Report in file order; errors without a position (a missing key) come first.
    errs.0
        .sort_by_key(|(span, _)| span.as_ref().map(|s| s.start));
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

fn span(v: &Sp) -> Range<usize> {
    v.span()
}

/// Reads a string value or records "key: expected a string".
fn string(errs: &mut Errors, key: &str, v: &Sp) -> Option<String> {
    match v.get_ref() {
        Value::String(s) if s.contains('\0') => {
            errs.at(span(v), format!("{key}: must not contain a NUL character"));
            None
        }
        Value::String(s) => Some(s.clone()),
        other => {
            errs.at(
                span(v),
                format!("{key}: expected a string, found {}", other.type_str()),
            );
            None
        }
    }
}

fn boolean(errs: &mut Errors, key: &str, v: Option<&Sp>, default: bool) -> bool {
    match v.map(|v| (v, v.get_ref())) {
        None => default,
        Some((_, Value::Boolean(b))) => *b,
        Some((v, other)) => {
            errs.at(
                span(v),
                format!("{key}: expected true or false, found {}", other.type_str()),
            );
            default
        }
    }
}

/// Reads a string that must be one of `choices`.
fn choice<T: Copy>(errs: &mut Errors, key: &str, v: &Sp, choices: &[(&str, T)]) -> Option<T> {
    let s = string(errs, key, v)?;
    let found = choices.iter().find(|(n, _)| *n == s).map(|(_, t)| *t);
    if found.is_none() {
        let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
        errs.at(
            span(v),
            format!("{key}: expected one of {}, got {s:?}", names.join(", ")),
        );
    }
    found
}

fn duration(errs: &mut Errors, key: &str, v: Option<&Sp>, default: Duration) -> Duration {
    let Some(v) = v else { return default };
    let parsed = match v.get_ref() {
        Value::Integer(n) if *n < 0 => Err(format!("must not be negative, got {n}")),
        Value::Integer(n) => Ok(Duration::from_secs(n.unsigned_abs())),
        Value::String(s) => parse_duration(s),
        other => Err(format!(
            "expected a duration like \"10s\" or a number of seconds, found {}",
            other.type_str()
        )),
    };
    parsed.unwrap_or_else(|m| {
        errs.at(span(v), format!("{key}: {m}"));
        default
    })
}

fn absolute_path(errs: &mut Errors, key: &str, v: &Sp) -> Option<PathBuf> {
    let s = string(errs, key, v)?;
    if s.starts_with('/') {
        Some(PathBuf::from(s))
    } else {
        errs.at(
            span(v),
            format!("{key}: must be an absolute path, got {s:?}"),
        );
        None
    }
}

/// A user or group: a name, or a numeric id as an integer or a string of digits.
fn account(errs: &mut Errors, key: &str, v: &Sp) -> Option<String> {
    match v.get_ref() {
        Value::Integer(n) if (0..i64::from(u32::MAX)).contains(n) => Some(n.to_string()),
        Value::Integer(n) => {
            errs.at(
                span(v),
                format!("{key}: id {n} is out of range (0 to 4294967294)"),
            );
            None
        }
        Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() => {
            match s.parse::<u32>() {
                Ok(n) if n != u32::MAX => Some(n.to_string()),
                _ => {
                    errs.at(
                        span(v),
                        format!("{key}: id {s} is out of range (0 to 4294967294)"),
                    );
                    None
                }
            }
        }
        Value::String(s) if valid_account_name(s) => Some(s.clone()),
        Value::String(s) => {
            errs.at(span(v), format!("{key}: invalid name {s:?}"));
            None
        }
        other => {
            errs.at(
                span(v),
                format!(
                    "{key}: expected a name or a numeric id, found {}",
                    other.type_str()
                ),
            );
            None
        }
    }
}

fn strings(errs: &mut Errors, key: &str, arr: &SpArray) -> Vec<(String, Range<usize>)> {
    arr.get_ref()
        .iter()
        .filter_map(|v| string(errs, key, v).map(|s| (s, span(v))))
        .collect()
}

/// A list of dependencies: each a valid unit name or a fact; duplicates dropped.
fn names(errs: &mut Errors, key: &str, arr: Option<&SpArray>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (s, sp) in arr.map(|a| strings(errs, key, a)).unwrap_or_default() {
        if !valid_unit_name(&s) {
            errs.at(sp, format!("{key}: invalid unit name {s:?}"));
        } else if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

fn exec(errs: &mut Errors, raw: Option<&SpArray>) -> Vec<String> {
    let Some(arr) = raw else {
        errs.nowhere("missing required key exec");
        return Vec::new();
    };
    let argv = strings(errs, "exec", arr);
    match arr.get_ref().first().map(|v| (v, v.get_ref())) {
        None => errs.at(arr.span(), "exec: must not be empty"),
        Some((v, Value::String(a0))) if !a0.starts_with('/') => errs.at(
            span(v),
            format!("exec: program must be an absolute path, got {a0:?}"),
        ),
        _ => {}
    }
    argv.into_iter().map(|(s, _)| s).collect()
}

fn env(errs: &mut Errors, raw: Option<&SpTable>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in raw.map(|t| t.get_ref().iter()).into_iter().flatten() {
        if !valid_env_name(k.get_ref()) {
            errs.at(
                k.span(),
                format!("env: invalid variable name {:?}", k.get_ref()),
            );
        }
        if let Some(s) = string(errs, &format!("env.{}", k.get_ref()), v) {
            out.push((k.get_ref().clone(), s));
        }
    }
    out
}

fn readiness(errs: &mut Errors, v: &Sp) -> Option<Readiness> {
    const EXPECTED: &str =
        "ready: expected \"exec\", \"notify\" or a table with one key: fd, path, unix or tcp";
    match v.get_ref() {
        Value::String(s) if s == "exec" => Some(Readiness::Exec),
        Value::String(s) if s == "notify" => Some(Readiness::Notify),
        Value::Table(t) if t.len() == 1 => {
            let (k, val) = t.iter().next()?;
            let key = format!("ready.{k}");
            let text = || match val {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!(
                    "{key}: expected a string, found {}",
                    other.type_str()
                )),
            };
            let result = match k.as_str() {
                "fd" => match val {
                    Value::Integer(n) if (3..=i64::from(i32::MAX)).contains(n) => {
                        i32::try_from(*n).map(Readiness::Fd).map_err(|e| e.to_string())
                    }
                    Value::Integer(n) => Err(format!(
                        "{key}: must be 3 or more (0, 1 and 2 are stdin, stdout and stderr), got {n}"
                    )),
                    other => Err(format!("{key}: expected an integer, found {}", other.type_str())),
                },
                "path" | "unix" => text().and_then(|s| {
                    if !s.starts_with('/') {
                        Err(format!("{key}: must be an absolute path, got {s:?}"))
                    } else if k == "path" {
                        Ok(Readiness::Path(s.into()))
                    } else {
                        Ok(Readiness::Unix(s.into()))
                    }
                }),
                "tcp" => text().and_then(|s| match s.parse::<SocketAddr>() {
                    Ok(a) if a.port() != 0 => Ok(Readiness::Tcp(a)),
                    _ => Err(format!(
                        "{key}: expected a numeric address and port like \"127.0.0.1:8080\" or \
                         \"[::1]:8080\", got {s:?}"
                    )),
                }),
                _ => Err(EXPECTED.to_string()),
            };
            result.map_err(|m| errs.at(span(v), m)).ok()
        }
        _ => {
            errs.at(span(v), EXPECTED);
            None
        }
    }
}

fn cgroup(errs: &mut Errors, name: &str, raw: Option<&Spanned<RawCgroup>>) -> CgroupSpec {
    let mut spec = CgroupSpec {
        path: format!("system/{name}"),
        delegate: false,
    };
    let Some(raw) = raw.map(|r| r.get_ref()) else {
        return spec;
    };
    spec.delegate = boolean(errs, "cgroup.delegate", raw.delegate.as_ref(), false);
    if let Some(v) = &raw.path {
        if let Some(p) = string(errs, "cgroup.path", v) {
            match check_cgroup_path(&p) {
                Ok(()) => spec.path = p,
                Err(m) => errs.at(span(v), format!("cgroup.path: {m}")),
            }
        }
    }
    spec
}

/// A cgroup path is joined below the cgroup2 root: it must stay below it.
pub fn check_cgroup_path(p: &str) -> Result<(), String> {
    if p.starts_with('/') {
        Err(format!(
            "must be relative to the cgroup root (no leading /), got {p:?}"
        ))
    } else if p.split('/').any(|c| c == "..") {
        Err(format!("must not contain \"..\", got {p:?}"))
    } else if p.split('/').any(|c| c.is_empty() || c == ".") {
        Err(format!(
            "must not contain empty or \".\" components, got {p:?}"
        ))
    } else if p.contains(|c: char| c.is_control()) {
        Err(format!("must not contain control characters, got {p:?}"))
    } else {
        Ok(())
    }
}

fn limits(errs: &mut Errors, raw: Option<&SpTable>) -> Vec<Limit> {
    let mut out = Vec::new();
    for (k, v) in raw.map(|t| t.get_ref().iter()).into_iter().flatten() {
        let Some(resource) = resource_by_name(k.get_ref()) else {
            let known: Vec<&str> = RESOURCES.iter().map(|(n, _)| *n).collect();
            errs.at(
                k.span(),
                format!(
                    "limits: unknown resource {:?} (known: {})",
                    k.get_ref(),
                    known.join(", ")
                ),
            );
            continue;
        };
        let key = format!("limits.{}", k.get_ref());
        let parsed = match v.get_ref() {
            Value::Integer(n) if *n >= 0 => Ok((n.unsigned_abs(), n.unsigned_abs())),
            Value::Integer(n) => Err(format!("must not be negative, got {n}")),
            Value::String(s) => parse_limit(s),
            other => Err(format!(
                "expected an integer, \"infinity\" or \"SOFT:HARD\", found {}",
                other.type_str()
            )),
        }
        .and_then(|(soft, hard)| {
            check_limit_order(soft, hard)?;
            // The kernel refuses RLIM_INFINITY for open files (it is capped by fs.nr_open):
            // say so now rather than fail at every start.
            if k.get_ref() == "nofile" && hard == u64::MAX {
                Err(
                    "infinity is not allowed for nofile (the kernel caps it at fs.nr_open, \
                     1048576 by default): give a number"
                        .to_string(),
                )
            } else {
                Ok((soft, hard))
            }
        });
        match parsed {
            Ok((soft, hard)) => out.push(Limit {
                resource,
                soft,
                hard,
            }),
            Err(m) => errs.at(span(v), format!("{key}: {m}")),
        }
    }
    out
}

fn capability_list(
    errs: &mut Errors,
    key: &str,
    arr: &SpArray,
) -> Vec<(caps::Capability, Range<usize>)> {
    let mut out: Vec<(caps::Capability, Range<usize>)> = Vec::new();
    for (s, sp) in strings(errs, key, arr) {
        match parse_capability(&s) {
            Ok(c) if out.iter().any(|(x, _)| *x == c) => {}
            Ok(c) => out.push((c, sp)),
            Err(m) => errs.at(sp, format!("{key}: {m}")),
        }
    }
    out
}

fn capabilities(
    errs: &mut Errors,
    raw: Option<&Spanned<RawCapabilities>>,
) -> Option<CapabilitySpec> {
    let raw = raw?.get_ref();
    let bounding = raw
        .bounding
        .as_ref()
        .map(|a| capability_list(errs, "capabilities.bounding", a));
    let ambient = raw
        .ambient
        .as_ref()
        .map(|a| capability_list(errs, "capabilities.ambient", a))
        .unwrap_or_default();
    if let Some(b) = &bounding {
        for (c, sp) in &ambient {
            if !b.iter().any(|(x, _)| x == c) {
                errs.at(
                    sp.clone(),
                    format!("capabilities.ambient: {c} is not in the bounding set"),
                );
            }
        }
    }
    Some(CapabilitySpec {
        bounding: bounding.map(|b| b.into_iter().map(|(c, _)| c).collect()),
        ambient: ambient.into_iter().map(|(c, _)| c).collect(),
    })
}

fn validate(name: &str, source: &Path, raw: RawUnit, errs: &mut Errors) -> Option<Unit> {
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
    let unit = Unit {
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
    };
    Some(unit)
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
