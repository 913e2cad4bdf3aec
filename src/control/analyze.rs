//! Boot analysis from the timeline (pure): when each stage, fact and unit started and became ready,
//! the blame list, and the critical chain, in the manner of systemd-analyze.
//!
//! The critical chain answers "what was the last unit waiting for?": starting from the unit that
//! became ready last, it repeatedly steps to the `after`/`requires`/`wants` predecessor (all three order the start) that became ready
//! last before the unit started, because that predecessor is what held it back.

use crate::collections::keyset::KeySet;
use crate::collections::strmap::{KeyMap, StrMap};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::ops::UnitStatus;
use super::table::{fmt_duration_us, fmt_seconds_us, Table};
use crate::timeline::{Stamp, SubjectKind, TimelineEvent};

/// One stage, fact or unit on the boot timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: SubjectKind,
    pub name: String,
    pub start_us: Option<u64>,
    pub ready_us: Option<u64>,
    pub failed_us: Option<u64>,
    /// From start to ready, when both are known.
    pub duration_us: Option<u64>,
}

/// One link of the critical chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    pub kind: SubjectKind,
    pub name: String,
    pub start_us: Option<u64>,
    pub ready_us: u64,
    pub duration_us: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Analysis {
    pub boot_complete_us: Option<u64>,
    /// Stages first, then facts and units, each group by start time.
    pub entries: Vec<Entry>,
    /// Units by start-to-ready time, longest first.
    pub blame: Vec<Entry>,
    /// From the unit that became ready last down to the first link, which waited for nothing.
    pub critical_chain: Vec<ChainLink>,
}

fn kind_rank(k: SubjectKind) -> u8 {
    match k {
        SubjectKind::Stage => 0,
        SubjectKind::Fact => 1,
        SubjectKind::Unit => 2,
    }
}

/// Folds the stamps into one entry per subject: the first start, the first ready at or after it,
/// the first failure. Later restarts are not boot time and are left out.
pub fn entries(stamps: &[Stamp]) -> Vec<Entry> {
    // Keyed by the kind's rank digit and the name: the order of the tuple `(rank, name)`, in the
    // string-keyed tree the crate links anyway (a tuple key would link a B-tree of its own).
    let mut by: StrMap<Entry> = StrMap::new();
    let mut sorted: Vec<&Stamp> = stamps.iter().collect();
    crate::collections::sort::sort_by_key(&mut sorted, |s| s.at_us);
    for s in sorted {
        let e = by
            .entry(format!("{}{}", kind_rank(s.kind), s.name))
            .or_insert_with(|| Entry {
                kind: s.kind,
                name: s.name.clone(),
                start_us: None,
                ready_us: None,
                failed_us: None,
                duration_us: None,
            });
        match s.event {
            TimelineEvent::Start if e.start_us.is_none() => e.start_us = Some(s.at_us),
            TimelineEvent::Ready if e.ready_us.is_none() => e.ready_us = Some(s.at_us),
            TimelineEvent::Failed if e.failed_us.is_none() => e.failed_us = Some(s.at_us),
            _ => {}
        }
    }
    let mut v: Vec<Entry> = by
        .into_iter()
        .map(|(_, e)| e)
        .filter(|e| e.start_us.is_some() || e.ready_us.is_some() || e.failed_us.is_some())
        .map(|mut e| {
            e.duration_us = match (e.start_us, e.ready_us) {
                (Some(s), Some(r)) => Some(r.saturating_sub(s)),
                _ => None,
            };
            e
        })
        .collect();
    crate::collections::sort::sort_by_key(&mut v, |e| {
        let t = e.start_us.or(e.ready_us).or(e.failed_us).unwrap_or(0);
        (kind_rank(e.kind).min(1), t, e.name.clone())
    });
    v
}

/// Units by start-to-ready time, longest first (ties by name).
pub fn blame(entries: &[Entry]) -> Vec<Entry> {
    let mut v: Vec<Entry> = entries
        .iter()
        .filter(|e| e.kind == SubjectKind::Unit && e.duration_us.is_some())
        .cloned()
        .collect();
    crate::collections::sort::sort_by(&mut v, |a, b| {
        b.duration_us.cmp(&a.duration_us).then(a.name.cmp(&b.name))
    });
    v
}

