//! Resolving a unit's `user` and `group` into numeric credentials by reading /etc/passwd and
//! /etc/group directly.
//!
//! The binary is static (musl), so there is no NSS: the files are the only source, which is also what
//! a container-host image has. The parsers are pure; `resolve_in` is the thin effectful shell.

use std::io;
use std::path::{Path, PathBuf};

/// One line of /etc/passwd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// One line of /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// What a unit's process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Groups whose member list names the user, sorted, without duplicates (may include `gid`).
    pub supplementary: Vec<u32>,
    /// The user's name when known (for `$USER`/`$LOGNAME`).
    pub name: Option<String>,
    /// The user's home directory when known (for `$HOME`).
    pub home: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unknown user {0:?} (not in passwd)")]
    UnknownUser(String),
    #[error("unknown group {0:?} (not in group)")]
    UnknownGroup(String),
    #[error("cannot read {path}: {source}")]
    ReadPasswd { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    ReadGroup { path: PathBuf, source: io::Error },
}

/// Parses /etc/passwd text. Comments, blank and malformed lines are skipped, as libc does.
pub fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: PathBuf::from(f[5]),
            })
        })
        .collect()
}

/// Parses /etc/group text. Comments, blank and malformed lines are skipped.
pub fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect()
}

fn numeric(s: &str) -> Option<u32> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// Resolves `user`/`group` (names or numeric ids) against the text of passwd and group.
///
/// - no user: uid 0; gid from `group`, else 0; no supplementary groups, no name, no home;
/// - user given: its uid; gid from `group`, else the user's primary group; supplementary = every
///   group listing the user's name;
/// - a numeric user absent from passwd is accepted, and without `group` its gid equals its uid
///   (never silently root's group); a numeric group absent from group is accepted;
/// - an unknown name is an error.
pub fn resolve(
    user: Option<&str>,
    group: Option<&str>,
    passwd: &str,
    group_text: &str,
) -> Result<Credentials, UserError> {
    let users = parse_passwd(passwd);
    let groups = parse_group(group_text);
    let entry = match user {
        None => None,
        Some(u) => match numeric(u) {
            Some(uid) => Some(users.iter().find(|e| e.uid == uid).cloned().ok_or(uid)),
            None => Some(Ok(users
                .iter()
                .find(|e| e.name == u)
                .cloned()
                .ok_or_else(|| UserError::UnknownUser(u.to_string()))?)),
        },
    };
    let explicit_gid = match group {
        None => None,
        Some(g) => Some(match numeric(g) {
            Some(gid) => gid,
            None => {
                groups
                    .iter()
                    .find(|e| e.name == g)
                    .ok_or_else(|| UserError::UnknownGroup(g.to_string()))?
                    .gid
            }
        }),
    };
    let (uid, primary, name, home) = match entry {
        None => (0, 0, None, None),
        Some(Ok(e)) => (e.uid, e.gid, Some(e.name), Some(e.home)),
        Some(Err(uid)) => (uid, uid, None, None),
    };
    let mut supplementary: Vec<u32> = match &name {
        Some(n) => groups
            .iter()
            .filter(|g| g.members.iter().any(|m| m == n))
            .map(|g| g.gid)
            .collect(),
        None => Vec::new(),
    };
    crate::collections::sort::sort(&mut supplementary);
    supplementary.dedup();
    Ok(Credentials {
        uid,
        gid: explicit_gid.unwrap_or(primary),
        supplementary,
        name,
        home,
    })
}

