//! The control API's wire format, version 1: JSON lines over a Unix stream socket.
//!
//! Pure: turns request lines into `Request`s (with every refusal a typed `ProtoError`) and results
//! into response lines. The server and the client share these types, so the two sides cannot drift
//! apart. The format is documented for other clients in docs/control-api.md.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::names::valid_unit_name;
use super::ops::{OpError, ShutdownKind};

/// The protocol version this build speaks.
pub const VERSION: u64 = 1;

/// Longest request or response line accepted, newline included. A request longer than this is
/// answered with `too-large` and the connection is closed, because the rest of the stream can no
/// longer be framed reliably.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// What a client may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Version,
    List,
    Status {
        unit: String,
    },
    Start {
        unit: String,
    },
    Stop {
        unit: String,
    },
    Restart {
        unit: String,
    },
    Enable {
        unit: String,
    },
    Disable {
        unit: String,
    },
    Reload,
    Logs {
        unit: String,
        n: usize,
        follow: bool,
    },
    Timeline,
    Shutdown(ShutdownKind),
    /// What a subsystem (`net`, `devices`) reports about itself.
    Subsystem {
        name: String,
    },
    /// An OS update action (`upgrade` to a ref or commit, `rollback`), optionally rebooting after.
    Os {
        action: String,
        refspec: Option<String>,
        reboot: bool,
    },
    /// An ops container session (docs/node.md): the caller's stdin, stdout and stderr travel with
    /// the request (SCM_RIGHTS); the one response comes when the session has ended.
    Ops(OpsRequest),
}

/// What `initctl ops [-- CMD...]` asks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpsRequest {
    /// The command to run in the toolbox; empty means an interactive shell.
    pub argv: Vec<String>,
    /// The caller's stdin and stdout are a terminal: run with a pseudo-terminal (`ctr run -t`).
    pub tty: bool,
    /// The caller's `TERM`, passed into the container with a terminal.
    pub term: Option<String>,
}

/// Most arguments an ops command may have.
pub const MAX_OPS_ARGS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub op: Op,
}

/// Default number of lines `logs` returns when the request gives no `n`.
pub const DEFAULT_LOG_LINES: usize = 50;

/// Largest `n` a `logs` request may ask for (the memory ring is smaller anyway).
pub const MAX_LOG_LINES: usize = 100_000;

/// Machine-readable error codes; their meaning and the initctl exit code each maps to are listed in
/// docs/control-api.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    BadJson,
    TooLarge,
    BadVersion,
    UnknownOp,
    BadRequest,
    InvalidName,
    NoSuchUnit,
    Refused,
    Failed,
    PermissionDenied,
    Busy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// A request the server will not carry out; `id` is echoed when the line carried one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtoError {
    pub id: Option<u64>,
    pub code: ErrorCode,
    pub message: String,
}

impl ProtoError {
    fn new(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            id,
            code,
            message: message.into(),
        }
    }
}

/// The raw shape of a request line; every field optional so that a missing one gets a precise
/// message, unknown fields refused so that a typo never silently means something else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    v: Option<u64>,
    id: Option<u64>,
    op: Option<String>,
    unit: Option<String>,
    n: Option<u64>,
    follow: Option<bool>,
    name: Option<String>,
    action: Option<String>,
    #[serde(rename = "ref")]
    refspec: Option<String>,
    reboot: Option<bool>,
    argv: Option<Vec<String>>,
    tty: Option<bool>,
    term: Option<String>,
}

