//! Starting a service process: everything between fork and exec, with the least privilege its unit
//! asks for.
//!
//! The work is split in two on purpose. `prepare` runs in the parent and turns the unit into plain
//! data (C strings, ids, capability numbers, limits) because after fork only async-signal-safe
//! calls are allowed: no allocation, no locks. The child then walks a fixed list of steps, each one
//! a syscall from `crate::sys`, and on the first failure writes `(stage, errno, detail)` to a
//! close-on-exec pipe and exits 127. Whether the child exec'd is learnt afterwards (`Pending`):
//! once it has let go of the parent's memory, a report means it failed, none that it exec'd; the
//! parent turns a report into an error naming the step. `begin` returns as soon as the child
//! exists, so the supervisor starts the next units while this one execs, and `Pending::finish`
//! (bounded by `EXEC_TIMEOUT`) settles it; `spawn` does both at once.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::Pid;

use crate::sys::clone_vm::FdTable;
use crate::sys::process::{self, CStringArray, Forked, SharedChild};
use crate::units::schema::Readiness;
use crate::units::users::{self, Credentials};
use crate::units::Unit;

mod child;
mod pending;
use child::{read_report, run_child, ChildFds};
pub use pending::Pending;

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
    /// Let the child be born in `cgroup_dir` (clone3 with CLONE_INTO_CGROUP) instead of joining it
    /// through cgroup.procs after fork; false for groups the caller has killed (`was_killed`).
    pub clone_into_cgroup: bool,
    /// Directory holding the `passwd` and `group` files for user lookups (`/etc` on a machine;
    /// tests may point elsewhere).
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

/// How long `spawn` waits for the child to exec (or report a failure) before killing it: PID 1
/// waits on its only thread, so the wait must be bounded (a hung filesystem, a frozen cgroup).
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(5);

/// The search path every service starts with; units override it through `env`.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Starts the unit's process. Returns once the child has exec'd (or failed to): the caller never
/// sees a child that died between fork and exec, because such a child is reaped here.
///
/// The returned pipe ends are blocking; an event loop sets O_NONBLOCK itself.
pub fn spawn(req: &SpawnRequest<'_>) -> Result<Spawned, SpawnError> {
    let (started, output) = begin(req)?.finish()?;
    let Some((stdout, stderr)) = output else {
        return Err(SpawnError::Prepare {
            unit: req.unit.name.clone(),
            message: "output pipes missing".into(),
        });
    };
    Ok(Spawned {
        pid: started.pid,
        stdout,
        stderr,
        ready_fd: started.ready_fd,
    })
}

/// Starts the unit's process with fresh output pipes and returns at once: the child may still
/// be on its way to exec. `Pending::finish` says how that went (and gives the pipes' read ends).
pub fn begin(req: &SpawnRequest<'_>) -> Result<Pending, SpawnError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| SpawnError::Prepare {
        unit: req.unit.name.clone(),
        message: format!("{what}: {e}"),
    };
    let (out_r, out_w) = pipe().map_err(|e| fail("stdout pipe", &e))?;
    let (err_r, err_w) = pipe().map_err(|e| fail("stderr pipe", &e))?;
    let (out, err) = (out_w.as_raw_fd(), err_w.as_raw_fd());
    let mut pending = start(req, out, err, vec![out_w, err_w])?;
    // Parking closes the low numbers: the child never uses the read ends.
    pending.output = Some((process::park_fd(out_r), process::park_fd(err_r)));
    Ok(pending)
}

/// A child started onto output descriptors the caller keeps.
pub struct Started {
    pub pid: Pid,
    /// Read end of the s6-style readiness pipe when the unit's readiness is `{ fd = N }`.
    pub ready_fd: Option<OwnedFd>,
}

/// A pipe for a unit's output whose write end the caller keeps (close-on-exec, above the
/// standard descriptors), so that every instance of the unit can be given the same one. The
/// read end is parked high (`process::PARK_AT`); the write end, which every spawn of the unit
/// hands to its child, stays low.
pub fn output_pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    let (r, w) = pipe()?;
    Ok((process::park_fd(r), w))
}

