//! Tests of the pure supervisor core: every transition, driven by events, judged by the actions.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::backoff::BackoffPolicy;
use super::state::*;
use crate::timeline::{SubjectKind, TimelineEvent};
use crate::units::schema::{KillMode, RestartPolicy, UnitType};

fn spec(kind: UnitType) -> UnitSpec {
    UnitSpec {
        kind,
        requires: vec![],
        wants: vec![],
        after: vec![],
        ready_on_spawn: false,
        ready_timeout: Duration::from_secs(2),
        restart: RestartPolicy::No,
        backoff: BackoffPolicy {
            delay: Duration::from_millis(100),
            delay_max: Duration::from_secs(1),
            reset_after: Duration::from_secs(60),
        },
        stop_signal: Signal::SIGTERM,
        stop_timeout: Duration::from_secs(3),
        kill_mode: KillMode::Main,
        has_cgroup: false,
    }
}

fn daemon() -> UnitSpec {
    spec(UnitType::Daemon)
}

fn exec_daemon() -> UnitSpec {
    UnitSpec {
        ready_on_spawn: true,
        ..daemon()
    }
}

fn requiring(mut s: UnitSpec, deps: &[&str]) -> UnitSpec {
    s.requires = deps.iter().map(|d| d.to_string()).collect();
    s
}

fn spawns(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Spawn(u) => Some(u.clone()),
            _ => None,
        })
        .collect()
}

fn kills(actions: &[Action]) -> Vec<(String, Signal, KillScope)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Kill {
                unit,
                signal,
                scope,
            } => Some((unit.clone(), *signal, *scope)),
            _ => None,
        })
        .collect()
}

fn timer(actions: &[Action], kind: TimerKind) -> Option<(String, Instant, u64)> {
    actions.iter().find_map(|a| match a {
        Action::ArmTimer {
            unit,
            kind: k,
            at,
            gen,
        } if *k == kind => Some((unit.clone(), *at, *gen)),
        _ => None,
    })
}

fn failed_detail(actions: &[Action], name: &str) -> Option<String> {
    actions.iter().find_map(|a| match a {
        Action::Transition {
            name: n,
            event: TimelineEvent::Failed,
            detail,
            ..
        } if n == name => Some(detail.clone()),
        _ => None,
    })
}

fn phase(c: &Core, n: &str) -> Phase {
    c.get(n).map(|e| e.phase).unwrap_or(Phase::Inactive)
}

struct T {
    core: Core,
    now: Instant,
}

impl T {
    fn new(units: &[(&str, UnitSpec)]) -> Self {
        let now = Instant::now();
        let mut core = Core::new(&["network", "network-online"], &[]);
        for (n, s) in units {
            core.upsert(n, s.clone(), true, now);
        }
        Self { core, now }
    }
    fn ev(&mut self, e: Event) -> Vec<Action> {
        self.core.step(e, self.now)
    }
    fn advance(&mut self, d: Duration) {
        self.now += d;
    }
    fn spawned(&mut self, n: &str, pid: i32) -> Vec<Action> {
        self.ev(Event::Spawned {
            unit: n.into(),
            pid,
        })
    }
    fn exited(&mut self, n: &str, status: ExitStatus) -> Vec<Action> {
        self.ev(Event::Exited {
            unit: n.into(),
            status,
        })
    }
}

#[test]
fn boot_starts_enabled_units_in_parallel_and_skips_disabled() {
    let now = Instant::now();
    let mut core = Core::new(&[], &[]);
    core.upsert("a", exec_daemon(), true, now);
    core.upsert("b", exec_daemon(), true, now);
    core.upsert("off", exec_daemon(), false, now);
    let acts = core.step(Event::Boot, now);
    assert_eq!(spawns(&acts), vec!["a", "b"]);
    assert_eq!(phase(&core, "off"), Phase::Inactive);
    assert!(!core.boot_settled());
    core.step(
        Event::Spawned {
            unit: "a".into(),
            pid: 10,
        },
        now,
    );
    let acts = core.step(
        Event::Spawned {
            unit: "b".into(),
            pid: 11,
        },
        now,
    );
    assert!(acts.iter().any(|a| matches!(
        a,
        Action::Transition {
            event: TimelineEvent::Ready,
            ..
        }
    )));
    assert_eq!(phase(&core, "a"), Phase::Running);
    assert_eq!(core.unit_by_pid(11), Some("b"));
    assert!(core.boot_settled());
}

