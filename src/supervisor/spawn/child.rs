//! The child side of `spawn`, and the report it sends back when a step fails.
//!
//! After fork the child may only make async-signal-safe calls, so `child_steps` is a straight list
//! of syscalls on values the parent prepared in `Plan`. The report is fixed-size binary
//! (stage, errno, detail) on a close-on-exec pipe: EOF without a report means exec succeeded.

use std::convert::Infallible;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::errno::Errno;

use super::{Plan, SpawnError};
use crate::sys::cred;
use crate::sys::poll::{poll_fds, Watch};
use crate::sys::process;

/// The child's descriptors, as numbers: the parent keeps the owners alive across fork.
#[derive(Clone, Copy)]
pub(super) struct ChildFds {
    pub(super) stdin: RawFd,
    pub(super) stdout: RawFd,
    pub(super) stderr: RawFd,
    pub(super) ready: Option<RawFd>,
    pub(super) report: RawFd,
    pub(super) cgroup_procs: Option<RawFd>,
}

impl ChildFds {
    /// One above the highest descriptor the child uses: what its own table keeps of the
    /// parent's (`process::unshare_fds_from`).
    fn bound(&self) -> RawFd {
        let all = [
            self.stdin,
            self.stdout,
            self.stderr,
            self.ready.unwrap_or(0),
            self.report,
            self.cgroup_procs.unwrap_or(0),
        ];
        let mut max = 2;
        for fd in all {
            max = max.max(fd);
        }
        max.saturating_add(1)
    }
}

/// Steps of the child, in order; the number travels through the report pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum Stage {
    Session = 1,
    Signals,
    Cgroup,
    Stdio,
    ReadyFd,
    OomScore,
    Rlimit,
    Chdir,
    Bounding,
    KeepCaps,
    Groups,
    Gid,
    Uid,
    Capset,
    Ambient,
    NoNewPrivs,
    CloseFds,
    Exec,
    Nice,
    Unshare,
}

const STAGES: [Stage; 20] = [
    Stage::Session,
    Stage::Signals,
    Stage::Cgroup,
    Stage::Stdio,
    Stage::ReadyFd,
    Stage::OomScore,
    Stage::Rlimit,
    Stage::Chdir,
    Stage::Bounding,
    Stage::KeepCaps,
    Stage::Groups,
    Stage::Gid,
    Stage::Uid,
    Stage::Capset,
    Stage::Ambient,
    Stage::NoNewPrivs,
    Stage::CloseFds,
    Stage::Exec,
    Stage::Nice,
    Stage::Unshare,
];

/// A failed child step: which one, the errno, and a step-specific detail (limit or cap number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Failure {
    stage: Stage,
    errno: i32,
    detail: u32,
}

const REPORT_LEN: usize = 12;

impl Failure {
    fn at(stage: Stage, detail: u32) -> impl Fn(Errno) -> Failure {
        move |e| Failure {
            stage,
            errno: e as i32,
            detail,
        }
    }

    /// Runs in the child: no slicing, so no bounds check that could panic.
    fn encode(&self) -> [u8; REPORT_LEN] {
        let [a0, a1, a2, a3] = (self.stage as u32).to_ne_bytes();
        let [b0, b1, b2, b3] = self.errno.to_ne_bytes();
        let [c0, c1, c2, c3] = self.detail.to_ne_bytes();
        [a0, a1, a2, a3, b0, b1, b2, b3, c0, c1, c2, c3]
    }

    fn decode(b: &[u8; REPORT_LEN]) -> Option<Failure> {
        let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        let stage = u32::from_ne_bytes(word(0));
        let stage = *STAGES.iter().find(|s| **s as u32 == stage)?;
        Some(Failure {
            stage,
            errno: i32::from_ne_bytes(word(4)),
            detail: u32::from_ne_bytes(word(8)),
        })
    }

