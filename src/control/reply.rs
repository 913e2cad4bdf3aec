//! initctl's readers of unit statuses and log lines, straight from the reply's parsed JSON.
//!
//! A derived `Deserialize` for `UnitStatus`, run over a `serde_json::Value`, compiled to ~11 KB
//! (a field visitor and a state machine per field, each `Option<String>` and `Vec<String>`
//! monomorphised again) for a type only the client reads; the init itself only serialises it
//! (docs/binary-size.md, "Third pass"); `Vec<LogLine>` cost 4 KB more. [`unit_status`] and
//! [`log_lines`] read the same objects with the `Value` accessors the client already links. Same
//! rules as the derive: unknown fields are ignored, an absent `Option` field is `None`, `skipped`
//! and `log_lines_dropped` default, every other field is required; a missing or mistyped one is an
//! error naming the field.

use serde_json::{Map, Value};

use super::ops::UnitStatus;
use crate::unitlog::{LogLine, Stream};

/// One unit's status object.
pub fn unit_status(v: &Value) -> Result<UnitStatus, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("invalid type: {}, expected struct UnitStatus", kind(v)))?;
    Ok(UnitStatus {
        name: string(o, "name")?,
        description: string(o, "description")?,
        state: string(o, "state")?,
        enabled: required(o, "enabled", Value::as_bool, "a boolean")?,
        pid: optional(
            o,
            "pid",
            |v| v.as_i64().and_then(|n| i32::try_from(n).ok()),
            "i32",
        )?,
        since_us: required(o, "since_us", Value::as_u64, "u64")?,
        restarts: required(
            o,
            "restarts",
            |v| v.as_u64().and_then(|n| u32::try_from(n).ok()),
            "u32",
        )?,
        last_exit: opt_string(o, "last_exit")?,
        failure: opt_string(o, "failure")?,
        skipped: opt_string(o, "skipped")?,
        readiness: string(o, "readiness")?,
        status_text: opt_string(o, "status_text")?,
        cgroup: opt_string(o, "cgroup")?,
        memory_bytes: optional(o, "memory_bytes", Value::as_u64, "u64")?,
        cpu_usec: optional(o, "cpu_usec", Value::as_u64, "u64")?,
        log_lines_dropped: optional(o, "log_lines_dropped", Value::as_u64, "u64")?.unwrap_or(0),
        requires: strings(o, "requires")?,
        wants: strings(o, "wants")?,
        after: strings(o, "after")?,
    })
}

/// A list of them (`list`).
pub fn unit_statuses(v: &Value) -> Result<Vec<UnitStatus>, String> {
    v.as_array()
        .ok_or_else(|| format!("invalid type: {}, expected a sequence", kind(v)))?
        .iter()
        .map(unit_status)
        .collect()
}

/// The `lines` of a `logs` reply's result.
pub fn log_lines(result: Option<&Value>) -> Result<Vec<LogLine>, String> {
    let lines = result.and_then(|r| r.get("lines")).unwrap_or(&Value::Null);
    let lines = lines.as_array().ok_or_else(|| {
        format!(
            "field `lines`: invalid type: {}, expected a sequence",
            kind(lines)
        )
    })?;
    lines.iter().map(log_line).collect()
}

fn log_line(v: &Value) -> Result<LogLine, String> {
    let o = v
        .as_object()
        .ok_or_else(|| format!("invalid type: {}, expected struct LogLine", kind(v)))?;
    let stream = |v: &Value| match v.as_str()? {
        "stdout" => Some(Stream::Stdout),
        "stderr" => Some(Stream::Stderr),
        "init" => Some(Stream::Init),
        _ => None,
    };
    Ok(LogLine {
        seq: required(o, "seq", Value::as_u64, "u64")?,
        realtime_us: required(o, "realtime_us", Value::as_u64, "u64")?,
        stream: required(o, "stream", stream, "one of `stdout`, `stderr`, `init`")?,
        text: string(o, "text")?,
    })
}

/// A present, non-null field, read by `get`.
fn optional<T>(
    o: &Map<String, Value>,
    field: &str,
    get: impl Fn(&Value) -> Option<T>,
    want: &str,
) -> Result<Option<T>, String> {
    match o.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => get(v).map(Some).ok_or_else(|| {
            format!(
                "field `{field}`: invalid type: {}, expected {want}",
                kind(v)
            )
        }),
    }
}

fn required<T>(
    o: &Map<String, Value>,
    field: &str,
    get: impl Fn(&Value) -> Option<T>,
    want: &str,
) -> Result<T, String> {
    optional(o, field, get, want)?.ok_or_else(|| format!("missing field `{field}`"))
}

fn opt_string(o: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    optional(o, field, |v| v.as_str().map(str::to_string), "a string")
}

fn string(o: &Map<String, Value>, field: &str) -> Result<String, String> {
    opt_string(o, field)?.ok_or_else(|| format!("missing field `{field}`"))
}

fn strings(o: &Map<String, Value>, field: &str) -> Result<Vec<String>, String> {
    let list = |v: &Value| {
        v.as_array()?
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<String>>>()
    };
    required(o, field, list, "a sequence of strings")
}