#[test]
fn requires_waits_for_readiness_then_starts() {
    let mut t = T::new(&[("db", daemon()), ("app", requiring(exec_daemon(), &["db"]))]);
    let acts = t.ev(Event::Boot);
    assert_eq!(spawns(&acts), vec!["db"]);
    assert!(timer(&acts, TimerKind::ReadyTimeout).is_some());
    assert_eq!(phase(&t.core, "app"), Phase::Waiting);
    assert!(spawns(&t.spawned("db", 5)).is_empty());
    assert_eq!(phase(&t.core, "db"), Phase::Starting);
    let acts = t.ev(Event::Ready("db".into()));
    assert_eq!(spawns(&acts), vec!["app"]);
    assert_eq!(phase(&t.core, "db"), Phase::Running);
}

#[test]
fn facts_gate_their_dependents() {
    let mut t = T::new(&[("net", requiring(exec_daemon(), &["network"]))]);
    assert!(spawns(&t.ev(Event::Boot)).is_empty());
    assert_eq!(phase(&t.core, "net"), Phase::Waiting);
    assert!(t.core.is_fact("network"));
    let acts = t.ev(Event::FactReached("network".into()));
    assert_eq!(spawns(&acts), vec!["net"]);
}

#[test]
fn device_facts_exist_once_a_unit_names_them() {
    let mut after_only = exec_daemon();
    after_only.after = vec!["device:/dev/disk/by-label/data".into()];
    let mut t = T::new(&[
        (
            "mounter",
            requiring(exec_daemon(), &["device:/dev/disk/by-label/data"]),
        ),
        ("logger", after_only),
        ("other", requiring(exec_daemon(), &["device:/dev/kvm"])),
        ("free", exec_daemon()),
    ]);
    assert!(t.core.is_fact("device:/dev/disk/by-label/data"));
    assert!(
        !t.core.is_fact("device:/dev/sda"),
        "only named device facts exist"
    );
    assert_eq!(
        t.core.pending_facts(),
        vec![
            "device:/dev/disk/by-label/data",
            "device:/dev/kvm",
            "network",
            "network-online"
        ]
    );
    assert!(t.core.facts_generation() > 0);
    let gen = t.core.facts_generation();
    assert_eq!(spawns(&t.ev(Event::Boot)), vec!["free"]);
    // A fact nobody named is ignored; the generation does not move on events.
    assert!(spawns(&t.ev(Event::FactReached("device:/dev/sda".into()))).is_empty());
    assert_eq!(t.core.facts_generation(), gen);
    let acts = t.ev(Event::FactFailed {
        fact: "device:/dev/disk/by-label/data".into(),
        reason: "/dev/disk/by-label/data did not appear within 90 s".into(),
    });
    // The timeout fails only the unit that requires the device; ordering is released.
    assert_eq!(spawns(&acts), vec!["logger"]);
    assert_eq!(phase(&t.core, "mounter"), Phase::Failed);
    assert_eq!(phase(&t.core, "other"), Phase::Waiting);
    let acts = t.ev(Event::FactReached("device:/dev/kvm".into()));
    assert_eq!(spawns(&acts), vec!["other"]);
}

