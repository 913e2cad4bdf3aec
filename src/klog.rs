//! The `log` facade's sink: /dev/kmsg on a machine (so messages interleave with the kernel's and
//! reach the console), stderr when /dev/kmsg is absent or unwritable (container mode, tests).
//!
//! Each record becomes one line `<N>lifsea-init: message`, N being the syslog priority, which is
//! the form /dev/kmsg expects. A panic hook sends panics through the same sink, so even a bug shows
//! up on the console of a machine whose only PID 1 is us.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

enum Sink {
    Kmsg(File),
    Stderr,
}

struct Logger {
    sink: Mutex<Sink>,
    level: LevelFilter,
}

/// syslog priority for a log level (kernel log levels share the numbering).
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Formats one line as written to the sink (pure, for tests).
pub fn format_line(level: Level, msg: &str, kmsg: bool) -> String {
    if kmsg {
        format!("<{}>lifsea-init: {msg}\n", priority(level))
    } else {
        format!("lifsea-init: {msg}\n")
    }
}

impl Logger {
    fn write_line(&self, level: Level, msg: &str) {
        let Ok(mut sink) = self.sink.lock() else {
            return;
        };
        match &mut *sink {
            Sink::Kmsg(f) => {
                // /dev/kmsg takes one record per write and caps it at about 1 KiB.
                let mut line = format_line(level, msg, true);
                if line.len() > 1000 {
                    let mut cut = 999;
                    while !line.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    line.truncate(cut);
                    line.push('\n');
                }
                if f.write_all(line.as_bytes()).is_err() {
                    let _ = std::io::stderr().write_all(format_line(level, msg, false).as_bytes());
                }
            }
            Sink::Stderr => {
                let _ = std::io::stderr().write_all(format_line(level, msg, false).as_bytes());
            }
        }
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.write_line(record.level(), &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// Lets our own lines through /dev/kmsg unthrottled. The kernel rate-limits userspace writes to
/// /dev/kmsg by default (`printk.devkmsg=ratelimit`: a burst of 10 per 5 s), which would swallow
/// most of a boot's progress lines. Needs /proc; a failure only means throttled logs.
pub fn lift_kmsg_ratelimit(proc_dir: &std::path::Path) {
    let path = proc_dir.join("sys/kernel/printk_devkmsg");
    if let Err(e) = std::fs::write(&path, "on\n") {
        log::debug!("cannot write {}: {e}", path.display());
    }
}

/// Installs the logger (once; later calls are ignored) and the panic hook. `debug` lowers the level
/// to Debug. Container mode logs to stderr: /dev/kmsg would be the host's kernel log.
pub fn init(debug: bool) {
    // boot::main calls this before it dispatches on the mode, so look at the mode ourselves.
    let container = std::env::var_os("container").is_some_and(|v| !v.is_empty())
        || std::env::args().any(|a| a == "--container");
    init_with(debug, std::process::id() == 1 && !container);
}

/// Like `init`, choosing the sink: /dev/kmsg when `use_kmsg` and it can be opened, else stderr.
pub fn init_with(debug: bool, use_kmsg: bool) {
    let sink = if use_kmsg {
        match OpenOptions::new().write(true).open("/dev/kmsg") {
            Ok(f) => Sink::Kmsg(f),
            Err(_) => Sink::Stderr,
        }
    } else {
        Sink::Stderr
    };
    let env_debug = std::env::var("LIFSEA_DEBUG").is_ok_and(|v| v == "1");
    let level = if debug || env_debug {
        LevelFilter::Debug
    } else {
        LevelFilter::Info
    };
    let logger = Box::new(Logger {
        sink: Mutex::new(sink),
        level,
    });
    if log::set_boxed_logger(logger).is_ok() {
        log::set_max_level(level);
        // The hook opens its own sink instead of going through the logger: a panic raised while
        // the logger's lock is held must still be reported, not deadlock.
        std::panic::set_hook(Box::new(move |info| {
            let msg = format!("panic: {info}");
            let kmsg = use_kmsg
                && OpenOptions::new()
                    .write(true)
                    .open("/dev/kmsg")
                    .and_then(|mut f| f.write_all(format_line(Level::Error, &msg, true).as_bytes()))
                    .is_ok();
            if !kmsg {
                let _ =
                    std::io::stderr().write_all(format_line(Level::Error, &msg, false).as_bytes());
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_priority_for_kmsg_only() {
        assert_eq!(
            format_line(Level::Error, "boom", true),
            "<3>lifsea-init: boom\n"
        );
        assert_eq!(
            format_line(Level::Info, "[  OK  ] a ready", true),
            "<6>lifsea-init: [  OK  ] a ready\n"
        );
        assert_eq!(format_line(Level::Debug, "x", true), "<7>lifsea-init: x\n");
        assert_eq!(format_line(Level::Warn, "w", false), "lifsea-init: w\n");
    }
}
