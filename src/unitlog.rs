//! Per-unit service output: timestamped lines in a bounded in-memory ring per unit, and, once a log
//! directory is set, in `<dir>/<unit>.log` files with size-based rotation.
//!
//! The supervisor splits pipe output into lines and pushes them here; the control API reads them
//! (`initctl logs`, `-f` follows by sequence number). Early in boot /var is not writable yet, so
//! lines live only in memory; `set_dir` is called when it becomes writable and flushes what the
//! ring still holds. Disk use per unit is bounded by `Rotation`: at most `max_files` files of at
//! most `max_file_bytes` each. File writes are plain appends from the event loop; a failing disk is
//! reported once and never stops the in-memory log.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stream {
    Stdout,
    Stderr,
    /// A line written by the init about the unit (started, exited, ...).
    Init,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Increases by one for every line of every unit: a follower asks for lines after the last it saw.
    pub seq: u64,
    /// Wall-clock time, microseconds since the Unix epoch.
    pub realtime_us: u64,
    pub stream: Stream,
    pub text: String,
}

/// Default number of lines kept in memory per unit.
pub const DEFAULT_MEMORY_LINES: usize = 1000;

/// How much disk one unit's log may use: the live file plus `max_files - 1` rotated ones
/// (`<unit>.log.1` newest … `<unit>.log.N` oldest), none above `max_file_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    pub max_file_bytes: u64,
    pub max_files: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Self {
            max_file_bytes: 1024 * 1024,
            max_files: 4,
        }
    }
}

