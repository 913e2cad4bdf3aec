//! Device node ownership and modes: the part of udev's rules a container host needs, as a small
//! file of `PATH MODE [USER][:GROUP]` lines.
//!
//! ```text
//! # /usr/lib/lifsea/devices.rules (vendor); /etc/lifsea/devices.rules (admin) is read after it
//! /dev/kvm        0660 root:kvm
//! /dev/net/tun    0666
//! /dev/vhost-*    0660 :kvm
//! ```
//!
//! `PATH` is a glob (`*`, `?`, `[...]`) over the node's path; the last matching line wins, so an
//! admin line overrides a vendor line for the same node. Names resolve through /etc/passwd and
//! /etc/group (numbers work too); an unknown name is an error for that line only. The kernel's
//! devtmpfs creates the nodes (root 0600 or the driver's mode); these rules adjust them at boot
//! and whenever a node is added.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::modalias::glob_match;

pub const VENDOR_RULES: &str = "/usr/lib/lifsea/devices.rules";
pub const ADMIN_RULES: &str = "/etc/lifsea/devices.rules";

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("set owner and mode of {path}: {source}")]
    Apply {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One rule, with names already resolved to ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Glob over the node's path under /dev (`kvm`, `net/tun`, `vhost-*`).
    pub pattern: String,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// Parses a rules file; `passwd` and `group` are the texts names resolve against.
pub fn parse(file: &str, text: &str, passwd: &str, group: &str) -> (Vec<Rule>, Vec<RulesError>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match parse_line(line, passwd, group) {
            Ok(r) => rules.push(r),
            Err(message) => errors.push(RulesError::Syntax {
                file: file.to_string(),
                line: i + 1,
                message,
            }),
        }
    }
    (rules, errors)
}

fn parse_line(line: &str, passwd: &str, group: &str) -> Result<Rule, String> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let (path, mode, owner) = match w.as_slice() {
        [p, m] => (*p, *m, None),
        [p, m, o] => (*p, *m, Some(*o)),
        _ => return Err("expected PATH MODE [USER][:GROUP]".into()),
    };
    let pattern = path
        .strip_prefix("/dev/")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| format!("path {path:?} is not under /dev/"))?;
    let mode = u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o7777 && mode.len() >= 3)
        .ok_or_else(|| format!("mode {mode:?} is not an octal mode such as 0660"))?;
    let (user, grp) = match owner {
        None => (None, None),
        Some(o) => match o.split_once(':') {
            Some((u, g)) => (
                Some(u).filter(|u| !u.is_empty()),
                Some(g).filter(|g| !g.is_empty()),
            ),
            None => (Some(o), None),
        },
    };
    let uid = match user {
        None => None,
        Some(u) => Some(
            crate::units::users::resolve(Some(u), None, passwd, "")
                .map_err(|e| e.to_string())?
                .uid,
        ),
    };
    let gid = match grp {
        None => None,
        Some(g) => Some(
            crate::units::users::resolve(None, Some(g), "", group)
                .map_err(|e| e.to_string())?
                .gid,
        ),
    };
    Ok(Rule {
        pattern: pattern.to_string(),
        mode,
        uid,
        gid,
    })
}

/// The rule for a node (`net/tun`): the last one that matches.
pub fn rule_for<'a>(rules: &'a [Rule], devname: &str) -> Option<&'a Rule> {
    rules.iter().rev().find(|r| glob_match(&r.pattern, devname))
}

/// Reads the vendor then the admin file (missing files are fine) with names from `etc`.
pub fn load(files: &[PathBuf], etc: &Path) -> (Vec<Rule>, Vec<RulesError>) {
    let passwd = std::fs::read_to_string(etc.join("passwd")).unwrap_or_default();
    let group = std::fs::read_to_string(etc.join("group")).unwrap_or_default();
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match std::fs::read_to_string(f) {
            Ok(text) => {
                let (r, e) = parse(&f.to_string_lossy(), &text, &passwd, &group);
                rules.extend(r);
                errors.extend(e);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => errors.push(RulesError::Read {
                path: f.clone(),
                source,
            }),
        }
    }
    (rules, errors)
}

/// Applies the matching rule to the node `devname` under `dev_root`; Ok(false) when none matches.
pub fn apply(rules: &[Rule], dev_root: &Path, devname: &str) -> Result<bool, RulesError> {
    let Some(rule) = rule_for(rules, devname) else {
        return Ok(false);
    };
    let path = dev_root.join(devname);
    let err = |source| RulesError::Apply {
        path: path.clone(),
        source,
    };
    if rule.uid.is_some() || rule.gid.is_some() {
        std::os::unix::fs::lchown(&path, rule.uid, rule.gid).map_err(err)?;
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(rule.mode)).map_err(err)?;
    Ok(true)
}

