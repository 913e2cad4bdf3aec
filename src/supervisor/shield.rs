//! PID 1 shields itself from the load its units make: the OOM killer must never choose it (its
//! death is a kernel panic) and a fork bomb or a CPU hog in a unit must not starve the loop that
//! reaps, answers the control API and restarts services.
//!
//! Right after the boot dispatch (off containerd's critical path; units spawned before it simply
//! inherit the values they would be given back) the init lowers its own `oom_score_adj` to -1000
//! and its nice value by `NICE_BOOST`.
//! Both are inherited across fork, so every unit's child puts back what the init itself was given
//! (the "inherited" value documented for units without `oom-score-adjust`) before exec: units do
//! not get the init's privileges by accident. Raising either value again needs no capability, so
//! that reset cannot fail for want of privilege. Where lowering fails (a container without
//! CAP_SYS_RESOURCE or CAP_SYS_NICE) the init says so and units keep inheriting as before.
//!
//! Why nice and not only cgroup weights: on the unified hierarchy the `init` group already shares
//! CPU with `system` by weight, but without the cpu controller (a hybrid host, a container) all
//! tasks compete one by one, and a hundred bomb processes would leave PID 1 a hundredth of a CPU.
//! Measured in tests/ns_storm.rs (fork bomb of ~120 tasks, loaded 2-core host).
//!
//! Memory pressure: once the boot is dispatched the init locks its memory as it touches it
//! (`lock_memory`), so reclaim before the OOM killer never evicts the code the loop runs.

use std::path::Path;
use std::sync::OnceLock;

/// The init's nice value is lowered by this much (-10 from the usual 0): about ten times the CPU
/// share of a unit's task when it wants to run, and preemption when it wakes.
pub const NICE_BOOST: i32 = 10;

/// The OOM killer's "never" value.
pub const OOM_NEVER: i32 = -1000;

/// What units are reset to: the values the init had before shielding itself; `None` where the
/// init could not change its own (the children then inherit the same values as the init).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Inherited {
    pub oom_score_adj: Option<i32>,
    pub nice: Option<i32>,
    /// RLIMIT_NOFILE (soft, hard) as the init was given it, once the init has raised its own.
    pub nofile: Option<(u64, u64)>,
}

static INHERITED: OnceLock<Inherited> = OnceLock::new();

/// The descriptor limit the init was started with, once it has raised its own (`after_dispatch`).
static NOFILE: OnceLock<(u64, u64)> = OnceLock::new();

/// The values a unit's child must put back before exec (see the module doc).
pub fn inherited() -> Inherited {
    Inherited {
        nofile: NOFILE.get().copied(),
        ..INHERITED.get().copied().unwrap_or_default()
    }
}

/// Parses `/proc/PID/oom_score_adj`.
pub fn parse_oom_score_adj(text: &str) -> Option<i32> {
    text.trim()
        .parse::<i32>()
        .ok()
        .filter(|v| (-1000..=1000).contains(v))
}

/// The boosted nice value for a starting value: `NICE_BOOST` lower, never below -20.
pub fn boosted(nice: i32) -> i32 {
    nice.saturating_sub(NICE_BOOST).max(-20)
}

/// Shields the calling process (PID 1, or the container-mode init); `proc_self` is
/// `/proc/self`. Records what units are reset to. Called once, right after the boot dispatch:
/// units spawned before it have nothing to be reset from.
pub fn shield_self(proc_self: &Path) {
    let mut got = Inherited::default();
    let adj_path = proc_self.join("oom_score_adj");
    match std::fs::read_to_string(&adj_path)
        .ok()
        .and_then(|t| parse_oom_score_adj(&t))
    {
        Some(OOM_NEVER) => {}
        Some(own) => match std::fs::write(&adj_path, OOM_NEVER.to_string()) {
            Ok(()) => got.oom_score_adj = Some(own),
            Err(e) => log::warn!(
                "cannot set {} to {OOM_NEVER}: {e}; the OOM killer may choose the init",
                adj_path.display()
            ),
        },
        None => log::warn!("cannot read {}", adj_path.display()),
    }
    match crate::sys::process::nice_value() {
        Ok(own) => {
            let want = boosted(own);
            if want != own {
                match crate::sys::process::set_nice(want) {
                    Ok(()) => got.nice = Some(own),
                    Err(e) => log::warn!("cannot lower the init's nice value to {want}: {e}"),
                }
            }
        }
        Err(e) => log::warn!("cannot read the init's nice value: {e}"),
    }
    log::debug!("shielded: oom_score_adj {OOM_NEVER}, nice boost {NICE_BOOST}; units get {got:?}");
    let _ = INHERITED.set(got);
}

/// Where the kernel's ceiling for RLIMIT_NOFILE is.
const NR_OPEN: &str = "/proc/sys/fs/nr_open";

