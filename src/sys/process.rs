//! Process creation: fork (children sharing the parent's memory are in `clone_vm`), and the small
//! steps a new child takes before exec.
//!
//! Everything a child calls between fork and exec must be async-signal-safe: the parent may have
//! had other threads (the test harness does) whose locks are frozen in the child. So these wrappers
//! take only prepared values (`&CStr`, integers, slices), never allocate, and go straight to the
//! syscall where libc would add locking (musl's `setrlimit` broadcasts to every thread, for one).
//! They go through `clone_vm::raw_syscall`, which leaves errno alone: a CLONE_VM child shares it
//! with the parent's thread.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

use super::clone_vm::raw_syscall;
pub use super::clone_vm::{clone_vm, SharedChild};

/// Which side of a fork we are on.
pub enum Forked {
    Child,
    Parent(Pid),
}

/// Duplicates the calling process (fork(2)).
///
/// The child may only make async-signal-safe calls until it execs or exits; callers uphold that by
/// preparing every value beforehand and calling only the functions of this module and `cred`.
pub fn fork_process() -> Result<Forked, Errno> {
    // SAFETY: fork itself is sound; the obligation that the child stays async-signal-safe until
    // exec is documented above and kept by supervisor::spawn. boot::bounded forks only from
    // PID 1's stage 3, where the init has a single thread, so nothing is held in the child (in
    // its tests the harness has threads; musl's fork takes its internal locks, malloc's among
    // them, around the fork so the child may allocate).
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child)),
    }
}

/// Ends the child immediately, without running atexit handlers or flushing stdio (_exit(2)).
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no shared state of the process.
    unsafe { libc::_exit(code) }
}

/// Makes the process the leader of a new session, detached from the parent's terminal (setsid(2)).
pub fn new_session() -> Result<(), Errno> {
    // SAFETY: setsid takes no arguments.
    unsafe { raw_syscall(libc::SYS_setsid, [0; 6]) }.map(drop)
}

/// Empties the signal mask and resets every disposition to the default (rt_sigprocmask(2),
/// rt_sigaction(2)). The parent blocks signals for its signalfd and ignores SIGPIPE; a service
/// must not inherit either.
///
/// Dispositions first, mask last: a signal arriving in between then finds no handler of the
/// parent's to run (which, in a child sharing the parent's memory, would run on the parent's data).
pub fn reset_signals() -> Result<(), Errno> {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        set_default_action(sig)?;
    }
    let empty: u64 = 0;
    // SAFETY: the new set points at a live 8-byte mask (the kernel's sigset size); the old-set
    // pointer may be null.
    unsafe {
        raw_syscall(
            libc::SYS_rt_sigprocmask,
            [
                libc::SIG_SETMASK as usize,
                &empty as *const u64 as usize,
                0,
                8,
                0,
                0,
            ],
        )
    }
    .map(drop)
}