/// Like `spawn`, but the child's stdout and stderr are `stdout` and `stderr` (write ends the
/// caller owns) instead of fresh pipes. A `kill = "main"` unit's leftovers outlive the instance
/// that started them and keep writing: with one pipe per unit the init holds one pair per unit
/// however often it restarts, and never closes a read end a leftover still writes to (which would
/// kill it with SIGPIPE).
pub fn spawn_with_output(
    req: &SpawnRequest<'_>,
    stdout: BorrowedFd<'_>,
    stderr: BorrowedFd<'_>,
) -> Result<Started, SpawnError> {
    begin_with_output(req, stdout, stderr)?
        .finish()
        .map(|(started, _)| started)
}

/// `spawn_with_output`, returning as soon as the child exists (see `begin`). The caller keeps
/// `stdout` and `stderr` open until `Pending::finish`.
pub fn begin_with_output(
    req: &SpawnRequest<'_>,
    stdout: BorrowedFd<'_>,
    stderr: BorrowedFd<'_>,
) -> Result<Pending, SpawnError> {
    start(req, stdout.as_raw_fd(), stderr.as_raw_fd(), Vec::new())
}

/// Starts the child onto `stdout` and `stderr`; `keep` holds descriptors (the fresh output
/// write ends) that must stay open for as long as the child may use them. Returns once the
/// child exists (a forked one, on kernels without clone3: once it exec'd or failed).
fn start(
    req: &SpawnRequest<'_>,
    stdout: RawFd,
    stderr: RawFd,
    keep: Vec<OwnedFd>,
) -> Result<Pending, SpawnError> {
    let unit = &req.unit.name;
    let began = Instant::now();
    let plan = prepare(req)?;
    let fail = |what: &str, e: &dyn std::fmt::Display| SpawnError::Prepare {
        unit: unit.clone(),
        message: format!("{what}: {e}"),
    };

    // Opened once for every child (close-on-exec, above stdio; never closed): an open and a
    // close less per spawn. Where that failed, each spawn opens its own.
    let own_devnull: Option<OwnedFd> = match dev_null() {
        Some(_) => None,
        None => Some(
            std::fs::File::open("/dev/null")
                .map_err(|e| fail("open /dev/null", &e))?
                .into(),
        ),
    };
    let stdin = match (&own_devnull, dev_null()) {
        (Some(fd), _) => fd.as_raw_fd(),
        (None, Some(fd)) => fd.as_raw_fd(),
        (None, None) => return Err(fail("open /dev/null", &"unavailable")),
    };
    let ready = match plan.ready_target {
        Some(_) => Some(pipe().map_err(|e| fail("readiness pipe", &e))?),
        None => None,
    };
    // Non-blocking: a child sharing our memory is waited for by its release, after which the
    // report is either there or not.
    let (report_r, report_w) =
        pipe_flags(OFlag::O_NONBLOCK).map_err(|e| fail("report pipe", &e))?;
    let (ready_r, ready_w) = match ready {
        Some((r, w)) => (Some(r), Some(w)),
        None => (None, None),
    };
    let fds = ChildFds {
        stdin,
        stdout,
        stderr,
        ready: ready_w.as_ref().map(|w| w.as_raw_fd()),
        report: report_w.as_raw_fd(),
        cgroup_procs: None,
    };

    // Born in its group when the kernel can do it (clone3 CLONE_INTO_CGROUP: 5.7+, cgroup2).
    let cgroup_dir: Option<OwnedFd> =
        match req.cgroup_dir.as_ref().filter(|_| req.clone_into_cgroup) {
            Some(dir) => Some(
                std::fs::File::open(dir)
                    .map_err(|e| fail(&format!("open {}", dir.display()), &e))?
                    .into(),
            ),
            None => None,
        };
    let mut held = keep;
    held.extend(own_devnull);
    held.push(report_w);
    held.extend(ready_w);
    let job = ChildJob { plan, fds, held };
    let launched = launch(job, cgroup_dir, || {
        // Otherwise the child joins its group through cgroup.procs.
        let Some(dir) = &req.cgroup_dir else {
            return Ok(None);
        };
        let path = dir.join("cgroup.procs");
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| fail(&format!("open {}", path.display()), &e))?;
        Ok(Some(OwnedFd::from(file)))
    })?;
    let launched = match launched {
        Ok(l) => l,
        Err(source) => {
            return Err(SpawnError::Fork {
                unit: unit.clone(),
                source,
            })
        }
    };
    let pid = launched.pid();
    let ready_fd = ready_r.map(process::park_fd);
    let child = match launched {
        Launched::Shared(child) => pending::Child::Shared(child),
        Launched::Forked(_, mut job) => {
            // A forked child holds copies of its descriptors: ours must go so that EOF on the
            // report pipe means exec.
            job.held.clear();
            let outcome = read_report(&report_r, EXEC_TIMEOUT);
            pending::Child::Forked(outcome, job)
        }
    };
    Ok(Pending {
        unit: unit.clone(),
        pid,
        child,
        report: report_r,
        ready_fd,
        output: None,
        deadline: began.checked_add(EXEC_TIMEOUT),
    })
}

