//! Starting a service process: everything between fork and exec, with the least privilege its unit
//! asks for.
//!
//! The work is split in two on purpose. `prepare` runs in the parent and turns the unit into plain
//! data (C strings, ids, capability numbers, limits) because after fork only async-signal-safe
//! calls are allowed: no allocation, no locks. The child then walks a fixed list of steps, each one
//! a syscall from `crate::sys`, and on the first failure writes `(stage, errno, detail)` to a
//! close-on-exec pipe and exits 127. The parent reads that pipe until EOF: EOF alone means exec
//! succeeded, a report means it did not, and the parent turns it into an error naming the step.

use std::convert::Infallible;
use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::sys::cred;
use crate::sys::process::{self, CStringArray, Forked};
use crate::units::schema::{CgroupSpec, KillMode, Readiness, RestartPolicy, UnitType};
use crate::units::users::{self, Credentials};
use crate::units::Unit;

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("unit {unit}: {message}")]
    Prepare { unit: String, message: String },
    #[error("unit {unit}: fork failed: {source}")]
    Fork { unit: String, source: nix::Error },
    #[error("unit {unit}: exec {path} failed: {source}")]
    Exec {
        unit: String,
        path: String,
        source: std::io::Error,
    },
}

/// What the supervisor hands to `spawn`.
pub struct SpawnRequest<'a> {
    pub unit: &'a Unit,
    /// Sets `NOTIFY_SOCKET` in the child when the unit's readiness is `notify` (and always harmless).
    pub notify_socket: Option<&'a Path>,
    /// Absolute cgroup directory the child joins before exec (already created by the caller).
    pub cgroup_dir: Option<PathBuf>,
    /// Root for /etc/passwd and /etc/group lookups (`/` on a machine; tests may point elsewhere).
    pub etc_dir: &'a Path,
}

/// A running child: its pid and the parent's ends of its pipes.
pub struct Spawned {
    pub pid: Pid,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Read end of the s6-style readiness pipe when the unit's readiness is `{ fd = N }`.
    pub ready_fd: Option<OwnedFd>,
}

/// The search path every service starts with; units override it through `env`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Starts the unit's process. Returns once the child has exec'd (or failed to): the caller never
/// sees a child that died between fork and exec, because such a child is reaped here.
///
/// The returned pipe ends are blocking; an event loop sets O_NONBLOCK itself.
pub fn spawn(req: &SpawnRequest<'_>) -> Result<Spawned, SpawnError> {
    let unit = &req.unit.name;
    let plan = prepare(req)?;
    let fail = |what: &str, e: &dyn std::fmt::Display| SpawnError::Prepare {
        unit: unit.clone(),
        message: format!("{what}: {e}"),
    };

    let devnull: OwnedFd = std::fs::File::open("/dev/null")
        .map_err(|e| fail("open /dev/null", &e))?
        .into();
    let (out_r, out_w) = pipe().map_err(|e| fail("stdout pipe", &e))?;
    let (err_r, err_w) = pipe().map_err(|e| fail("stderr pipe", &e))?;
    let ready = match plan.ready_target {
        Some(_) => Some(pipe().map_err(|e| fail("readiness pipe", &e))?),
        None => None,
    };
    let (report_r, report_w) = pipe().map_err(|e| fail("report pipe", &e))?;
    let cgroup_procs: Option<OwnedFd> = match &req.cgroup_dir {
        Some(dir) => {
            let path = dir.join("cgroup.procs");
            let file = OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|e| fail(&format!("open {}", path.display()), &e))?;
            Some(file.into())
        }
        None => None,
    };

    let fds = ChildFds {
        stdin: devnull.as_raw_fd(),
        stdout: out_w.as_raw_fd(),
        stderr: err_w.as_raw_fd(),
        ready: ready.as_ref().map(|(_, w)| w.as_raw_fd()),
        report: report_w.as_raw_fd(),
        cgroup_procs: cgroup_procs.as_ref().map(|f| f.as_raw_fd()),
    };

    let pid = match process::fork_process() {
        Ok(Forked::Child) => run_child(&plan, &fds),
        Ok(Forked::Parent(pid)) => pid,
        Err(source) => {
            return Err(SpawnError::Fork {
                unit: unit.clone(),
                source,
            })
        }
    };

    // The child holds its own copies now; ours must go so EOF on the report pipe means exec.
    drop((devnull, out_w, err_w, report_w, cgroup_procs));
    let ready_fd = ready.map(|(r, _w)| r);

    match read_report(&report_r) {
        Ok(None) => Ok(Spawned {
            pid,
            stdout: out_r,
            stderr: err_r,
            ready_fd,
        }),
        Ok(Some(report)) => {
            // Reap here: the event loop's reaper would see an exit for a pid it never learnt of.
            let _ = process::reap(pid);
            Err(report.into_error(unit, &plan))
        }
        Err(e) => {
            // Cannot tell what happened; do not leave a half-started child behind.
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = process::reap(pid);
            Err(fail("read spawn report", &e))
        }
    }
}

