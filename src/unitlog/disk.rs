//! The disk half of the unit logs: a bounded queue of formatted lines, written per unit in one
//! write(2) when the loop flushes, rotated by size, and the bookkeeping of a failing disk.
//!
//! Why a queue: a chatty service produced one write(2) per line on PID 1's only thread. Now a
//! loop iteration costs at most one write per unit (plus a rotation when a file fills up: a few
//! renames and the unlink of the oldest file, at most `QUEUE_BYTES / max_file_bytes + 1` per
//! flush, so one with the default 1 MiB files). The queue holds at most `QUEUE_BYTES` (plus one
//! line): reaching it flushes at once.
//!
//! A failed write is undone (the file is cut back to its last whole line, which works on a full
//! disk because it frees space), its lines are counted as dropped, and the first failure of an
//! episode is logged; nothing is retried, so a full disk costs one failed write per unit per
//! iteration and no memory.

use crate::collections::strmap::StrMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{format_timestamp, LogLine, Rotation, Stream, UnitLogError};

/// Bytes of formatted lines queued before a flush is forced.
pub(super) const QUEUE_BYTES: usize = 256 * 1024;

#[derive(Debug)]
struct OpenLog {
    file: File,
    size: u64,
}

#[derive(Debug)]
pub(super) struct Disk {
    dir: Option<PathBuf>,
    rotation: Rotation,
    open: StrMap<OpenLog>,
    queued: StrMap<Vec<String>>,
    queued_bytes: usize,
    /// Lines that never reached the unit's file, since the init started.
    dropped: StrMap<u64>,
    /// Lines dropped in the current episode and not yet reported in the unit's file.
    unreported: StrMap<u64>,
    /// Writing fails: the first error of the episode (logged once).
    failing: Option<String>,
}

impl Disk {
    pub(super) fn new(rotation: Rotation) -> Self {
        Self {
            dir: None,
            rotation,
            open: StrMap::new(),
            queued: StrMap::new(),
            queued_bytes: 0,
            dropped: StrMap::new(),
            unreported: StrMap::new(),
            failing: None,
        }
    }

    pub(super) fn set_dir(&mut self, dir: &Path) {
        self.open.clear();
        self.dir = Some(dir.to_path_buf());
    }

    pub(super) fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub(super) fn rotation(&self) -> Rotation {
        self.rotation
    }

    pub(super) fn dropped(&self, unit: &str) -> u64 {
        self.dropped.get(unit).copied().unwrap_or(0)
    }

    /// Queues a line for the unit's file; true when the queue reached its bound (flush now).
    pub(super) fn queue(&mut self, unit: &str, line: &LogLine) -> bool {
        // The name becomes a file name: only names that cannot leave the directory.
        if self.dir.is_none() || !crate::control::names::valid_unit_name(unit) {
            return false;
        }
        let text = file_line(line, self.rotation.max_file_bytes);
        self.queued_bytes += text.len();
        self.queued.entry(unit.to_string()).or_default().push(text);
        self.queued_bytes >= QUEUE_BYTES
    }

    /// Forgets a removed unit: its open file, its queue and its counters.
    pub(super) fn forget(&mut self, unit: &str) {
        self.open.remove(unit);
        if let Some(lines) = self.queued.remove(unit) {
            self.queued_bytes -= lines.iter().map(String::len).sum::<usize>();
        }
        self.dropped.remove(unit);
        self.unreported.remove(unit);
    }

