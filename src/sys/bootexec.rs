//! What the boot path needs beyond mounts, in one place: execv(2) into the next init, sethostname(2),
//! reboot(2) after a fatal boot error, getpid(2). (Named apart from the supervisor's `process`.)

use std::convert::Infallible;
use std::ffi::CString;

/// Replaces the process image (`execv(2)`); returns only on failure.
pub fn exec(path: &str, args: &[String]) -> nix::Error {
    let Ok(p) = CString::new(path) else {
        return nix::Error::EINVAL;
    };
    let mut argv = Vec::with_capacity(args.len());
    for a in args {
        match CString::new(a.as_str()) {
            Ok(c) => argv.push(c),
            Err(_) => return nix::Error::EINVAL,
        }
    }
    match nix::unistd::execv(&p, &argv) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

/// `sethostname(2)`.
pub fn set_hostname(name: &str) -> nix::Result<()> {
    nix::unistd::sethostname(name)
}

/// `sync(2)` then `reboot(2)` with `RB_AUTOBOOT`, after a fatal boot error.
pub fn reboot_now() -> nix::Result<Infallible> {
    nix::unistd::sync();
    nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_AUTOBOOT)
}

/// The caller's process id (`getpid(2)`).
pub fn pid() -> u32 {
    std::process::id()
}