/// What the child reads: its plan and its descriptors; and, owned, the descriptors the parent
/// made for it, which must stay open until the child has let go (a child sharing our table uses
/// our very descriptors until its first step).
struct ChildJob {
    plan: Plan,
    fds: ChildFds,
    held: Vec<OwnedFd>,
}

fn child_main(job: &ChildJob) -> ! {
    run_child(&job.plan, &job.fds)
}

/// A started child: one sharing our memory until it execs (dropping it after the child let go
/// frees that memory; before, hands it to sys::clone_vm to free later), or a forked one.
enum Launched {
    Shared(SharedChild<ChildJob>),
    Forked(Pid, Box<ChildJob>),
}

impl Launched {
    fn pid(&self) -> Pid {
        match self {
            Launched::Shared(c) => c.pid(),
            Launched::Forked(pid, _) => *pid,
        }
    }
}

/// Starts the child: sharing our memory and descriptor table (sys::clone_vm: no page tables to
/// copy, no copy-on-write faults, no reference taken and dropped on each of the init's
/// descriptors), born in `cgroup_dir` when given and the kernel can; otherwise joining its group
/// through the descriptor `join_by_procs` opens; by fork where clone3 is missing (< 5.3).
/// The outer error is `join_by_procs`'s, the inner one the kernel's refusal to make a process.
fn launch(
    job: ChildJob,
    cgroup_dir: Option<OwnedFd>,
    join_by_procs: impl FnOnce() -> Result<Option<OwnedFd>, SpawnError>,
) -> Result<Result<Launched, Errno>, SpawnError> {
    let mut job = job;
    if let Some(dir) = cgroup_dir {
        match process::clone_vm(job, child_main, Some(dir.as_fd()), FdTable::Share) {
            Ok(child) => return Ok(Ok(Launched::Shared(child))),
            Err((e, back)) => {
                log::debug!("clone3 into cgroup unavailable ({e}); joining through cgroup.procs");
                job = back;
            }
        }
    }
    if let Some(procs) = join_by_procs()? {
        job.fds.cgroup_procs = Some(procs.as_raw_fd());
        job.held.push(procs);
    }
    let job = match process::clone_vm(job, child_main, None, FdTable::Share) {
        Ok(child) => return Ok(Ok(Launched::Shared(child))),
        Err((Errno::ENOSYS, back)) => Box::new(back),
        Err((e, _)) => return Ok(Err(e)),
    };
    Ok(match process::fork_process() {
        Ok(Forked::Child) => run_child(&job.plan, &job.fds),
        Ok(Forked::Parent(pid)) => Ok(Launched::Forked(pid, job)),
        Err(e) => Err(e),
    })
}

/// The init's one /dev/null, for every child's stdin: opened on first use, close-on-exec and
/// above the standard descriptors (PID 1 may start with 0-2 closed), kept for good. `None` when
/// it cannot be opened (the caller then opens one per spawn, and reports the error).
fn dev_null() -> Option<BorrowedFd<'static>> {
    static DEV_NULL: std::sync::OnceLock<Option<OwnedFd>> = std::sync::OnceLock::new();
    DEV_NULL
        .get_or_init(|| {
            let fd: OwnedFd = std::fs::File::open("/dev/null").ok()?.into();
            above_stdio(fd).ok()
        })
        .as_ref()
        .map(|fd| fd.as_fd())
}

/// A close-on-exec pipe whose ends sit above the standard descriptors, so that placing the
/// child's ends on 0, 1 and 2 can never overwrite another end (PID 1 may start with 0-2 closed).
fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    pipe_flags(OFlag::empty())
}

fn pipe_flags(extra: OFlag) -> Result<(OwnedFd, OwnedFd), Errno> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | extra)?;
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
    /// The nice value to put back in the child (`shield::inherited`).
    nice: Option<i32>,
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

    let privileged = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(true);
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
        oom_value: grantable_oom(unit, privileged).map(|v| v.to_string().into_bytes()),
        limits: grantable_limits(unit, privileged),
        identity,
        drop_bounding,
        ambient,
        ambient_mask,
        no_new_privs: unit.no_new_privileges,
        ready_target,
        nice: super::shield::inherited().nice,
    })
}