    pub(super) fn into_error(self, unit: &str, plan: &Plan) -> SpawnError {
        let source = std::io::Error::from_raw_os_error(self.errno);
        let path = plan.path.to_string_lossy().into_owned();
        let id = plan.identity.as_ref();
        let what = match self.stage {
            Stage::Exec => {
                return SpawnError::Exec {
                    unit: unit.to_string(),
                    path,
                    source,
                }
            }
            Stage::Session => "setsid".to_string(),
            Stage::Signals => "reset signals".to_string(),
            Stage::Cgroup => "join cgroup".to_string(),
            Stage::Stdio => "set up stdio".to_string(),
            Stage::ReadyFd => format!(
                "set up readiness fd {}",
                plan.ready_target.unwrap_or_default()
            ),
            Stage::OomScore => "write /proc/self/oom_score_adj".to_string(),
            Stage::Rlimit => match plan.limits.get(self.detail as usize) {
                Some((r, soft, hard)) => format!("setrlimit {r} to {soft}/{hard}"),
                None => "setrlimit".to_string(),
            },
            Stage::Chdir => format!("chdir {}", plan.workdir.to_string_lossy()),
            Stage::Bounding => format!("drop capability {} from bounding set", self.detail),
            Stage::KeepCaps => "keep capabilities".to_string(),
            Stage::Groups => format!("setgroups {:?}", id.map(|i| &i.groups)),
            Stage::Gid => format!("setgid {}", id.map(|i| i.gid).unwrap_or_default()),
            Stage::Uid => format!("setuid {}", id.map(|i| i.uid).unwrap_or_default()),
            Stage::Capset => format!("capset {:#x}", plan.ambient_mask),
            Stage::Ambient => format!("raise ambient capability {}", self.detail),
            Stage::NoNewPrivs => "set no-new-privileges".to_string(),
            Stage::CloseFds => "close inherited fds".to_string(),
            Stage::Nice => format!("reset nice value to {}", plan.nice.unwrap_or_default()),
            Stage::Unshare => "take a descriptor table of its own".to_string(),
        };
        SpawnError::Prepare {
            unit: unit.to_string(),
            message: format!("{what} failed: {source}"),
        }
    }
}

