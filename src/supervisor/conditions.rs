//! Re-evaluating unit conditions (docs/units.md, "Conditions"): when units are installed, on every
//! reload, and then once a second while some unit is skipped, so kubelet starts without a reboot
//! once `/var/lib/kubelet/config.yaml` is written.
//!
//! A periodic look rather than inotify: the paths a condition names often sit in directories that
//! do not exist yet (`/var/lib/kubelet` before the node joins), which inotify cannot watch, and a
//! handful of stat(2) calls once a second, only while something is skipped, costs nothing
//! measurable. The verdict goes to the core as `Event::Condition`; the core decides what it means.

use std::time::{Duration, Instant};

use super::event_loop::Supervisor;
use super::state::Event;
use crate::units::condition::{stat_path, unmet};

/// How often skipped units' conditions are looked at again.
pub const CONDITION_RECHECK: Duration = Duration::from_secs(1);

impl Supervisor {
    /// Evaluates every unit's conditions now and tells the core what changed.
    pub(super) fn evaluate_conditions(&mut self, now: Instant) {
        // Every unit, not only those with conditions: a reload may have removed a skipped unit's.
        let names: Vec<String> = self.units.keys().cloned().collect();
        let words = if self.units.values().all(|u| u.conditions.is_empty()) {
            Vec::new()
        } else {
            std::fs::read_to_string("/proc/cmdline")
                .map(|t| crate::procfs::cmdline_words(&t))
                .unwrap_or_default()
        };
        let mut any_skipped = false;
        for name in names {
            let Some(unit) = self.units.get(&name) else {
                continue;
            };
            let verdict = unmet(&unit.conditions, &words, &mut |p| stat_path(p));
            any_skipped |= verdict.is_some();
            let Some(entry) = self.core.get(&name) else {
                continue;
            };
            if entry.skipped == verdict {
                continue;
            }
            match &verdict {
                Some(why) => log::info!("[ SKIP ] {name}: {why}"),
                None => log::info!("{name}: its conditions hold now"),
            }
            self.dispatch(Event::Condition {
                unit: name,
                unmet: verdict,
            });
        }
        self.next_condition_check = any_skipped.then(|| now + CONDITION_RECHECK);
    }

    /// The loop's periodic look, once due.
    pub(super) fn recheck_conditions(&mut self, now: Instant) {
        if self.next_condition_check.is_some_and(|t| t <= now) {
            self.evaluate_conditions(now);
        }
    }
}