/// Applies the rules to the nodes already present under `dev_root` (two levels deep: `kvm`,
/// `net/tun`); returns how many were changed and the errors.
pub fn apply_existing(rules: &[Rule], dev_root: &Path) -> (usize, Vec<RulesError>) {
    let mut n = 0;
    let mut errors = Vec::new();
    if rules.is_empty() {
        return (0, errors);
    }
    let mut names = Vec::new();
    let list = |dir: &Path, prefix: &str, out: &mut Vec<(String, bool)>| {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let Ok(ft) = e.file_type() else { continue };
                if ft.is_symlink() {
                    continue;
                }
                let name = format!("{prefix}{}", e.file_name().to_string_lossy());
                out.push((name, ft.is_dir()));
            }
        }
    };
    let mut top = Vec::new();
    list(dev_root, "", &mut top);
    for (name, is_dir) in top {
        if is_dir {
            let mut sub = Vec::new();
            list(&dev_root.join(&name), &format!("{name}/"), &mut sub);
            names.extend(sub.into_iter().filter(|(_, d)| !d).map(|(n, _)| n));
        } else {
            names.push(name);
        }
    }
    for name in names {
        match apply(rules, dev_root, &name) {
            Ok(true) => n += 1,
            Ok(false) => {}
            Err(e) => errors.push(e),
        }
    }
    (n, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nqemu:x:107:108::/:/bin/false\n";
    const GROUP: &str = "root:x:0:\nkvm:x:104:\n";

    #[test]
    fn parses_rules_with_exact_errors() {
        let (rules, errors) = parse(
            "/etc/lifsea/devices.rules",
            "# comment\n/dev/kvm 0660 root:kvm\n/dev/net/tun 0666\n/dev/vhost-* 660 :kvm # trailing\n/dev/x 0600 qemu\n/dev/bad 9999\n/etc/passwd 0666\n/dev/y 0600 nobody\n/dev/z 0600 :nogroup\n/dev/w\n",
            PASSWD,
            GROUP,
        );
        assert_eq!(
            rules,
            vec![
                Rule {
                    pattern: "kvm".into(),
                    mode: 0o660,
                    uid: Some(0),
                    gid: Some(104)
                },
                Rule {
                    pattern: "net/tun".into(),
                    mode: 0o666,
                    uid: None,
                    gid: None
                },
                Rule {
                    pattern: "vhost-*".into(),
                    mode: 0o660,
                    uid: None,
                    gid: Some(104)
                },
                Rule {
                    pattern: "x".into(),
                    mode: 0o600,
                    uid: Some(107),
                    gid: None
                },
            ]
        );
        let msgs: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            msgs,
            vec![
                "/etc/lifsea/devices.rules:6: mode \"9999\" is not an octal mode such as 0660",
                "/etc/lifsea/devices.rules:7: path \"/etc/passwd\" is not under /dev/",
                "/etc/lifsea/devices.rules:8: unknown user \"nobody\" (not in passwd)",
                "/etc/lifsea/devices.rules:9: unknown group \"nogroup\" (not in group)",
                "/etc/lifsea/devices.rules:10: expected PATH MODE [USER][:GROUP]",
            ]
        );
    }

    #[test]
    fn last_match_wins_and_modes_are_applied() {
        let (mut rules, _) = parse("v", "/dev/net/* 0600\n/dev/kvm 0660 :0\n", PASSWD, GROUP);
        let (admin, _) = parse("a", "/dev/net/tun 0666\n", PASSWD, GROUP);
        rules.extend(admin);
        assert_eq!(rule_for(&rules, "net/tun").map(|r| r.mode), Some(0o666));
        assert_eq!(rule_for(&rules, "net/other").map(|r| r.mode), Some(0o600));
        assert!(rule_for(&rules, "null").is_none());

        let t = std::env::temp_dir().join(format!("lifsea-rules-{}", std::process::id()));
        std::fs::create_dir_all(t.join("net")).unwrap();
        std::fs::write(t.join("net/tun"), "").unwrap();
        std::fs::write(t.join("kvm"), "").unwrap();
        std::fs::write(t.join("null"), "").unwrap();
        std::fs::set_permissions(t.join("null"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let (n, errors) = apply_existing(&rules, &t);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(n, 2);
        let mode = |p: &str| std::fs::metadata(t.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("net/tun"), 0o666);
        assert_eq!(mode("kvm"), 0o660);
        assert_eq!(mode("null"), 0o644);
        std::fs::remove_dir_all(&t).unwrap();
    }
}