/// A close-on-exec pipe whose ends sit above the standard descriptors, so that placing the
/// child's ends on 0, 1 and 2 can never overwrite another end (PID 1 may start with 0-2 closed).
fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    Ok((above_stdio(r)?, above_stdio(w)?))
}

fn above_stdio(fd: OwnedFd) -> Result<OwnedFd, Errno> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // The low copy closes when `fd` drops at the end of this function.
    process::dup_owned_above(&fd, 3)
}

/// Resolved identity of the service: what setgroups/setgid/setuid receive, and what HOME, USER
/// and LOGNAME are set to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    name: Option<String>,
    home: Option<String>,
}

/// Everything the child needs, prepared before fork.
struct Plan {
    path: CString,
    argv: CStringArray,
    envp: CStringArray,
    workdir: CString,
    oom_path: CString,
    oom_value: Option<Vec<u8>>,
    /// (resource number, soft, hard)
    limits: Vec<(i32, u64, u64)>,
    identity: Option<Identity>,
    drop_bounding: Vec<u8>,
    ambient: Vec<u8>,
    ambient_mask: u64,
    no_new_privs: bool,
    ready_target: Option<RawFd>,
}

/// The child's descriptors, as numbers: the parent keeps the owners alive across fork.
struct ChildFds {
    stdin: RawFd,
    stdout: RawFd,
    stderr: RawFd,
    ready: Option<RawFd>,
    report: RawFd,
    cgroup_procs: Option<RawFd>,
}

fn cstring(unit: &str, what: &str, s: &str) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError::Prepare {
        unit: unit.to_string(),
        message: format!("{what} contains a NUL byte"),
    })
}

