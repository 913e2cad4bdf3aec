//! The control API: a root-only Unix socket served from the event loop, and `initctl`, its client.

pub mod client;
pub mod ops;
pub mod server;
