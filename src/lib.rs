//! lifsea-init: a minimal static PID 1 for ostree-based container hosts.
//!
//! `boot` reads as the table of contents: stage 0 (initramfs), stage 1 (machine setup),
//! stage 2 (`supervisor`), stage 3 (`boot::shutdown`). Pure logic lives in parsers and state
//! machines; raw syscalls live in `sys`, the only module allowed `unsafe`.
#![deny(unsafe_code)]

pub mod boot;
pub mod cli;
pub mod collections;
pub mod control;
pub mod devices;
pub mod durable;
pub mod klog;
pub mod mkinitramfs;
pub mod net;
pub mod node;
pub mod os;
pub mod paths;
pub mod procfs;
pub mod supervisor;
pub mod sys;
pub mod timeline;
pub mod unitlog;
pub mod units;
