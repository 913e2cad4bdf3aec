//! Readers for the individual keys of a unit file: each takes the spanned raw value, returns the
//! validated one and records a positioned error when the value is wrong.
//!
//! Split from `parse.rs` (which owns the file-level walk) so that each key's rules sit in one small
//! function with its message.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::{Spanned, Value};

use super::schema::{CapabilitySpec, CgroupSpec, Limit, Readiness};
use super::tomldoc::{self, DeSp, DocError, Fields};
use super::values::{
    check_duration_secs, check_limit_order, parse_capability, parse_duration, parse_limit,
    resource_by_name, valid_account_name, valid_env_name, valid_unit_name, RESOURCES,
};

pub(super) type Sp = Spanned<Value>;
pub(super) type SpTable = Spanned<BTreeMap<Spanned<String>, Sp>>;
pub(super) type SpArray = Spanned<Vec<Sp>>;

#[derive(Default)]
pub(super) struct RawCgroup {
    pub(super) path: Option<Sp>,
    pub(super) delegate: Option<Sp>,
    pub(super) pids_max: Option<Sp>,
}

impl RawCgroup {
    /// `cgroup = { ... }`: a table of these keys only.
    pub(super) fn read(v: &DeSp) -> Result<Spanned<RawCgroup>, DocError> {
        let t = tomldoc::table(v, "struct RawCgroup")?;
        let mut raw = RawCgroup::default();
        let mut fields = Fields::new(t, &["path", "delegate", "pids-max"]);
        while let Some((i, item)) = fields.next_field()? {
            let sp = Some(tomldoc::to_sp(item)?);
            match i {
                0 => raw.path = sp,
                1 => raw.delegate = sp,
                _ => raw.pids_max = sp,
            }
        }
        Ok(Spanned::new(v.span(), raw))
    }
}

#[derive(Default)]
pub(super) struct RawCapabilities {
    pub(super) bounding: Option<SpArray>,
    pub(super) ambient: Option<SpArray>,
}

impl RawCapabilities {
    /// `capabilities = { ... }`: a table of these keys only.
    pub(super) fn read(v: &DeSp) -> Result<Spanned<RawCapabilities>, DocError> {
        let t = tomldoc::table(v, "struct RawCapabilities")?;
        let mut raw = RawCapabilities::default();
        let mut fields = Fields::new(t, &["bounding", "ambient"]);
        while let Some((i, item)) = fields.next_field()? {
            let arr = Some(tomldoc::to_sp_array(item)?);
            match i {
                0 => raw.bounding = arr,
                _ => raw.ambient = arr,
            }
        }
        Ok(Spanned::new(v.span(), raw))
    }
}

/// Errors of one file, as (byte span, message); turned into line:col once at the end.
#[derive(Default)]
pub(super) struct Errors(pub(super) Vec<(Option<Range<usize>>, String)>);

impl Errors {
    pub(super) fn at(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.0.push((Some(span), msg.into()));
    }
    pub(super) fn nowhere(&mut self, msg: impl Into<String>) {
        self.0.push((None, msg.into()));
    }
}

pub(super) fn span(v: &Sp) -> Range<usize> {
    v.span()
}

