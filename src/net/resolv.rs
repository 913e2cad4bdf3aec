//! The resolver configuration: rendered from the DNS servers and search domains of every link,
//! written atomically to `/run/lifsea/resolv.conf`, with `/etc/resolv.conf` a symlink to it unless
//! the administrator put a regular file there (then theirs wins and we only log that).
//!
//! Atomic (temporary file, fsync, rename, fsync of the directory) because containerd and kubelet
//! copy resolv.conf into every pod: a half-written file would be copied as it is.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// glibc reads at most three nameservers and six search domains.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCH: usize = 6;

#[derive(Debug, thiserror::Error)]
pub enum ResolvError {
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("link {link} -> {target}: {source}")]
    Link {
        link: PathBuf,
        target: PathBuf,
        source: std::io::Error,
    },
}

/// What `/etc/resolv.conf` turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcResolv {
    /// Already our symlink.
    Linked,
    /// Created (or a foreign symlink or a dangling one replaced).
    Created,
    /// A regular file the administrator put there: left alone.
    AdminFile,
}

/// The text of resolv.conf for these servers and search domains, duplicates removed, in order.
pub fn render(servers: &[IpAddr], search: &[String]) -> String {
    let mut out = String::from("# Written by lifsea-init from DHCP and network.toml.\n");
    let mut seen = Vec::new();
    for s in servers {
        if !seen.contains(s) && seen.len() < MAX_NAMESERVERS {
            seen.push(*s);
            out.push_str(&format!("nameserver {s}\n"));
        }
    }
    let mut domains: Vec<&str> = Vec::new();
    for d in search {
        if !domains.contains(&d.as_str()) && domains.len() < MAX_SEARCH {
            domains.push(d);
        }
    }
    if !domains.is_empty() {
        out.push_str(&format!("search {}\n", domains.join(" ")));
    }
    out
}

/// Replaces `path` with `data` atomically and durably (`crate::durable::write_atomic`).
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    crate::durable::write_atomic(path, data)
        .map_err(|e| std::io::Error::new(e.source.kind(), e.to_string()))
}

/// Writes `text` to `run_file` (atomically) and makes `etc_file` point to it.
pub fn install(text: &str, run_file: &Path, etc_file: &Path) -> Result<EtcResolv, ResolvError> {
    write_atomic(run_file, text.as_bytes()).map_err(|source| ResolvError::Write {
        path: run_file.to_path_buf(),
        source,
    })?;
    link_etc(run_file, etc_file)
}

/// Points `etc_file` at `run_file` unless it is a regular file.
pub fn link_etc(run_file: &Path, etc_file: &Path) -> Result<EtcResolv, ResolvError> {
    let err = |source| ResolvError::Link {
        link: etc_file.to_path_buf(),
        target: run_file.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(etc_file) {
        Ok(m) if m.file_type().is_symlink() => {
            if std::fs::read_link(etc_file).is_ok_and(|t| t == run_file) {
                return Ok(EtcResolv::Linked);
            }
        }
        Ok(_) => return Ok(EtcResolv::AdminFile),
        Err(_) => {}
    }
    // A new symlink beside it, renamed over: no moment without a resolv.conf.
    let dir = etc_file.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(".resolv.conf.lifsea-tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(run_file, &tmp).map_err(err)?;
    std::fs::rename(&tmp, etc_file).map_err(err)?;
    Ok(EtcResolv::Created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lifsea-resolv-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn renders_deduplicated_and_capped() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let text = render(
            &[
                ip("10.0.2.3"),
                ip("10.0.2.3"),
                ip("1.1.1.1"),
                ip("fd00::1"),
                ip("8.8.8.8"),
            ],
            &["a.example".into(), "b.example".into(), "a.example".into()],
        );
        assert_eq!(
            text,
            "# Written by lifsea-init from DHCP and network.toml.\n\
             nameserver 10.0.2.3\nnameserver 1.1.1.1\nnameserver fd00::1\n\
             search a.example b.example\n"
        );
    }

    #[test]
    fn symlink_created_unless_admin_file() {
        let d = tmpdir("link");
        let run = d.join("run/resolv.conf");
        let etc = d.join("resolv.conf");
        assert_eq!(
            install("nameserver 10.0.0.1\n", &run, &etc).unwrap(),
            EtcResolv::Created
        );
        assert_eq!(std::fs::read_link(&etc).unwrap(), run);
        assert_eq!(
            std::fs::read_to_string(&etc).unwrap(),
            "nameserver 10.0.0.1\n"
        );
        assert_eq!(
            install("nameserver 10.0.0.2\n", &run, &etc).unwrap(),
            EtcResolv::Linked
        );
        assert_eq!(
            std::fs::read_to_string(&etc).unwrap(),
            "nameserver 10.0.0.2\n"
        );
        // A foreign symlink is replaced; a regular file is the administrator's.
        std::fs::remove_file(&etc).unwrap();
        std::os::unix::fs::symlink("/nonexistent", &etc).unwrap();
        assert_eq!(link_etc(&run, &etc).unwrap(), EtcResolv::Created);
        std::fs::remove_file(&etc).unwrap();
        std::fs::write(&etc, "nameserver 9.9.9.9\n").unwrap();
        assert_eq!(install("x\n", &run, &etc).unwrap(), EtcResolv::AdminFile);
        assert_eq!(
            std::fs::read_to_string(&etc).unwrap(),
            "nameserver 9.9.9.9\n"
        );
        assert!(!d.join(".resolv.conf.tmp").exists() && !d.join("run/.resolv.conf.tmp").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
