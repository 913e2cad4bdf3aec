//! Per-unit service output: timestamped lines in a bounded in-memory ring per unit, and, once a log
//! directory is set, in `<dir>/<unit>.log` files with size-based rotation.
//!
//! The supervisor splits pipe output into lines and pushes them here; the control API reads them
//! (`initctl logs`, `-f` follows by sequence number). Early in boot /var is not writable yet, so
//! lines live only in memory; `set_dir` is called when it becomes writable and writes out what the
//! ring still holds. Disk use per unit is bounded by `Rotation`: at most `max_files` files of at
//! most `max_file_bytes` each.
//!
//! PID 1 must not spend its loop in write(2): lines for the disk are queued (`disk.rs`) and written
//! by `flush`, once per loop iteration, one write per unit, or earlier when the queue reaches its
//! bound. A failing disk (/var full) never stops the in-memory log: lines that cannot be written
//! are dropped from the disk and counted per unit (`dropped`, shown by `initctl status`), the init
//! logs the failure once per episode, and when writing works again the file and the ring get a
//! line saying how many lines are missing from the file.

mod disk;
#[cfg(test)]
mod tests;

use crate::collections::strmap::StrMap;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use disk::Disk;

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
pub struct UnitLogs {
    per_unit: StrMap<VecDeque<LogLine>>,
    memory_lines: usize,
    next_seq: u64,
    disk: Disk,
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
            per_unit: StrMap::new(),
            memory_lines: memory_lines.max(1),
            next_seq: 1,
            disk: Disk::new(Rotation {
                max_file_bytes: rotation.max_file_bytes.max(128),
                max_files: rotation.max_files.max(1),
            }),
        }
    }

    /// Starts persisting to `dir` (created if missing) and writes out the lines held in memory so
    /// far. Called once /var is writable; calling it again switches directories.
    pub fn set_dir(&mut self, dir: &Path) -> Result<(), UnitLogError> {
        std::fs::create_dir_all(dir).map_err(|source| UnitLogError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        self.flush();
        self.disk.set_dir(dir);
        for (unit, ring) in &self.per_unit {
            for l in ring {
                self.disk.queue(unit, l);
            }
        }
        self.flush();
        Ok(())
    }

    /// The directory lines are persisted to, once set.
    pub fn dir(&self) -> Option<&Path> {
        self.disk.dir()
    }

    pub fn rotation(&self) -> Rotation {
        self.disk.rotation()
    }

    /// Appends one line (without its newline). Invalid UTF-8 is replaced, never dropped. The line
    /// reaches the disk at the next `flush` (or now, if the queue is at its bound).
    pub fn push(&mut self, unit: &str, stream: Stream, line: &[u8]) {
        let entry = self.push_ring(unit, stream, String::from_utf8_lossy(line).into_owned());
        if self.disk.dir().is_some() && self.disk.queue(unit, &entry) {
            self.flush();
        }
    }

    /// Adds a line to the unit's ring only.
    fn push_ring(&mut self, unit: &str, stream: Stream, text: String) -> LogLine {
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
        entry
    }

    /// Writes the queued lines: one write per unit. The event loop calls it once per iteration
    /// and before the supervisor returns at shutdown. What the disk refuses is counted, and the
    /// unit's ring says so (the file says so too, once writing works again).
    pub fn flush(&mut self) {
        for (unit, text) in self.disk.flush(realtime_us()) {
            self.push_ring(&unit, Stream::Init, text);
        }
    }

    /// Lines of `unit` that could not be written to its log file (they were kept in memory).
    pub fn dropped(&self, unit: &str) -> u64 {
        self.disk.dropped(unit)
    }

    /// Frees a unit's ring and closes its log file (the unit was removed; its files stay on disk).
    pub fn forget(&mut self, unit: &str) {
        self.flush();
        self.per_unit.remove(unit);
        self.disk.forget(unit);
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
