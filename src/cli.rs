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
    let pid = std::process::id();
    if o.container && pid == 1 && !container_mode_allowed(pid, own_pid_namespace().as_deref()) {
        // Early boot: the console is stderr, the kernel log is not set up yet.
        eprintln!(
            "lifsea-init: container mode refused: PID 1 of the initial PID namespace is a \
             machine's init (exiting at shutdown would panic the kernel)"
        );
        o.container = false;
    }
    Ok(o)
}

/// How `/proc/self/ns/pid` names the initial PID namespace (the kernel's fixed
/// `PROC_PID_INIT_INO`).
const INITIAL_PID_NAMESPACE: &str = "pid:[4026531836]";

/// Whether container mode (exit at shutdown) is safe: not for PID 1 of the initial PID namespace,
/// where the init exiting panics the kernel. A kernel command-line word `container=x` reaches a
/// machine's init as that environment variable, so `$container` alone must not decide.
/// `pid_ns` is the target of `/proc/self/ns/pid`; without it (no /proc yet, as on a machine
/// before the early mounts; a container runtime always provides one) PID 1 counts as a machine.
pub fn container_mode_allowed(pid: u32, pid_ns: Option<&str>) -> bool {
    pid != 1 || pid_ns.is_some_and(|ns| ns != INITIAL_PID_NAMESPACE)
}

fn own_pid_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
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

    /// Finding 12 of issue 12: `container=x` on a machine's kernel command line turned on
    /// container mode for the real PID 1, which then exits at shutdown (a kernel panic).
    #[test]
    fn container_mode_is_refused_to_the_machines_pid1() {
        assert!(!container_mode_allowed(1, Some("pid:[4026531836]")));
        assert!(!container_mode_allowed(1, None), "no /proc: a machine");
        assert!(container_mode_allowed(1, Some("pid:[4026532517]")));
        assert!(container_mode_allowed(4242, Some("pid:[4026531836]")));
        assert!(container_mode_allowed(4242, None));
        // The constant is what this kernel calls its initial namespace: PID 1 of the host
        // (readable as root) lives in it.
        if let Ok(host) = std::fs::read_link("/proc/1/ns/pid") {
            let own = own_pid_namespace();
            if own.as_deref() == Some(host.to_string_lossy().as_ref()) {
                assert_eq!(host.to_string_lossy(), INITIAL_PID_NAMESPACE);
            }
        }
    }
}
