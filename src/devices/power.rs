//! The power button: what a cloud's "stop instance" (and QEMU's `system_powerdown`) presses.
//! The ACPI button driver reports it as an input device with KEY_POWER; without logind or acpid,
//! the init finds that device itself, reads its events and starts an orderly poweroff.
//!
//! Pure parts: the capability bitmap of `/sys/class/input/eventN/device/capabilities/key` and
//! `struct input_event` records. `PowerButtons` holds the open devices (non-blocking reads).

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `EV_KEY` and `KEY_POWER` from linux/input-event-codes.h.
pub const EV_KEY: u16 = 1;
pub const KEY_POWER: u16 = 116;

/// Bytes in one `struct input_event` on a 64-bit kernel: a 16-byte timeval, then type (u16),
/// code (u16) and value (i32).
pub const INPUT_EVENT_LEN: usize = 24;

/// Whether a key capability bitmap (hex words of the kernel's `unsigned long`, most significant
/// first, space-separated) has bit `code` set.
pub fn has_key(bitmap: &str, code: u16) -> bool {
    let bits = usize::BITS as usize;
    let words: Vec<&str> = bitmap.split_whitespace().collect();
    let idx = code as usize / bits;
    let Some(word) = words.len().checked_sub(idx + 1).and_then(|i| words.get(i)) else {
        return false;
    };
    u64::from_str_radix(word, 16).is_ok_and(|w| w & (1u64 << (code as usize % bits)) != 0)
}

/// One input event's type, code and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    pub kind: u16,
    pub code: u16,
    pub value: i32,
}

/// The whole records in `buf` (a partial trailing record is ignored).
pub fn parse_events(buf: &[u8]) -> Vec<InputEvent> {
    buf.chunks_exact(INPUT_EVENT_LEN)
        .map(|r| InputEvent {
            kind: u16::from_ne_bytes([r[16], r[17]]),
            code: u16::from_ne_bytes([r[18], r[19]]),
            value: i32::from_ne_bytes([r[20], r[21], r[22], r[23]]),
        })
        .collect()
}

/// Whether any event is a power-key press (value 1; 0 is the release, 2 autorepeat).
pub fn power_pressed(events: &[InputEvent]) -> bool {
    events
        .iter()
        .any(|e| e.kind == EV_KEY && e.code == KEY_POWER && e.value == 1)
}

/// `eventN` names under `sys_class_input` whose device reports KEY_POWER.
pub fn find_power_buttons(sys_class_input: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(sys_class_input)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("event"))
                .filter(|n| is_power_button(sys_class_input, n))
                .collect()
        })
        .unwrap_or_default();
    crate::collections::sort::sort(&mut out);
    out
}

pub fn is_power_button(sys_class_input: &Path, event: &str) -> bool {
    std::fs::read_to_string(sys_class_input.join(event).join("device/capabilities/key"))
        .is_ok_and(|b| has_key(&b, KEY_POWER))
}

/// Open power-button devices.
#[derive(Debug, Default)]
pub struct PowerButtons {
    open: Vec<(String, File)>,
}