#[test]
fn a_failed_fact_fails_its_requirers_and_releases_ordering() {
    let mut after_only = exec_daemon();
    after_only.after = vec!["network-online".into()];
    let mut t = T::new(&[
        ("kubelet", requiring(exec_daemon(), &["network-online"])),
        ("top", requiring(exec_daemon(), &["kubelet"])),
        ("logger", after_only),
    ]);
    assert!(spawns(&t.ev(Event::Boot)).is_empty());
    let acts = t.ev(Event::FactFailed {
        fact: "network-online".into(),
        reason: "eth0: no DHCP lease after 60s (selecting)".into(),
    });
    assert_eq!(spawns(&acts), vec!["logger"]);
    assert_eq!(phase(&t.core, "kubelet"), Phase::Failed);
    assert_eq!(
        t.core
            .get("kubelet")
            .and_then(|e| e.failure.clone())
            .as_deref(),
        Some("network-online not reached: eth0: no DHCP lease after 60s (selecting)")
    );
    assert_eq!(phase(&t.core, "top"), Phase::Failed);
    assert!(acts.iter().any(|a| matches!(a, Action::Transition {
        subject: SubjectKind::Fact, event: TimelineEvent::Failed, name, ..
    } if name == "network-online")));
    // A late success still counts: the fact is reached, and a restart of the requirer runs it.
    t.ev(Event::FactReached("network-online".into()));
    assert_eq!(t.core.fact("network-online"), Some(&FactState::Reached));
    let acts = t.ev(Event::Start("kubelet".into()));
    assert_eq!(spawns(&acts), vec!["kubelet"]);
    // Failing a reached fact changes nothing.
    t.ev(Event::FactFailed {
        fact: "network-online".into(),
        reason: "late".into(),
    });
    assert_eq!(t.core.fact("network-online"), Some(&FactState::Reached));
}

#[test]
fn oneshot_is_ready_on_exit_zero_and_failure_travels_to_requirers() {
    let mut t = T::new(&[
        ("setup", spec(UnitType::Oneshot)),
        ("svc", requiring(exec_daemon(), &["setup"])),
        ("top", requiring(exec_daemon(), &["svc"])),
    ]);
    t.ev(Event::Boot);
    t.spawned("setup", 7);
    let acts = t.exited("setup", ExitStatus::Code(0));
    assert_eq!(phase(&t.core, "setup"), Phase::Exited);
    assert_eq!(spawns(&acts), vec!["svc"]);

    let mut t = T::new(&[
        ("setup", spec(UnitType::Oneshot)),
        ("svc", requiring(exec_daemon(), &["setup"])),
        ("top", requiring(exec_daemon(), &["svc"])),
    ]);
    t.ev(Event::Boot);
    t.spawned("setup", 7);
    let acts = t.exited("setup", ExitStatus::Code(1));
    assert_eq!(phase(&t.core, "setup"), Phase::Failed);
    assert_eq!(failed_detail(&acts, "setup").as_deref(), Some("exited 1"));
    assert_eq!(phase(&t.core, "svc"), Phase::Failed);
    assert_eq!(
        t.core.get("svc").and_then(|e| e.failure.clone()).as_deref(),
        Some("dependency setup failed: exited 1")
    );
    assert_eq!(
        t.core.get("top").and_then(|e| e.failure.clone()).as_deref(),
        Some("dependency svc failed: dependency setup failed: exited 1")
    );
    assert!(spawns(&acts).is_empty());
    assert!(t.core.boot_settled());
}

#[test]
fn crash_restarts_immediately_then_backs_off() {
    let mut s = exec_daemon();
    s.restart = RestartPolicy::OnFailure;
    let mut t = T::new(&[("crashy", s)]);
    t.ev(Event::Boot);
    t.spawned("crashy", 1);
    let acts = t.exited("crashy", ExitStatus::Signal(9));
    assert_eq!(spawns(&acts), vec!["crashy"], "first restart is immediate");
    assert_eq!(t.core.get("crashy").map(|e| e.restarts), Some(1));
    t.spawned("crashy", 2);
    let acts = t.exited("crashy", ExitStatus::Code(2));
    assert!(spawns(&acts).is_empty());
    assert_eq!(phase(&t.core, "crashy"), Phase::Backoff);
    let (_, at, gen) = timer(&acts, TimerKind::BackoffElapsed).unwrap();
    let delay = at - t.now;
    assert!(
        delay >= Duration::from_millis(90) && delay <= Duration::from_millis(110),
        "{delay:?}"
    );
    // A stale timer (older generation) does nothing.
    let stale = t.ev(Event::Timer {
        unit: "crashy".into(),
        kind: TimerKind::BackoffElapsed,
        gen: gen - 1,
    });
    assert!(spawns(&stale).is_empty());
    t.advance(delay);
    let acts = t.ev(Event::Timer {
        unit: "crashy".into(),
        kind: TimerKind::BackoffElapsed,
        gen,
    });
    assert_eq!(spawns(&acts), vec!["crashy"]);
    assert_eq!(
        t.core.get("crashy").and_then(|e| e.last_exit),
        Some(ExitStatus::Code(2))
    );
}

