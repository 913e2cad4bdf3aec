//! The fatal-error path of stages 0 and 1: a boot that cannot continue says why, offers a shell
//! when asked for one, and reboots after a pause rather than hanging or panicking.

use std::path::Path;

use super::cmdline;
use crate::sys;

/// A boot that cannot continue: say why on the console, then exec a shell when
/// `lifsea.break=shell` asks for one and the image has one; otherwise wait 10 s and reboot(2).
/// Rebooting (rather than sleeping forever) lets a cloud machine retry a transient failure such
/// as a slow disk attach, and lets a harness running QEMU with `-no-reboot` finish at once;
/// the wait keeps the message on screen and bounds a reboot loop's rate.
pub fn fatal(params: &cmdline::BootParams, msg: &str) -> ! {
    log::error!("{msg}");
    eprintln!("lifsea-init: {msg}");
    if params.break_to_shell {
        for sh in ["/bin/sh", "/usr/bin/sh", "/bin/busybox"] {
            if Path::new(sh).exists() {
                eprintln!("lifsea-init: lifsea.break=shell: starting {sh}");
                let argv = if sh.ends_with("busybox") {
                    vec!["sh".to_string()]
                } else {
                    vec![sh.to_string()]
                };
                let e = sys::bootexec::exec(sh, &argv);
                eprintln!("lifsea-init: exec {sh}: {e}");
            }
        }
        eprintln!("lifsea-init: lifsea.break=shell: no shell in this image");
    }
    eprintln!("lifsea-init: rebooting in 10 s");
    std::thread::sleep(std::time::Duration::from_secs(10));
    sys::power::sync_all();
    let e = sys::power::reboot(sys::power::PowerAction::Reboot);
    eprintln!("lifsea-init: reboot: {e}");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
