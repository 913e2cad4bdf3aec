//! What the boot path needs beyond mounts and power: execv(2) into the next init (or a rescue
//! shell) and sethostname(2). (Named apart from the supervisor's `process`, whose exec runs in a
//! forked child with prepared arguments.)

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
