//! The only place with `unsafe` and raw syscalls: one function per intention, each named after what
//! it does and documenting the syscall it wraps.

#![allow(unsafe_code)]

pub mod bootexec;
pub mod clone_vm;
pub mod cred;
pub mod fdpass;
pub mod inotify;
pub mod module;
pub mod mount;
pub mod netif;
pub mod notify_socket;
pub mod poll;
pub mod power;
pub mod process;
pub mod random;
pub mod reap;
pub mod signal;
pub mod swap;
pub mod uevent_socket;
pub mod watchdog;
