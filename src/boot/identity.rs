//! The machine's identity (hostname, machine-id, sysctl.d settings), applied right after the boot
//! dispatch has spawned containerd rather than before it, and announced as the fact `machine`.
//!
//! Why not before: containerd needs none of it, and under TCG this step cost ~0.1–0.2 s of the
//! init's own critical path (cold reads of /etc and /usr/lib/sysctl.d, and the machine-id's fsyncs on
//! a first boot; issue 11 item 4). Units that do need it (kubelet registers under the hostname,
//! node-prep's sysctls must come after the admin's sysctl.d) order themselves `after = ["machine"]`:
//! the ordering stays a dependency the core enforces, not an accident of the boot sequence.
//!
//! The work runs when the subsystems are built (`Identity::apply`), before the network and device
//! subsystems; the fact and the step's timeline stamps (taken while it ran) are reported on the
//! first loop pass, the only way a subsystem talks to the supervisor.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::done_step::DoneStep;
use super::machine;
use crate::supervisor::subsystem::{Notice, Subsystem};
use crate::timeline::boottime_us;

/// The fact reached once the identity is applied (see docs/units.md).
pub const FACT: &str = "machine";

/// Where the identity comes from: `/etc` and the sysctl.d directories on a machine, temporary
/// directories in tests.
pub struct IdentityPaths {
    pub etc: PathBuf,
    pub sysctl_dirs: Vec<PathBuf>,
    pub proc_sys: PathBuf,
}

/// The identity step's outcome, kept for `initctl` (status) and reported once as the fact.
pub struct Identity {
    hostname: Option<String>,
    machine_id: Option<String>,
    sysctl_applied: usize,
    errors: Vec<String>,
    step: DoneStep,
}

impl Identity {
    /// Applies hostname, machine-id and sysctl.d now. Failures are logged and kept in the status;
    /// the fact is reached either way (a node without a hostname file still boots, as before).
    pub fn apply(paths: &IdentityPaths) -> Identity {
        let started_us = boottime_us();
        let mut errors = Vec::new();
        let hostname = match machine::apply_hostname(&paths.etc) {
            Ok(name) => {
                log::info!("hostname {name}");
                Some(name)
            }
            Err(e) => {
                log::warn!("{e}");
                errors.push(e.to_string());
                None
            }
        };
        let machine_id = match machine::ensure_machine_id(&paths.etc, None) {
            Ok((id, generated)) => {
                if generated {
                    log::info!("generated machine-id {id}");
                }
                Some(id)
            }
            Err(e) => {
                log::warn!("{e}");
                errors.push(e.to_string());
                None
            }
        };
        let (sysctl_applied, sysctl_errors) =
            machine::apply_sysctl(&paths.sysctl_dirs, &paths.proc_sys);
        for e in sysctl_errors {
            log::warn!("{e}");
            errors.push(e.to_string());
        }
        Identity {
            hostname,
            machine_id,
            sysctl_applied,
            errors,
            step: DoneStep::finished_now("identity", FACT, started_us),
        }
    }

    /// The machine's own paths.
    pub fn machine_paths() -> IdentityPaths {
        IdentityPaths {
            etc: PathBuf::from("/etc"),
            sysctl_dirs: vec![
                PathBuf::from(crate::paths::VENDOR_SYSCTL_DIR),
                PathBuf::from(crate::paths::ADMIN_SYSCTL_DIR),
            ],
            proc_sys: Path::new("/proc/sys").to_path_buf(),
        }
    }
}