/// The chain of predecessors that decided when the last unit became ready. `deps` maps a unit to
/// its `after`, `requires` and `wants` names (units or facts).
pub fn critical_chain(entries: &[Entry], deps: &StrMap<Vec<String>>) -> Vec<ChainLink> {
    let subjects: KeyMap<&str, &Entry> = entries
        .iter()
        .filter(|e| e.kind != SubjectKind::Stage)
        .map(|e| (e.name.as_str(), e))
        .collect();
    let last = entries
        .iter()
        .filter(|e| e.kind == SubjectKind::Unit)
        .filter_map(|e| e.ready_us.map(|r| (r, e)))
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.name.cmp(&a.1.name)));
    let Some((_, mut cur)) = last else {
        return Vec::new();
    };
    let mut chain = Vec::new();
    let mut seen = KeySet::new();
    while let Some(ready) = cur.ready_us {
        chain.push(ChainLink {
            kind: cur.kind,
            name: cur.name.clone(),
            start_us: cur.start_us,
            ready_us: ready,
            duration_us: cur.duration_us,
        });
        seen.insert(cur.name.clone());
        let began = cur.start_us.unwrap_or(ready);
        let next = deps
            .get(&cur.name)
            .into_iter()
            .flatten()
            .filter(|d| !seen.contains(*d))
            .filter_map(|d| subjects.get(d.as_str()).copied())
            .filter_map(|e| e.ready_us.filter(|r| *r <= began).map(|r| (r, e)))
            .max_by(|a, b| a.0.cmp(&b.0).then(b.1.name.cmp(&a.1.name)));
        match next {
            Some((_, e)) => cur = e,
            None => break,
        }
    }
    chain
}

/// `after` ∪ `requires` ∪ `wants` of every unit, from `list`.
pub fn deps_from_units(units: &[UnitStatus]) -> StrMap<Vec<String>> {
    units
        .iter()
        .map(|u| {
            let mut d: Vec<String> = u
                .after
                .iter()
                .chain(&u.requires)
                .chain(&u.wants)
                .cloned()
                .collect();
            crate::collections::sort::sort(&mut d);
            d.dedup();
            (u.name.clone(), d)
        })
        .collect()
}

pub fn analyze(stamps: &[Stamp], units: &[UnitStatus]) -> Analysis {
    let entries = entries(stamps);
    let deps = deps_from_units(units);
    Analysis {
        boot_complete_us: stamps
            .iter()
            .filter(|s| s.event == TimelineEvent::BootComplete)
            .map(|s| s.at_us)
            .min(),
        blame: blame(&entries),
        critical_chain: critical_chain(&entries, &deps),
        entries,
    }
}

fn kind_word(k: SubjectKind) -> &'static str {
    match k {
        SubjectKind::Stage => "stage",
        SubjectKind::Fact => "fact",
        SubjectKind::Unit => "unit",
    }
}

fn opt_time(t: Option<u64>) -> String {
    t.map_or_else(|| "-".into(), fmt_seconds_us)
}

