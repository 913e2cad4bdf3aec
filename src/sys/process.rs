//! Process creation: fork, and the small steps a freshly forked child takes before exec.
//!
//! Everything a child calls between fork and exec must be async-signal-safe: the parent may have
//! had other threads (the test harness does) whose locks are frozen in the child. So these wrappers
//! take only prepared values (`&CStr`, integers, slices), never allocate, and go straight to the
//! syscall where libc would add locking (musl's `setrlimit` broadcasts to every thread, for one).

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::unistd::Pid;

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

/// `struct clone_args` of clone3(2), up to and including `cgroup` (CLONE_ARGS_SIZE_VER2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Place the child in the cgroup given by `CloneArgs::cgroup` (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Duplicates the calling process straight into a cgroup (clone3(2) with CLONE_INTO_CGROUP), like
/// fork(2) otherwise. Writing a pid to `cgroup.procs` after fork takes the kernel's global
/// threadgroup lock for writing, which waits for an RCU grace period (measured here: 14 ms per
/// spawn, and serialised across concurrent spawns); a child born in its cgroup never migrates.
///
/// Returns `Err(ENOSYS)` (or the kernel's refusal, such as EINVAL on a cgroup v1 fd) without
/// creating a process when this is not possible: callers then fall back to `fork_process` and
/// `cgroup.procs`. Same obligations as `fork_process` for the child.
pub fn fork_into_cgroup(cgroup_dir: BorrowedFd<'_>) -> Result<Forked, Errno> {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: without CLONE_VM the child gets a copy-on-write copy of the address space, with
    // stack 0 meaning "the current stack" as in fork(2); `args` is a valid clone_args of the size
    // passed. Only the calling thread exists in the child, as with fork; musl's fork bookkeeping
    // (lock resets, cached tid) is skipped, which is fine because the child only makes raw
    // syscalls until exec or _exit (the same obligation as `fork_process`).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// Ends the child immediately, without running atexit handlers or flushing stdio (_exit(2)).
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no shared state of the process.
    unsafe { libc::_exit(code) }
}

/// Makes the process the leader of a new session, detached from the parent's terminal (setsid(2)).
pub fn new_session() -> Result<(), Errno> {
    nix::unistd::setsid().map(drop)
}

/// Empties the signal mask and resets every disposition to the default (rt_sigprocmask(2),
/// rt_sigaction(2)). The parent blocks signals for its signalfd and ignores SIGPIPE; a service
/// must not inherit either.
pub fn reset_signals() -> Result<(), Errno> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `empty` is a valid sigset_t owned by this frame.
    unsafe { libc::sigemptyset(&mut empty) };
    // SAFETY: the set pointer is valid; the old-set pointer may be null.
    let rc = unsafe { libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut()) };
    Errno::result(rc)?;
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        set_default_action(sig)?;
    }
    Ok(())
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
    let rc = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            &action as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            8usize,
        )
    };
    Errno::result(rc).map(drop)
}

/// Writes all of `buf` to `fd`, retrying on EINTR and short writes (write(2)).
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        // SAFETY: the pointer and length describe a live byte slice.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        match Errno::result(n) {
            Ok(0) => return Err(Errno::EIO),
            Ok(n) => buf = buf.get(n as usize..).unwrap_or_default(),
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
    // SAFETY: `path` is a valid NUL-terminated string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    Errno::result(fd)
}

/// Closes a descriptor (close(2)); errors are meaningless here, the fd is gone either way.
pub fn close_fd(fd: RawFd) {
    // SAFETY: closing an integer fd has no memory-safety consequence; callers own it.
    unsafe { libc::close(fd) };
}

/// Places `fd` at descriptor number `target`, inheritable across exec (dup2(2), or fcntl(2)
/// clearing FD_CLOEXEC when it already sits there, since dup2 onto itself keeps the flag).
pub fn dup_onto(fd: RawFd, target: RawFd) -> Result<(), Errno> {
    if fd == target {
        // SAFETY: F_SETFD with an integer flag touches no memory.
        let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        return Errno::result(rc).map(drop);
    }
    loop {
        // SAFETY: dup2 on integer descriptors touches no memory.
        let rc = unsafe { libc::dup2(fd, target) };
        match Errno::result(rc) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) | Err(Errno::EBUSY) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Duplicates `fd` to the lowest free number ≥ `min`, close-on-exec (fcntl(2) F_DUPFD_CLOEXEC).
pub fn dup_above(fd: RawFd, min: RawFd) -> Result<RawFd, Errno> {
    // SAFETY: F_DUPFD_CLOEXEC with an integer argument touches no memory.
    let rc = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    Errno::result(rc)
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
    // SAFETY: `new` lives across the call; the old-limit pointer may be null.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            0,
            resource,
            &new as *const libc::rlimit64,
            std::ptr::null_mut::<libc::rlimit64>(),
        )
    };
    Errno::result(rc).map(drop)
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
    // SAFETY: setpriority takes plain integers and touches no memory.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS as _, 0, value) };
    Errno::result(rc).map(drop)
}

/// Changes the working directory (chdir(2)).
pub fn change_dir(path: &CStr) -> Result<(), Errno> {
    // SAFETY: `path` is a valid NUL-terminated string.
    let rc = unsafe { libc::chdir(path.as_ptr()) };
    Errno::result(rc).map(drop)
}

/// Closes every descriptor from 3 up, except those in `keep` (close_range(2)). `keep` must be
/// sorted ascending; entries below 3 are ignored.
pub fn close_fds_except(keep: &[RawFd]) -> Result<(), Errno> {
    let mut first: u32 = 3;
    for &fd in keep {
        if fd < first as RawFd {
            continue;
        }
        let fd = fd as u32;
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = fd + 1;
    }
    close_range(first, u32::MAX)
}

fn close_range(first: u32, last: u32) -> Result<(), Errno> {
    // SAFETY: close_range only takes integers.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
    match Errno::result(rc) {
        Ok(_) => Ok(()),
        // Kernels before 5.9: close one by one up to the descriptor limit.
        Err(Errno::ENOSYS) => {
            // SAFETY: sysconf takes an integer name.
            let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
            let max = if max <= 0 {
                65536
            } else {
                max.min(1 << 20) as u32
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
    // SAFETY: every pointer comes from a CStringArray, whose strings outlive this call and whose
    // arrays end with NULL.
    unsafe { libc::execve(path.as_ptr(), argv.ptrs.as_ptr(), envp.ptrs.as_ptr()) };
    Errno::last()
}
