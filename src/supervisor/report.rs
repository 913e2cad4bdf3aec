//! `boot-timeline.json`: the timeline stamps and a per-unit summary, written once boot completes so
//! a harness (or a human) can see where the boot time went.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::collections::strmap::KeyMap;
use crate::timeline::{Stamp, TimelineEvent};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encoding boot timeline: {0}")]
    Encode(serde_json::Error),
}

#[derive(Debug, Serialize)]
pub struct UnitSummary {
    pub name: String,
    pub state: String,
    /// CLOCK_BOOTTIME µs of the first spawn and the first readiness.
    pub started_us: Option<u64>,
    pub ready_us: Option<u64>,
    pub restarts: u32,
    pub failure: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct BootReport<'a> {
    pub boot_complete_us: Option<u64>,
    pub entries: &'a [Stamp],
    pub units: Vec<UnitSummary>,
}

/// Builds the summary from timeline stamps and unit states (pure).
pub fn summarize<'a>(
    entries: &'a [Stamp],
    states: &[(String, String, u32, Option<String>)],
) -> BootReport<'a> {
    // Each name's first start and first readiness, found in one pass: a search per unit went
    // over the whole timeline each time (1,000 units: millions of string compares).
    // KeyMap: the `&str`-keyed tree the unit graph links anyway, not one more B-tree instance.
    let mut starts = KeyMap::<&str, u64>::default();
    let mut readies = KeyMap::<&str, u64>::default();
    for s in entries {
        let seen = match s.event {
            TimelineEvent::Start => &mut starts,
            TimelineEvent::Ready => &mut readies,
            _ => continue,
        };
        seen.entry(s.name.as_str()).or_insert(s.at_us);
    }
    let first = |seen: &KeyMap<&str, u64>, name: &str| seen.get(name).copied();
    BootReport {
        boot_complete_us: entries
            .iter()
            .find(|s| s.event == TimelineEvent::BootComplete)
            .map(|s| s.at_us),
        entries,
        units: states
            .iter()
            .map(|(name, state, restarts, failure)| UnitSummary {
                name: name.clone(),
                state: state.clone(),
                started_us: first(&starts, name),
                ready_us: first(&readies, name),
                restarts: *restarts,
                failure: failure.clone(),
            })
            .collect(),
    }
}

/// Writes `<run_dir>/boot-timeline.json` (via a temporary file and rename, so readers never see half).
pub fn write_boot_timeline(
    run_dir: &Path,
    entries: &[Stamp],
    states: &[(String, String, u32, Option<String>)],
) -> Result<(), ReportError> {
    let report = summarize(entries, states);
    let json = serde_json::to_vec_pretty(&report).map_err(ReportError::Encode)?;
    let path = run_dir.join("boot-timeline.json");
    let tmp = run_dir.join(".boot-timeline.json.tmp");
    std::fs::write(&tmp, json)
        .and_then(|_| std::fs::rename(&tmp, &path))
        .map_err(|source| {
            // A full /run leaves a partial file behind: it would only hold on to the space.
            let _ = std::fs::remove_file(&tmp);
            ReportError::Write { path, source }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::{SubjectKind, Timeline};

    #[test]
    fn summary_picks_first_start_and_ready() {
        let mut t = Timeline::new();
        t.mark_at(10, SubjectKind::Unit, "a", TimelineEvent::Start);
        t.mark_at(20, SubjectKind::Unit, "a", TimelineEvent::Ready);
        t.mark_at(30, SubjectKind::Unit, "a", TimelineEvent::Start);
        t.mark_at(40, SubjectKind::Stage, "boot", TimelineEvent::BootComplete);
        let states = vec![
            ("a".to_string(), "running".to_string(), 1, None),
            (
                "b".to_string(),
                "failed".to_string(),
                0,
                Some("exited 1".to_string()),
            ),
        ];
        let r = summarize(t.entries(), &states);
        assert_eq!(r.boot_complete_us, Some(40));
        assert_eq!(r.units[0].started_us, Some(10));
        assert_eq!(r.units[0].ready_us, Some(20));
        assert_eq!(r.units[1].ready_us, None);
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"failure\":\"exited 1\""), "{json}");
    }
}
