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
use crate::mounts::parse_mountinfo;
use crate::sys::power::{self, PowerAction};
use crate::sys::reap::{self as process, ReapOutcome};

/// How long processes get between SIGTERM and SIGKILL at the very end.
pub const TERM_GRACE: Duration = Duration::from_secs(1);
/// How long we wait for SIGKILLed processes to be reaped before moving on.
const KILL_REAP_WAIT: Duration = Duration::from_secs(2);

/// The cgroups a container-mode init created and removes when it is done.
#[derive(Debug, Clone, Default)]
struct CgroupCleanup {
    root: PathBuf,
    base: String,
    /// The base itself was created by us (not the group we were started in).
    remove_base: bool,
    /// First components of the groups created under the base (`init`, `system`, ...).
    tops: std::collections::BTreeSet<String>,
}

static CGROUP_CLEANUP: std::sync::Mutex<Option<CgroupCleanup>> = std::sync::Mutex::new(None);

/// Container mode: remember to remove what we create under `root/base` (and `base` itself when
/// `remove_base`) once everything is dead.
pub fn register_cgroup_cleanup(root: PathBuf, base: String, remove_base: bool) {
    if let Ok(mut g) = CGROUP_CLEANUP.lock() {
        let mut tops = std::collections::BTreeSet::new();
        tops.insert("init".to_string());
        *g = Some(CgroupCleanup {
            root,
            base,
            remove_base,
            tops,
        });
    }
}

/// Records a group path (relative to the base) created for a unit, for removal at exit.
pub fn note_created_cgroup(rel_to_base: &str) {
    if let Ok(mut g) = CGROUP_CLEANUP.lock() {
        if let (Some(c), Some(top)) = (g.as_mut(), rel_to_base.split('/').next()) {
            if !top.is_empty() {
                c.tops.insert(top.to_string());
            }
        }
    }
}

/// Container mode: SIGTERM then SIGKILL every remaining process, reap them, remove the cgroups we
/// made, and return.
pub fn finish_container() {
    kill_remaining();
    let cleanup = CGROUP_CLEANUP.lock().ok().and_then(|g| g.clone());
    if let Some(c) = cleanup {
        remove_cgroups(&c);
    }
}

/// Leaves `<base>/init` (a group one is in cannot be removed), then removes the groups we made,
/// deepest first (rmdir only succeeds on empty groups).
fn remove_cgroups(c: &CgroupCleanup) {
    let base = c.root.join(&c.base);
    let home = if c.remove_base {
        c.root.clone()
    } else {
        base.clone()
    };
    if let Err(e) = std::fs::write(home.join("cgroup.procs"), std::process::id().to_string()) {
        log::debug!("cannot leave the init cgroup: {e}");
        return;
    }
    for top in &c.tops {
        remove_tree(&base.join(top));
    }
    if c.remove_base {
        let _ = std::fs::remove_dir(&base);
    }
}

fn remove_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for ent in rd.flatten() {
            if ent.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&ent.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Machine mode: kill the rest, sync, unmount or remount read-only, then reboot(2). Never returns.
pub fn finish_machine(kind: ShutdownKind) -> ! {
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

/// Parent pid from the text of /proc/PID/stat (the comm field may contain spaces and parentheses).
pub fn parse_stat_ppid(stat: &str) -> Option<i32> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// Every process below `root_pid`, from a /proc directory.
pub fn descendants(proc_dir: &Path, root_pid: i32) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir(proc_dir) else {
        return Vec::new();
    };
    let mut parent = std::collections::BTreeMap::new();
    for ent in rd.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(ent.path().join("stat")) {
            if let Some(pp) = parse_stat_ppid(&stat) {
                parent.insert(pid, pp);
            }
        }
    }
    parent
        .keys()
        .copied()
        .filter(|&p| {
            let mut cur = p;
            for _ in 0..64 {
                match parent.get(&cur) {
                    Some(&pp) if pp == root_pid => return true,
                    Some(&pp) if pp > 1 => cur = pp,
                    _ => return false,
                }
            }
            false
        })
        .collect()
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
        if power::unmount(&mp, false).is_err() && power::remount_read_only(&mp).is_err() {
            let _ = power::unmount(&mp, true);
        }
    }
    if let Err(e) = power::remount_read_only(Path::new("/")) {
        log::warn!("remounting / read-only failed: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ppid_from_stat_with_awkward_comm() {
        assert_eq!(parse_stat_ppid("42 (my (odd) name) S 7 42 42 0"), Some(7));
        assert_eq!(parse_stat_ppid("1 (init) S 0 1 1"), Some(0));
        assert_eq!(parse_stat_ppid("garbage"), None);
    }

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

    #[test]
    fn finds_descendants_in_real_proc() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        let d = descendants(Path::new("/proc"), me);
        assert!(d.contains(&(child.id() as i32)), "{d:?}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