/// Parses one request line (without its newline).
pub fn parse_request(line: &[u8]) -> Result<Request, ProtoError> {
    if line.len() >= MAX_MESSAGE {
        return Err(ProtoError::new(
            None,
            ErrorCode::TooLarge,
            format!("request longer than {MAX_MESSAGE} bytes"),
        ));
    }
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| ProtoError::new(None, ErrorCode::BadJson, format!("malformed json: {e}")))?;
    let id = value.get("id").and_then(Value::as_u64);
    let raw: RawRequest = serde_json::from_value(value)
        .map_err(|e| ProtoError::new(id, ErrorCode::BadRequest, format!("bad request: {e}")))?;
    let err = |code, msg: String| ProtoError::new(id, code, msg);
    match raw.v {
        Some(VERSION) => {}
        Some(v) => {
            return Err(err(
                ErrorCode::BadVersion,
                format!("protocol version {v} not supported (this server speaks {VERSION})"),
            ))
        }
        None => {
            return Err(err(
                ErrorCode::BadVersion,
                "missing protocol version \"v\"".into(),
            ))
        }
    }
    let id = raw
        .id
        .ok_or_else(|| err(ErrorCode::BadRequest, "missing request \"id\"".into()))?;
    let op_name = raw
        .op
        .ok_or_else(|| err(ErrorCode::BadRequest, "missing \"op\"".into()))?;
    let unit = || -> Result<String, ProtoError> {
        let u = raw.unit.clone().ok_or_else(|| {
            err(
                ErrorCode::BadRequest,
                format!("op {op_name} needs \"unit\""),
            )
        })?;
        if !valid_unit_name(&u) {
            return Err(err(
                ErrorCode::InvalidName,
                format!("invalid unit name: {u:?}"),
            ));
        }
        Ok(u)
    };
    let takes_unit = matches!(
        op_name.as_str(),
        "status" | "start" | "stop" | "restart" | "enable" | "disable" | "logs"
    );
    if !takes_unit && raw.unit.is_some() {
        return Err(err(
            ErrorCode::BadRequest,
            format!("op {op_name} takes no \"unit\""),
        ));
    }
    if op_name != "subsystem" && raw.name.is_some() {
        return Err(err(
            ErrorCode::BadRequest,
            format!("op {op_name} takes no \"name\""),
        ));
    }
    if op_name != "os" && (raw.action.is_some() || raw.refspec.is_some() || raw.reboot.is_some()) {
        return Err(err(
            ErrorCode::BadRequest,
            format!("op {op_name} takes no \"action\", \"ref\" or \"reboot\""),
        ));
    }
    if op_name != "ops" && (raw.argv.is_some() || raw.tty.is_some() || raw.term.is_some()) {
        return Err(err(
            ErrorCode::BadRequest,
            format!("op {op_name} takes no \"argv\", \"tty\" or \"term\""),
        ));
    }
    if op_name != "logs" && (raw.n.is_some() || raw.follow.is_some()) {
        return Err(err(
            ErrorCode::BadRequest,
            format!("op {op_name} takes no \"n\" or \"follow\""),
        ));
    }
    let op = match op_name.as_str() {
        "version" => Op::Version,
        "list" => Op::List,
        "status" => Op::Status { unit: unit()? },
        "start" => Op::Start { unit: unit()? },
        "stop" => Op::Stop { unit: unit()? },
        "restart" => Op::Restart { unit: unit()? },
        "enable" => Op::Enable { unit: unit()? },
        "disable" => Op::Disable { unit: unit()? },
        "reload" => Op::Reload,
        "logs" => {
            let n = raw.n.map_or(DEFAULT_LOG_LINES as u64, |n| n) as usize;
            if n > MAX_LOG_LINES {
                return Err(err(
                    ErrorCode::BadRequest,
                    format!("\"n\" above {MAX_LOG_LINES}"),
                ));
            }
            Op::Logs {
                unit: unit()?,
                n,
                follow: raw.follow.unwrap_or(false),
            }
        }
        "timeline" => Op::Timeline,
        "subsystem" => {
            let name = raw
                .name
                .clone()
                .ok_or_else(|| err(ErrorCode::BadRequest, "op subsystem needs \"name\"".into()))?;
            let valid = !name.is_empty()
                && name.len() <= 32
                && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
            if !valid {
                return Err(err(
                    ErrorCode::BadRequest,
                    format!("invalid subsystem name: {name:?}"),
                ));
            }
            Op::Subsystem { name }
        }
        "os" => {
            let action = raw.action.clone().unwrap_or_default();
            let refspec = raw.refspec.clone();
            match (action.as_str(), &refspec) {
                ("upgrade", Some(r)) if valid_refspec(r) => {}
                ("upgrade", _) => {
                    return Err(err(
                        ErrorCode::BadRequest,
                        "os upgrade needs a \"ref\" (a ref or commit of the node's repository)"
                            .into(),
                    ))
                }
                ("rollback", None) => {}
                _ => {
                    return Err(err(
                        ErrorCode::BadRequest,
                        format!("os: unknown action {action:?} (upgrade with a ref, rollback)"),
                    ))
                }
            }
            Op::Os {
                action,
                refspec,
                reboot: raw.reboot.unwrap_or(false),
            }
        }
        "ops" => Op::Ops(
            ops_request(raw.argv.clone(), raw.tty, raw.term.clone())
                .map_err(|m| err(ErrorCode::BadRequest, m))?,
        ),
        "poweroff" => Op::Shutdown(ShutdownKind::Poweroff),
        "reboot" => Op::Shutdown(ShutdownKind::Reboot),
        "halt" => Op::Shutdown(ShutdownKind::Halt),
        other => return Err(err(ErrorCode::UnknownOp, format!("unknown op {other:?}"))),
    };
    Ok(Request { id, op })
}

