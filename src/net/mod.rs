//! Networking owned by the init: links through rtnetlink (`link`), a DHCPv4 client (`dhcp`),
//! static configuration from the kernel's `ip=` (`ipconfig`) and `/etc/lifsea/network.toml`
//! (`config`), the resolver file (`resolv`), and the `NetManager` subsystem that ties them to
//! the event loop and reports the facts `network` and `network-online`.
//!
//! No dhclient, no networkd, no `ip` binary: a container host needs an address before kubelet can
//! start, and doing it in PID 1's own loop keeps it fast, bounded and observable.

pub mod config;
pub mod dhcp;
pub mod ipconfig;
pub mod link;
pub mod manager;
pub mod resolv;
mod rtnl_request;
pub mod view;

pub use manager::{NetManager, NetOptions};
pub mod boot;
