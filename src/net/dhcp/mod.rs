//! The built-in DHCPv4 client: `client` is the pure state machine, `packet` the wire format and
//! the checks on untrusted replies, `lease` what a server granted, `socket` the per-link UDP
//! socket the manager feeds it from.

pub mod client;
pub mod lease;
pub mod packet;
pub mod socket;

pub use client::{Action, Client, Dest, Input, State};
pub use lease::{Lease, Route};

#[cfg(test)]
mod tests;
