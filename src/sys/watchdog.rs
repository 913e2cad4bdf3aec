//! The kernel watchdog device (`/dev/watchdog`, Documentation/watchdog/watchdog-api.rst): open
//! arms it, any write pets it, writing `V` before close disarms it (the "magic close"; softdog
//! honours it unless built with nowayout), `WDIOC_SETTIMEOUT` sets the timeout.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

/// `_IOWR('W', 6, int)` from <linux/watchdog.h>; libc does not name it for musl.
const WDIOC_SETTIMEOUT: u64 = 0xC004_5706;

/// An armed watchdog: dropping it without `disarm` leaves it armed (the machine reboots unless
/// something pets it), which is what a dying PID 1 should cause.
#[derive(Debug)]
pub struct Watchdog {
    file: Option<File>,
}

impl Watchdog {
    /// Opens (arms) the device and asks for `timeout_s`; returns the timeout the driver took.
    pub fn arm(path: &Path, timeout_s: u32) -> std::io::Result<(Watchdog, u32)> {
        let file = OpenOptions::new().write(true).open(path)?;
        let mut t: libc::c_int = timeout_s.min(i32::MAX as u32) as libc::c_int;
        // SAFETY: the fd is open for the call's whole duration; the kernel reads and writes one
        // c_int through the pointer, which points at a live local of that type.
        let r = unsafe { libc::ioctl(file.as_raw_fd(), WDIOC_SETTIMEOUT as _, &mut t) };
        let taken = if r < 0 { timeout_s } else { t.max(0) as u32 };
        Ok((Watchdog { file: Some(file) }, taken))
    }

    /// Pets it (any write counts; `\0` is what systemd writes too).
    pub fn pet(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.write_all(b"\0"),
            None => Ok(()),
        }
    }

    /// Magic close: `V`, then close. The watchdog stops counting.
    pub fn disarm(&mut self) -> std::io::Result<()> {
        match self.file.take() {
            Some(mut f) => f.write_all(b"V"),
            None => Ok(()),
        }
    }

    pub fn armed(&self) -> bool {
        self.file.is_some()
    }
}