impl Subsystem for Identity {
    fn name(&self) -> &'static str {
        "machine"
    }

    fn deadline(&self) -> Option<Instant> {
        self.step.deadline()
    }

    fn tick(&mut self, _now: Instant, out: &mut Vec<Notice>) {
        self.step.report(out);
    }

    fn status(&self) -> serde_json::Value {
        serde_json::json!({
            "hostname": self.hostname,
            "machine_id": self.machine_id,
            "sysctl_applied": self.sysctl_applied,
            "errors": self.errors,
            "reached": self.step.reported(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::TimelineEvent;

    /// `apply` sets the hostname: give this test thread its own UTS namespace so the host's
    /// stays untouched (needs root, like the ns_ tests).
    fn own_uts_namespace() {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUTS)
            .expect("unshare(CLONE_NEWUTS): these tests need root");
    }

    fn hostname() -> String {
        nix::unistd::gethostname()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lifsea-identity-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The fact comes only after the work is done, with the step's own start and end stamps
    /// (taken while it ran, not when the notices were read), and only once.
    #[test]
    fn reaches_machine_once_after_applying() {
        own_uts_namespace();
        let dir = tmp("apply");
        let etc = dir.join("etc");
        let sysctl_d = dir.join("sysctl.d");
        let proc_sys = dir.join("proc-sys");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("hostname"), "crit-node\n").unwrap();
        std::fs::create_dir_all(&sysctl_d).unwrap();
        std::fs::create_dir_all(proc_sys.join("net/ipv4")).unwrap();
        std::fs::write(proc_sys.join("net/ipv4/ip_forward"), "0\n").unwrap();
        std::fs::write(sysctl_d.join("50-k8s.conf"), "net.ipv4.ip_forward = 1\n").unwrap();
        let paths = IdentityPaths {
            etc: etc.clone(),
            sysctl_dirs: vec![sysctl_d],
            proc_sys: proc_sys.clone(),
        };
        let before = boottime_us();
        let mut id = Identity::apply(&paths);
        // Applied at construction, before any notice: hostname, sysctl and machine-id.
        assert_eq!(hostname(), "crit-node");
        assert_eq!(
            std::fs::read_to_string(proc_sys.join("net/ipv4/ip_forward")).unwrap(),
            "1\n"
        );
        let written = std::fs::read_to_string(etc.join("machine-id")).unwrap();
        assert!(machine::valid_machine_id(written.trim()), "{written:?}");
        assert!(id.deadline().is_some(), "due at once");
        let mut out = Vec::new();
        id.tick(Instant::now(), &mut out);
        let _ = std::fs::remove_dir_all(&dir);
        let stamps: Vec<(u64, TimelineEvent)> = out
            .iter()
            .filter_map(|n| match n {
                Notice::StampAt {
                    at_us, name, event, ..
                } if name == "identity" => Some((*at_us, *event)),
                _ => None,
            })
            .collect();
        assert_eq!(stamps.len(), 2, "{out:?}");
        assert_eq!(stamps[0].1, TimelineEvent::Start);
        assert_eq!(stamps[1].1, TimelineEvent::Ready);
        assert!(before <= stamps[0].0 && stamps[0].0 <= stamps[1].0);
        assert_eq!(out.last(), Some(&Notice::FactReached(FACT.into())));
        assert_eq!(id.status()["sysctl_applied"], 1);
        assert_eq!(id.status()["machine_id"], written.trim());
        let mut again = Vec::new();
        id.tick(Instant::now(), &mut again);
        assert!(again.is_empty(), "reported twice: {again:?}");
        assert!(id.deadline().is_none());
    }

    /// A broken identity (an /etc that cannot be written) still reaches the fact: units ordered after it must not
    /// hang on a degraded step, and the errors are kept for the status.
    #[test]
    fn failures_still_reach_the_fact() {
        own_uts_namespace();
        let dir = tmp("broken");
        // /etc is a file: no hostname to read, no machine-id can be written.
        std::fs::write(dir.join("etc"), "").unwrap();
        let paths = IdentityPaths {
            etc: dir.join("etc"),
            sysctl_dirs: vec![],
            proc_sys: dir.join("proc-sys"),
        };
        let mut id = Identity::apply(&paths);
        let mut out = Vec::new();
        id.tick(Instant::now(), &mut out);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(out.contains(&Notice::FactReached(FACT.into())));
        assert!(!id.status()["errors"].as_array().unwrap().is_empty());
    }
}