/// Reads a string value or records "key: expected a string".
pub(super) fn string(errs: &mut Errors, key: &str, v: &Sp) -> Option<String> {
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

pub(super) fn boolean(errs: &mut Errors, key: &str, v: Option<&Sp>, default: bool) -> bool {
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
pub(super) fn choice<T: Copy>(
    errs: &mut Errors,
    key: &str,
    v: &Sp,
    choices: &[(&str, T)],
) -> Option<T> {
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

pub(super) fn duration(
    errs: &mut Errors,
    key: &str,
    v: Option<&Sp>,
    default: Duration,
) -> Duration {
    let Some(v) = v else { return default };
    let parsed = match v.get_ref() {
        Value::Integer(n) if *n < 0 => Err(format!("must not be negative, got {n}")),
        Value::Integer(n) => check_duration_secs(n.unsigned_abs()),
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

pub(super) fn absolute_path(errs: &mut Errors, key: &str, v: &Sp) -> Option<PathBuf> {
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
pub(super) fn account(errs: &mut Errors, key: &str, v: &Sp) -> Option<String> {
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

pub(super) fn strings(errs: &mut Errors, key: &str, arr: &SpArray) -> Vec<(String, Range<usize>)> {
    arr.get_ref()
        .iter()
        .filter_map(|v| string(errs, key, v).map(|s| (s, span(v))))
        .collect()
}

/// A list of dependencies: each a valid unit name, a fact or a device fact; duplicates dropped.
pub(super) fn names(errs: &mut Errors, key: &str, arr: Option<&SpArray>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (s, sp) in arr.map(|a| strings(errs, key, a)).unwrap_or_default() {
        if s.starts_with("device:") && !super::values::is_device_fact(&s) {
            errs.at(
                sp,
                format!("{key}: invalid device fact {s:?}: use device:/dev/PATH without '.', '..' or empty components"),
            );
        } else if !valid_unit_name(&s) && !super::values::is_device_fact(&s) {
            errs.at(sp, format!("{key}: invalid unit name {s:?}"));
        } else if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

pub(super) fn exec(errs: &mut Errors, raw: Option<&SpArray>) -> Vec<String> {
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

pub(super) fn env(errs: &mut Errors, raw: Option<&SpTable>) -> Vec<(String, String)> {
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

pub(super) fn readiness(errs: &mut Errors, v: &Sp) -> Option<Readiness> {
    const EXPECTED: &str =
        "ready: expected \"exec\", \"notify\" or a table with one key: fd, path, unix, tcp or http";
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
                "http" => text().and_then(|s| {
                    super::http_url::parse_http_url(&s)
                        .map(Readiness::Http)
                        .map_err(|m| format!("{key}: {m}"))
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

pub(super) fn cgroup(
    errs: &mut Errors,
    name: &str,
    raw: Option<&Spanned<RawCgroup>>,
) -> CgroupSpec {
    let mut spec = CgroupSpec {
        path: format!("system/{name}"),
        delegate: false,
        pids_max: None,
    };
    let Some(raw) = raw.map(|r| r.get_ref()) else {
        return spec;
    };
    spec.delegate = boolean(errs, "cgroup.delegate", raw.delegate.as_ref(), false);
    if let Some(v) = &raw.pids_max {
        match pids_max(v.get_ref()) {
            Ok(n) => spec.pids_max = n,
            Err(m) => errs.at(span(v), format!("cgroup.pids-max: {m}")),
        }
    }
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

/// The largest `pids-max`: the kernel's own ceiling for `kernel.pid_max` (2^22); a larger value
/// could never bind.
pub const PIDS_MAX_LIMIT: i64 = 1 << 22;

/// `cgroup.pids-max`: a positive integer up to `PIDS_MAX_LIMIT`, or `"max"` (no limit, the
/// default). Zero is refused: the unit could not even start its main process.
fn pids_max(v: &Value) -> Result<Option<u64>, String> {
    match v {
        Value::Integer(n) if (1..=PIDS_MAX_LIMIT).contains(n) => Ok(u64::try_from(*n).ok()),
        Value::Integer(n) => Err(format!(
            "must be between 1 and {PIDS_MAX_LIMIT} (or \"max\"), got {n}"
        )),
        Value::String(s) if s == "max" => Ok(None),
        other => Err(format!(
            "expected a positive integer or \"max\", found {}",
            match other {
                Value::String(s) => format!("{s:?}"),
                o => o.type_str().to_string(),
            }
        )),
    }
}

/// A cgroup path is joined below the cgroup2 root (or the container-mode base): it must stay below
/// it, and must not overlap the groups the init itself uses: stopping a unit signals or
/// `cgroup.kill`s its whole group, so `init` would hit PID 1 and `system` every default unit.
pub fn check_cgroup_path(p: &str) -> Result<(), String> {
    if p == "init" || p.starts_with("init/") {
        Err(format!(
            "must not be the init's own group \"init\" or below it, got {p:?}"
        ))
    } else if p == "system" {
        Err(format!(
            "must not be \"system\", the parent of every default unit group (use system/<name>), got {p:?}"
        ))
    } else if p.starts_with('/') {
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

pub(super) fn limits(errs: &mut Errors, raw: Option<&SpTable>) -> Vec<Limit> {
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

pub(super) fn capability_list(
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

pub(super) fn capabilities(
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
