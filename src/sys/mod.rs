//! The only place with `unsafe` and raw syscalls: one function per intention, each named after what
//! it does and documenting the syscall it wraps.

pub mod bootexec;
pub mod module;
pub mod mount;
pub mod netif;
pub mod random;