#[test]
fn restart_policies_on_clean_exit() {
    let mut always = exec_daemon();
    always.restart = RestartPolicy::Always;
    let mut onfail = exec_daemon();
    onfail.restart = RestartPolicy::OnFailure;
    let mut t = T::new(&[
        ("always", always),
        ("onfail", onfail),
        ("no", exec_daemon()),
    ]);
    t.ev(Event::Boot);
    for (i, n) in ["always", "onfail", "no"].iter().enumerate() {
        t.spawned(n, i as i32 + 1);
    }
    assert_eq!(
        spawns(&t.exited("always", ExitStatus::Code(0))),
        vec!["always"]
    );
    assert!(spawns(&t.exited("onfail", ExitStatus::Code(0))).is_empty());
    assert_eq!(phase(&t.core, "onfail"), Phase::Exited);
    let acts = t.exited("no", ExitStatus::Code(4));
    assert!(spawns(&acts).is_empty());
    assert_eq!(phase(&t.core, "no"), Phase::Failed);
}

#[test]
fn readiness_timeout_kills_and_fails_unit_and_hard_dependents() {
    let mut s = daemon();
    s.kill_mode = KillMode::Cgroup;
    s.has_cgroup = true;
    let mut t = T::new(&[
        ("slow", s),
        ("dep", requiring(exec_daemon(), &["slow"])),
        (
            "soft",
            UnitSpec {
                after: vec!["slow".into()],
                ..exec_daemon()
            },
        ),
    ]);
    let acts = t.ev(Event::Boot);
    let (_, at, gen) = timer(&acts, TimerKind::ReadyTimeout).unwrap();
    t.spawned("slow", 40);
    t.now = at;
    let acts = t.ev(Event::Timer {
        unit: "slow".into(),
        kind: TimerKind::ReadyTimeout,
        gen,
    });
    assert_eq!(
        kills(&acts),
        vec![("slow".to_string(), Signal::SIGTERM, KillScope::Group)]
    );
    assert!(acts.contains(&Action::CheckGroup("slow".into())));
    assert_eq!(phase(&t.core, "slow"), Phase::Stopping);
    assert_eq!(phase(&t.core, "dep"), Phase::Failed);
    assert_eq!(
        t.core.get("dep").and_then(|e| e.failure.clone()).as_deref(),
        Some("dependency slow failed: not ready within 2s")
    );
    // `after` only orders: once slow is no longer starting, soft may go.
    assert_eq!(spawns(&acts), vec!["soft"]);
    // Both the main process and the group must be gone.
    let acts = t.exited("slow", ExitStatus::Signal(15));
    assert!(acts.contains(&Action::CheckGroup("slow".into())));
    assert_eq!(phase(&t.core, "slow"), Phase::Stopping);
    let acts = t.ev(Event::GroupEmpty("slow".into()));
    assert_eq!(phase(&t.core, "slow"), Phase::Failed);
    assert_eq!(
        failed_detail(&acts, "slow").as_deref(),
        Some("not ready within 2s")
    );
}

