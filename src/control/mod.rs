//! The control API: a root-only Unix socket served from the event loop, and `initctl`, its client.
//!
//! `protocol` is the wire format (pure), `dispatch` maps a request onto `ops::Operations`, `server`
//! owns the socket and its clients; `client` is initctl, which renders results with `table` and
//! computes boot analysis with `analyze` and `svg` (all pure).

pub mod analyze;
pub mod client;
pub mod connection;
pub mod dispatch;
pub mod names;
pub mod ops;
pub mod ops_client;
pub mod protocol;
pub mod reply;
pub mod server;
pub mod session;
pub mod svg;
pub mod table;
pub mod views;