/// Reads `<etc_dir>/passwd` and `<etc_dir>/group` and resolves. Missing files count as empty, so
/// numeric ids work on an image without them; they are only read when a user or group is given.
pub fn resolve_in(
    etc_dir: &Path,
    user: Option<&str>,
    group: Option<&str>,
) -> Result<Credentials, UserError> {
    if user.is_none() && group.is_none() {
        return resolve(None, None, "", "");
    }
    let read = |name: &str| match std::fs::read_to_string(etc_dir.join(name)) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err((etc_dir.join(name), e)),
    };
    let passwd = read("passwd").map_err(|(path, source)| UserError::ReadPasswd { path, source })?;
    let group_text =
        read("group").map_err(|(path, source)| UserError::ReadGroup { path, source })?;
    resolve(user, group, &passwd, &group_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
broken line
kube:x:1000:1000:Kube,,,:/var/lib/kube:/bin/sh
bad:x:notanumber:1:x:/:/bin/sh
";
    const GROUP: &str = "\
root:x:0:
daemon:x:1:
kube:x:1000:
docker:x:999:kube,alice
adm:x:4:syslog, kube
";

    #[test]
    fn parses_files_skipping_junk() {
        let users = parse_passwd(PASSWD);
        assert_eq!(users.len(), 3);
        assert_eq!(
            users[2],
            PasswdEntry {
                name: "kube".into(),
                uid: 1000,
                gid: 1000,
                home: "/var/lib/kube".into()
            }
        );
        let groups = parse_group(GROUP);
        assert_eq!(groups.len(), 5);
        assert_eq!(
            groups[3].members,
            vec!["kube".to_string(), "alice".to_string()]
        );
        assert_eq!(
            groups[4].members,
            vec!["syslog".to_string(), "kube".to_string()]
        );
    }

    #[test]
    fn named_user_gets_primary_and_supplementary_groups() {
        let c = resolve(Some("kube"), None, PASSWD, GROUP).unwrap();
        assert_eq!(
            c,
            Credentials {
                uid: 1000,
                gid: 1000,
                supplementary: vec![4, 999],
                name: Some("kube".into()),
                home: Some("/var/lib/kube".into()),
            }
        );
        let c = resolve(Some("kube"), Some("docker"), PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid), (1000, 999));
        let c = resolve(Some("daemon"), Some("7"), PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid, c.supplementary), (1, 7, vec![]));
    }

    #[test]
    fn numeric_ids_and_defaults() {
        // Known numeric uid: its entry is used for name and primary group.
        let c = resolve(Some("1000"), None, PASSWD, GROUP).unwrap();
        assert_eq!(
            (c.uid, c.gid, c.name.as_deref()),
            (1000, 1000, Some("kube"))
        );
        // Unknown numeric uid: accepted, gid defaults to the uid, not to root's group.
        let c = resolve(Some("4242"), None, PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid, c.name, c.home), (4242, 4242, None, None));
        let c = resolve(Some("4242"), Some("5000"), "", "").unwrap();
        assert_eq!((c.uid, c.gid), (4242, 5000));
        let c = resolve(None, None, PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid, c.supplementary.len()), (0, 0, 0));
        let c = resolve(None, Some("daemon"), PASSWD, GROUP).unwrap();
        assert_eq!((c.uid, c.gid), (0, 1));
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = resolve(Some("nobody"), None, PASSWD, GROUP).unwrap_err();
        assert_eq!(e.to_string(), "unknown user \"nobody\" (not in passwd)");
        let e = resolve(Some("kube"), Some("wheel"), PASSWD, GROUP).unwrap_err();
        assert_eq!(e.to_string(), "unknown group \"wheel\" (not in group)");
    }

    #[test]
    fn resolve_in_reads_files_and_tolerates_missing_ones() {
        let dir = std::env::temp_dir().join(format!("lifsea-users-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // No files yet: numeric ids still work, names do not.
        assert_eq!(resolve_in(&dir, Some("7"), None).unwrap().gid, 7);
        assert!(matches!(
            resolve_in(&dir, Some("kube"), None),
            Err(UserError::UnknownUser(_))
        ));
        std::fs::write(dir.join("passwd"), PASSWD).unwrap();
        std::fs::write(dir.join("group"), GROUP).unwrap();
        assert_eq!(
            resolve_in(&dir, Some("kube"), None).unwrap().supplementary,
            vec![4, 999]
        );
        // A directory where a file should be is a read error naming the path.
        std::fs::remove_file(dir.join("group")).unwrap();
        std::fs::create_dir(dir.join("group")).unwrap();
        let e = resolve_in(&dir, Some("kube"), None).unwrap_err();
        assert!(matches!(&e, UserError::ReadGroup { path, .. } if path == &dir.join("group")));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
