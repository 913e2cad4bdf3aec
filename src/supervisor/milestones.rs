//! What a unit's or fact's transition leaves behind: the timeline stamp, the console line, the
//! unit's own log line; and the moment the boot is complete (boot-timeline.json written).

use std::time::Instant;

use super::event_loop::Supervisor;
use super::state::Phase;
use crate::timeline::{SubjectKind, TimelineEvent};
use crate::unitlog::Stream;

impl Supervisor {
    /// Records a transition the core reported (`Action::Transition`): stamps the timeline (a
    /// start at the moment its exec was seen), prints the console line, and ends readiness
    /// watching once the unit has left its starting phase.
    pub(super) fn on_transition(
        &mut self,
        subject: SubjectKind,
        name: &str,
        event: TimelineEvent,
        detail: &str,
    ) {
        // A start is stamped when the exec was seen, which a batch of spawns may settle later.
        match self.io.spawning.take_exec_at(name) {
            Some(at) if event == TimelineEvent::Start => {
                self.boot.timeline.mark_at(at, subject, name, event)
            }
            _ => self.boot.timeline.mark(subject, name, event),
        }
        let suffix = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        };
        match (subject, event) {
            (SubjectKind::Fact, TimelineEvent::Failed) => {
                log::warn!("[FAILED] {name} not reached: {detail}")
            }
            (SubjectKind::Fact, _) => log::info!("[  OK  ] reached {name}"),
            (_, TimelineEvent::Ready) => {
                let ms = self
                    .boot
                    .spawned_at
                    .get(name)
                    .map(|t| t.elapsed().as_millis())
                    .unwrap_or(0);
                let what = if detail.is_empty() { "ready" } else { "done" };
                log::info!("[  OK  ] {name} {what} ({ms} ms)");
            }
            (_, TimelineEvent::Failed) => log::warn!("[FAILED] {name}: {detail}"),
            (_, TimelineEvent::Start) => {
                self.boot
                    .spawned_at
                    .insert(name.to_string(), Instant::now());
                log::debug!("started {name}{suffix}");
            }
            (_, TimelineEvent::Stopping) => log::info!("stopping {name}"),
            (_, TimelineEvent::Stopped) => log::info!("[ STOP ] {name}{suffix}"),
            (_, TimelineEvent::BootComplete) => {}
        }
        if subject == SubjectKind::Unit {
            let line = format!("{}{suffix}", event_word(event));
            self.logs.push(name, Stream::Init, line.as_bytes());
        }
        if event != TimelineEvent::Start && event != TimelineEvent::Stopping {
            // Readiness watching ends with the starting phase.
            if self
                .core
                .get(name)
                .map_or(true, |e| e.phase != Phase::Starting)
            {
                self.io.probes.remove(name);
                self.io.ready_fds.remove(name);
            }
        }
    }

    /// Once every enabled unit has settled: the `supervise` span ends, boot-timeline.json is
    /// written, then the "boot complete" line.
    pub(super) fn check_boot_complete(&mut self) {
        if self.boot.done || !self.core.boot_settled() {
            return;
        }
        self.boot.done = true;
        // The supervise stage's job at boot (bringing every enabled unit up) is done now.
        self.boot
            .timeline
            .mark(SubjectKind::Stage, "supervise", TimelineEvent::Ready);
        self.boot
            .timeline
            .mark(SubjectKind::Stage, "boot", TimelineEvent::BootComplete);
        // On a machine CLOCK_BOOTTIME counts from the kernel's start, which is what a boot takes; in
        // a container it counts from the host's boot, so measure from the supervisor's start there.
        let now_us = crate::timeline::boottime_us();
        let ms = if self.env.cfg.container {
            now_us.saturating_sub(self.boot.started_us)
        } else {
            now_us
        } / 1000;
        // The file first: whoever sees the console line may read the file at once.
        let states: Vec<_> = self
            .core
            .entries()
            .map(|(n, e)| {
                let state = e.phase.as_str().to_string();
                (n.clone(), state, e.restarts, e.failure.clone())
            })
            .collect();
        let written = super::report::write_boot_timeline(
            &self.env.cfg.run_dir,
            self.boot.timeline.entries(),
            &states,
        );
        if let Err(e) = written {
            log::warn!("{e}");
        }
        log::info!("boot complete in {ms} ms");
    }
}

fn event_word(e: TimelineEvent) -> &'static str {
    match e {
        TimelineEvent::Start => "started",
        TimelineEvent::Ready => "ready",
        TimelineEvent::Failed => "failed",
        TimelineEvent::Stopping => "stopping",
        TimelineEvent::Stopped => "stopped",
        TimelineEvent::BootComplete => "boot complete",
    }
}