fn prepare(req: &SpawnRequest<'_>) -> Result<Plan, SpawnError> {
    let unit = req.unit;
    let name = unit.name.as_str();
    let prep = |message: String| SpawnError::Prepare {
        unit: name.to_string(),
        message,
    };
    let exec0 = unit
        .exec
        .first()
        .ok_or_else(|| prep("exec is empty".to_string()))?;
    let argv = unit
        .exec
        .iter()
        .map(|a| cstring(name, "exec", a))
        .collect::<Result<Vec<_>, _>>()?;

    let identity = resolve_identity(req).map_err(prep)?;
    let env = environment(unit, identity.as_ref(), req.notify_socket);
    let envp = env
        .iter()
        .map(|(k, v)| cstring(name, "env", &format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;

    let workdir = match &unit.working_dir {
        Some(d) => cstring(name, "working-dir", &d.to_string_lossy())?,
        None => cstring(name, "working-dir", "/")?,
    };

    let ready_target = match unit.ready {
        Readiness::Fd(n) if n < 3 => {
            return Err(prep(format!("readiness fd {n} would replace stdio")))
        }
        Readiness::Fd(n) => Some(n),
        _ => None,
    };

    let (drop_bounding, ambient, ambient_mask) = match &unit.capabilities {
        None => (Vec::new(), Vec::new(), 0),
        Some(spec) => {
            let drop = match &spec.bounding {
                None => Vec::new(),
                Some(keep) => {
                    let keep_mask = keep.iter().fold(0u64, |m, c| m | c.bitmask());
                    (0..=last_cap())
                        .filter(|i| keep_mask & (1u64 << i) == 0)
                        .collect()
                }
            };
            let ambient: Vec<u8> = spec.ambient.iter().map(|c| c.index()).collect();
            let mask = spec.ambient.iter().fold(0u64, |m, c| m | c.bitmask());
            (drop, ambient, mask)
        }
    };

    Ok(Plan {
        path: cstring(name, "exec", exec0)?,
        argv: CStringArray::new(argv),
        envp: CStringArray::new(envp),
        workdir,
        oom_path: cstring(name, "path", "/proc/self/oom_score_adj")?,
        oom_value: unit.oom_score_adjust.map(|v| v.to_string().into_bytes()),
        limits: unit
            .limits
            .iter()
            .map(|l| (l.resource as i32, l.soft, l.hard))
            .collect(),
        identity,
        drop_bounding,
        ambient,
        ambient_mask,
        no_new_privs: unit.no_new_privileges,
        ready_target,
    })
}

/// Highest capability number the running kernel knows; the bounding set is dropped up to it.
fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .filter(|&n| n < 64)
        .unwrap_or_else(|| caps::all().iter().map(|c| c.index()).max().unwrap_or(40))
}

/// The service's environment: a fixed PATH, the identity variables, NOTIFY_SOCKET, then the
/// unit's own variables, which replace any of those of the same name.
fn environment(
    unit: &Unit,
    identity: Option<&Identity>,
    notify_socket: Option<&Path>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![("PATH".into(), DEFAULT_PATH.into())];
    if let Some(id) = identity {
        if let Some(home) = &id.home {
            env.push(("HOME".into(), home.clone()));
        }
        if let Some(name) = &id.name {
            env.push(("USER".into(), name.clone()));
            env.push(("LOGNAME".into(), name.clone()));
        }
    }
    if let Some(sock) = notify_socket {
        env.push(("NOTIFY_SOCKET".into(), sock.to_string_lossy().into_owned()));
    }
    for (k, v) in &unit.env {
        env.retain(|(old, _)| old != k);
        env.push((k.clone(), v.clone()));
    }
    env
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
}

const STAGES: [Stage; 18] = [
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
];

/// A failed child step: which one, the errno, and a step-specific detail (limit or cap number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Failure {
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

    fn encode(&self) -> [u8; REPORT_LEN] {
        let mut b = [0u8; REPORT_LEN];
        b[0..4].copy_from_slice(&(self.stage as u32).to_ne_bytes());
        b[4..8].copy_from_slice(&self.errno.to_ne_bytes());
        b[8..12].copy_from_slice(&self.detail.to_ne_bytes());
        b
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

    fn into_error(self, unit: &str, plan: &Plan) -> SpawnError {
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
        };
        SpawnError::Prepare {
            unit: unit.to_string(),
            message: format!("{what} failed: {source}"),
        }
    }
}

