//! Stage 3: after the supervisor stopped the units in order, kill what is left, reap it, and (as the
//! machine's init) sync, unmount and reboot(2).
//!
//! "What is left" is every process we can see when we are PID 1 (of the machine or of a PID
//! namespace: kill(-1) reaches exactly those), and only our own descendants otherwise, so a
//! container-mode init started by hand never signals its host's processes.
//!
//! Every step is bounded. Killing takes at most `TERM_GRACE` + `KILL_REAP_WAIT`. sync(2), the
//! unmounts and the read-only remount of `/` can sleep in the kernel forever (a dead disk or NFS
//! server), so they run in a child (`bounded`) given what is left of the shutdown deadline, but
//! at least `FINAL_SYNC_MIN`; when it is not done by then, or a SIGTERM/SIGINT arrives (Ctrl-Alt-Del
//! once more), the init logs the step still busy, detaches every mount (MNT_DETACH never waits)
//! and calls reboot(2).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::control::ops::ShutdownKind;
use crate::procfs::{descendants, parse_mountinfo};
use crate::supervisor::cgroup::CgroupCleanup;
use crate::sys::mount;
use crate::sys::power::{self, PowerAction};
use crate::sys::reap::{self as process, ReapOutcome};

use super::bounded::{self, Outcome, Progress};

/// How long processes get between SIGTERM and SIGKILL at the very end.
pub const TERM_GRACE: Duration = Duration::from_secs(1);
/// How long we wait for SIGKILLed processes to be reaped before moving on.
const KILL_REAP_WAIT: Duration = Duration::from_secs(2);
/// The least time sync and the unmounts get, even when the shutdown deadline has passed (losing
/// written data is worse than a late reboot).
pub const FINAL_SYNC_MIN: Duration = Duration::from_secs(10);
/// Their limit when there is no deadline (it could not be computed).
const FINAL_SYNC_DEFAULT: Duration = Duration::from_secs(30);

/// Container mode: SIGTERM then SIGKILL every remaining process, reap them, remove the cgroups we
/// made, and return.
pub fn finish_container(cleanup: Option<&CgroupCleanup>) {
    kill_remaining();
    if let Some(c) = cleanup {
        c.remove();
    }
}

/// Machine mode: kill the rest, sync, unmount or remount read-only (bounded by what is left of
/// `deadline`, see the module doc), then reboot(2). Never returns.
pub fn finish_machine(kind: ShutdownKind, deadline: Option<Instant>) -> ! {
    // Containers outlive containerd's stop on purpose: they get their own bounded stop first.
    crate::node::drain::drain(
        Path::new(crate::paths::CGROUP_ROOT),
        crate::node::drain::NODE_GROUPS,
        crate::node::drain::DRAIN_TIMEOUT,
    );
    kill_remaining();
    let limit = deadline
        .map_or(FINAL_SYNC_DEFAULT, |d| {
            d.saturating_duration_since(Instant::now())
        })
        .max(FINAL_SYNC_MIN);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let order = unmount_order(&mountinfo);
    // Signals stay blocked after the loop; a fresh signalfd hears a shutdown signal sent now.
    let signals = crate::sys::signal::open_signalfd().ok();
    let mut interrupted = || signals.as_ref().is_some_and(shutdown_signal_pending);
    let outcome = bounded::run_bounded(limit, &mut interrupted, |p| {
        p.step("sync");
        power::sync_all();
        unmount_all(&order, p);
        p.step("sync after unmounting");
        power::sync_all();
    });
    match outcome {
        Outcome::Done => {}
        Outcome::NotStarted(why) => {
            // No child: do it here, unbounded, rather than not at all.
            log::warn!("stage 3: cannot run sync in a child ({why}); syncing in the init");
            power::sync_all();
            detach_all(&order);
        }
        Outcome::TimedOut { busy, .. } => {
            log::warn!(
                "stage 3: still busy after {}s ({busy}); detaching every mount and going on",
                limit.as_secs()
            );
            detach_all(&order);
        }
        Outcome::Interrupted { busy, .. } => {
            log::warn!("stage 3: forced by a signal while busy ({busy}); detaching every mount");
            detach_all(&order);
        }
    }
    let action = match kind {
        ShutdownKind::Poweroff => PowerAction::Poweroff,
        ShutdownKind::Reboot => PowerAction::Reboot,
        ShutdownKind::Halt => PowerAction::Halt,
    };
    log::info!("{}", final_message(kind));
    let err = power::reboot(action);
    log::error!("reboot(2) failed: {err}; halting here");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Whether a SIGTERM or SIGINT is waiting (the others are read and dropped: SIGCHLD, SIGHUP).
fn shutdown_signal_pending(fd: &nix::sys::signalfd::SignalFd) -> bool {
    let mut seen = false;
    while let Ok(Some(signo)) = crate::sys::signal::read_signal(fd) {
        seen |= signo == Signal::SIGTERM as i32 || signo == Signal::SIGINT as i32;
    }
    seen
}

fn final_message(kind: ShutdownKind) -> &'static str {
    match kind {
        ShutdownKind::Poweroff => "powering off",
        ShutdownKind::Reboot => "rebooting",
        ShutdownKind::Halt => "halting",
    }
}