/// The kernel's `struct sigaction` for rt_sigaction(2) on x86_64 (handler, flags, restorer, mask).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Raw rt_sigaction(2) with SIG_DFL: libc refuses the signals it reserves for itself (32-34 in
/// musl), yet a parent may have left those ignored, and ignored dispositions survive exec.
fn set_default_action(sig: i32) -> Result<(), Errno> {
    let action = KernelSigaction {
        handler: 0, // SIG_DFL
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: `action` outlives the call and has the kernel's layout; the old-action pointer may
    // be null; the size is that of the kernel's 64-signal set.
    unsafe {
        raw_syscall(
            libc::SYS_rt_sigaction,
            [
                sig as usize,
                &action as *const KernelSigaction as usize,
                0,
                8,
                0,
                0,
            ],
        )
    }
    .map(drop)
}

/// Writes all of `buf` to `fd`, retrying on EINTR and short writes (write(2)).
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        // SAFETY: the pointer and length describe a live byte slice.
        let n = unsafe {
            raw_syscall(
                libc::SYS_write,
                [fd as usize, buf.as_ptr() as usize, buf.len(), 0, 0, 0],
            )
        };
        match n {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => buf = buf.get(n..).unwrap_or_default(),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads into `buf`, retrying on EINTR (read(2)); 0 means end of file.
pub fn read_some(fd: RawFd, buf: &mut [u8]) -> Result<usize, Errno> {
    loop {
        // SAFETY: the pointer and length describe a live, writable byte slice.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        match Errno::result(n) {
            Ok(n) => return Ok(n as usize),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Opens an existing file write-only with close-on-exec (open(2)).
pub fn open_write(path: &CStr) -> Result<RawFd, Errno> {
    let flags = (libc::O_WRONLY | libc::O_CLOEXEC) as usize;
    // SAFETY: `path` is a valid NUL-terminated string.
    let fd = unsafe {
        raw_syscall(
            libc::SYS_openat,
            [
                libc::AT_FDCWD as usize,
                path.as_ptr() as usize,
                flags,
                0,
                0,
                0,
            ],
        )
    }?;
    Ok(fd as RawFd)
}

/// Closes a descriptor (close(2)); errors are meaningless here, the fd is gone either way.
pub fn close_fd(fd: RawFd) {
    // SAFETY: closing an integer fd has no memory-safety consequence; callers own it.
    let _ = unsafe { raw_syscall(libc::SYS_close, [fd as usize, 0, 0, 0, 0, 0]) };
}

/// Places `fd` at descriptor number `target`, inheritable across exec (dup2(2), or fcntl(2)
/// clearing FD_CLOEXEC when it already sits there, since dup2 onto itself keeps the flag).
pub fn dup_onto(fd: RawFd, target: RawFd) -> Result<(), Errno> {
    if fd == target {
        let args = [fd as usize, libc::F_SETFD as usize, 0, 0, 0, 0];
        // SAFETY: F_SETFD with an integer flag touches no memory.
        return unsafe { raw_syscall(libc::SYS_fcntl, args) }.map(drop);
    }
    loop {
        // SAFETY: dup2 on integer descriptors touches no memory.
        let rc = unsafe { raw_syscall(libc::SYS_dup2, [fd as usize, target as usize, 0, 0, 0, 0]) };
        match rc {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) | Err(Errno::EBUSY) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Duplicates `fd` to the lowest free number ≥ `min`, close-on-exec (fcntl(2) F_DUPFD_CLOEXEC).
pub fn dup_above(fd: RawFd, min: RawFd) -> Result<RawFd, Errno> {
    let args = [
        fd as usize,
        libc::F_DUPFD_CLOEXEC as usize,
        min as usize,
        0,
        0,
        0,
    ];
    // SAFETY: F_DUPFD_CLOEXEC with an integer argument touches no memory.
    unsafe { raw_syscall(libc::SYS_fcntl, args) }.map(|fd| fd as RawFd)
}

/// Where the init keeps descriptors that live as long as a unit (output pipes, log files): at or
/// above this number, so that the few a spawn makes for its child are the lowest and a child
/// sharing the init's table copies only those (`unshare_fds_from`), not one per unit.
pub const PARK_AT: RawFd = 256;

/// Moves a long-lived descriptor to the lowest free number at or above `PARK_AT` (fcntl(2)
/// F_DUPFD_CLOEXEC, then close). Where that fails (RLIMIT_NOFILE at or below `PARK_AT`, no
/// free number) it stays where it is: only a spawn's speed depends on it.
pub fn park_fd(fd: OwnedFd) -> OwnedFd {
    if fd.as_raw_fd() >= PARK_AT {
        return fd;
    }
    dup_owned_above(&fd, PARK_AT).unwrap_or(fd)
}

/// Like `dup_above`, returning an owned descriptor for use in the parent.
pub fn dup_owned_above(fd: &impl AsFd, min: RawFd) -> Result<OwnedFd, Errno> {
    let new = dup_above(fd.as_fd().as_raw_fd(), min)?;
    // SAFETY: fcntl just created `new`; nothing else refers to it, so ownership is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Sets soft and hard limits of one resource for this process (prlimit64(2) on pid 0, bypassing
/// libc's all-threads broadcast). `u64::MAX` is RLIM_INFINITY.
pub fn set_rlimit(resource: i32, soft: u64, hard: u64) -> Result<(), Errno> {
    let new = libc::rlimit64 {
        rlim_cur: soft,
        rlim_max: hard,
    };
    let new = &new as *const libc::rlimit64 as usize;
    // SAFETY: `new` lives across the call; the old-limit pointer may be null.
    unsafe { raw_syscall(libc::SYS_prlimit64, [0, resource as usize, new, 0, 0, 0]) }.map(drop)
}

/// This thread's nice value (getpriority(2)); -1 is a valid value, so errno decides.
pub fn nice_value() -> Result<i32, Errno> {
    Errno::clear();
    // SAFETY: getpriority takes plain integers and touches no memory.
    let v = unsafe { libc::getpriority(libc::PRIO_PROCESS as _, 0) };
    if v == -1 && Errno::last_raw() != 0 {
        Err(Errno::last())
    } else {
        Ok(v)
    }
}

/// Locks the process's memory, page by page as it is first touched, now and for every future
/// mapping (mlockall(2) with MCL_ONFAULT, Linux 4.4+): what has run once stays in memory. Not
/// inherited across fork or exec.
pub fn lock_memory_on_fault() -> Result<(), Errno> {
    // SAFETY: mlockall takes flags only and touches no memory of ours.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE | libc::MCL_ONFAULT) };
    Errno::result(rc).map(drop)
}

/// Sets this thread's nice value (setpriority(2)); async-signal-safe, so a child step may call it.
pub fn set_nice(value: i32) -> Result<(), Errno> {
    let args = [libc::PRIO_PROCESS as usize, 0, value as usize, 0, 0, 0];
    // SAFETY: setpriority takes plain integers and touches no memory.
    unsafe { raw_syscall(libc::SYS_setpriority, args) }.map(drop)
}

/// Makes the child `cmd` starts run at nice `value` (set between fork and exec); a child that
/// cannot be reniced runs at the parent's value.
pub fn nice_before_exec(cmd: &mut std::process::Command, value: i32) {
    // SAFETY: the closure runs in the forked child between fork and exec and only issues
    // setpriority(2) through `raw_syscall` (no allocation, no lock, errno untouched), which is
    // async-signal-safe.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(cmd, move || {
            let _ = set_nice(value);
            Ok(())
        });
    }
}

/// Changes the working directory (chdir(2)).
pub fn change_dir(path: &CStr) -> Result<(), Errno> {
    // SAFETY: `path` is a valid NUL-terminated string.
    unsafe { raw_syscall(libc::SYS_chdir, [path.as_ptr() as usize, 0, 0, 0, 0, 0]) }.map(drop)
}

/// Closes every descriptor from 3 up, except those in `keep` (close_range(2)). `keep` must be
/// sorted ascending; entries below 3 are ignored.
pub fn close_fds_except(keep: &[RawFd]) -> Result<(), Errno> {
    // Saturating arithmetic: a child sharing the parent's memory must not reach a panic path,
    // not even an overflow check of a debug build.
    let mut first: u32 = 3;
    for &fd in keep {
        if fd < first as RawFd {
            continue;
        }
        let fd = fd as u32;
        if fd > first {
            close_range(first, fd.saturating_sub(1))?;
        }
        first = fd.saturating_add(1);
    }
    close_range(first, u32::MAX)
}

/// Gives the calling process a descriptor table of its own that holds only the descriptors
/// below `first` (close_range(2) of [first, ∞) with CLOSE_RANGE_UNSHARE: the kernel copies only
/// the numbers below `first` into the new table and drops none of the others one by one). The
/// first step of a child that shares its parent's table (clone_vm's `FdTable::Share`); in a
/// child with a table of its own it closes [first, ∞). Kernels before 5.9: unshare(2) with
/// CLONE_FILES (a copy of the whole table), then the range is closed.
pub fn unshare_fds_from(first: RawFd) -> Result<(), Errno> {
    let first = first.max(0) as usize;
    let flags = libc::CLOSE_RANGE_UNSHARE as usize;
    // SAFETY: close_range only takes integers.
    let rc = unsafe {
        raw_syscall(
            libc::SYS_close_range,
            [first, u32::MAX as usize, flags, 0, 0, 0],
        )
    };
    match rc {
        Ok(_) => Ok(()),
        Err(Errno::ENOSYS) => {
            let what = libc::CLONE_FILES as usize;
            // SAFETY: unshare takes an integer flag set.
            unsafe { raw_syscall(libc::SYS_unshare, [what, 0, 0, 0, 0, 0]) }?;
            close_range(first as u32, u32::MAX)
        }
        Err(e) => Err(e),
    }
}

fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: close_range only takes integers.
    let rc = unsafe {
        raw_syscall(
            libc::SYS_close_range,
            [first as usize, last as usize, 0, 0, 0, 0],
        )
    };
    match rc {
        Ok(_) => Ok(()),
        // Kernels before 5.9: close one by one up to the descriptor limit.
        Err(Errno::ENOSYS) => {
            let mut lim = libc::rlimit64 {
                rlim_cur: 0,
                rlim_max: 0,
            };
            let out = &mut lim as *mut libc::rlimit64 as usize;
            let nofile = libc::RLIMIT_NOFILE as usize;
            // SAFETY: `lim` is a live, writable rlimit64; the new-limit pointer may be null.
            let max = match unsafe { raw_syscall(libc::SYS_prlimit64, [0, nofile, 0, out, 0, 0]) } {
                Ok(_) if lim.rlim_cur > 0 => lim.rlim_cur.min(1 << 20) as u32,
                _ => 65536,
            };
            for fd in first..=last.min(max) {
                close_fd(fd as RawFd);
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// A NULL-terminated array of C strings for execve, built before fork so the child allocates
/// nothing. The pointers stay valid because the strings are owned alongside them and never moved
/// out.
pub struct CStringArray {
    _strings: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

// SAFETY: never changed after `new`; the pointers only point into `_strings`, which it owns, so
// reading it from a child sharing this memory (sys::clone_vm) is as safe as reading the strings.
unsafe impl Sync for CStringArray {}

impl CStringArray {
    pub fn new(strings: Vec<CString>) -> Self {
        let mut ptrs: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Self {
            _strings: strings,
            ptrs,
        }
    }
}

/// Replaces the process image (execve(2)); returns only on failure, with the reason.
pub fn exec(path: &CStr, argv: &CStringArray, envp: &CStringArray) -> Errno {
    let args = [
        path.as_ptr() as usize,
        argv.ptrs.as_ptr() as usize,
        envp.ptrs.as_ptr() as usize,
        0,
        0,
        0,
    ];
    // SAFETY: every pointer comes from a CStringArray, whose strings outlive this call and whose
    // arrays end with NULL.
    match unsafe { raw_syscall(libc::SYS_execve, args) } {
        Err(e) => e,
        Ok(_) => Errno::EIO,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The child runs at the value asked for, whatever the parent's (raising it needs no
    /// privilege, so this holds for any user running the test).
    #[test]
    fn a_child_can_be_started_at_another_nice_value() {
        let own = nice_value().unwrap();
        let want = (own + 3).min(19);
        let mut cmd = std::process::Command::new("nice");
        nice_before_exec(&mut cmd, want);
        let out = cmd.output().expect("run nice(1)");
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            want.to_string()
        );
        assert_eq!(
            nice_value().unwrap(),
            own,
            "the parent's value is untouched"
        );
    }
    use crate::sys::clone_vm::FdTable;
    use std::time::Duration;

    /// Descriptor numbers for a child sharing the test's table.
    struct Fds {
        low: RawFd,
        high: RawFd,
        unshare: bool,
    }

    fn is_open(fd: RawFd) -> bool {
        // SAFETY: F_GETFD with an integer touches no memory.
        unsafe {
            raw_syscall(
                libc::SYS_fcntl,
                [fd as usize, libc::F_GETFD as usize, 0, 0, 0, 0],
            )
        }
        .is_ok()
    }

    /// Told to unshare: takes its own table below `low + 1`, checks that it holds `low` but not
    /// `high`, and closes `low` there. Otherwise closes `high` (a number other test threads'
    /// descriptors do not reach, so the parent's check is not racy).
    fn close_one(f: &Fds) -> ! {
        if !f.unshare {
            close_fd(f.high);
            exit_immediately(0)
        }
        if unshare_fds_from(f.low + 1).is_err() {
            exit_immediately(2)
        }
        if is_open(f.high) || !is_open(f.low) {
            exit_immediately(3)
        }
        close_fd(f.low);
        exit_immediately(0)
    }

    fn run(unshare: bool) -> (OwnedFd, OwnedFd) {
        let (low, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let high = dup_owned_above(&low, 700).unwrap();
        let fds = Fds {
            low: low.as_raw_fd(),
            high: high.as_raw_fd(),
            unshare,
        };
        let child = match clone_vm(fds, close_one, None, FdTable::Share) {
            Ok(c) => c,
            Err((e, _)) => panic!("clone_vm: {e}"),
        };
        assert_eq!(child.wait_released(Duration::from_secs(10)), Ok(()));
        let status = nix::sys::wait::waitpid(child.pid(), None).unwrap();
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child.pid(), 0));
        (low, high)
    }

    #[test]
    fn a_child_sharing_the_table_takes_its_own_below_the_bound() {
        // Precondition: without unsharing, the child's close reaches our table.
        let (low, high) = run(false);
        assert!(!is_open(high.as_raw_fd()), "the table was shared");
        std::mem::forget(high); // already closed by the child
        drop(low);
        let (low, high) = run(true);
        assert!(is_open(low.as_raw_fd()), "the child closed its own copy");
        assert!(is_open(high.as_raw_fd()));
    }

    #[test]
    fn parked_descriptors_sit_above_the_bound() {
        let (r, _w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        assert!(r.as_raw_fd() < PARK_AT, "precondition: a fresh pipe is low");
        let parked = park_fd(r);
        assert!(parked.as_raw_fd() >= PARK_AT);
        assert!(is_open(parked.as_raw_fd()));
    }
}
