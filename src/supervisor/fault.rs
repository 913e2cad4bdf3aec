//! Test-only fault injection (cargo feature `fault-injection`, never part of a production build):
//! panics inside the event loop at points a test names, so that tests can prove the loop survives
//! a bug and rebuilds what the panic lost (issue 12, finding 3).
//!
//! `LIFSEA_FAULT` holds `;`-separated triggers `<when>:<event>[:<unit>]`, each firing once:
//! `when` is `before` (the event was taken off the queue, the core never saw it) or `after` (the
//! core moved, its actions are lost); `event` is the event's kind in kebab case (`boot`, `exited`,
//! `spawned`, `shutdown`, ...); `unit`, when given, must match the event's unit.

use std::sync::Mutex;

use super::state::Event;

static TRIGGERS: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Whether the event loop is at an injection point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Before,
    After,
}

fn describe(ev: &Event) -> (&'static str, Option<&str>) {
    match ev {
        Event::Boot => ("boot", None),
        Event::Start(u) => ("start", Some(u)),
        Event::Stop(u) => ("stop", Some(u)),
        Event::Restart(u) => ("restart", Some(u)),
        Event::FactReached(f) => ("fact-reached", Some(f)),
        Event::FactFailed { fact, .. } => ("fact-failed", Some(fact)),
        Event::Spawned { unit, .. } => ("spawned", Some(unit)),
        Event::SpawnFailed { unit, .. } => ("spawn-failed", Some(unit)),
        Event::Ready(u) => ("ready", Some(u)),
        Event::MainPid { unit, .. } => ("main-pid", Some(unit)),
        Event::Exited { unit, .. } => ("exited", Some(unit)),
        Event::Timer { unit, .. } => ("timer", Some(unit)),
        Event::GroupEmpty(u) => ("group-empty", Some(u)),
        Event::Condition { unit, .. } => ("condition", Some(unit)),
        Event::Shutdown => ("shutdown", None),
    }
}

/// Panics when a trigger in `LIFSEA_FAULT` matches this point (once per trigger).
pub fn point(when: When, ev: &Event) {
    let Ok(mut guard) = TRIGGERS.lock() else {
        return;
    };
    let triggers = guard.get_or_insert_with(|| {
        std::env::var("LIFSEA_FAULT")
            .unwrap_or_default()
            .split(';')
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    });
    let (kind, unit) = describe(ev);
    let word = match when {
        When::Before => "before",
        When::After => "after",
    };
    let hit = triggers.iter().position(|t| {
        let mut parts = t.splitn(3, ':');
        parts.next() == Some(word)
            && parts.next() == Some(kind)
            && parts.next().map_or(true, |u| Some(u) == unit)
    });
    if let Some(i) = hit {
        let t = triggers.remove(i);
        drop(guard);
        panic!("injected fault {t}");
    }
}
