//! The supervisor's side of its subsystems (networking, devices, boot counting): carrying out
//! what they report (facts, timeline stamps, shutdown requests) and offering them what they judge
//! from (the facts units wait for, the units' phases).

use std::time::Instant;

use super::event_loop::Supervisor;
use super::state::Event;
use super::subsystem::{Notice, UnitsView};

impl Supervisor {
    /// Carries out what subsystems reported.
    pub(super) fn apply_notices(&mut self, notices: Vec<Notice>) {
        for n in notices {
            match n {
                Notice::FactReached(f) => self.reach_fact(&f),
                Notice::FactFailed { fact, reason } => {
                    self.dispatch(Event::FactFailed { fact, reason })
                }
                Notice::Stamp { kind, name, event } => {
                    self.boot.timeline.mark(kind, &name, event);
                    log::debug!("timeline: {name} {event:?}");
                }
                Notice::StampAt {
                    at_us,
                    kind,
                    name,
                    event,
                } => self.boot.timeline.mark_at(at_us, kind, &name, event),
                Notice::Shutdown(kind) => {
                    if self.shutdown.kind.is_none() {
                        log::info!("shutdown requested ({kind:?})");
                        self.begin_shutdown(kind);
                    }
                }
            }
        }
    }

    /// Tells subsystems which facts units wait for, when that set has grown (device facts).
    pub(super) fn offer_wanted_facts(&mut self, now: Instant) {
        let gen = self.core.facts_generation();
        if gen == self.facts_gen_offered {
            return;
        }
        self.facts_gen_offered = gen;
        let pending = self.core.pending_facts();
        let mut notices = Vec::new();
        for s in &mut self.subsystems {
            s.facts_wanted(&pending, now, &mut notices);
        }
        self.apply_notices(notices);
    }

    /// Gives the units' phases to the subsystems that judge health from them.
    pub(super) fn offer_units(&mut self, now: Instant, out: &mut Vec<Notice>) {
        if !self.subsystems.iter().any(|s| s.wants_units()) {
            return;
        }
        let view = UnitsView {
            settled: self.core.boot_settled(),
            units: self
                .core
                .entries()
                .map(|(n, e)| (n.clone(), e.enabled, e.phase.as_str()))
                .collect(),
        };
        for s in self.subsystems.iter_mut().filter(|s| s.wants_units()) {
            s.units_seen(&view, now, out);
        }
    }

    /// Status of the subsystem called `name`, for the control API.
    pub(super) fn subsystem_status(&self, name: &str) -> Option<serde_json::Value> {
        self.subsystems
            .iter()
            .find(|s| s.name() == name)
            .map(|s| s.status())
    }
}
