//! Carries out one parsed request against the running init (`Operations`) and builds its response.
//!
//! Kept apart from the socket code so the mapping "op → call → result JSON" reads in one place.
//! The only effect of its own is enable/disable: a marker file in the admin unit directory, the way an
//! administrator would persist the choice by hand, followed by starting or stopping the unit now.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::names::valid_unit_name;
use super::ops::{OpError, Operations};
use super::protocol::{Op, Request, Response};

/// What the server does after a request.
#[derive(Debug)]
pub enum Outcome {
    Reply(Response),
    /// Send `first`, then keep sending the unit's lines after `seq` until the client goes away.
    Follow {
        first: Response,
        unit: String,
        seq: u64,
    },
}

/// The result of enable/disable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnableReport {
    pub unit: String,
    pub enabled: bool,
    /// The marker file written.
    pub marker: PathBuf,
    /// The opposite marker, when one was removed.
    pub removed: Option<PathBuf>,
    /// "start" or "stop": what was asked of the unit afterwards.
    pub action: String,
    /// Why that start or stop was refused, if it was; the marker stays in place.
    pub action_error: Option<String>,
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn queued(id: u64, unit: &str, action: &str, r: Result<(), OpError>) -> Response {
    match r {
        Ok(()) => Response::ok(id, json!({"unit": unit, "action": action, "queued": true})),
        Err(e) => Response::from_op_error(id, &e),
    }
}

/// Runs one request.
pub fn dispatch(req: &Request, ops: &mut dyn Operations) -> Outcome {
    let id = req.id;
    let reply = match &req.op {
        Op::Version => Response::ok(
            id,
            json!({"protocol": super::protocol::VERSION, "version": env!("CARGO_PKG_VERSION")}),
        ),
        Op::List => Response::ok(id, to_value(&ops.list())),
        Op::Status { unit } => match ops.status(unit) {
            Ok(s) => Response::ok(id, to_value(&s)),
            Err(e) => Response::from_op_error(id, &e),
        },
        Op::Start { unit } => queued(id, unit, "start", ops.start(unit)),
        Op::Stop { unit } => queued(id, unit, "stop", ops.stop(unit)),
        Op::Restart { unit } => queued(id, unit, "restart", ops.restart(unit)),
        Op::Enable { unit } => match set_enabled(ops, unit, true) {
            Ok(r) => Response::ok(id, to_value(&r)),
            Err(e) => Response::from_op_error(id, &e),
        },
        Op::Disable { unit } => match set_enabled(ops, unit, false) {
            Ok(r) => Response::ok(id, to_value(&r)),
            Err(e) => Response::from_op_error(id, &e),
        },
        Op::Reload => match ops.reload() {
            Ok(r) => Response::ok(id, to_value(&r)),
            Err(e) => Response::from_op_error(id, &e),
        },
        Op::Logs { unit, n, follow } => {
            // Fail early for a unit that does not exist, so `logs -f typo` does not wait forever.
            if let Err(e) = ops.status(unit) {
                return Outcome::Reply(Response::from_op_error(id, &e));
            }
            let lines = match ops.logs_tail(unit, *n) {
                Ok(l) => l,
                Err(e) => return Outcome::Reply(Response::from_op_error(id, &e)),
            };
            if !*follow {
                Response::ok(id, json!({ "lines": lines }))
            } else {
                let seq = match lines.last() {
                    Some(l) => l.seq,
                    // Nothing asked for or nothing logged yet: follow from the newest line there is.
                    None => ops
                        .logs_tail(unit, 1)
                        .ok()
                        .and_then(|l| l.last().map(|l| l.seq))
                        .unwrap_or(0),
                };
                let mut first = Response::ok(id, json!({ "lines": lines }));
                first.more = true;
                return Outcome::Follow {
                    first,
                    unit: unit.clone(),
                    seq,
                };
            }
        }
        Op::Timeline => Response::ok(id, to_value(&ops.timeline())),
        Op::Subsystem { name } => match ops.subsystem(name) {
            Ok(v) => Response::ok(id, v),
            Err(e) => Response::from_op_error(id, &e),
        },
        Op::Os {
            action,
            refspec,
            reboot,
        } => {
            log::info!(
                "control: os {action} {} (reboot: {reboot})",
                refspec.as_deref().unwrap_or("")
            );
            let req = json!({"action": action, "ref": refspec, "reboot": reboot});
            match ops.subsystem_request("os", req) {
                Ok(v) => Response::ok(id, v),
                Err(e) => Response::from_op_error(id, &e),
            }
        }
        // The server starts sessions itself: they need the descriptors that came with the request.
        Op::Ops(_) => Response::error(
            Some(id),
            super::protocol::ErrorCode::BadRequest,
            "ops needs the caller's descriptors, which only the control server has",
        ),
        Op::Shutdown(kind) => {
            ops.shutdown(*kind);
            Response::ok(id, json!({ "shutdown": kind }))
        }
    };
    Outcome::Reply(reply)
}

/// Marker file paths for a unit: (`<dir>/<unit>.enabled`, `<dir>/<unit>.disabled`).
pub fn marker_paths(dir: &Path, unit: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{unit}.enabled")),
        dir.join(format!("{unit}.disabled")),
    )
}

/// Persists the choice as a marker in the admin unit directory (read by the unit loader at the next
/// boot or reload), then starts or stops the unit now.
pub fn set_enabled(
    ops: &mut dyn Operations,
    unit: &str,
    enable: bool,
) -> Result<EnableReport, OpError> {
    // The protocol already checked the name; this guards every other caller, since the name
    // becomes part of a path below.
    if !valid_unit_name(unit) {
        return Err(OpError::InvalidName(unit.to_string()));
    }
    ops.status(unit)?;
    let dir = ops.admin_unit_dir();
    let (on, off) = marker_paths(&dir, unit);
    let (write, remove) = if enable { (on, off) } else { (off, on) };
    // New marker first, durably, then the old one removed: a power cut in between leaves both,
    // and `disabled` wins over `enabled`, so the unit is in its old or its new state.
    crate::durable::write_atomic(&write, b"")
        .map_err(|e| OpError::Failed(format!("cannot write marker: {e}")))?;
    let removed = match crate::durable::remove(&remove) {
        Ok(true) => Some(remove),
        Ok(false) => None,
        Err(e) => return Err(OpError::Failed(format!("cannot remove marker: {e}"))),
    };
    let (action, result) = if enable {
        ("start", ops.start(unit))
    } else {
        ("stop", ops.stop(unit))
    };
    Ok(EnableReport {
        unit: unit.to_string(),
        enabled: enable,
        marker: write,
        removed,
        action: action.to_string(),
        action_error: result.err().map(|e| e.to_string()),
    })
}