/// serde's words for what a value is.
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "sequence",
        Value::Object(_) => "map",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn full() -> UnitStatus {
        UnitStatus {
            name: "containerd".into(),
            description: "containerd container runtime".into(),
            state: "ready".into(),
            enabled: true,
            pid: Some(412),
            since_us: 2_345_678,
            restarts: 3,
            last_exit: Some("exited 1".into()),
            failure: Some("readiness timed out".into()),
            skipped: Some("condition: path /x exists".into()),
            readiness: "notify".into(),
            status_text: Some("serving".into()),
            cgroup: Some("/sys/fs/cgroup/podruntime/containerd".into()),
            memory_bytes: Some(1 << 30),
            cpu_usec: Some(99),
            log_lines_dropped: 7,
            requires: vec!["network".into()],
            wants: vec!["a".into(), "b".into()],
            after: vec![],
        }
    }

    /// What the server sends reads back as the derive would read it, full or with every
    /// optional field absent.
    #[test]
    fn reads_what_the_server_writes_like_the_derive() {
        let minimal = UnitStatus {
            name: "x".into(),
            readiness: "exec".into(),
            ..UnitStatus::default()
        };
        for s in [full(), minimal] {
            let v = serde_json::to_value(&s).unwrap();
            let derived: UnitStatus = serde_json::from_value(v.clone()).unwrap();
            assert_eq!(unit_status(&v).unwrap(), derived);
            assert_eq!(unit_status(&v).unwrap(), s);
            let mut sparse = v.clone();
            let o = sparse.as_object_mut().unwrap();
            for k in [
                "skipped",
                "log_lines_dropped",
                "pid",
                "cgroup",
                "memory_bytes",
            ] {
                o.remove(k);
            }
            o.insert("from_a_newer_server".into(), json!(1));
            let derived: UnitStatus = serde_json::from_value(sparse.clone()).unwrap();
            assert_eq!(unit_status(&sparse).unwrap(), derived);
        }
        let list = serde_json::to_value(vec![full(), full()]).unwrap();
        assert_eq!(unit_statuses(&list).unwrap(), vec![full(), full()]);
    }

    /// Every required field is required, and a mistyped field is named, where the derive
    /// refuses too.
    #[test]
    fn refuses_what_the_derive_refuses() {
        let v = serde_json::to_value(full()).unwrap();
        for field in [
            "name",
            "description",
            "state",
            "enabled",
            "since_us",
            "restarts",
            "readiness",
            "requires",
            "wants",
            "after",
        ] {
            let mut bad = v.clone();
            bad.as_object_mut().unwrap().remove(field);
            assert!(serde_json::from_value::<UnitStatus>(bad.clone()).is_err());
            assert_eq!(
                unit_status(&bad).unwrap_err(),
                format!("missing field `{field}`")
            );
        }
        for (field, value) in [
            ("state", json!(3)),
            ("enabled", json!("yes")),
            ("pid", json!(1u64 << 40)),
            ("restarts", json!(-1)),
            ("wants", json!(["a", 2])),
            ("memory_bytes", json!("1G")),
        ] {
            let mut bad = v.clone();
            bad.as_object_mut().unwrap().insert(field.into(), value);
            assert!(serde_json::from_value::<UnitStatus>(bad.clone()).is_err());
            let e = unit_status(&bad).unwrap_err();
            assert!(
                e.starts_with(&format!("field `{field}`: invalid type")),
                "{e}"
            );
        }
        assert!(unit_status(&json!([])).is_err());
        assert!(unit_statuses(&json!({})).is_err());
    }

    /// Log lines read back as the derive reads them; a bad stream name is refused by both.
    #[test]
    fn log_lines_like_the_derive() {
        let lines: Vec<LogLine> = [Stream::Stdout, Stream::Stderr, Stream::Init]
            .into_iter()
            .enumerate()
            .map(|(i, stream)| LogLine {
                seq: i as u64 + 40,
                realtime_us: 1_700_000_000_000_000 + i as u64,
                stream,
                text: format!("line {i} \u{e9}"),
            })
            .collect();
        let v = json!({ "lines": serde_json::to_value(&lines).unwrap() });
        let derived: Vec<LogLine> = serde_json::from_value(v["lines"].clone()).unwrap();
        assert_eq!(log_lines(Some(&v)).unwrap(), derived);
        assert_eq!(log_lines(Some(&v)).unwrap(), lines);
        assert!(log_lines(Some(&json!({}))).is_err());
        assert!(log_lines(None).is_err());
        let mut bad = v.clone();
        bad["lines"][1]["stream"] = json!("stdin");
        assert!(serde_json::from_value::<Vec<LogLine>>(bad["lines"].clone()).is_err());
        assert!(log_lines(Some(&bad))
            .unwrap_err()
            .starts_with("field `stream`"));
        bad["lines"][1] = json!({ "seq": 1, "realtime_us": 2, "stream": "init" });
        assert_eq!(log_lines(Some(&bad)).unwrap_err(), "missing field `text`");
    }
}
