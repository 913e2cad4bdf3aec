//! Whether this boot is healthy enough to bless, as a pure state machine over the units' phases
//! and the clock: the health set must be reached and then hold for `healthy-for`; a unit of the set
//! that fails, or the deadline passing first, means the boot is not good and the machine reboots
//! to use its next try (or the bootloader's fallback).

use std::time::{Duration, Instant};

use crate::supervisor::UnitsView;

/// The health set's state right now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Everything in the set is up.
    Up,
    /// Not yet (starting, waiting, in backoff); the reason names what is missing.
    Pending(String),
    /// A unit of the set failed for good.
    Failed(String),
}

/// Judges the units against the set: `None` means every enabled unit (and the boot settled).
/// A named unit that is not loaded at all is pending (it may come with a reload) rather than
/// failed: the deadline catches it.
pub fn judge(set: Option<&[String]>, view: &UnitsView) -> Health {
    let up = |phase: &str| matches!(phase, "running" | "exited");
    match set {
        None => {
            if let Some((n, _, _)) = view.units.iter().find(|(_, en, p)| *en && *p == "failed") {
                return Health::Failed(format!("unit {n} failed"));
            }
            if !view.settled {
                return Health::Pending("boot not complete".into());
            }
            match view.units.iter().find(|(_, en, p)| *en && !up(p)) {
                Some((n, _, p)) => Health::Pending(format!("unit {n} is {p}")),
                None => Health::Up,
            }
        }
        Some(names) => {
            for name in names {
                match view.units.iter().find(|(n, _, _)| n == name) {
                    None => return Health::Pending(format!("unit {name} is not loaded")),
                    Some((_, _, "failed")) => return Health::Failed(format!("unit {name} failed")),
                    Some((_, _, p)) if !up(p) => {
                        return Health::Pending(format!("unit {name} is {p}"))
                    }
                    Some(_) => {}
                }
            }
            Health::Up
        }
    }
}

/// Where the boot is on its way to being blessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// The health set is not reached yet.
    Waiting(String),
    /// Reached at this time; blessed once it has held for `healthy-for`.
    Holding(Instant),
    /// Time to bless (the caller renames the entry, then calls `blessed`).
    Bless,
    Blessed,
    /// The boot is not good: reboot without blessing.
    Reboot(String),
}

/// The machine: `observe` on every pass with fresh health, `tick` when time passes.
#[derive(Debug, Clone)]
pub struct Gate {
    pub stage: Stage,
    pub deadline: Instant,
    pub healthy_for: Duration,
}

impl Gate {
    pub fn new(started: Instant, deadline: Duration, healthy_for: Duration) -> Gate {
        Gate {
            stage: Stage::Waiting("boot not complete".into()),
            deadline: started + deadline,
            healthy_for,
        }
    }

    /// Health as seen now; returns whether the stage changed.
    pub fn observe(&mut self, health: Health, now: Instant) -> bool {
        let next = match (&self.stage, health) {
            (Stage::Bless | Stage::Blessed | Stage::Reboot(_), _) => return false,
            (_, Health::Failed(why)) => Stage::Reboot(why),
            (Stage::Waiting(_), Health::Up) => Stage::Holding(now),
            (Stage::Holding(_), Health::Up) => return self.tick(now),
            (Stage::Waiting(old), Health::Pending(why)) if *old == why => return false,
            (_, Health::Pending(why)) => Stage::Waiting(why),
        };
        self.stage = next;
        self.tick(now);
        true
    }

    /// Acts on the clock; returns whether the stage changed.
    pub fn tick(&mut self, now: Instant) -> bool {
        let next = match &self.stage {
            Stage::Holding(since) if now >= *since + self.healthy_for => Stage::Bless,
            Stage::Waiting(why) if now >= self.deadline => Stage::Reboot(format!(
                "deadline passed before the health set held ({why})"
            )),
            Stage::Holding(_) if now >= self.deadline => Stage::Reboot(
                "deadline passed before the health set held (healthy, but not for long enough)"
                    .to_string(),
            ),
            _ => return false,
        };
        self.stage = next;
        true
    }

