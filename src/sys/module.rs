//! finit_module(2): load a kernel module from an open file, the way modprobe does, without kmod.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `MODULE_INIT_COMPRESSED_FILE` (Linux 6.4+, `CONFIG_MODULE_DECOMPRESS`): the kernel decompresses
/// `.ko.xz`/`.ko.zst` itself. Not in nix 0.29, hence the raw syscall.
const MODULE_INIT_COMPRESSED_FILE: libc::c_int = 4;

/// Loads the module file at `path` with empty parameters (`finit_module(2)`; the file is opened
/// with `O_CLOEXEC` so a concurrent fork never inherits it). Compressed modules are passed with
/// `MODULE_INIT_COMPRESSED_FILE`.
pub fn finit_module(path: &Path) -> std::io::Result<()> {
    finit_module_with(path, "")
}

/// Like `finit_module`, with a parameter string (`a=1 b=2`, from modprobe.d `options`).
pub fn finit_module_with(path: &Path, params: &str) -> std::io::Result<()> {
    let params = std::ffi::CString::new(params)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let file = File::open(path)?; // std opens with O_CLOEXEC
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let flags = if name.ends_with(".ko") {
        0
    } else {
        MODULE_INIT_COMPRESSED_FILE
    };
    // SAFETY: the fd is open for the duration of the call, `params` is a valid NUL-terminated
    // string that outlives it, and finit_module does not retain either pointer.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_finit_module,
            file.as_raw_fd(),
            params.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
