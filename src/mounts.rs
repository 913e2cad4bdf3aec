//! The early-mounts table and /proc/self/mountinfo parsing.

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
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
