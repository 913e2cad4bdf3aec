//! lifsea-init: a minimal static PID 1 for ostree-based container hosts.
//!
//! `boot` reads as the table of contents: stage 0 (initramfs), stage 1 (machine setup),
//! stage 2 (`supervisor`), stage 3 (`shutdown`). Pure logic lives in parsers and state machines;
//! raw syscalls live in `sys`.

pub mod blockdev;
pub mod boot;
pub mod cli;
pub mod cmdline;
pub mod control;
pub mod cpio;
pub mod devices;
pub mod initramfs;
pub mod klog;
pub mod machine;
pub mod mounts;
pub mod net;
pub mod ostree;
pub mod shutdown;
pub mod supervisor;
pub mod sys;
pub mod timeline;
pub mod unitlog;
pub mod units;