impl Rotation {
    /// The most bytes one unit's log files can take together.
    pub fn max_total_bytes(&self) -> u64 {
        self.max_file_bytes * self.max_files.max(1) as u64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UnitLogError {
    #[error("create log directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("open log file {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write log file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("rotate log file {path}: {source}")]
    Rotate {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct OpenLog {
    file: File,
    size: u64,
}

#[derive(Debug)]
pub struct UnitLogs {
    per_unit: BTreeMap<String, VecDeque<LogLine>>,
    memory_lines: usize,
    next_seq: u64,
    dir: Option<PathBuf>,
    rotation: Rotation,
    open: BTreeMap<String, OpenLog>,
    /// A write error was logged and nothing has succeeded since: don't repeat it for every line.
    failing: bool,
}

impl Default for UnitLogs {
    fn default() -> Self {
        Self::new(DEFAULT_MEMORY_LINES)
    }
}

fn realtime_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl UnitLogs {
    pub fn new(memory_lines: usize) -> Self {
        Self::with_rotation(memory_lines, Rotation::default())
    }

    pub fn with_rotation(memory_lines: usize, rotation: Rotation) -> Self {
        Self {
            per_unit: BTreeMap::new(),
            memory_lines: memory_lines.max(1),
            next_seq: 1,
            dir: None,
            rotation: Rotation {
                max_file_bytes: rotation.max_file_bytes.max(128),
                max_files: rotation.max_files.max(1),
            },
            open: BTreeMap::new(),
            failing: false,
        }
    }

    /// Starts persisting to `dir` (created if missing) and writes out the lines held in memory so
    /// far. Called once /var is writable; calling it again switches directories.
    pub fn set_dir(&mut self, dir: &Path) -> Result<(), UnitLogError> {
        std::fs::create_dir_all(dir).map_err(|source| UnitLogError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        self.open.clear();
        self.dir = Some(dir.to_path_buf());
        let held: Vec<(String, Vec<LogLine>)> = self
            .per_unit
            .iter()
            .map(|(u, ring)| (u.clone(), ring.iter().cloned().collect()))
            .collect();
        for (unit, lines) in held {
            for l in lines {
                self.persist(&unit, &l);
            }
        }
        Ok(())
    }

    /// The directory lines are persisted to, once set.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn rotation(&self) -> Rotation {
        self.rotation
    }

    fn persist(&mut self, unit: &str, line: &LogLine) {
        match self.write_line(unit, line) {
            Ok(()) => self.failing = false,
            Err(e) => {
                // Reopen next time: the file may have been removed or the disk repaired.
                self.open.remove(unit);
                if !self.failing {
                    log::warn!("unit logs: {e} (lines stay in memory; reported once)");
                    self.failing = true;
                }
            }
        }
    }

    fn write_line(&mut self, unit: &str, line: &LogLine) -> Result<(), UnitLogError> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        // The name becomes a file name: only names that cannot leave the directory.
        if !crate::control::names::valid_unit_name(unit) {
            return Ok(());
        }
        let text = file_line(line, self.rotation.max_file_bytes);
        let path = dir.join(format!("{unit}.log"));
        let needs_rotation = match self.open.get(unit) {
            Some(o) => o.size > 0 && o.size + text.len() as u64 > self.rotation.max_file_bytes,
            None => false,
        };
        if needs_rotation {
            self.open.remove(unit);
            rotate(&path, self.rotation.max_files)?;
        }
        if !self.open.contains_key(unit) {
            let file = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o640)
                .open(&path)
                .map_err(|source| UnitLogError::Open {
                    path: path.clone(),
                    source,
                })?;
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if size > 0 && size + text.len() as u64 > self.rotation.max_file_bytes {
                drop(file);
                rotate(&path, self.rotation.max_files)?;
                return self.write_line(unit, line);
            }
            self.open.insert(unit.to_string(), OpenLog { file, size });
        }
        if let Some(o) = self.open.get_mut(unit) {
            o.file
                .write_all(text.as_bytes())
                .map_err(|source| UnitLogError::Write { path, source })?;
            o.size += text.len() as u64;
        }
        Ok(())
    }

    /// Appends one line (without its newline). Invalid UTF-8 is replaced, never dropped.
    pub fn push(&mut self, unit: &str, stream: Stream, line: &[u8]) {
        let text = String::from_utf8_lossy(line).into_owned();
        let entry = LogLine {
            seq: self.next_seq,
            realtime_us: realtime_us(),
            stream,
            text,
        };
        self.next_seq += 1;
        let ring = self.per_unit.entry(unit.to_string()).or_default();
        if ring.len() >= self.memory_lines {
            ring.pop_front();
        }
        ring.push_back(entry.clone());
        if self.dir.is_some() {
            self.persist(unit, &entry);
        }
    }

    /// Frees a unit's ring and closes its log file (the unit was removed; its files stay on disk).
    pub fn forget(&mut self, unit: &str) {
        self.per_unit.remove(unit);
        self.open.remove(unit);
    }

    /// The last `n` lines of a unit, oldest first.
    pub fn tail(&self, unit: &str, n: usize) -> Vec<LogLine> {
        match self.per_unit.get(unit) {
            Some(ring) => ring
                .iter()
                .skip(ring.len().saturating_sub(n))
                .cloned()
                .collect(),
            None => Vec::new(),
        }
    }

    /// Lines of a unit with a sequence number greater than `seq`, oldest first.
    pub fn since(&self, unit: &str, seq: u64) -> Vec<LogLine> {
        match self.per_unit.get(unit) {
            Some(ring) => ring.iter().filter(|l| l.seq > seq).cloned().collect(),
            None => Vec::new(),
        }
    }

    /// The sequence number the next line will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }
}

/// Shifts `<path>.1..` up by one, dropping the oldest so at most `max_files` files remain, and moves
/// the live file to `<path>.1`.
fn rotate(path: &Path, max_files: usize) -> Result<(), UnitLogError> {
    let numbered = |n: usize| PathBuf::from(format!("{}.{n}", path.display()));
    let err = |p: PathBuf| move |source| UnitLogError::Rotate { path: p, source };
    let ignore_missing = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    };
    if max_files <= 1 {
        return ignore_missing(std::fs::remove_file(path)).map_err(err(path.to_path_buf()));
    }
    let oldest = numbered(max_files - 1);
    ignore_missing(std::fs::remove_file(&oldest)).map_err(err(oldest))?;
    for n in (1..max_files - 1).rev() {
        let from = numbered(n);
        ignore_missing(std::fs::rename(&from, numbered(n + 1))).map_err(err(from))?;
    }
    ignore_missing(std::fs::rename(path, numbered(1))).map_err(err(path.to_path_buf()))
}

/// A line as stored on disk: `<RFC 3339 UTC time> <stream> <text>\n`, cut so that it fits in one
/// file.
fn file_line(l: &LogLine, max_bytes: u64) -> String {
    let stream = match l.stream {
        Stream::Stdout => "stdout",
        Stream::Stderr => "stderr",
        Stream::Init => "init",
    };
    let mut s = format!("{} {stream} {}", format_timestamp(l.realtime_us), l.text);
    let max = (max_bytes as usize).saturating_sub(1);
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s.push('\n');
    s
}

/// Microseconds since the Unix epoch as RFC 3339 UTC: `2026-11-27T03:26:31.123456Z`.
pub fn format_timestamp(realtime_us: u64) -> String {
    let secs = realtime_us / 1_000_000;
    let micros = realtime_us % 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date, by counting 400-year eras (each exactly
/// 146097 days) and placing the year start in March so that the leap day falls at the end.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("lifsea-unitlog-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        p
    }

    fn dir_bytes(dir: &Path) -> (u64, usize) {
        let mut total = 0;
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            total += e.unwrap().metadata().unwrap().len();
            n += 1;
        }
        (total, n)
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000Z");
        // 2000-02-29 12:34:56.789 UTC, a leap day in a year divisible by 400.
        assert_eq!(
            format_timestamp(951_827_696_789_000),
            "2000-02-29T12:34:56.789000Z"
        );
        assert_eq!(
            format_timestamp(1_795_750_000_000_001),
            "2026-11-27T03:26:40.000001Z"
        );
    }