/// The report `initctl analyze` prints: timeline table, critical chain, blame.
pub fn render_text(a: &Analysis) -> String {
    let mut out = String::new();
    match a.boot_complete_us {
        Some(t) => {
            let _ = writeln!(
                out,
                "Boot complete {} after kernel start.",
                fmt_seconds_us(t)
            );
        }
        None => out.push_str("Boot not complete yet.\n"),
    }
    out.push('\n');
    let mut t = Table::new(&["KIND", "NAME", "STARTED", "READY", "TOOK"]);
    for e in &a.entries {
        let ready = match (e.ready_us, e.failed_us) {
            (Some(r), _) => fmt_seconds_us(r),
            (None, Some(f)) => format!("failed {}", fmt_seconds_us(f)),
            (None, None) => "-".into(),
        };
        t.row(vec![
            kind_word(e.kind).into(),
            e.name.clone(),
            opt_time(e.start_us),
            ready,
            e.duration_us.map_or_else(|| "-".into(), fmt_duration_us),
        ]);
    }
    out.push_str(&t.render());
    out.push_str(
        "\nCritical chain (@ when it started, + how long until ready; times after kernel start):\n",
    );
    if a.critical_chain.is_empty() {
        out.push_str("  (no unit has become ready)\n");
    }
    for (depth, l) in a.critical_chain.iter().enumerate() {
        let prefix = if depth == 0 {
            String::new()
        } else {
            format!("{}└─", "  ".repeat(depth - 1))
        };
        let at = fmt_seconds_us(l.start_us.unwrap_or(l.ready_us));
        match l.duration_us {
            Some(d) => {
                let _ = writeln!(out, "{prefix}{} @{at} +{}", l.name, fmt_duration_us(d));
            }
            None => {
                let _ = writeln!(out, "{prefix}{} @{at}", l.name);
            }
        }
    }
    out.push_str("\nBlame (start to ready):\n");
    for e in &a.blame {
        let _ = writeln!(
            out,
            "{:>10} {}",
            fmt_duration_us(e.duration_us.unwrap_or(0)),
            e.name
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(at_ms: u64, kind: SubjectKind, name: &str, event: TimelineEvent) -> Stamp {
        Stamp {
            at_us: at_ms * 1000,
            kind,
            name: name.into(),
            event,
        }
    }

    /// A known DAG: network fact at 300 ms; etcd (after network) 300→900; containerd (after
    /// network) 310→600; kubelet (requires containerd, after etcd) must wait for etcd (ready later)
    /// 900→1500; logger has no deps 100→1200; broken fails.
    fn known() -> (Vec<Stamp>, StrMap<Vec<String>>) {
        use SubjectKind::*;
        use TimelineEvent::*;
        let stamps = vec![
            st(0, Stage, "stage1", Start),
            st(50, Stage, "stage1", Ready),
            st(50, Stage, "stage2", Start),
            st(300, Fact, "network", Ready),
            st(100, Unit, "logger", Start),
            st(1200, Unit, "logger", Ready),
            st(300, Unit, "etcd", Start),
            st(900, Unit, "etcd", Ready),
            st(310, Unit, "containerd", Start),
            st(600, Unit, "containerd", Ready),
            st(900, Unit, "kubelet", Start),
            st(1500, Unit, "kubelet", Ready),
            st(400, Unit, "broken", Start),
            st(450, Unit, "broken", Failed),
            // A later restart must not count as boot time.
            st(5000, Unit, "containerd", Start),
            st(5200, Unit, "containerd", Ready),
            st(1500, Stage, "boot", BootComplete),
        ];
        let mut deps = StrMap::new();
        deps.insert("etcd".to_string(), vec!["network".to_string()]);
        deps.insert("containerd".to_string(), vec!["network".to_string()]);
        deps.insert(
            "kubelet".to_string(),
            vec!["containerd".to_string(), "etcd".to_string()],
        );
        deps.insert("logger".to_string(), vec![]);
        (stamps, deps)
    }

    #[test]
    fn critical_chain_follows_the_latest_predecessor() {
        let (stamps, deps) = known();
        let e = entries(&stamps);
        let chain = critical_chain(&e, &deps);
        let names: Vec<&str> = chain.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["kubelet", "etcd", "network"]);
        assert_eq!(chain[0].start_us, Some(900_000));
        assert_eq!(chain[0].duration_us, Some(600_000));
        assert_eq!(chain[1].duration_us, Some(600_000));
        assert_eq!(chain[2].kind, SubjectKind::Fact);
        assert_eq!(chain[2].duration_us, None);
    }

    #[test]
    fn wants_orders_the_chain_like_after() {
        let status = |name: &str, wants: &[&str]| UnitStatus {
            name: name.into(),
            wants: wants.iter().map(|w| w.to_string()).collect(),
            ..Default::default()
        };
        let deps = deps_from_units(&[status("check", &["containerd"]), status("containerd", &[])]);
        let stamps = vec![
            st(100, SubjectKind::Unit, "containerd", TimelineEvent::Start),
            st(2100, SubjectKind::Unit, "containerd", TimelineEvent::Ready),
            st(2110, SubjectKind::Unit, "check", TimelineEvent::Start),
            st(2112, SubjectKind::Unit, "check", TimelineEvent::Ready),
        ];
        let chain = critical_chain(&entries(&stamps), &deps);
        let names: Vec<&str> = chain.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["check", "containerd"]);
    }

    #[test]
    fn blame_sorts_by_start_to_ready() {
        let (stamps, _) = known();
        let b = blame(&entries(&stamps));
        let got: Vec<(&str, u64)> = b
            .iter()
            .map(|e| (e.name.as_str(), e.duration_us.unwrap() / 1000))
            .collect();
        assert_eq!(
            got,
            [
                ("logger", 1100),
                ("etcd", 600),
                ("kubelet", 600),
                ("containerd", 290)
            ]
        );
    }

    #[test]
    fn entries_take_first_boot_transitions() {
        let (stamps, _) = known();
        let e = entries(&stamps);
        let c = e.iter().find(|e| e.name == "containerd").unwrap();
        assert_eq!((c.start_us, c.ready_us), (Some(310_000), Some(600_000)));
        let b = e.iter().find(|e| e.name == "broken").unwrap();
        assert_eq!((b.ready_us, b.failed_us), (None, Some(450_000)));
        assert_eq!(e[0].name, "stage1");
        assert_eq!(e[0].kind, SubjectKind::Stage);
    }

    #[test]
    fn text_report_prints_chain_like_systemd() {
        let (stamps, deps) = known();
        let units: Vec<UnitStatus> = Vec::new();
        let mut a = analyze(&stamps, &units);
        a.critical_chain = critical_chain(&a.entries, &deps);
        assert_eq!(a.boot_complete_us, Some(1_500_000));
        let text = render_text(&a);
        assert!(
            text.contains("kubelet @0.900s +600ms\n└─etcd @0.300s +600ms\n  └─network @0.300s\n"),
            "{text}"
        );
        assert!(text.contains("Boot complete 1.500s"), "{text}");
        assert!(text.contains("failed 0.450s"), "{text}");
    }

    #[test]
    fn no_ready_unit_gives_empty_chain() {
        let stamps = vec![st(1, SubjectKind::Unit, "a", TimelineEvent::Start)];
        assert!(critical_chain(&entries(&stamps), &StrMap::new()).is_empty());
    }
}
