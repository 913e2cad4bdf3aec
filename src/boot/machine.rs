//! Machine identity and kernel tunables: hostname, a machine-id generated on first boot and kept
//! under /etc, and sysctl settings from `sysctl.d` directories (vendor then admin, same file name
//! overrides). Parsers are pure; the effectful parts take their paths as parameters.

use std::io::Read;
use std::path::{Path, PathBuf};

pub const DEFAULT_HOSTNAME: &str = "lifsea";

#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("set hostname {name}: {source}")]
    Hostname { name: String, source: nix::Error },
    #[error("read random bytes from {path}: {source}")]
    Random {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write machine-id {path}: {source}")]
    WriteMachineId {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}: {reason}")]
    SysctlLine {
        file: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("sysctl {key} ({path}): {source}")]
    SysctlWrite {
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The hostname from /etc/hostname text: first non-comment, non-empty line, trimmed.
pub fn parse_hostname(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .filter(|l| l.len() <= 64 && !l.contains(char::is_whitespace))
        .map(str::to_string)
}

/// Sets the hostname from `etc/hostname`, else `DEFAULT_HOSTNAME`; returns the name set.
pub fn apply_hostname(etc: &Path) -> Result<String, MachineError> {
    let name = std::fs::read_to_string(etc.join("hostname"))
        .ok()
        .and_then(|t| parse_hostname(&t))
        .unwrap_or_else(|| DEFAULT_HOSTNAME.to_string());
    crate::sys::bootexec::set_hostname(&name).map_err(|source| MachineError::Hostname {
        name: name.clone(),
        source,
    })?;
    Ok(name)
}

/// A machine-id is 32 lowercase hex digits, not all zero.
pub fn valid_machine_id(text: &str) -> bool {
    let t = text.trim();
    t.len() == 32
        && t.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && t.bytes().any(|b| b != b'0')
}

/// Formats 16 random bytes as a machine-id, marked as a version-4 UUID like systemd does.
pub fn format_machine_id(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Keeps a valid `etc/machine-id`, or writes a new random one (missing, empty, "uninitialized"
/// or malformed) with bytes read from `random` (a file such as /dev/urandom; `None` uses
/// getrandom without waiting for the entropy pool, which is what boot wants: an id, not a key).
/// Returns the id and whether it was generated now.
pub fn ensure_machine_id(
    etc: &Path,
    random: Option<&Path>,
) -> Result<(String, bool), MachineError> {
    let path = etc.join("machine-id");
    if let Ok(t) = std::fs::read_to_string(&path) {
        if valid_machine_id(&t) {
            return Ok((t.trim().to_string(), false));
        }
    }
    let mut bytes = [0u8; 16];
    let filled = match random {
        Some(p) => std::fs::File::open(p).and_then(|mut f| f.read_exact(&mut bytes)),
        None => crate::sys::random::fill_insecure(&mut bytes),
    };
    filled.map_err(|source| MachineError::Random {
        path: random
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("getrandom")),
        source,
    })?;
    let id = format_machine_id(bytes);
    // Temporary file, fsync, rename, fsync of /etc: a power cut leaves no id or the whole id,
    // never an empty file (which would make the next boot pick another id).
    crate::durable::write_atomic(&path, format!("{id}\n").as_bytes()).map_err(|e| {
        MachineError::WriteMachineId {
            path,
            source: e.source,
        }
    })?;
    Ok((id, true))
}

/// One `key = value` setting; `ignore_failure` for a leading `-` (systemd's convention).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub key: String,
    pub value: String,
    pub ignore_failure: bool,
    pub line: usize,
}

/// Parses a sysctl.d file; bad lines come back as (line number, reason).
pub fn parse_sysctl(text: &str) -> (Vec<Sysctl>, Vec<(usize, String)>) {
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            bad.push((i + 1, format!("expected key = value, got {l:?}")));
            continue;
        };
        let (k, ignore) = match k.trim().strip_prefix('-') {
            Some(k) => (k.trim(), true),
            None => (k.trim(), false),
        };
        if k.is_empty() || k.contains("..") || k.split(['.', '/']).any(str::is_empty) {
            bad.push((i + 1, format!("bad key {k:?}")));
            continue;
        }
        ok.push(Sysctl {
            key: k.to_string(),
            value: v.trim().to_string(),
            ignore_failure: ignore,
            line: i + 1,
        });
    }
    (ok, bad)
}

/// The /proc/sys path of a key: dots separate levels (`net.ipv4.ip_forward`), slashes too.
pub fn sysctl_path(proc_sys: &Path, key: &str) -> PathBuf {
    let rel = if key.contains('/') {
        key.to_string()
    } else {
        key.replace('.', "/")
    };
    proc_sys.join(rel)
}

/// Applies every setting from `dirs` under `proc_sys`; returns how many were applied and the
/// errors (bad lines with file:line, failed writes), having applied everything else.
pub fn apply_sysctl(dirs: &[PathBuf], proc_sys: &Path) -> (usize, Vec<MachineError>) {
    let mut applied = 0;
    let mut errors = Vec::new();
    for file in crate::paths::conf_files(dirs) {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let (settings, bad) = parse_sysctl(&text);
        for (line, reason) in bad {
            errors.push(MachineError::SysctlLine {
                file: file.clone(),
                line,
                reason,
            });
        }
        for s in settings {
            let path = sysctl_path(proc_sys, &s.key);
            match std::fs::write(&path, format!("{}\n", s.value)) {
                Ok(()) => applied += 1,
                Err(_) if s.ignore_failure => {}
                Err(source) => errors.push(MachineError::SysctlWrite {
                    key: s.key,
                    path,
                    source,
                }),
            }
        }
    }
    (applied, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_text() {
        assert_eq!(parse_hostname("# c\n\n  node-1 \n"), Some("node-1".into()));
        assert_eq!(parse_hostname(""), None);
        assert_eq!(parse_hostname("has space\n"), None);
    }

    #[test]
    fn machine_id_format() {
        let id = format_machine_id([0xff; 16]);
        assert!(valid_machine_id(&id), "{id}");
        assert_eq!(&id[12..13], "4");
        assert!(!valid_machine_id("uninitialized\n"));
        assert!(!valid_machine_id(&"0".repeat(32)));
        assert!(!valid_machine_id(&"A".repeat(32)));
        assert!(valid_machine_id(&format!("{}\n", "a1".repeat(16))));
    }

    #[test]
    fn sysctl_parsing() {
        let (ok, bad) = parse_sysctl("# c\nnet.ipv4.ip_forward = 1\n-kernel.nope=2\nnonsense\n\nvm..x = 1\nnet/core/somaxconn=4096\n");
        assert_eq!(ok.len(), 3);
        assert_eq!(ok[0].key, "net.ipv4.ip_forward");
        assert_eq!(ok[0].value, "1");
        assert!(ok[1].ignore_failure);
        assert_eq!(bad.iter().map(|b| b.0).collect::<Vec<_>>(), vec![4, 6]);
        assert_eq!(
            sysctl_path(Path::new("/proc/sys"), "net.ipv4.ip_forward"),
            PathBuf::from("/proc/sys/net/ipv4/ip_forward")
        );
        assert_eq!(
            sysctl_path(Path::new("/p"), "net/core/somaxconn"),
            PathBuf::from("/p/net/core/somaxconn")
        );
    }
}
