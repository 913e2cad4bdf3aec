//! Stage 3: after the supervisor stopped the units in order, kill what is left, reap it, and (as the
//! machine's init) sync, unmount and reboot(2).
//!
//! "What is left" is every process we can see when we are PID 1 (of the machine or of a PID
//! namespace: kill(-1) reaches exactly those), and only our own descendants otherwise, so a
//! container-mode init started by hand never signals its host's processes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::control::ops::ShutdownKind;
use crate::procfs::{descendants, parse_mountinfo};
use crate::supervisor::cgroup::CgroupCleanup;
use crate::sys::mount;
use crate::sys::power::{self, PowerAction};
use crate::sys::reap::{self as process, ReapOutcome};

/// How long processes get between SIGTERM and SIGKILL at the very end.
pub const TERM_GRACE: Duration = Duration::from_secs(1);
/// How long we wait for SIGKILLed processes to be reaped before moving on.
const KILL_REAP_WAIT: Duration = Duration::from_secs(2);

/// Container mode: SIGTERM then SIGKILL every remaining process, reap them, remove the cgroups we
/// made, and return.
pub fn finish_container(cleanup: Option<&CgroupCleanup>) {
    kill_remaining();
    if let Some(c) = cleanup {
        c.remove();
    }
}

/// Machine mode: kill the rest, sync, unmount or remount read-only, then reboot(2). Never returns.
pub fn finish_machine(kind: ShutdownKind) -> ! {
    // Containers outlive containerd's stop on purpose: they get their own bounded stop first.
    crate::node::drain::drain(
        Path::new(crate::paths::CGROUP_ROOT),
        crate::node::drain::NODE_GROUPS,
        crate::node::drain::DRAIN_TIMEOUT,
    );
    kill_remaining();
    power::sync_all();
    unmount_all(Path::new("/proc/self/mountinfo"));
    power::sync_all();
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
    let deadline = Instant::now() + limit;
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
        if Instant::now() >= deadline {
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

fn unmount_all(mountinfo_path: &Path) {
    let text = std::fs::read_to_string(mountinfo_path).unwrap_or_default();
    for mp in unmount_order(&text) {
        if mount::unmount(&mp, false).is_err() && mount::remount_read_only(&mp).is_err() {
            let _ = mount::unmount(&mp, true);
        }
    }
    if let Err(e) = mount::remount_read_only(Path::new("/")) {
        log::warn!("remounting / read-only failed: {e}");
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