#[test]
fn stop_escalates_to_sigkill_then_gives_up() {
    let mut t = T::new(&[("stubborn", exec_daemon())]);
    t.ev(Event::Boot);
    t.spawned("stubborn", 9);
    let acts = t.ev(Event::Stop("stubborn".into()));
    assert_eq!(
        kills(&acts),
        vec![("stubborn".to_string(), Signal::SIGTERM, KillScope::Main)]
    );
    let (_, at, gen) = timer(&acts, TimerKind::StopTimeout).unwrap();
    assert_eq!(at - t.now, Duration::from_secs(3));
    t.now = at;
    let acts = t.ev(Event::Timer {
        unit: "stubborn".into(),
        kind: TimerKind::StopTimeout,
        gen,
    });
    assert_eq!(
        kills(&acts),
        vec![("stubborn".to_string(), Signal::SIGKILL, KillScope::Main)]
    );
    let (_, at2, gen2) = timer(&acts, TimerKind::StopTimeout).unwrap();
    assert_eq!(at2 - at, KILL_GRACE);
    t.now = at2;
    t.ev(Event::Timer {
        unit: "stubborn".into(),
        kind: TimerKind::StopTimeout,
        gen: gen2,
    });
    assert_eq!(phase(&t.core, "stubborn"), Phase::Inactive);
}

#[test]
fn stop_completes_when_main_exits_and_restart_respawns() {
    let mut t = T::new(&[("svc", exec_daemon())]);
    t.ev(Event::Boot);
    t.spawned("svc", 3);
    let acts = t.ev(Event::Restart("svc".into()));
    assert_eq!(kills(&acts).len(), 1);
    let acts = t.exited("svc", ExitStatus::Signal(15));
    assert_eq!(spawns(&acts), vec!["svc"]);
    t.spawned("svc", 4);
    t.ev(Event::Stop("svc".into()));
    t.exited("svc", ExitStatus::Code(0));
    assert_eq!(phase(&t.core, "svc"), Phase::Inactive);
    // Start again from inactive.
    assert_eq!(spawns(&t.ev(Event::Start("svc".into()))), vec!["svc"]);
}

#[test]
fn stopping_a_unit_stops_its_requirers_first() {
    let mut t = T::new(&[
        ("base", exec_daemon()),
        ("top", requiring(exec_daemon(), &["base"])),
    ]);
    t.ev(Event::Boot);
    t.spawned("base", 1);
    t.spawned("top", 2);
    let acts = t.ev(Event::Stop("base".into()));
    assert_eq!(
        kills(&acts),
        vec![("top".to_string(), Signal::SIGTERM, KillScope::Main)]
    );
    assert_eq!(phase(&t.core, "base"), Phase::Running);
    let acts = t.exited("top", ExitStatus::Signal(15));
    assert_eq!(
        kills(&acts),
        vec![("base".to_string(), Signal::SIGTERM, KillScope::Main)]
    );
}

#[test]
fn shutdown_stops_in_reverse_dependency_order() {
    let mut t = T::new(&[
        ("a", exec_daemon()),
        ("b", requiring(exec_daemon(), &["a"])),
        (
            "c",
            UnitSpec {
                wants: vec!["b".into()],
                ..exec_daemon()
            },
        ),
        ("d", exec_daemon()),
        (
            "e",
            UnitSpec {
                restart: RestartPolicy::Always,
                ..exec_daemon()
            },
        ),
    ]);
    t.ev(Event::Boot);
    for (i, n) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        t.spawned(n, 100 + i as i32);
    }
    let acts = t.ev(Event::Shutdown);
    let first: Vec<String> = kills(&acts).into_iter().map(|k| k.0).collect();
    assert_eq!(
        first,
        vec!["c", "d", "e"],
        "leaves and independents stop in parallel"
    );
    // A unit that dies during shutdown is not restarted.
    assert!(spawns(&t.exited("e", ExitStatus::Code(0))).is_empty());
    t.exited("d", ExitStatus::Code(0));
    let acts = t.exited("c", ExitStatus::Code(0));
    assert_eq!(
        kills(&acts).into_iter().map(|k| k.0).collect::<Vec<_>>(),
        vec!["b"]
    );
    assert!(!t.core.all_down());
    let acts = t.exited("b", ExitStatus::Code(0));
    assert_eq!(
        kills(&acts).into_iter().map(|k| k.0).collect::<Vec<_>>(),
        vec!["a"]
    );
    t.exited("a", ExitStatus::Code(0));
    assert!(t.core.all_down());
    assert!(
        spawns(&t.ev(Event::Start("a".into()))).is_empty(),
        "no starts during shutdown"
    );
}

