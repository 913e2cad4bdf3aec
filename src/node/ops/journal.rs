//! The ops session log: who opened a session, when, with what command, and how it ended, one line
//! per event in `/var/log/lifsea/ops.log` (and the same words in the kernel log). There is no login
//! on a node; this file is how an administrator audits what was done through the API.
//!
//! Bounded: when the file would grow past `MAX_BYTES` it is renamed to `ops.log.1` (replacing the
//! previous one) and a new file is started, so two files at most.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Size at which the log is rotated.
pub const MAX_BYTES: u64 = 256 * 1024;

pub const FILE: &str = "ops.log";

/// `2026-11-30T09:12:22Z`: UTC from seconds since the epoch (the civil-from-days algorithm; no
/// time zone database on a node, and none needed for a log).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

pub fn now_utc() -> String {
    utc(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0))
}

/// The command as one JSON array, so that spaces and quotes in arguments stay unambiguous.
pub fn command_text(argv: &[String]) -> String {
    if argv.is_empty() {
        "[\"/bin/sh\"] (interactive)".into()
    } else {
        serde_json::to_string(argv).unwrap_or_default()
    }
}

/// The start line (without timestamp).
pub fn start_line(id: &str, uid: u32, pid: i32, tty: bool, argv: &[String]) -> String {
    format!(
        "ops session {id} start uid={uid} pid={pid} tty={} command={}",
        if tty { "yes" } else { "no" },
        command_text(argv)
    )
}

/// The end line (without timestamp).
pub fn end_line(id: &str, uid: u32, exit: i32, how: &str, ms: u64, cleanup: &str) -> String {
    format!("ops session {id} end uid={uid} exit={exit} ({how}) after {ms} ms; cleanup {cleanup}")
}

/// Appends `line` with a timestamp to `dir/ops.log`, rotating first when it would pass `max`.
pub fn append(dir: &Path, line: &str, max: u64) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(FILE);
    let text = format!("{} {line}\n", now_utc());
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if size > 0 && size + text.len() as u64 > max {
        std::fs::rename(&path, rotated(dir))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    f.write_all(text.as_bytes())
}

pub fn rotated(dir: &Path) -> PathBuf {
    dir.join(format!("{FILE}.1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_023_942), "2026-11-30T07:32:22Z");
    }

    #[test]
    fn lines_carry_who_what_and_how_it_ended() {
        let argv = vec!["cat".to_string(), "/host/etc/host name".to_string()];
        assert_eq!(
            start_line("ops-1-a", 0, 42, false, &argv),
            r#"ops session ops-1-a start uid=0 pid=42 tty=no command=["cat","/host/etc/host name"]"#
        );
        assert!(start_line("x", 0, 1, true, &[])
            .ends_with("tty=yes command=[\"/bin/sh\"] (interactive)"));
        assert_eq!(
            end_line("ops-1-a", 0, 3, "exited 3", 812, "ok"),
            "ops session ops-1-a end uid=0 exit=3 (exited 3) after 812 ms; cleanup ok"
        );
    }

    #[test]
    fn log_rotates_at_its_bound_and_keeps_one_old_file() {
        let dir = std::env::temp_dir().join(format!("lifsea-ops-journal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for i in 0..50 {
            append(&dir, &format!("line {i:04} {}", "x".repeat(40)), 1000).unwrap();
        }
        let cur = std::fs::read_to_string(dir.join(FILE)).unwrap();
        let old = std::fs::read_to_string(rotated(&dir)).unwrap();
        assert!(
            cur.len() <= 1000 && old.len() <= 1000,
            "{} {}",
            cur.len(),
            old.len()
        );
        assert!(cur.contains("line 0049"));
        assert!(!cur.contains("line 0000") && !old.contains("line 0000"));
        let files = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(files, 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
