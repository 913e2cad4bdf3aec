//! `/etc/lifsea/os.toml`: what a healthy boot means on this node and how long it may take.
//!
//! ```toml
//! health = ["containerd", "kubelet"]  # units that must be ready; default: every enabled unit
//! healthy-for = "30s"                 # how long the health set must hold before blessing
//! deadline = "10m"                    # a boot not blessed by then reboots (uses the next try)
//! tries = 3                           # tries a new deployment's entry gets
//! watchdog = "60s"                    # arm /dev/watchdog (softdog) with this timeout; default off
//! ```
//! A missing file means the defaults; a bad one is reported and the defaults apply, so a typo
//! never turns automatic rollback off silently (the error is logged and shown in `initctl os`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use thiserror::Error;
use toml::Spanned;

use crate::units::parse::line_col;
use crate::units::tomldoc::{self, DocError, Fields};
use crate::units::values::parse_duration;

/// Where the admin puts the settings.
pub const OS_CONFIG: &str = "/etc/lifsea/os.toml";

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// The settings, defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsConfig {
    /// Units that must be ready; `None` means every enabled unit (boot complete with none failed).
    pub health: Option<Vec<String>>,
    pub healthy_for: Duration,
    pub deadline: Duration,
    pub tries: u32,
    pub watchdog: Option<Duration>,
}

impl Default for OsConfig {
    fn default() -> Self {
        OsConfig {
            health: None,
            healthy_for: Duration::from_secs(30),
            deadline: Duration::from_secs(600),
            tries: 3,
            watchdog: None,
        }
    }
}

#[derive(Default)]
struct Raw {
    health: Option<Vec<String>>,
    healthy_for: Option<String>,
    deadline: Option<String>,
    tries: Option<u32>,
    watchdog: Option<String>,
}

/// Sorts the file's keys into Raw: the first unknown key or wrongly shaped value ends it.
fn raw(text: &str) -> Result<Raw, DocError> {
    let doc = tomldoc::parse(text)?;
    let mut raw = Raw::default();
    let keys = &["health", "healthy-for", "deadline", "tries", "watchdog"];
    let mut fields = Fields::new(doc.get_ref(), keys);
    while let Some((i, v)) = fields.next_field()? {
        let string = || tomldoc::to_string(v).map(|s| Some(s.into_inner()));
        match i {
            0 => {
                let list = tomldoc::array_of(v, tomldoc::to_string)?;
                raw.health = Some(list.into_iter().map(Spanned::into_inner).collect());
            }
            1 => raw.healthy_for = string()?,
            2 => raw.deadline = string()?,
            3 => raw.tries = Some(tomldoc::to_u32(v)?.into_inner()),
            _ => raw.watchdog = string()?,
        }
    }
    Ok(raw)
}

/// Parses the file's text (`path` only names it in errors).
pub fn parse(path: &Path, text: &str) -> Result<OsConfig, ConfigError> {
    let err = |message: String| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    };
    let raw = raw(text).map_err(|e| match e.span {
        Some(s) => {
            let (line, column) = line_col(text, s.start);
            err(format!("line {line}, column {column}: {}", e.message))
        }
        None => err(e.message),
    })?;
    let mut cfg = OsConfig::default();
    if let Some(h) = raw.health {
        cfg.health = Some(h);
    }
    if let Some(d) = raw.healthy_for {
        cfg.healthy_for = parse_duration(&d).map_err(|e| err(format!("healthy-for: {e}")))?;
    }
    if let Some(d) = raw.deadline {
        cfg.deadline = parse_duration(&d).map_err(|e| err(format!("deadline: {e}")))?;
    }
    if let Some(t) = raw.tries {
        if !(1..=100).contains(&t) {
            return Err(err(format!("tries: {t} is not within 1..=100")));
        }
        cfg.tries = t;
    }
    if let Some(w) = raw.watchdog {
        let d = parse_duration(&w).map_err(|e| err(format!("watchdog: {e}")))?;
        if d < Duration::from_secs(2) {
            return Err(err("watchdog: at least 2s".into()));
        }
        cfg.watchdog = Some(d);
    }
    if cfg.deadline <= cfg.healthy_for {
        return Err(err(format!(
            "deadline ({} s) must be longer than healthy-for ({} s)",
            cfg.deadline.as_secs(),
            cfg.healthy_for.as_secs()
        )));
    }
    Ok(cfg)
}

/// Reads the file; a missing file is the defaults.
pub fn load(path: &Path) -> Result<OsConfig, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(OsConfig::default()),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<OsConfig, ConfigError> {
        parse(Path::new("os.toml"), text)
    }

    #[test]
    fn defaults_and_overrides() {
        assert_eq!(p("").unwrap(), OsConfig::default());
        let c = p("health = [\"containerd\", \"kubelet\"]\nhealthy-for = \"5s\"\ndeadline = \"2m\"\ntries = 2\nwatchdog = \"45s\"\n").unwrap();
        assert_eq!(c.watchdog, Some(Duration::from_secs(45)));
        assert_eq!(c.health, Some(vec!["containerd".into(), "kubelet".into()]));
        assert_eq!(c.healthy_for, Duration::from_secs(5));
        assert_eq!(c.deadline, Duration::from_secs(120));
        assert_eq!(c.tries, 2);
    }

    #[test]
    fn bad_files_name_the_problem() {
        for (text, want) in [
            ("helth = []", "helth"),
            ("healthy-for = \"soon\"", "healthy-for"),
            ("tries = 0", "tries"),
            ("deadline = \"10s\"", "deadline"),
        ] {
            let e = p(text).unwrap_err().to_string();
            assert!(
                e.starts_with("os.toml: ") && e.contains(want),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn missing_file_is_defaults() {
        let dir = std::env::temp_dir().join(format!("lifsea-os-cfg-{}", std::process::id()));
        assert_eq!(load(&dir.join("nope.toml")).unwrap(), OsConfig::default());
    }
}