    #[test]
    fn rotation_bounds_disk_use() {
        let dir = tmp("rotate");
        let rot = Rotation {
            max_file_bytes: 4096,
            max_files: 3,
        };
        let mut logs = UnitLogs::with_rotation(100, rot);
        logs.set_dir(&dir).unwrap();
        for i in 0..5000 {
            logs.push(
                "svc",
                Stream::Stdout,
                format!("line number {i} with some padding text").as_bytes(),
            );
        }
        let (total, files) = dir_bytes(&dir);
        assert!(
            total <= rot.max_total_bytes(),
            "{total} > {}",
            rot.max_total_bytes()
        );
        assert_eq!(files, 3);
        assert!(
            total > rot.max_total_bytes() * 2 / 3,
            "rotation threw away too much: {total}"
        );
        // One huge line is cut to fit instead of overflowing a file.
        logs.push("svc", Stream::Stderr, &vec![b'x'; 10_000]);
        logs.push("svc", Stream::Stdout, b"the last line");
        let (total, files) = dir_bytes(&dir);
        assert!(
            total <= rot.max_total_bytes(),
            "{total} > {}",
            rot.max_total_bytes()
        );
        assert_eq!(files, 3);
        for n in ["svc.log", "svc.log.1", "svc.log.2"] {
            assert!(std::fs::metadata(dir.join(n)).unwrap().len() <= 4096, "{n}");
        }
        let live = std::fs::read_to_string(dir.join("svc.log")).unwrap();
        assert!(live.ends_with(" stdout the last line\n"), "{live}");
        let older = std::fs::read_to_string(dir.join("svc.log.2")).unwrap();
        assert!(
            older.contains("line number 4"),
            "oldest file holds older lines"
        );
        assert_eq!(logs.tail("svc", 1000).len(), 100, "memory ring unaffected");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lines_before_set_dir_are_flushed_to_the_file() {
        let dir = tmp("flush");
        let mut logs = UnitLogs::new(10);
        logs.push("a", Stream::Stdout, b"early one");
        logs.push("a", Stream::Init, b"early two");
        assert!(!dir.exists());
        logs.set_dir(&dir).unwrap();
        logs.push("a", Stream::Stderr, b"late");
        logs.push("../escape", Stream::Stdout, b"never a file");
        let text = std::fs::read_to_string(dir.join("a.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with(" stdout early one"));
        assert!(lines[1].ends_with(" init early two"));
        assert!(lines[2].ends_with(" stderr late"));
        assert!(
            lines[0].len() > 28 && lines[0].as_bytes()[10] == b'T',
            "{}",
            lines[0]
        );
        assert_eq!(dir_bytes(&dir).1, 1);
        assert!(!dir.parent().unwrap().join("escape.log").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unwritable_dir_keeps_memory_log() {
        let dir = tmp("gone");
        let mut logs = UnitLogs::new(10);
        logs.set_dir(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        logs.push("a", Stream::Stdout, b"x");
        logs.push("a", Stream::Stdout, b"y");
        assert_eq!(logs.tail("a", 10).len(), 2);
        assert!(!dir.exists());
    }
}