/// SIGTERM, a bounded wait while reaping, SIGKILL, reap.
pub fn kill_remaining() {
    signal_rest(Signal::SIGCONT);
    signal_rest(Signal::SIGTERM);
    if !reap_until_none(TERM_GRACE) {
        signal_rest(Signal::SIGKILL);
        reap_until_none(KILL_REAP_WAIT);
    }
}

fn signal_rest(sig: Signal) {
    if std::process::id() == 1 {
        if let Err(e) = process::signal_everyone(sig) {
            log::warn!("kill(-1, {}) failed: {e}", sig.as_str());
        }
        return;
    }
    for pid in descendants(Path::new("/proc"), std::process::id() as i32) {
        let _ = process::signal_pid(pid, sig);
    }
}

/// Reaps until no child is left or `limit` passed; true when nothing is left.
fn reap_until_none(limit: Duration) -> bool {
    // `None`: a limit beyond what `Instant` holds, i.e. no limit.
    let deadline = Instant::now().checked_add(limit);
    loop {
        match process::reap_nohang() {
            ReapOutcome::Reaped(_) => continue,
            ReapOutcome::NoChildren => {
                if std::process::id() == 1
                    || descendants(Path::new("/proc"), std::process::id() as i32).is_empty()
                {
                    return true;
                }
            }
            ReapOutcome::Running => {}
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Mount points to take down, deepest (latest mounted) first; `/` is left for a read-only remount.
pub fn unmount_order(mountinfo: &str) -> Vec<PathBuf> {
    parse_mountinfo(mountinfo)
        .into_iter()
        .rev()
        .filter(|m| m.mount_point != "/")
        .map(|m| PathBuf::from(m.mount_point))
        .collect()
}

fn unmount_all(order: &[PathBuf], p: &mut Progress) {
    for mp in order {
        p.step(&format!("unmounting {}", mp.display()));
        if mount::unmount(mp, false).is_err() && mount::remount_read_only(mp).is_err() {
            let _ = mount::unmount(mp, true);
        }
    }
    p.step("remounting / read-only");
    if let Err(e) = mount::remount_read_only(Path::new("/")) {
        log::warn!("remounting / read-only failed: {e}");
    }
}

/// Lazy unmounts (MNT_DETACH): they never wait for a filesystem, so they end stage 3 in bounded
/// time whatever the child got stuck on.
fn detach_all(order: &[PathBuf]) {
    for mp in order {
        let _ = mount::unmount(mp, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmounts_in_reverse_order_without_root() {
        let t = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
                 2 1 0:5 / /proc rw - proc proc rw\n\
                 3 1 0:6 / /sys rw - sysfs sysfs rw\n\
                 4 3 0:7 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let order = unmount_order(t);
        assert_eq!(
            order,
            vec![
                PathBuf::from("/sys/fs/cgroup"),
                PathBuf::from("/sys"),
                PathBuf::from("/proc")
            ]
        );
    }
}
