//! The control server's side of ops sessions (`initctl ops`): descriptors that arrive with a
//! request (SCM_RIGHTS), the one reply sent when the session ends, and telling the sessions when
//! a caller has gone away. The sessions themselves run in `node::ops`.

use serde_json::json;

use super::ops::{Operations, SessionEnd};
use super::protocol::Response;
use crate::sys::fdpass::{Received, MAX_FDS};

/// Keeps the descriptors that came with a read for the request they belong to, at most
/// `MAX_FDS`; a client sending more gets none kept (they are closed), and its ops request is then
/// refused for lack of them.
pub(super) fn keep_fds(fds: &mut Vec<std::os::fd::OwnedFd>, r: Received) {
    if r.truncated || fds.len() + r.fds.len() > MAX_FDS {
        log::warn!("control: a client sent more than {MAX_FDS} descriptors; dropped them");
        fds.clear();
        return;
    }
    fds.extend(r.fds);
}

/// The reply to an ops request: how the command ended.
pub(super) fn end_response(id: u64, end: &SessionEnd) -> Response {
    Response::ok(
        id,
        json!({
            "id": end.id,
            "exit": end.exit,
            "detail": end.detail,
            "removed": end.removed,
            "duration_ms": end.duration_ms,
        }),
    )
}

/// A client with a session in progress is gone: the session is abandoned.
pub(super) fn forget(session: &Option<(u64, u64)>, ops: &mut dyn Operations) {
    if let Some((_, key)) = session {
        ops.ops_abandon(*key);
    }
}