#[test]
fn wants_and_after_do_not_block_on_failed_or_unscheduled_units() {
    let mut t = T::new(&[
        ("flaky", spec(UnitType::Oneshot)),
        (
            "w",
            UnitSpec {
                wants: vec!["flaky".into(), "ghost".into()],
                ..exec_daemon()
            },
        ),
    ]);
    let now = t.now;
    t.core.upsert("idle", exec_daemon(), false, now);
    t.core.upsert(
        "a",
        UnitSpec {
            after: vec!["idle".into()],
            ..exec_daemon()
        },
        true,
        now,
    );
    let acts = t.ev(Event::Boot);
    assert_eq!(spawns(&acts), vec!["a", "flaky"]);
    t.spawned("flaky", 1);
    let acts = t.exited("flaky", ExitStatus::Code(1));
    assert_eq!(spawns(&acts), vec!["w"]);
}

#[test]
fn blocked_units_never_start_and_fail_their_requirers() {
    let now = Instant::now();
    let mut core = Core::new(&[], &[]);
    core.add_blocked("bad", UnitSpec::inert(), "invalid unit file: x", now);
    core.upsert("good", exec_daemon(), true, now);
    core.upsert("needs", requiring(exec_daemon(), &["bad"]), true, now);
    let acts = core.step(Event::Boot, now);
    assert_eq!(spawns(&acts), vec!["good"]);
    assert_eq!(
        core.get("needs").and_then(|e| e.failure.clone()).as_deref(),
        Some("dependency bad failed: invalid unit file: x")
    );
    assert!(spawns(&core.step(Event::Start("bad".into()), now)).is_empty());
    assert_eq!(core.get("bad").map(|e| e.phase), Some(Phase::Failed));
}

#[test]
fn spawn_failure_fails_the_unit_and_start_retries_it() {
    let mut t = T::new(&[("x", exec_daemon())]);
    t.ev(Event::Boot);
    let acts = t.ev(Event::SpawnFailed {
        unit: "x".into(),
        message: "exec /nope failed".into(),
    });
    assert_eq!(
        failed_detail(&acts, "x").as_deref(),
        Some("spawn failed: exec /nope failed")
    );
    assert_eq!(spawns(&t.ev(Event::Start("x".into()))), vec!["x"]);
    assert_eq!(t.core.get("x").and_then(|e| e.failure.clone()), None);
}

#[test]
fn mainpid_moves_exit_tracking_and_group_mode_kills_leftovers() {
    let mut s = exec_daemon();
    s.kill_mode = KillMode::Cgroup;
    s.has_cgroup = true;
    s.restart = RestartPolicy::Always;
    let mut t = T::new(&[("fork", s)]);
    t.ev(Event::Boot);
    t.spawned("fork", 50);
    t.ev(Event::MainPid {
        unit: "fork".into(),
        pid: 51,
    });
    assert_eq!(t.core.unit_by_pid(51), Some("fork"));
    assert_eq!(t.core.unit_by_pid(50), None);
    let acts = t.exited("fork", ExitStatus::Code(1));
    assert_eq!(
        kills(&acts),
        vec![("fork".to_string(), Signal::SIGKILL, KillScope::Group)]
    );
    assert_eq!(spawns(&acts), vec!["fork"]);
}

#[test]
fn ready_ignored_outside_starting_and_for_oneshots() {
    let mut t = T::new(&[("once", spec(UnitType::Oneshot)), ("d", daemon())]);
    t.ev(Event::Boot);
    t.spawned("once", 1);
    t.ev(Event::Ready("once".into()));
    assert_eq!(phase(&t.core, "once"), Phase::Starting);
    t.ev(Event::Ready("d".into()));
    assert_eq!(
        phase(&t.core, "d"),
        Phase::Running,
        "ready before Spawned is processed still counts"
    );
    t.ev(Event::Ready("d".into()));
    assert_eq!(phase(&t.core, "d"), Phase::Running);
}

#[test]
fn exit_status_words() {
    assert_eq!(ExitStatus::Code(1).to_string(), "exited 1");
    assert_eq!(ExitStatus::Signal(9).to_string(), "killed by SIGKILL");
    assert_eq!(ExitStatus::Signal(99).to_string(), "killed by signal 99");
    assert_eq!(fmt_duration(Duration::from_millis(1500)), "1500ms");
    assert_eq!(Phase::Backoff.as_str(), "backoff");
}