impl PowerButtons {
    /// Opens `dev_root/input/EVENT` unless it is open already.
    pub fn open(&mut self, dev_root: &Path, event: &str) -> std::io::Result<bool> {
        if self.open.iter().any(|(n, _)| n == event) {
            return Ok(false);
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(dev_root.join("input").join(event))?;
        self.open.push((event.to_string(), f));
        Ok(true)
    }

    pub fn close(&mut self, event: &str) {
        self.open.retain(|(n, _)| n != event);
    }

    pub fn names(&self) -> Vec<String> {
        self.open.iter().map(|(n, _)| n.clone()).collect()
    }

    pub fn fds(&self) -> Vec<RawFd> {
        self.open.iter().map(|(_, f)| f.as_raw_fd()).collect()
    }

    /// Drains the device behind `fd`; returns whether the power key was pressed. A device that
    /// went away (read error other than EAGAIN, or end of file) is closed.
    pub fn read(&mut self, fd: RawFd) -> bool {
        let Some(i) = self.open.iter().position(|(_, f)| f.as_raw_fd() == fd) else {
            return false;
        };
        let mut pressed = false;
        let mut buf = [0u8; INPUT_EVENT_LEN * 16];
        loop {
            match self.open[i].1.read(&mut buf) {
                Ok(0) => {
                    self.open.remove(i);
                    break;
                }
                Ok(n) => pressed |= power_pressed(&parse_events(&buf[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.open.remove(i);
                    break;
                }
            }
        }
        pressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An input_event record as the kernel writes it.
    pub fn record(kind: u16, code: u16, value: i32) -> Vec<u8> {
        let mut r = vec![0u8; 16];
        r.extend_from_slice(&kind.to_ne_bytes());
        r.extend_from_slice(&code.to_ne_bytes());
        r.extend_from_slice(&value.to_ne_bytes());
        r
    }

    #[test]
    fn capability_bitmaps() {
        // The ACPI power button on QEMU (LNXPWRBN): only KEY_POWER (bit 116 = word 1, bit 52).
        assert!(has_key("10000000000000 0", KEY_POWER));
        // An AT keyboard has KEY_POWER among many.
        assert!(has_key(
            "402000000 3803078f800d001 feffffdfffefffff fffffffffffffffe",
            KEY_POWER
        ));
        assert!(!has_key("fffffffffffffffe", KEY_POWER));
        assert!(!has_key("", KEY_POWER));
        assert!(!has_key("zz 0", KEY_POWER));
        assert!(has_key("2", 1));
    }

    #[test]
    fn power_key_press_but_not_release_or_other_keys() {
        let mut buf = record(EV_KEY, KEY_POWER, 0);
        buf.extend(record(0, 0, 0)); // EV_SYN
        assert!(!power_pressed(&parse_events(&buf)));
        buf.extend(record(EV_KEY, 115, 1));
        assert!(!power_pressed(&parse_events(&buf)));
        buf.extend(record(EV_KEY, KEY_POWER, 1));
        buf.extend([1, 2, 3]); // a partial record is ignored
        let ev = parse_events(&buf);
        assert_eq!(ev.len(), 4);
        assert!(power_pressed(&ev));
    }

    #[test]
    fn finds_buttons_and_reads_presses_from_a_pipe() {
        let t = std::env::temp_dir().join(format!("lifsea-power-{}", std::process::id()));
        let sys = t.join("class/input");
        for (ev, caps) in [
            (
                "event0",
                "402000000 3803078f800d001 feffffdfffefffff fffffffffffffffe",
            ),
            ("event1", "10000000000000 0"),
            ("event2", "0"),
        ] {
            std::fs::create_dir_all(sys.join(ev).join("device/capabilities")).unwrap();
            std::fs::write(sys.join(ev).join("device/capabilities/key"), caps).unwrap();
        }
        std::fs::create_dir_all(sys.join("mouse0")).unwrap();
        assert_eq!(find_power_buttons(&sys), vec!["event0", "event1"]);

        // A FIFO stands in for /dev/input/event1.
        let dev = t.join("dev");
        std::fs::create_dir_all(dev.join("input")).unwrap();
        let fifo = dev.join("input/event1");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let mut b = PowerButtons::default();
        assert!(b.open(&dev, "event1").unwrap());
        assert!(!b.open(&dev, "event1").unwrap());
        let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        let fd = b.fds()[0];
        assert!(!b.read(fd));
        use std::io::Write;
        w.write_all(&record(EV_KEY, KEY_POWER, 1)).unwrap();
        assert!(b.read(fd));
        drop(w);
        assert!(!b.read(fd));
        assert!(b.names().is_empty(), "end of file closes the device");
        std::fs::remove_dir_all(&t).unwrap();
    }
}
