//! Entry point: one static binary with several faces, chosen by argv[0] and the first argument.
//!
//! - `initctl ...` (argv[0] named initctl, or `lifsea-init initctl ...`): the control client;
//! - `lifsea-init check DIR...`: offline unit-file validation for image builders;
//! - `lifsea-init mkinitramfs ...`: write an initramfs;
//! - `lifsea-init node-prep`: a Kubernetes node's prerequisites (the `node-prep` unit);
//! - `lifsea-init bootloader DIR`: the boot-counting bootloader's choice (the QEMU harness);
//! - `lifsea-init probe-block NAME...`: read block devices' superblocks (the devices subsystem's
//!   helper, so that a hung disk never hangs PID 1);
//! - `modprobe ...` (argv[0] named modprobe, or `lifsea-init modprobe ...`): load kernel modules
//!   (the kernel's `/proc/sys/kernel/modprobe`, and the devices subsystem's helpers);
//! - anything else: the init itself (PID 1 of a machine, or `--container`).

use lifsea_init::{boot, control, units};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let argv0 = args.first().map(String::as_str).unwrap_or("lifsea-init");
    let name = argv0.rsplit('/').next().unwrap_or(argv0);
    let code = if name == "initctl" {
        control::client::main(&args[1..])
    } else if name == "modprobe" {
        lifsea_init::devices::modprobe::main(&args[1..])
    } else {
        match args.get(1).map(String::as_str) {
            Some("initctl") => control::client::main(&args[2..]),
            Some("check") => units::check::main(&args[2..]),
            Some("node-prep") if std::process::id() != 1 => lifsea_init::node::main(&args[2..]),
            Some("bootloader") if std::process::id() != 1 => {
                lifsea_init::os::bootloader::main(&args[2..])
            }
            Some(lifsea_init::devices::probe_jobs::SUBCOMMAND) if std::process::id() != 1 => {
                lifsea_init::devices::probe_jobs::main(&args[2..])
            }
            Some("mkinitramfs") => lifsea_init::mkinitramfs::mkinitramfs_main(&args[2..]),
            // Not as PID 1: the kernel hands unknown command-line words to init as arguments.
            Some("modprobe") if std::process::id() != 1 => {
                lifsea_init::devices::modprobe::main(&args[2..])
            }
            _ => boot::main(&args[1..]),
        }
    };
    std::process::exit(code);
}
