//! A boot step that ran to completion while the subsystems were built (after the boot dispatch)
//! and is reported from the event loop's first pass: its two timeline stamps, taken while it
//! ran, and the fact units wait for. The identity (`machine`) and the late mounts (`mounts`) are
//! such steps; each keeps its own outcome for `initctl status` and hands the reporting here.

use std::time::Instant;

use crate::supervisor::subsystem::Notice;
use crate::timeline::{boottime_us, SubjectKind, TimelineEvent};

/// When the step ran, and whether its fact has been reported.
pub struct DoneStep {
    stage: &'static str,
    fact: &'static str,
    started_us: u64,
    finished_us: u64,
    reported: bool,
}

impl DoneStep {
    /// The step `stage` (its timeline name), begun at `started_us` and finished now.
    pub fn finished_now(stage: &'static str, fact: &'static str, started_us: u64) -> DoneStep {
        DoneStep {
            stage,
            fact,
            started_us,
            finished_us: boottime_us(),
            reported: false,
        }
    }

    /// Due at once until reported: the first loop pass reports the fact.
    pub fn deadline(&self) -> Option<Instant> {
        (!self.reported).then(Instant::now)
    }

    /// The stamps and the fact, once; nothing on later calls.
    pub fn report(&mut self, out: &mut Vec<Notice>) {
        if self.reported {
            return;
        }
        self.reported = true;
        for (at_us, event) in [
            (self.started_us, TimelineEvent::Start),
            (self.finished_us, TimelineEvent::Ready),
        ] {
            out.push(Notice::StampAt {
                at_us,
                kind: SubjectKind::Stage,
                name: self.stage.into(),
                event,
            });
        }
        out.push(Notice::FactReached(self.fact.into()));
    }

    pub fn reported(&self) -> bool {
        self.reported
    }
}