    /// When `tick` must run next.
    pub fn next_due(&self) -> Option<Instant> {
        match &self.stage {
            Stage::Waiting(_) => Some(self.deadline),
            Stage::Holding(since) => Some((*since + self.healthy_for).min(self.deadline)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(settled: bool, units: &[(&str, bool, &'static str)]) -> UnitsView {
        UnitsView {
            settled,
            units: units
                .iter()
                .map(|(n, e, p)| (n.to_string(), *e, *p))
                .collect(),
        }
    }

    #[test]
    fn default_set_is_every_enabled_unit() {
        let v = view(
            true,
            &[
                ("a", true, "running"),
                ("b", true, "exited"),
                ("c", false, "inactive"),
            ],
        );
        assert_eq!(judge(None, &v), Health::Up);
        let v = view(false, &[("a", true, "running")]);
        assert!(matches!(judge(None, &v), Health::Pending(_)));
        let v = view(true, &[("a", true, "backoff")]);
        assert_eq!(judge(None, &v), Health::Pending("unit a is backoff".into()));
        let v = view(true, &[("a", true, "failed"), ("b", false, "failed")]);
        assert_eq!(judge(None, &v), Health::Failed("unit a failed".into()));
        let v = view(true, &[("b", false, "failed")]);
        assert_eq!(judge(None, &v), Health::Up);
    }

    #[test]
    fn named_set() {
        let set = ["containerd".to_string(), "kubelet".to_string()];
        let v = view(
            false,
            &[
                ("containerd", true, "running"),
                ("kubelet", true, "running"),
                ("x", true, "failed"),
            ],
        );
        assert_eq!(judge(Some(&set), &v), Health::Up);
        let v = view(true, &[("containerd", true, "running")]);
        assert_eq!(
            judge(Some(&set), &v),
            Health::Pending("unit kubelet is not loaded".into())
        );
        let v = view(
            true,
            &[("containerd", true, "failed"), ("kubelet", true, "running")],
        );
        assert_eq!(
            judge(Some(&set), &v),
            Health::Failed("unit containerd failed".into())
        );
    }

    #[test]
    fn blessed_after_holding_long_enough() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut g = Gate::new(t0, s(600), s(30));
        assert_eq!(g.next_due(), Some(t0 + s(600)));
        assert!(g.observe(Health::Up, t0 + s(5)));
        assert_eq!(g.stage, Stage::Holding(t0 + s(5)));
        assert_eq!(g.next_due(), Some(t0 + s(35)));
        assert!(!g.observe(Health::Up, t0 + s(20)));
        assert!(!g.tick(t0 + s(34)));
        assert!(g.tick(t0 + s(35)));
        assert_eq!(g.stage, Stage::Bless);
        assert_eq!(g.next_due(), None);
    }

    #[test]
    fn a_dip_restarts_the_hold() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut g = Gate::new(t0, s(600), s(30));
        g.observe(Health::Up, t0 + s(5));
        assert!(g.observe(Health::Pending("unit a is backoff".into()), t0 + s(10)));
        assert!(!g.observe(Health::Pending("unit a is backoff".into()), t0 + s(11)));
        g.observe(Health::Up, t0 + s(12));
        assert!(!g.tick(t0 + s(40)));
        assert!(g.tick(t0 + s(42)));
        assert_eq!(g.stage, Stage::Bless);
    }

    #[test]
    fn failure_or_deadline_reboots() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut g = Gate::new(t0, s(60), s(30));
        g.observe(Health::Failed("unit a failed".into()), t0 + s(1));
        assert_eq!(g.stage, Stage::Reboot("unit a failed".into()));
        // Nothing moves it once decided.
        assert!(!g.observe(Health::Up, t0 + s(2)));
        assert!(!g.tick(t0 + s(100)));

        let mut g = Gate::new(t0, s(60), s(30));
        g.observe(Health::Pending("unit a is starting".into()), t0 + s(1));
        assert!(!g.tick(t0 + s(59)));
        assert!(g.tick(t0 + s(60)));
        assert!(matches!(&g.stage, Stage::Reboot(w) if w.contains("unit a is starting")));

        // Reached at 50 s, would need until 80 s: the deadline at 60 s wins.
        let mut g = Gate::new(t0, s(60), s(30));
        g.observe(Health::Up, t0 + s(50));
        assert_eq!(g.next_due(), Some(t0 + s(60)));
        assert!(g.tick(t0 + s(60)));
        assert!(matches!(&g.stage, Stage::Reboot(w) if w.contains("not for long enough")));
    }
}