/// The oom_score_adj the service may get. Without CAP_SYS_RESOURCE (the init inside a container
/// that withholds it) the kernel refuses to go below the init's own floor; rather than failing
/// every unit that asks for that protection, the unit keeps the init's value and a warning says so.
/// As PID 1 of a machine the init holds every capability and nothing changes.
fn grantable_oom(unit: &Unit, privileged: bool) -> Option<i32> {
    // Without the key the unit gets what the init itself was given, not the init's own -1000.
    let Some(want) = unit.oom_score_adjust else {
        return super::shield::inherited().oom_score_adj;
    };
    if privileged {
        return Some(want);
    }
    let own = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0);
    if want >= own {
        return Some(want);
    }
    log::warn!(
        "unit {}: oom-score-adjust {want} not applied: the init lacks CAP_SYS_RESOURCE (keeping {own})",
        unit.name
    );
    None
}

/// The rlimits the service may get: without CAP_SYS_RESOURCE a hard limit cannot be raised, so
/// each is capped at the init's own hard limit (with a warning) instead of failing the unit.
fn grantable_limits(unit: &Unit, privileged: bool) -> Vec<(i32, u64, u64)> {
    let nofile = nix::sys::resource::Resource::RLIMIT_NOFILE;
    // The init raised its own descriptor limit (supervisor::shield); a unit that does not set
    // one gets what the init was started with.
    let reset = super::shield::inherited()
        .nofile
        .filter(|_| !unit.limits.iter().any(|l| l.resource == nofile))
        .map(|(soft, hard)| (nofile as i32, soft, hard));
    unit.limits
        .iter()
        .map(|l| {
            let (mut soft, mut hard) = (l.soft, l.hard);
            if !privileged {
                if let Ok((_, own_hard)) = nix::sys::resource::getrlimit(l.resource) {
                    if hard > own_hard {
                        log::warn!(
                            "unit {}: limit {:?} capped at {own_hard}: the init lacks CAP_SYS_RESOURCE",
                            unit.name,
                            l.resource
                        );
                        hard = own_hard;
                        soft = soft.min(hard);
                    }
                }
            }
            (l.resource as i32, soft, hard)
        })
        .chain(reset)
        .collect()
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

/// The (uid, gid) a delegated cgroup is handed to: the unit's resolved user and group, or
/// `None` when the unit runs as root anyway.
pub fn unit_owner(unit: &Unit, etc_dir: &Path) -> Result<Option<(u32, u32)>, SpawnError> {
    if unit.user.is_none() && unit.group.is_none() {
        return Ok(None);
    }
    let creds =
        users::resolve_in(etc_dir, unit.user.as_deref(), unit.group.as_deref()).map_err(|e| {
            SpawnError::Prepare {
                unit: unit.name.clone(),
                message: e.to_string(),
            }
        })?;
    Ok(Some((creds.uid, creds.gid)))
}

#[cfg(test)]
#[path = "../../tests/common/fixtures.rs"]
mod fixtures;

#[cfg(test)]
mod tests {
    use super::fixtures::test_unit;
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
    fn without_cap_sys_resource_protections_are_kept_within_reach() {
        let mut unit = test_unit("t", &["/bin/true"]);
        unit.oom_score_adjust = Some(-999);
        unit.limits = vec![crate::units::schema::Limit {
            resource: nix::sys::resource::Resource::RLIMIT_NOFILE,
            soft: u64::MAX,
            hard: u64::MAX,
        }];
        assert_eq!(grantable_oom(&unit, true), Some(-999));
        let own: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            own > -999,
            "precondition: this test process is not already at -999"
        );
        assert_eq!(grantable_oom(&unit, false), None);
        unit.oom_score_adjust = Some(own + 1);
        assert_eq!(grantable_oom(&unit, false), Some(own + 1));
        let (_, own_hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        let nofile = nix::sys::resource::Resource::RLIMIT_NOFILE as i32;
        assert_eq!(
            grantable_limits(&unit, true),
            vec![(nofile, u64::MAX, u64::MAX)]
        );
        if own_hard != u64::MAX {
            assert_eq!(
                grantable_limits(&unit, false),
                vec![(nofile, own_hard, own_hard)]
            );
        }
    }
}
