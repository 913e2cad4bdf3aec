//! Pure parsers for the /proc files several stages read: the kernel command line's words (boot,
//! network, devices), mountinfo (boot, shutdown, the cgroup finder), /proc/PID/stat (the process tree for shutdown and sd_notify's sender check) and
//! /proc/PID/cgroup. They take text and return data; the one walker here takes its /proc path as a
//! parameter so tests can hand it a fake tree.

use std::path::Path;

/// One line of /proc/self/mountinfo (fields the init uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u32,
    pub parent: u32,
    pub root: String,
    pub mount_point: String,
    pub options: String,
    pub fs_type: String,
    pub source: String,
}

/// Undoes the kernel's octal escapes (`\040` for space) in mountinfo paths.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        // The kernel escapes bytes, so `\ooo` above `\377` is not an escape: it stays as written
        // (u8 arithmetic overflowed on it, found by fuzz/).
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u16, |v, c| v * 8 + u16::from(c - b'0')))
            .and_then(|v| u8::try_from(v).ok());
        if let Some(byte) = octal {
            out.push(byte);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let p: Vec<&str> = post.split(' ').collect();
            if f.len() < 6 || p.len() < 2 {
                return None;
            }
            Some(MountInfo {
                id: f[0].parse().ok()?,
                parent: f[1].parse().ok()?,
                root: unescape(f[3]),
                mount_point: unescape(f[4]),
                options: f[5].to_string(),
                fs_type: p[0].to_string(),
                source: unescape(p[1]),
            })
        })
        .collect()
}

/// Whether `target` is a mount point according to mountinfo text.
pub fn is_mounted(mountinfo: &str, target: &str) -> bool {
    parse_mountinfo(mountinfo)
        .iter()
        .any(|m| m.mount_point == target)
}

/// The cgroup v2 path from the text of /proc/PID/cgroup (the `0::` line).
pub fn parse_proc_cgroup(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
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
    let mut parent = crate::collections::strmap::FdMap::new();
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

/// Splits /proc/cmdline into words the way the kernel does: whitespace separates words except
/// inside double quotes, and the quotes themselves are dropped (`a="b c"` → `a=b c`). Words after
/// a bare `--` belong to init's argv and are not kernel parameters.
pub fn cmdline_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    if cur == "--" {
                        return words;
                    }
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word && cur != "--" {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_line_of_proc_pid_cgroup() {
        assert_eq!(
            parse_proc_cgroup("1:name=systemd:/\n0::/a/system/x\n").as_deref(),
            Some("/a/system/x")
        );
        assert_eq!(parse_proc_cgroup("1:cpu:/\n"), None);
    }

    #[test]
    fn parses_lines_and_escapes() {
        let t = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                 30 27 0:30 / /mnt/a\\040b rw - ext4 /dev/vda1 rw\nbad line\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, "/proc");
        assert_eq!(m[0].fs_type, "proc");
        assert_eq!(m[1].mount_point, "/mnt/a b");
        assert_eq!(m[1].source, "/dev/vda1");
        assert_eq!(m[1].parent, 27);
    }

    #[test]
    fn octal_escape_above_a_byte_stays_literal() {
        let m = parse_mountinfo("30 27 0:30 / /mnt/\\777\\101\\40 rw - ext4 /dev/vda1 rw\n");
        assert_eq!(m[0].mount_point, "/mnt/\\777A\\40");
    }

    #[test]
    fn ppid_from_stat_with_awkward_comm() {
        assert_eq!(parse_stat_ppid("42 (my (odd) name) S 7 42 42 0"), Some(7));
        assert_eq!(parse_stat_ppid("1 (init) S 0 1 1"), Some(0));
        assert_eq!(parse_stat_ppid("garbage"), None);
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
