//! Starting a service process: everything between fork and exec, with the least privilege its unit
//! asks for.
//!
//! The work is split in two on purpose. `prepare` (`plan.rs`) runs in the parent and turns the
//! unit into plain data (C strings, ids, capability numbers, limits) because after fork only
//! async-signal-safe calls are allowed: no allocation, no locks. The child then walks a fixed list of steps, each one
//! a syscall from `crate::sys`, and on the first failure writes `(stage, errno, detail)` to a
//! close-on-exec pipe and exits 127. Whether the child exec'd is learnt afterwards (`Pending`):
//! once it has let go of the parent's memory, a report means it failed, none that it exec'd; the
//! parent turns a report into an error naming the step. `begin` returns as soon as the child
//! exists, so the supervisor starts the next units while this one execs, and `Pending::finish`
//! (bounded by `EXEC_TIMEOUT`) settles it; `spawn` does both at once.

use std::fs::OpenOptions;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::Pid;

use crate::sys::clone_vm::FdTable;
use crate::sys::process::{self, Forked, SharedChild};
use crate::units::Unit;

mod child;
mod pending;
mod plan;
use child::{read_report, run_child, ChildFds};
pub use pending::Pending;
pub use plan::unit_owner;
use plan::{prepare, Plan};

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
