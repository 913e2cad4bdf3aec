//! swapoff(2): kubelet refuses to run (by default) on a node with swap enabled.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// swapoff(2) of one swap area (a device or a file, as /proc/swaps names it).
pub fn swap_off(path: &Path) -> nix::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    // SAFETY: `c` is a valid NUL-terminated string that outlives the call; swapoff only reads it.
    let rc = unsafe { libc::swapoff(c.as_ptr()) };
    Errno::result(rc).map(drop)
}
