//! The init's own command line (not the kernel's): `--container`, `--units DIR`, `--run-dir DIR`,
//! `--log-dir DIR`, and `--net FILE` (container mode: run the network subsystem with this
//! network.toml instead of marking `network`/`network-online` reached; used by the namespace
//! tests, see docs/network.md).

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InitOptions {
    /// Skip machine setup; exit 0 on shutdown instead of rebooting.
    pub container: bool,
    /// Replaces the default unit directories when non-empty (repeatable).
    pub unit_dirs: Vec<PathBuf>,
    pub run_dir: Option<PathBuf>,
    /// Where unit logs are written (`--log-dir`); default `/var/log/lifsea` on a machine.
    pub log_dir: Option<PathBuf>,
    /// Container mode: manage the network with this network.toml (`--net`).
    pub net_config: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error("option {0} needs a value")]
    MissingValue(String),
    #[error("unknown argument: {0}")]
    Unknown(String),
}

/// Parses the arguments after argv[0]. `container_env` is the value of `$container`, if set
/// (systemd's convention for "you are in a container").
pub fn parse(args: &[String], container_env: Option<&str>) -> Result<InitOptions, CliError> {
    let mut o = InitOptions {
        container: container_env.is_some_and(|v| !v.is_empty()),
        ..Default::default()
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .map(PathBuf::from)
                .ok_or_else(|| CliError::MissingValue(name.to_string()))
        };
        match a.as_str() {
            "--container" => o.container = true,
            "--units" => o.unit_dirs.push(value("--units")?),
            "--run-dir" => o.run_dir = Some(value("--run-dir")?),
            "--log-dir" => o.log_dir = Some(value("--log-dir")?),
            "--net" => o.net_config = Some(value("--net")?),
            // The kernel passes unrecognised command-line words to init as arguments: ignore
            // those instead of refusing to boot.
            other if !other.starts_with("--") => {}
            other => return Err(CliError::Unknown(other.to_string())),
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parses_options() {
        let o = parse(
            &s(&[
                "--container",
                "--units",
                "/a",
                "--units",
                "/b",
                "--run-dir",
                "/r",
            ]),
            None,
        )
        .unwrap();
        assert!(o.container);
        assert_eq!(o.unit_dirs, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(o.run_dir, Some(PathBuf::from("/r")));
    }

    #[test]
    fn container_env_and_errors() {
        assert!(parse(&[], Some("lxc")).unwrap().container);
        assert!(!parse(&[], Some("")).unwrap().container);
        assert_eq!(
            parse(&s(&["--units"]), None),
            Err(CliError::MissingValue("--units".into()))
        );
        assert_eq!(
            parse(&s(&["--bogus"]), None),
            Err(CliError::Unknown("--bogus".into()))
        );
        assert!(parse(&s(&["single", "splash"]), None).is_ok());
    }
}