    /// Writes every queued line; returns the lines to add to units' rings (`unit`, text) saying
    /// what the disk refused, at the start of an episode and when it ends.
    pub(super) fn flush(&mut self, now_us: u64) -> Vec<(String, String)> {
        let mut notes = Vec::new();
        if self.queued.is_empty() {
            return notes;
        }
        let queued = std::mem::take(&mut self.queued);
        self.queued_bytes = 0;
        let mut failed = false;
        let mut succeeded = false;
        for (unit, mut lines) in queued {
            let missing = self.unreported.get(&unit).copied().unwrap_or(0);
            let note = format!(
                "{missing} lines of this log are missing from its file (the disk refused them)"
            );
            if missing > 0 {
                let marker = LogLine {
                    seq: 0,
                    realtime_us: now_us,
                    stream: Stream::Init,
                    text: note.clone(),
                };
                lines.insert(0, file_line(&marker, self.rotation.max_file_bytes));
            }
            let (written, error) = match self.write_lines(&unit, &lines) {
                Ok(()) => (lines.len(), None),
                Err((n, e)) => (n, Some(e)),
            };
            let marker_written = missing > 0 && written > 0;
            if marker_written {
                notes.push((unit.clone(), note));
            }
            let Some(e) = error else {
                succeeded = true;
                self.unreported.remove(&unit);
                continue;
            };
            failed = true;
            // The marker is not one of the unit's lines.
            let lost = (lines.len() - written) as u64 - u64::from(missing > 0 && !marker_written);
            *self.dropped.entry(unit.clone()).or_default() += lost;
            let still_missing = if marker_written { 0 } else { missing };
            self.unreported.insert(unit.clone(), still_missing + lost);
            if missing == 0 {
                notes.push((
                    unit.clone(),
                    format!("log file not written: {e}; lines are kept in memory only and counted"),
                ));
            }
            if self.failing.is_none() {
                log::warn!(
                    "unit logs: {e}; lines stay in memory and are counted as dropped from disk until writing works again (reported once)"
                );
                self.failing = Some(e.to_string());
            }
        }
        if succeeded && !failed && self.failing.take().is_some() {
            let total: u64 = self.dropped.values().sum();
            log::info!("unit logs: writing again ({total} lines dropped from disk so far)");
        }
        notes
    }

    /// Appends `lines` to the unit's file, rotating when the next line would not fit. On failure:
    /// how many lines were written, and the error.
    fn write_lines(&mut self, unit: &str, lines: &[String]) -> Result<(), (usize, UnitLogError)> {
        let Some(dir) = self.dir.clone() else {
            return Ok(());
        };
        let path = dir.join(format!("{unit}.log"));
        let max = self.rotation.max_file_bytes;
        let mut done = 0;
        while done < lines.len() {
            if !self.open.contains_key(unit) {
                let file = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .mode(0o640)
                    .open(&path)
                    .map_err(|source| {
                        (
                            done,
                            UnitLogError::Open {
                                path: path.clone(),
                                source,
                            },
                        )
                    })?;
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                // Kept open for the unit's life: out of the way of a spawn's descriptors.
                let file = File::from(crate::sys::process::park_fd(file.into()));
                self.open.insert(unit.to_string(), OpenLog { file, size });
            }
            let size = self.open.get(unit).map_or(0, |o| o.size);
            // Whole lines that fit; an empty file takes at least one (lines are cut to fit).
            let mut end = done;
            let mut bytes = 0u64;
            while end < lines.len()
                && (size + bytes + lines[end].len() as u64 <= max || (size == 0 && end == done))
            {
                bytes += lines[end].len() as u64;
                end += 1;
            }
            if end == done {
                self.open.remove(unit);
                rotate(&path, self.rotation.max_files).map_err(|e| (done, e))?;
                continue;
            }
            let chunk = lines[done..end].concat();
            if let Some(o) = self.open.get_mut(unit) {
                if let Err(source) = o.file.write_all(chunk.as_bytes()) {
                    // Undo a partial write so the file ends with a whole line; truncating frees
                    // space, so this works on a full disk too.
                    let _ = o.file.set_len(o.size);
                    self.open.remove(unit);
                    return Err((done, UnitLogError::Write { path, source }));
                }
                o.size += bytes;
            }
            done = end;
        }
        Ok(())
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
pub(super) fn file_line(l: &LogLine, max_bytes: u64) -> String {
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