/// Reads the child's report until EOF; `None` means the child exec'd.
fn read_report(fd: &OwnedFd) -> Result<Option<Failure>, Errno> {
    let mut buf = [0u8; REPORT_LEN];
    let mut len = 0;
    while let Some(rest) = buf.get_mut(len..).filter(|r| !r.is_empty()) {
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

/// The child side of fork: async-signal-safe only (no allocation, no locks, no panics).
fn run_child(plan: &Plan, fds: &ChildFds) -> ! {
    let mut report = fds.report;
    if let Some(failure) = child_steps(plan, fds, &mut report).err() {
        let _ = process::write_all(report, &failure.encode());
    }
    process::exit_immediately(127)
}

fn child_steps(plan: &Plan, fds: &ChildFds, report: &mut RawFd) -> Result<Infallible, Failure> {
    use Stage::*;
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
            *report = process::dup_above(target, target + 1).map_err(Failure::at(ReadyFd, 0))?;
        }
        process::dup_onto(src, target).map_err(Failure::at(ReadyFd, 0))?;
    }
    if let Some(value) = &plan.oom_value {
        let fd = process::open_write(&plan.oom_path).map_err(Failure::at(OomScore, 0))?;
        let written = process::write_all(fd, value);
        process::close_fd(fd);
        written.map_err(Failure::at(OomScore, 0))?;
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

/// Looks up the unit's user and group in `etc_dir`'s passwd and group files. The primary gid
/// joins the supplementary list, as `initgroups` would do for a login.
fn resolve_identity(req: &SpawnRequest<'_>) -> Result<Option<Identity>, String> {
    let unit = req.unit;
    if unit.user.is_none() && unit.group.is_none() {
        return Ok(None);
    }
    let creds = users::resolve_in(req.etc_dir, unit.user.as_deref(), unit.group.as_deref())
        .map_err(|e| e.to_string())?;
    Ok(Some(identity_from(creds)))
}

fn identity_from(creds: Credentials) -> Identity {
    let mut groups = vec![creds.gid];
    groups.extend(creds.supplementary.iter().filter(|&&g| g != creds.gid));
    Identity {
        uid: creds.uid,
        gid: creds.gid,
        groups,
        name: creds.name,
        home: creds.home.map(|h| h.to_string_lossy().into_owned()),
    }
}

/// A unit with every field at its default, for tests and benchmarks: a daemon ready at exec,
/// never restarted, stopped with SIGTERM and a 10 s timeout, killed by cgroup, in
/// `system/<name>`, enabled.
#[doc(hidden)]
pub fn test_unit(name: &str, exec: &[&str]) -> Unit {
    Unit {
        name: name.to_string(),
        source: PathBuf::from(format!("/test/{name}.toml")),
        description: format!("test unit {name}"),
        exec: exec.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
        working_dir: None,
        user: None,
        group: None,
        kind: UnitType::Daemon,
        requires: Vec::new(),
        wants: Vec::new(),
        after: Vec::new(),
        ready: Readiness::Exec,
        ready_timeout: Duration::from_secs(60),
        restart: RestartPolicy::No,
        restart_delay: Duration::from_millis(100),
        restart_delay_max: Duration::from_secs(30),
        restart_reset_after: Duration::from_secs(60),
        stop_signal: Signal::SIGTERM,
        stop_timeout: Duration::from_secs(10),
        kill_mode: KillMode::Cgroup,
        cgroup: CgroupSpec {
            path: format!("system/{name}"),
            delegate: false,
        },
        oom_score_adjust: None,
        limits: Vec::new(),
        capabilities: None,
        no_new_privileges: false,
        enabled: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          svc:x:1000:1000:Service:/var/lib/svc:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nsvc:x:1000:\ndisk:x:6:svc,other\nkvm:x:36:other\n";

    fn identity(user: Option<&str>, group: Option<&str>) -> Identity {
        identity_from(users::resolve(user, group, PASSWD, GROUP).unwrap())
    }

    #[test]
    fn environment_is_clean_and_unit_wins() {
        let mut unit = test_unit("t", &["/bin/true"]);
        unit.env = vec![("PATH".into(), "/opt/bin".into()), ("A".into(), "1".into())];
        let id = identity(Some("svc"), None);
        let env = environment(&unit, Some(&id), Some(Path::new("/run/n.sock")));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some("/opt/bin"));
        assert_eq!(env.iter().filter(|(n, _)| n == "PATH").count(), 1);
        assert_eq!(get("HOME"), Some("/var/lib/svc"));
        assert_eq!(get("USER"), Some("svc"));
        assert_eq!(get("LOGNAME"), Some("svc"));
        assert_eq!(get("NOTIFY_SOCKET"), Some("/run/n.sock"));
        assert_eq!(get("A"), Some("1"));
        let bare = environment(&unit, None, None);
        assert!(bare
            .iter()
            .all(|(k, _)| k != "HOME" && k != "NOTIFY_SOCKET"));
    }

    #[test]
    fn primary_group_leads_the_group_list() {
        let id = identity(Some("svc"), None);
        assert_eq!((id.uid, id.gid, id.groups), (1000, 1000, vec![1000, 6]));
        let id = identity(Some("svc"), Some("kvm"));
        assert_eq!((id.gid, id.groups), (36, vec![36, 6]));
        let id = identity(None, Some("disk"));
        assert_eq!((id.uid, id.gid, id.groups), (0, 6, vec![6]));
    }

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
