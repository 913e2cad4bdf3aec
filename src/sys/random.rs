//! getrandom(2) without waiting for the entropy pool: for identifiers (machine-id), not keys.
//! Reading /dev/urandom before the pool is ready makes Linux ≥ 5.18 run its jitter-entropy loop,
//! which costs over a second of boot under QEMU TCG.

/// `GRND_INSECURE` (Linux 5.6+): never block, never wait for the pool.
const GRND_INSECURE: libc::c_uint = 0x0004;

/// Fills `buf` with `getrandom(GRND_INSECURE)`; falls back to `GRND_NONBLOCK` on older kernels.
pub fn fill_insecure(buf: &mut [u8]) -> std::io::Result<()> {
    let mut done = 0;
    let mut flags = GRND_INSECURE;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: `rest` is a valid writable buffer of `rest.len()` bytes for the whole call.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), flags) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EINVAL) if flags == GRND_INSECURE => {
                    flags = libc::GRND_NONBLOCK;
                    continue;
                }
                _ => return Err(e),
            }
        }
        done += n as usize;
    }
    Ok(())
}