#[test]
fn changing_a_spec_updates_the_dependency_index() {
    let mut t = T::new(&[
        ("base", exec_daemon()),
        ("top", requiring(exec_daemon(), &["base"])),
    ]);
    t.ev(Event::Boot);
    t.spawned("base", 1);
    t.spawned("top", 2);
    // top no longer requires base: stopping base must not wait for (or stop) top.
    let now = t.now;
    t.core.upsert("top", exec_daemon(), true, now);
    let acts = t.ev(Event::Stop("base".into()));
    assert_eq!(
        kills(&acts),
        vec![("base".to_string(), Signal::SIGTERM, KillScope::Main)]
    );
    assert_eq!(phase(&t.core, "top"), Phase::Running);
    t.core.remove("top");
    assert!(t.core.get("top").is_none());
    t.exited("base", ExitStatus::Signal(15));
    assert_eq!(phase(&t.core, "base"), Phase::Inactive);
}

/// Finding 2 of issue 12: `now + timeout` overflowed for huge durations (a kernel panic when the
/// unit file came from /etc). A deadline past the end of time means no timer at all.
#[test]
fn durations_past_the_end_of_time_arm_no_timer_and_do_not_panic() {
    let mut s = daemon();
    s.ready_timeout = Duration::MAX;
    s.stop_timeout = Duration::MAX;
    s.restart = RestartPolicy::Always;
    s.backoff = BackoffPolicy {
        delay: Duration::MAX,
        delay_max: Duration::MAX,
        reset_after: Duration::MAX,
    };
    let mut t = T::new(&[("huge", s)]);
    let acts = t.ev(Event::Boot);
    assert_eq!(spawns(&acts), vec!["huge"]);
    assert_eq!(timer(&acts, TimerKind::ReadyTimeout), None);
    t.spawned("huge", 10);
    t.ev(Event::Ready("huge".into()));
    assert_eq!(phase(&t.core, "huge"), Phase::Running);
    // First crash restarts at once, the second backs off by "forever": no timer, stays in backoff.
    t.exited("huge", ExitStatus::Code(1));
    t.spawned("huge", 11);
    t.ev(Event::Ready("huge".into()));
    let acts = t.exited("huge", ExitStatus::Code(1));
    assert_eq!(phase(&t.core, "huge"), Phase::Backoff);
    assert_eq!(timer(&acts, TimerKind::BackoffElapsed), None);
    // An explicit restart still works, and a stop with an endless stop-timeout arms nothing.
    let acts = t.ev(Event::Restart("huge".into()));
    assert_eq!(spawns(&acts), vec!["huge"]);
    t.spawned("huge", 12);
    let acts = t.ev(Event::Stop("huge".into()));
    assert_eq!(
        kills(&acts),
        vec![("huge".into(), Signal::SIGTERM, KillScope::Main)]
    );
    assert_eq!(timer(&acts, TimerKind::StopTimeout), None);
    assert_eq!(phase(&t.core, "huge"), Phase::Stopping);
}

