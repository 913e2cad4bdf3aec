//! sd_notify messages: parsing the `KEY=VALUE` lines services send on `$NOTIFY_SOCKET`, and deciding
//! which unit a datagram belongs to.
//!
//! A message counts for a unit when its sender (from SCM_CREDENTIALS) is the unit's main process,
//! a process in the unit's cgroup, or a descendant of the main process. The last two matter because
//! `systemd-notify --ready` in a shell script sends from its own pid, a child of the service.

use std::path::Path;

/// What one datagram says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NotifyMessage {
    pub ready: bool,
    pub stopping: bool,
    pub status: Option<String>,
    pub main_pid: Option<i32>,
    pub errno: Option<i32>,
}

/// Parses a datagram; unknown keys are ignored (the protocol is open-ended).
pub fn parse(data: &[u8]) -> NotifyMessage {
    let text = String::from_utf8_lossy(data);
    let mut m = NotifyMessage::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "READY" => m.ready = v == "1",
            "STOPPING" => m.stopping = v == "1",
            "STATUS" => m.status = Some(v.to_string()),
            "MAINPID" => m.main_pid = v.trim().parse().ok().filter(|p: &i32| *p > 0),
            "ERRNO" => m.errno = v.trim().parse().ok(),
            _ => {}
        }
    }
    m
}

/// Whether cgroup path `member` is `group` or below it.
pub fn cgroup_contains(group: &str, member: &str) -> bool {
    let g = group.trim_end_matches('/');
    member == g || (member.starts_with(g) && member.as_bytes().get(g.len()) == Some(&b'/'))
}

/// The cgroup of a live process, read from `<proc>/PID/cgroup`.
pub fn cgroup_of(proc_dir: &Path, pid: i32) -> Option<String> {
    let text = std::fs::read_to_string(proc_dir.join(pid.to_string()).join("cgroup")).ok()?;
    crate::procfs::parse_proc_cgroup(&text)
}

/// Whether `pid` descends from `ancestor`, walking parent links in `<proc>/PID/stat`.
pub fn descends_from(proc_dir: &Path, pid: i32, ancestor: i32) -> bool {
    let mut cur = pid;
    for _ in 0..32 {
        if cur == ancestor {
            return true;
        }
        let Ok(stat) = std::fs::read_to_string(proc_dir.join(cur.to_string()).join("stat")) else {
            return false;
        };
        match crate::procfs::parse_stat_ppid(&stat) {
            Some(pp) if pp > 1 => cur = pp,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_keys() {
        let m = parse(b"READY=1\nSTATUS=Serving 3 clients\nMAINPID=1234\nBOGUS=x\nnoequals\n");
        assert!(m.ready);
        assert!(!m.stopping);
        assert_eq!(m.status.as_deref(), Some("Serving 3 clients"));
        assert_eq!(m.main_pid, Some(1234));
        let m = parse(b"STOPPING=1\nERRNO=2\nMAINPID=0\nREADY=0");
        assert!(m.stopping && !m.ready);
        assert_eq!(m.errno, Some(2));
        assert_eq!(m.main_pid, None);
    }

    #[test]
    fn cgroup_membership() {
        assert!(cgroup_contains("/a/system/x", "/a/system/x"));
        assert!(cgroup_contains("/a/system/x", "/a/system/x/sub"));
        assert!(!cgroup_contains("/a/system/x", "/a/system/xy"));
        assert!(!cgroup_contains("/a/system/x", "/a/system"));
    }

    #[test]
    fn descendant_walk_on_real_processes() {
        let me = std::process::id() as i32;
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        assert!(descends_from(Path::new("/proc"), child.id() as i32, me));
        assert!(!descends_from(Path::new("/proc"), me, child.id() as i32));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
