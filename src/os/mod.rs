//! Atomic OS updates (issue 13): the init's half of the Boot Loader Specification's boot
//! counting. ostree makes deployments atomic but decides nothing; the init is what knows whether a
//! node came up healthy, so it blesses its own boot entry (drops the `+LEFT-DONE` counter) once the
//! health set has held for a while, and reboots without blessing when it does not.
//!
//! `bls` parses entries and their file names (pure), `bootcount` is the bootloader's choice and the
//! renames both halves make (pure, so the QEMU harness's bootloader and the init cannot disagree on
//! the rules), `config` reads `/etc/lifsea/os.toml`, `bless` is the subsystem that does the
//! blessing inside a short writable window on `/sysroot`.

pub mod bless;
pub mod bls;
pub mod bootcount;
pub mod bootloader;
pub mod config;
pub mod health;
pub mod update;
pub mod view;
pub mod watchdog;