/// Finding 3 of issue 12: the actions of a step can be lost to a panic. `recover` relaunches a
/// start whose spawn never happened and re-asks for the timers of every phase that needs one,
/// with the same deadline and generation (so the loop can tell which it already holds).
#[test]
fn recover_relaunches_lost_spawns_and_rearms_phase_timers() {
    let mut t = T::new(&[("a", daemon()), ("b", daemon())]);
    let boot = t.ev(Event::Boot);
    assert_eq!(spawns(&boot), vec!["a", "b"]);
    let (_, a_deadline, _) = timer(&boot, TimerKind::ReadyTimeout).unwrap();
    // "a" was spawned, "b"'s spawn was lost.
    t.spawned("a", 10);
    let acts = t.core.recover(t.now);
    assert_eq!(spawns(&acts), vec!["b"]);
    let timers: Vec<(String, Instant)> = acts
        .iter()
        .filter_map(|a| match a {
            Action::ArmTimer { unit, kind, at, .. } if *kind == TimerKind::ReadyTimeout => {
                Some((unit.clone(), *at))
            }
            _ => None,
        })
        .collect();
    assert!(
        timers.contains(&("a".to_string(), a_deadline)),
        "{timers:?}"
    );
    assert!(timers.iter().any(|(u, _)| u == "b"), "{timers:?}");
    t.spawned("b", 11);
    t.ev(Event::Ready("a".into()));
    // A stop whose timer was lost gets it back, deadline counted from the stop's start.
    let stop = t.ev(Event::Stop("a".into()));
    let (_, at, gen) = timer(&stop, TimerKind::StopTimeout).unwrap();
    t.advance(Duration::from_millis(500));
    let acts = t.core.recover(t.now);
    assert_eq!(
        timer(&acts, TimerKind::StopTimeout),
        Some(("a".to_string(), at, gen))
    );
    assert!(spawns(&acts).is_empty());
    // Nothing else is disturbed: a second recover asks for the same and spawns nothing.
    let again = t.core.recover(t.now);
    assert!(spawns(&again).is_empty());
    assert_eq!(phase(&t.core, "b"), Phase::Starting);
}

/// Issue 10 item 4: a unit whose condition does not hold is skipped (not failed, boot completion
/// does not wait for it) and starts, after its dependencies, once the condition holds; a condition
/// turning false later does not stop a running unit.
#[test]
fn skipped_units_wait_for_their_condition_without_failing_or_holding_boot() {
    let mut t = T::new(&[
        ("runtime", daemon()),
        ("agent", requiring(daemon(), &["runtime"])),
    ]);
    let why = "condition: /var/lib/kubelet/config.yaml does not exist".to_string();
    t.ev(Event::Condition {
        unit: "agent".into(),
        unmet: Some(why.clone()),
    });
    assert_eq!(spawns(&t.ev(Event::Boot)), vec!["runtime"]);
    t.spawned("runtime", 10);
    let acts = t.ev(Event::Ready("runtime".into()));
    assert!(spawns(&acts).is_empty(), "a skipped unit was started");
    let agent = t.core.get("agent").unwrap();
    assert_eq!(agent.phase, Phase::Waiting);
    assert!(agent.is_skipped());
    assert_eq!(agent.skipped.as_deref(), Some(why.as_str()));
    assert_eq!(agent.failure, None);
    assert!(t.core.boot_settled(), "boot waited for a skipped unit");

    // The same verdict again changes nothing; the condition holding starts it.
    assert!(t
        .ev(Event::Condition {
            unit: "agent".into(),
            unmet: Some(why.clone()),
        })
        .is_empty());
    let acts = t.ev(Event::Condition {
        unit: "agent".into(),
        unmet: None,
    });
    assert_eq!(spawns(&acts), vec!["agent"]);
    assert!(!t.core.get("agent").unwrap().is_skipped());
    t.spawned("agent", 11);
    t.ev(Event::Ready("agent".into()));
    let acts = t.ev(Event::Condition {
        unit: "agent".into(),
        unmet: Some(why),
    });
    assert!(kills(&acts).is_empty(), "a running unit was stopped");
    assert_eq!(phase(&t.core, "agent"), Phase::Running);
}

/// The condition gates every start, not only the first: a skipped unit whose dependency is not
/// ready yet waits for both.
#[test]
fn a_condition_met_before_the_dependency_waits_for_the_dependency() {
    let mut t = T::new(&[
        ("runtime", daemon()),
        ("agent", requiring(daemon(), &["runtime"])),
    ]);
    t.ev(Event::Condition {
        unit: "agent".into(),
        unmet: Some("condition: x".into()),
    });
    t.ev(Event::Boot);
    assert!(spawns(&t.ev(Event::Condition {
        unit: "agent".into(),
        unmet: None,
    }))
    .is_empty());
    assert_eq!(phase(&t.core, "agent"), Phase::Waiting);
    t.spawned("runtime", 10);
    assert_eq!(spawns(&t.ev(Event::Ready("runtime".into()))), vec!["agent"]);
}