/// The descriptor limit the init wants for itself: the kernel's ceiling (`fs.nr_open`) where it
/// may raise its hard limit, else its hard limit. `None` when `own` already is that.
pub fn wanted_nofile(own: (u64, u64), nr_open: Option<u64>, privileged: bool) -> Option<u64> {
    let want = match (privileged, nr_open) {
        (true, Some(ceiling)) => ceiling.max(own.1),
        _ => own.1,
    };
    (own != (want, want)).then_some(want)
}

/// The kernel starts PID 1 with 1,024 descriptors (4,096 hard), and the init holds two pipe ends
/// per unit plus log files: a thousand units would run out, and a spawn or an accept fail with
/// EMFILE. So the init raises its own limit as systemd does, and every unit gets the values the
/// init was started with back (a unit's `limits.nofile` wins): programs that still use select(2)
/// break above 1,024. Returns those values when the init raised its own.
fn raise_nofile(nr_open: &Path) -> Option<(u64, u64)> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let own = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    let ceiling = std::fs::read_to_string(nr_open)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    let privileged = holds(caps::Capability::CAP_SYS_RESOURCE);
    let want = wanted_nofile(own, ceiling, privileged)?;
    match setrlimit(Resource::RLIMIT_NOFILE, want, want) {
        Ok(()) => Some(own),
        Err(e) => {
            log::warn!("cannot raise the init's descriptor limit to {want}: {e}");
            None
        }
    }
}

/// Whether the init holds `cap` in its effective set.
fn holds(cap: caps::Capability) -> bool {
    matches!(caps::has_cap(None, caps::CapSet::Effective, cap), Ok(true))
}

/// Makes `cmd` start at the nice value the init was given rather than its boost: for background
/// helpers the init starts for itself (coldplug, hotplug module loads, block probes), which must
/// not outrank containerd's start-up on the machine's CPUs (a modprobe at nice -10 takes ~90 % of
/// a CPU it shares with a nice-0 thread). The watchdog's helper keeps the boost on purpose (it must
/// arm early). Nothing when the init was not boosted.
pub fn unboost(cmd: &mut std::process::Command) {
    let Some(nice) = inherited().nice else {
        return;
    };
    crate::sys::process::nice_before_exec(cmd, nice);
}

/// What can wait until containerd is spawned: raising the descriptor limit (units spawned before
/// it simply inherit the starting value, which is what they get back afterwards) and locking the
/// init's memory.
pub fn after_dispatch() {
    if let Some(own) = raise_nofile(Path::new(NR_OPEN)) {
        let _ = NOFILE.set(own);
    }
    lock_memory();
}

/// Keeps what the init has run in memory: under memory pressure the kernel otherwise evicts the
/// init's code pages and every wakeup faults them back in from disk (a guest under the OOM test
/// spent 22 s in such faults, the control API silent). Locked on fault, so it costs nothing at
/// boot and grows only with what the init really touches (its RSS, ~2 MB). Only with
/// CAP_IPC_LOCK: without it RLIMIT_MEMLOCK would apply to every later allocation too, and an
/// allocation over that limit would fail. Called after the boot dispatch: off containerd's
/// critical path (it walks every mapping once).
fn lock_memory() {
    if !holds(caps::Capability::CAP_IPC_LOCK) {
        log::debug!("no CAP_IPC_LOCK: the init's memory stays evictable");
        return;
    }
    if let Err(e) = crate::sys::process::lock_memory_on_fault() {
        log::warn!("cannot lock the init's memory: {e}; under memory pressure it may stall");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_bounds_oom_score_adj() {
        assert_eq!(parse_oom_score_adj("-1000\n"), Some(-1000));
        assert_eq!(parse_oom_score_adj("0\n"), Some(0));
        assert_eq!(parse_oom_score_adj("1001\n"), None);
        assert_eq!(parse_oom_score_adj("x"), None);
    }

    #[test]
    fn the_descriptor_limit_goes_to_the_ceiling_only_with_privilege() {
        assert_eq!(
            wanted_nofile((1024, 4096), Some(1 << 20), true),
            Some(1 << 20)
        );
        assert_eq!(
            wanted_nofile((1024, 4096), Some(1 << 20), false),
            Some(4096)
        );
        assert_eq!(wanted_nofile((1024, 4096), None, true), Some(4096));
        assert_eq!(wanted_nofile((4096, 4096), None, false), None);
        // Never lowered: a hard limit above the ceiling stays.
        assert_eq!(
            wanted_nofile((10, 1 << 21), Some(1 << 20), true),
            Some(1 << 21)
        );
    }

    #[test]
    fn boost_is_bounded_by_the_highest_priority() {
        assert_eq!(boosted(0), -10);
        assert_eq!(boosted(5), -5);
        assert_eq!(boosted(-15), -20);
        assert_eq!(boosted(-20), -20);
    }
}
