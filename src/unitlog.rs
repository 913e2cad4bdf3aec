//! Per-unit service output: timestamped lines in a bounded in-memory ring per unit.
//!
//! The supervisor splits pipe output into lines and pushes them here; the control API reads them
//! (`initctl logs`, `-f` follows by sequence number).

use std::collections::{BTreeMap, VecDeque};

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

#[derive(Debug)]
pub struct UnitLogs {
    per_unit: BTreeMap<String, VecDeque<LogLine>>,
    memory_lines: usize,
    next_seq: u64,
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
        Self {
            per_unit: BTreeMap::new(),
            memory_lines: memory_lines.max(1),
            next_seq: 1,
        }
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
        ring.push_back(entry);
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