/// Reads the child's report until EOF; `None` means the child exec'd.
pub(super) fn read_report(fd: &OwnedFd, timeout: Duration) -> Result<Option<Failure>, Errno> {
    let mut buf = [0u8; REPORT_LEN];
    let mut len = 0;
    let deadline = Instant::now().checked_add(timeout);
    while let Some(rest) = buf.get_mut(len..).filter(|r| !r.is_empty()) {
        // Bounded: a child stuck before exec (a hung filesystem, a frozen cgroup) must not hold
        // the parent, which is PID 1's only thread.
        let left = deadline.map_or(Duration::ZERO, |d| {
            d.saturating_duration_since(Instant::now())
        });
        let mut w = [Watch::input(fd.as_raw_fd())];
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        match poll_fds(&mut w, ms) {
            _ if left.is_zero() => return Err(Errno::ETIMEDOUT),
            Ok(0) => return Err(Errno::ETIMEDOUT),
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
        let n = process::read_some(fd.as_raw_fd(), rest)?;
        if n == 0 {
            break;
        }
        len += n;
    }
    match len {
        0 => Ok(None),
        REPORT_LEN => Ok(Failure::decode(&buf).or(Some(Failure {
            stage: Stage::Exec,
            errno: Errno::EIO as i32,
            detail: 0,
        }))),
        _ => Err(Errno::EIO),
    }
}

/// The report of a child that has let go (sys::clone_vm): written before it exited, or absent
/// because it exec'd. The pipe is non-blocking; its write end may still be open (ours, until
/// the caller drops it), so "nothing there" is the answer, not EOF.
pub(super) fn take_report(fd: &OwnedFd) -> Result<Option<Failure>, Errno> {
    let mut buf = [0u8; REPORT_LEN];
    match process::read_some(fd.as_raw_fd(), &mut buf) {
        Ok(0) | Err(Errno::EAGAIN) => Ok(None),
        Ok(REPORT_LEN) => Ok(Failure::decode(&buf).or(Some(Failure {
            stage: Stage::Exec,
            errno: Errno::EIO as i32,
            detail: 0,
        }))),
        Ok(_) => Err(Errno::EIO),
        Err(e) => Err(e),
    }
}

/// The child side of fork or clone_vm: async-signal-safe only (no allocation, no locks, no
/// panics), and every call reviewed for a child sharing the parent's memory (sys::clone_vm).
pub(super) fn run_child(plan: &Plan, fds: &ChildFds) -> ! {
    let mut report = fds.report;
    if let Some(failure) = child_steps(plan, fds, &mut report).err() {
        let _ = process::write_all(report, &failure.encode());
    }
    process::exit_immediately(127)
}

fn child_steps(plan: &Plan, fds: &ChildFds, report: &mut RawFd) -> Result<Infallible, Failure> {
    use Stage::*;
    // First, before any descriptor changes: a child sharing the parent's table (sys::clone_vm)
    // takes its own, with only the numbers it uses (the parent's long-lived ones sit above,
    // process::PARK_AT). A forked child closes what it will not use.
    process::unshare_fds_from(fds.bound()).map_err(Failure::at(Unshare, 0))?;
    process::new_session().map_err(Failure::at(Session, 0))?;
    process::reset_signals().map_err(Failure::at(Signals, 0))?;
    if let Some(fd) = fds.cgroup_procs {
        process::write_all(fd, b"0").map_err(Failure::at(Cgroup, 0))?;
    }
    process::dup_onto(fds.stdin, 0).map_err(Failure::at(Stdio, 0))?;
    process::dup_onto(fds.stdout, 1).map_err(Failure::at(Stdio, 1))?;
    process::dup_onto(fds.stderr, 2).map_err(Failure::at(Stdio, 2))?;
    if let (Some(src), Some(target)) = (fds.ready, plan.ready_target) {
        if *report == target {
            *report = process::dup_above(target, target.saturating_add(1))
                .map_err(Failure::at(ReadyFd, 0))?;
        }
        process::dup_onto(src, target).map_err(Failure::at(ReadyFd, 0))?;
    }
    if let Some(value) = &plan.oom_value {
        let fd = process::open_write(&plan.oom_path).map_err(Failure::at(OomScore, 0))?;
        let written = process::write_all(fd, value);
        process::close_fd(fd);
        written.map_err(Failure::at(OomScore, 0))?;
    }
    // The init runs at a boosted priority (supervisor::shield); the unit gets back what the
    // init was given.
    if let Some(n) = plan.nice {
        process::set_nice(n).map_err(Failure::at(Nice, 0))?;
    }
    for (i, &(resource, soft, hard)) in plan.limits.iter().enumerate() {
        process::set_rlimit(resource, soft, hard).map_err(Failure::at(Rlimit, i as u32))?;
    }
    process::change_dir(&plan.workdir).map_err(Failure::at(Chdir, 0))?;
    for &cap in &plan.drop_bounding {
        cred::drop_bounding_cap(cap).map_err(Failure::at(Bounding, cap.into()))?;
    }
    if let Some(id) = &plan.identity {
        if !plan.ambient.is_empty() {
            cred::keep_caps_on_setuid().map_err(Failure::at(KeepCaps, 0))?;
        }
        cred::set_groups(&id.groups).map_err(Failure::at(Groups, 0))?;
        cred::set_gid(id.gid).map_err(Failure::at(Gid, 0))?;
        cred::set_uid(id.uid).map_err(Failure::at(Uid, 0))?;
    }
    if !plan.ambient.is_empty() {
        let m = plan.ambient_mask;
        cred::set_caps(m, m, m).map_err(Failure::at(Capset, 0))?;
        for &cap in &plan.ambient {
            cred::raise_ambient_cap(cap).map_err(Failure::at(Ambient, cap.into()))?;
        }
    }
    if plan.no_new_privs {
        cred::set_no_new_privs().map_err(Failure::at(NoNewPrivs, 0))?;
    }
    let keep = match plan.ready_target {
        Some(t) if t < *report => [t, *report],
        Some(t) => [*report, t],
        None => [*report, *report],
    };
    process::close_fds_except(&keep).map_err(Failure::at(CloseFds, 0))?;
    Err(Failure::at(Exec, 0)(process::exec(
        &plan.path, &plan.argv, &plan.envp,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_roundtrip() {
        let f = Failure {
            stage: Stage::Chdir,
            errno: 2,
            detail: 7,
        };
        assert_eq!(Failure::decode(&f.encode()), Some(f));
        for s in STAGES {
            let f = Failure {
                stage: s,
                errno: 1,
                detail: 0,
            };
            assert_eq!(Failure::decode(&f.encode()).map(|f| f.stage), Some(s));
        }
    }
}
