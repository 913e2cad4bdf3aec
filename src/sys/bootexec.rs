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

/// Asks the kernel to read our own executable into the page cache now, in one go
/// (`posix_fadvise(WILLNEED)` on /proc/self/exe: readahead, not waited for). Under TCG on a
/// cold disk the init otherwise takes a major fault per 128 KiB window of code as each step first
/// runs, each one a round trip to the emulated disk on the boot's critical path (issue 11).
pub fn prefetch_own_executable() -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let exe = std::fs::File::open("/proc/self/exe")?;
    nix::fcntl::posix_fadvise(
        exe.as_raw_fd(),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
    )
    .map_err(std::io::Error::from)
}