/// Checks an ops request's fields: bounded, no NUL bytes (they become exec arguments), a plain
/// `TERM` value.
fn ops_request(
    argv: Option<Vec<String>>,
    tty: Option<bool>,
    term: Option<String>,
) -> Result<OpsRequest, String> {
    let argv = argv.unwrap_or_default();
    if argv.len() > MAX_OPS_ARGS {
        return Err(format!("ops: more than {MAX_OPS_ARGS} arguments"));
    }
    if argv.iter().any(|a| a.contains('\0')) {
        return Err("ops: an argument contains a NUL byte".into());
    }
    if argv.first().is_some_and(|a| a.is_empty()) {
        return Err("ops: empty command".into());
    }
    if let Some(t) = &term {
        let plain = !t.is_empty()
            && t.len() <= 64
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b));
        if !plain {
            return Err(format!("ops: invalid TERM {t:?}"));
        }
    }
    Ok(OpsRequest {
        argv,
        tty: tty.unwrap_or(false),
        term,
    })
}

/// A ref or commit as ostree takes it (`remote:branch/name`, a checksum): no spaces, no leading
/// dash (it becomes an argument of the ostree CLI), bounded.
pub fn valid_refspec(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && !r.starts_with('-')
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:".contains(&b))
}

/// The wire name of an op (what `parse_request` accepts).
pub fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Version => "version",
        Op::List => "list",
        Op::Status { .. } => "status",
        Op::Start { .. } => "start",
        Op::Stop { .. } => "stop",
        Op::Restart { .. } => "restart",
        Op::Enable { .. } => "enable",
        Op::Disable { .. } => "disable",
        Op::Reload => "reload",
        Op::Logs { .. } => "logs",
        Op::Timeline => "timeline",
        Op::Subsystem { .. } => "subsystem",
        Op::Os { .. } => "os",
        Op::Ops(_) => "ops",
        Op::Shutdown(ShutdownKind::Poweroff) => "poweroff",
        Op::Shutdown(ShutdownKind::Reboot) => "reboot",
        Op::Shutdown(ShutdownKind::Halt) => "halt",
    }
}

/// Serialises a request as one line (with its newline), the inverse of `parse_request`.
pub fn encode_request(req: &Request) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("v".into(), VERSION.into());
    obj.insert("id".into(), req.id.into());
    obj.insert("op".into(), op_name(&req.op).into());
    match &req.op {
        Op::Status { unit }
        | Op::Start { unit }
        | Op::Stop { unit }
        | Op::Restart { unit }
        | Op::Enable { unit }
        | Op::Disable { unit } => {
            obj.insert("unit".into(), unit.clone().into());
        }
        Op::Logs { unit, n, follow } => {
            obj.insert("unit".into(), unit.clone().into());
            obj.insert("n".into(), (*n as u64).into());
            obj.insert("follow".into(), (*follow).into());
        }
        Op::Subsystem { name } => {
            obj.insert("name".into(), name.clone().into());
        }
        Op::Os {
            action,
            refspec,
            reboot,
        } => {
            obj.insert("action".into(), action.clone().into());
            if let Some(r) = refspec {
                obj.insert("ref".into(), r.clone().into());
            }
            obj.insert("reboot".into(), (*reboot).into());
        }
        Op::Ops(r) => {
            obj.insert("argv".into(), r.argv.clone().into());
            obj.insert("tty".into(), r.tty.into());
            if let Some(t) = &r.term {
                obj.insert("term".into(), t.clone().into());
            }
        }
        _ => {}
    }
    let mut s = Value::Object(obj).to_string();
    s.push('\n');
    s
}

/// One response line as it travels: `ok` with a `result`, or not `ok` with an `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub v: u64,
    /// The request's id; absent when the request could not be read far enough to find one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// Set on the lines of a `logs` follow stream: more lines with this id will come.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

impl Response {
    pub fn ok(id: u64, result: Value) -> Self {
        Self {
            v: VERSION,
            id: Some(id),
            ok: true,
            result: Some(result),
            error: None,
            more: false,
        }
    }

    pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            v: VERSION,
            id,
            ok: false,
            result: None,
            error: Some(ErrorBody {
                code,
                message: message.into(),
            }),
            more: false,
        }
    }

    pub fn from_proto_error(e: &ProtoError) -> Self {
        Self::error(e.id, e.code, e.message.clone())
    }

    pub fn from_op_error(id: u64, e: &OpError) -> Self {
        let code = match e {
            OpError::NoSuchUnit(_) => ErrorCode::NoSuchUnit,
            OpError::InvalidName(_) => ErrorCode::InvalidName,
            OpError::Refused(_) => ErrorCode::Refused,
            OpError::Failed(_) => ErrorCode::Failed,
        };
        Self::error(Some(id), code, e.to_string())
    }

    /// One line, newline included. Serialising plain data cannot fail; should it ever, the client
    /// still gets a well-formed error line rather than nothing.
    pub fn encode(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"v":1,"ok":false,"error":{"code":"failed","message":"response not serialisable"}}"#
                .to_vec()
        });
        line.push(b'\n');
        line
    }
}

/// Parses one response line (client side).
pub fn parse_response(line: &[u8]) -> Result<Response, serde_json::Error> {
    serde_json::from_slice(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, ProtoError> {
        parse_request(s.as_bytes())
    }

    #[test]
    fn parses_every_op_and_round_trips() {
        let ops = vec![
            Op::Version,
            Op::List,
            Op::Status { unit: "a".into() },
            Op::Start { unit: "b".into() },
            Op::Stop { unit: "c".into() },
            Op::Restart { unit: "d".into() },
            Op::Enable { unit: "e".into() },
            Op::Disable { unit: "f".into() },
            Op::Reload,
            Op::Logs {
                unit: "g".into(),
                n: 7,
                follow: true,
            },
            Op::Timeline,
            Op::Shutdown(ShutdownKind::Poweroff),
            Op::Shutdown(ShutdownKind::Reboot),
            Op::Shutdown(ShutdownKind::Halt),
            Op::Os {
                action: "upgrade".into(),
                refspec: Some("lifsea:next/x86_64".into()),
                reboot: true,
            },
            Op::Os {
                action: "rollback".into(),
                refspec: None,
                reboot: false,
            },
            Op::Ops(OpsRequest::default()),
            Op::Ops(OpsRequest {
                argv: vec!["cat".into(), "/host/etc/hostname".into()],
                tty: true,
                term: Some("xterm-256color".into()),
            }),
        ];
        for (i, op) in ops.into_iter().enumerate() {
            let req = Request {
                id: i as u64 + 10,
                op,
            };
            let line = encode_request(&req);
            assert!(line.ends_with('\n'));
            assert_eq!(parse(line.trim_end()).unwrap(), req);
        }
    }

    #[test]
    fn ops_requests_are_checked() {
        let bad = [
            (r#"{"v":1,"id":1,"op":"ops","argv":[""]}"#, "empty command"),
            (r#"{"v":1,"id":1,"op":"ops","argv":["a\u0000b"]}"#, "NUL"),
            (
                r#"{"v":1,"id":1,"op":"ops","term":"x; rm"}"#,
                "invalid TERM",
            ),
            (
                r#"{"v":1,"id":1,"op":"list","argv":["sh"]}"#,
                "takes no \"argv\"",
            ),
            (r#"{"v":1,"id":1,"op":"ops","argv":"sh"}"#, "bad request"),
        ];
        for (line, want) in bad {
            let e = parse(line).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{line}");
            assert!(e.message.contains(want), "{line}: {}", e.message);
        }
        let many: Vec<String> = (0..=MAX_OPS_ARGS).map(|i| i.to_string()).collect();
        let line = serde_json::json!({"v":1,"id":2,"op":"ops","argv":many}).to_string();
        assert!(parse(&line).unwrap_err().message.contains("more than"));
        let ok = parse(r#"{"v":1,"id":3,"op":"ops"}"#).unwrap();
        assert_eq!(ok.op, Op::Ops(OpsRequest::default()));
    }

    #[test]
    fn os_requests_are_checked() {
        let bad = [
            (r#"{"v":1,"id":1,"op":"os","action":"upgrade"}"#, "needs a"),
            (
                r#"{"v":1,"id":1,"op":"os","action":"upgrade","ref":"--help"}"#,
                "needs a",
            ),
            (
                r#"{"v":1,"id":1,"op":"os","action":"upgrade","ref":"a b"}"#,
                "needs a",
            ),
            (
                r#"{"v":1,"id":1,"op":"os","action":"rollback","ref":"x"}"#,
                "unknown action",
            ),
            (
                r#"{"v":1,"id":1,"op":"os","action":"wipe"}"#,
                "unknown action",
            ),
            (r#"{"v":1,"id":1,"op":"list","reboot":true}"#, "takes no"),
        ];
        for (line, want) in bad {
            let e = parse(line).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{line}");
            assert!(e.message.contains(want), "{line}: {}", e.message);
        }
        assert!(valid_refspec("0123abcd"));
        assert!(valid_refspec("remote:lifsea/stable/x86_64"));
        assert!(!valid_refspec(""));
        assert!(!valid_refspec("a;b"));
    }

    #[test]
    fn literal_request_lines() {
        assert_eq!(
            parse(r#"{"v":1,"id":4,"op":"status","unit":"containerd"}"#).unwrap(),
            Request {
                id: 4,
                op: Op::Status {
                    unit: "containerd".into()
                }
            }
        );
        assert_eq!(
            parse(r#"{"v":1,"id":5,"op":"logs","unit":"x"}"#)
                .unwrap()
                .op,
            Op::Logs {
                unit: "x".into(),
                n: DEFAULT_LOG_LINES,
                follow: false
            }
        );
    }

    fn code(s: &str) -> (Option<u64>, ErrorCode) {
        let e = parse(s).unwrap_err();
        (e.id, e.code)
    }

    #[test]
    fn malformed_and_refused_requests() {
        assert_eq!(code("{not json"), (None, ErrorCode::BadJson));
        assert_eq!(code(""), (None, ErrorCode::BadJson));
        assert_eq!(code("[1,2]").1, ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"v":2,"id":3,"op":"list"}"#),
            (Some(3), ErrorCode::BadVersion)
        );
        assert_eq!(
            code(r#"{"id":3,"op":"list"}"#),
            (Some(3), ErrorCode::BadVersion)
        );
        assert_eq!(
            code(r#"{"v":1,"id":3,"op":"format-disk"}"#),
            (Some(3), ErrorCode::UnknownOp)
        );
        assert_eq!(
            code(r#"{"v":1,"op":"list"}"#),
            (None, ErrorCode::BadRequest)
        );
        assert_eq!(code(r#"{"v":1,"id":1}"#).1, ErrorCode::BadRequest);
        assert_eq!(
            code(r#"{"v":1,"id":1,"op":"start"}"#).1,
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"v":1,"id":1,"op":"list","unit":"x"}"#).1,
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"v":1,"id":1,"op":"list","extra":1}"#).1,
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"v":1,"id":1,"op":"stop","n":3,"unit":"x"}"#).1,
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"v":1,"id":1,"op":"logs","unit":"x","n":1000000}"#).1,
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(r#"{"v":1,"id":9,"op":"start","unit":"../../etc/shadow"}"#),
            (Some(9), ErrorCode::InvalidName)
        );
        assert_eq!(
            code(r#"{"v":1,"id":9,"op":"logs","unit":".."}"#).1,
            ErrorCode::InvalidName
        );
    }

    #[test]
    fn oversized_request_refused() {
        let big = format!(
            r#"{{"v":1,"id":1,"op":"status","unit":"{}"}}"#,
            "a".repeat(MAX_MESSAGE)
        );
        assert_eq!(code(&big), (None, ErrorCode::TooLarge));
    }

    #[test]
    fn responses_round_trip() {
        let ok = Response::ok(3, serde_json::json!({"x": [1, 2]}));
        let line = ok.encode();
        assert_eq!(*line.last().unwrap(), b'\n');
        let text = String::from_utf8(line.clone()).unwrap();
        assert_eq!(
            text,
            "{\"v\":1,\"id\":3,\"ok\":true,\"result\":{\"x\":[1,2]}}\n"
        );
        assert_eq!(parse_response(&line).unwrap(), ok);
        let err = Response::from_op_error(4, &OpError::NoSuchUnit("zz".into()));
        let text = String::from_utf8(err.encode()).unwrap();
        assert!(text.contains("\"code\":\"no-such-unit\""), "{text}");
        assert!(text.contains("no such unit: zz"), "{text}");
        assert_eq!(parse_response(text.as_bytes()).unwrap(), err);
    }
}
