//! Starting a child that shares the parent's memory until it execs: clone3(2) with CLONE_VM
//! (and CLONE_FILES, CLONE_INTO_CGROUP when asked), running on a stack of its own; and the
//! errno-free raw syscall that such a child (and the functions it calls) uses.
//!
//! Why: fork copies PID 1's page tables and write-protects its pages, the parent then takes a
//! copy-on-write fault on every page it writes, and the child's exec tears the copy down again.
//! Starting 1,000 units that was about a fifth of PID 1's CPU time (perf, `cargo bench --bench
//! supervisor`). A CLONE_VM child costs none of it. Likewise a copy of the descriptor table takes
//! a reference on each of PID 1's descriptors (two pipes per unit: thousands) and exec drops
//! them again one by one; a child sharing the table (`FdTable::Share`) instead takes a table of
//! its own holding only the few low numbers it uses (`process::unshare_fds_from`).
//!
//! Not CLONE_VFORK: vfork suspends the parent until the child execs, without a bound (a hung
//! disk, a frozen cgroup), and PID 1 must never block. The parent goes on, and learns later
//! whether the child let go: CLONE_CHILD_CLEARTID makes the kernel zero a word the parent owns,
//! and wake its futex, when the child execs (past the point of no return) or exits
//! (mm_release); `SharedChild::released` looks at the word, `wait_released` waits for it with a
//! bound. The supervisor starts further children meanwhile and waits for each later
//! (supervisor::spawn_batch). Until the word is clear the child's stack and the data it reads
//! stay allocated, and so do the descriptors in that data; a child dropped before it lets go
//! (one killed at the parent's time limit while stuck in the kernel) keeps them in `LIMBO`,
//! freed by a later `clone_vm` once its word is clear.
//!
//! The child runs at the same time as the parent in the same memory, so it must not allocate,
//! lock, panic, unwind or return, must write nothing but its own stack, must not touch
//! thread-locals (it runs with the parent's thread pointer: errno is one, so every step goes
//! through `raw_syscall`), and, sharing the descriptor table, must take its own before it changes
//! any descriptor.
//!
//! # Review of everything the child runs (supervisor::spawn; checked 2026-11-30)
//! - `child_start` → the entry (`spawn::child_main`) → `spawn::child::run_child` →
//!   `child_steps`: reads the plan and descriptor numbers in the box, which the parent does not
//!   change while the child runs: the box belongs to the `SharedChild` (moving that moves a
//!   pointer, not the box), whose owner only reads it (`data`, `released`, `wait_released`)
//!   until the word is clear; the report fd is copied to a local. `Failure::at`/`encode` build a 12-byte array on the stack (no
//!   slicing, so no bounds check); `?` and `map_err` move plain values.
//! - `process::unshare_fds_from` (first step, before any descriptor changes; `ChildFds::bound`
//!   is a saturating max over six integers), `new_session`, `reset_signals` (dispositions by raw
//!   rt_sigaction from a stack struct, then the mask), `write_all` (`get(n..)`, no indexing),
//!   `dup_onto`, `dup_above`, `open_write`, `close_fd`, `set_nice`, `set_rlimit` (stack
//!   rlimit64), `change_dir`, `close_fds_except` (saturating arithmetic; its pre-5.9 fallback
//!   reads RLIMIT_NOFILE into a stack struct), `exec` (pointers into the plan's
//!   `CStringArray`s): each a `raw_syscall` on prepared values.
//! - `cred::set_groups`, `set_gid`, `set_uid`, `keep_caps_on_setuid`, `drop_bounding_cap`,
//!   `raise_ambient_cap`, `set_no_new_privs` (raw prctl/setres*id/setgroups), `set_caps` (header
//!   and data arrays on the stack): raw syscalls, none through libc's all-threads broadcast.
//! - `process::exit_immediately`: musl's `_exit`, which issues exit_group through its internal
//!   `__syscall` (no errno, no atexit, no stdio). exit_group ends only the child: without
//!   CLONE_THREAD it is a thread group of its own.
//! - Signals: PID 1 installs no handler of its own (it reads signals from a signalfd, blocked);
//!   the child inherits that mask, so no asynchronous handler can run before `reset_signals`.
//!   Rust's runtime handles SIGSEGV and SIGBUS (stack overflow reports): a fault in the child
//!   (say, its guard page) runs that handler on the child's stack, which only reads the
//!   parent's thread-local guard range, finds the address outside it, restores the default
//!   action and returns, so the fault repeats and kills the child alone (its signal handlers
//!   are its own copy: no CLONE_SIGHAND). The kernel gives a CLONE_VM child no alternate signal
//!   stack.
//! - Arithmetic that could overflow is saturating, so no overflow check (debug builds) can panic.
//! - Several children in flight (supervisor::spawn_batch; checked 2026-11-30). The child runs no
//!   code it did not run before; what changed is what the parent does meanwhile: it allocates,
//!   frees, makes cgroups and starts further children. None of that writes or frees a box or a
//!   stack a child is using: each child has its own box, and a stack goes back to `SPARE` (for
//!   the next child) only once its child's word is clear. The descriptor table is shared until
//!   each child's first step, and meanwhile the parent opens and closes descriptors: a number
//!   the child uses never changes under it (its descriptors are owned by its box, closed only
//!   after it let go), and any other number below its bound that its private table copies
//!   (another child's pipe ends, a cgroup directory) was opened close-on-exec, as everything the
//!   init opens is (std, `pipe2(O_CLOEXEC)`, `F_DUPFD_CLOEXEC`), so it closes at the child's
//!   exec, or with the child if it fails; a copy of another child's report pipe does not matter,
//!   because reports are read after the release, not by waiting for end of file.
//!
//! A parent killed at the time limit (`spawn::EXEC_TIMEOUT`) sends SIGKILL and goes on; a child
//! that shares the table and has not yet taken its own can run no further user code once the
//! signal is pending, so it never changes PID 1's descriptors afterwards.

use std::cell::RefCell;
use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::unistd::Pid;

/// Issues a system call without touching errno: returns the result or the kernel's errno.
///
/// # Safety
/// The arguments must be valid for system call `nr` (pointers to live memory of the size and
/// layout the kernel expects); the call must not be one that breaks Rust's assumptions about this
/// process (munmap of live memory, exit of a thread holding borrows, clone).
#[cfg(target_arch = "x86_64")]
pub unsafe fn raw_syscall(nr: libc::c_long, args: [usize; 6]) -> Result<usize, Errno> {
    let ret: isize;
    // SAFETY: the syscall instruction clobbers only rax (result), rcx and r11; the caller vouches
    // for what the arguments point to.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if (-4095..0).contains(&ret) {
        Err(Errno::from_raw(-ret as i32))
    } else {
        Ok(ret as usize)
    }
}

/// Elsewhere: libc's syscall(), which sets errno (CLONE_VM children are x86_64-only, see below).
///
/// # Safety
/// As for the x86_64 version.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn raw_syscall(nr: libc::c_long, args: [usize; 6]) -> Result<usize, Errno> {
    // SAFETY: the caller vouches for the arguments.
    let rc = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4], args[5]) };
    Errno::result(rc).map(|v| v as usize)
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

/// futex(2) operation: sleep while the word holds the given value.
const FUTEX_WAIT: usize = 0;

/// Whether the child gets a copy of the descriptor table or shares the parent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdTable {
    /// A copy, as with fork: the kernel takes a reference on every open descriptor, and the
    /// child's exec (or close_range) drops them again, one by one.
    Copy,
    /// The parent's own table (CLONE_FILES). The child must unshare it before it changes any
    /// descriptor (`process::unshare_fds_from`, which copies only the numbers below its bound),
    /// and the parent must leave the descriptors the child uses open until it has let go.
    Share,
}

/// Bytes of a child's stack. Its steps are shallow (no recursion, no large locals): a few KiB at
/// most, so this leaves a wide margin; a guard page below catches the impossible overflow.
const STACK_LEN: usize = 64 * 1024;
const GUARD_LEN: usize = 4096;

/// A child's stack: anonymous memory with an inaccessible guard page at its low end.
struct ChildStack {
    base: *mut libc::c_void,
}

impl ChildStack {
    fn new() -> Result<ChildStack, Errno> {
        // SAFETY: a fresh private anonymous mapping; no existing memory is affected.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                STACK_LEN + GUARD_LEN,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        // SAFETY: the first page of the mapping just made; nothing refers to it.
        if unsafe { libc::mprotect(base, GUARD_LEN, libc::PROT_NONE) } != 0 {
            let e = Errno::last();
            // SAFETY: unmapping the mapping just made, which nothing refers to.
            unsafe { libc::munmap(base, STACK_LEN + GUARD_LEN) };
            return Err(e);
        }
        Ok(ChildStack { base })
    }

    /// The initial stack pointer: the high end (the stack grows down), 16-byte aligned.
    fn top(&self) -> u64 {
        self.base as u64 + (STACK_LEN + GUARD_LEN) as u64
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: only dropped once no child runs on it (see `SharedChild`), so nothing refers to
        // the mapping any more.
        unsafe { libc::munmap(self.base, STACK_LEN + GUARD_LEN) };
    }
}

thread_local! {
    /// Stacks kept for the next children, up to `SPARE_MAX`: the supervisor has a few children
    /// in flight at once (supervisor::spawn_batch), so this saves an mmap, an mprotect, a munmap
    /// and the stack's page faults per spawn. Per thread because tests spawn from several threads.
    static SPARE: RefCell<Vec<ChildStack>> = const { RefCell::new(Vec::new()) };
        /// What children dropped before they let go still hold (their stack, their data and the
    /// descriptors in it): freed by a later `clone_vm` once the kernel has cleared their word.
    static LIMBO: RefCell<Vec<Box<dyn Held>>> = const { RefCell::new(Vec::new()) };
}

/// How many released stacks `SPARE` keeps (64 KiB each, untouched pages not even allocated).
const SPARE_MAX: usize = 16;

/// Takes a kept stack, if any.
fn spare_stack() -> Option<ChildStack> {
    SPARE
        .try_with(|s| s.try_borrow_mut().ok().and_then(|mut v| v.pop()))
        .ok()
        .flatten()
}

/// Keeps a stack no child runs on any more for the next one, or frees it when enough are kept
/// (or outside a thread's lifetime, TLS gone).
fn keep_stack(stack: ChildStack) {
    let mut stack = Some(stack);
    let _ = SPARE.try_with(|s| {
        if let Ok(mut v) = s.try_borrow_mut() {
            if v.len() < SPARE_MAX {
                v.extend(stack.take());
            }
        }
    });
    drop(stack);
}

/// A child's shared memory kept past its `SharedChild`, type-erased for `LIMBO`.
trait Held {
    fn released(&self) -> bool;
}

impl<T> Held for Shared<T> {
    fn released(&self) -> bool {
        self.tid.load(Ordering::Acquire) == 0
    }
}

/// Frees what children that have let go since their `SharedChild` was dropped still held.
fn sweep_limbo() {
    // try_borrow_mut: never reached while borrowed (single-threaded, no re-entry), but a panic
    // is not an option here.
    let freed = LIMBO.try_with(|l| match l.try_borrow_mut() {
        Ok(mut list) if !list.is_empty() => {
            let (gone, kept): (Vec<_>, Vec<_>) = list.drain(..).partition(|h| h.released());
            *list = kept;
            gone
        }
        _ => Vec::new(),
    });
    drop(freed);
}

/// What the child shares with the parent: the word the kernel clears on release, the child's
/// data and its stack. Boxed so that its address stays put while the child runs.
struct Shared<T> {
    tid: AtomicU32,
    entry: fn(&T) -> !,
    data: T,
    stack: Option<ChildStack>,
}

/// A child started by `clone_vm`, sharing the parent's memory until it execs or exits.
pub struct SharedChild<T: 'static> {
    pid: Pid,
    /// Dropped by hand: only once the child has let go of it, else never.
    shared: ManuallyDrop<Box<Shared<T>>>,
}

impl<T: 'static> SharedChild<T> {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The data the child was started with (read-only: the child may still be reading it).
    pub fn data(&self) -> &T {
        &self.shared.data
    }

    /// Whether the child has let go of the shared memory (exec'd or exited).
    pub fn released(&self) -> bool {
        self.shared.tid.load(Ordering::Acquire) == 0
    }

    /// Waits, at most `timeout`, until the child has let go of the shared memory: the kernel
    /// clears `tid` and wakes its futex when the child execs (past the point of no return) or
    /// exits. ETIMEDOUT when it has not by then. What pthread_join does, with a bound.
    pub fn wait_released(&self, timeout: Duration) -> Result<(), Errno> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            let seen = self.shared.tid.load(Ordering::Acquire);
            if seen == 0 {
                return Ok(());
            }
            let left = deadline.map_or(Duration::ZERO, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Err(Errno::ETIMEDOUT);
            }
            let ts = libc::timespec {
                tv_sec: left.as_secs().min(i64::MAX as u64) as _,
                tv_nsec: left.subsec_nanos() as libc::c_long,
            };
            // Not FUTEX_PRIVATE_FLAG: the kernel's wake at release is a shared-key wake.
            let args = [
                self.shared.tid.as_ptr() as usize,
                FUTEX_WAIT,
                seen as usize,
                &ts as *const libc::timespec as usize,
                0,
                0,
            ];
            // SAFETY: the word lives in the box this `SharedChild` owns; `ts` outlives the call.
            match unsafe { raw_syscall(libc::SYS_futex, args) } {
                // Woken, the word changed first, a signal, or the time is up: look again.
                Ok(_) | Err(Errno::EAGAIN) | Err(Errno::EINTR) | Err(Errno::ETIMEDOUT) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

impl<T: 'static> Drop for SharedChild<T> {
    fn drop(&mut self) {
        // SAFETY: taken once, here, and `self.shared` is not used again.
        let shared = unsafe { ManuallyDrop::take(&mut self.shared) };
        if shared.tid.load(Ordering::Acquire) != 0 {
            // Still running on our memory (or stuck in the kernel, killed): it keeps the box
            // until the kernel clears `tid`; a later `clone_vm` frees it then. Should pushing
            // fail (a panic while allocating), the box leaks rather than being freed under the
            // child.
            let mut held: Option<Box<dyn Held>> = Some(shared);
            let _ = LIMBO.try_with(|l| {
                if let (Ok(mut v), Some(h)) = (l.try_borrow_mut(), held.take()) {
                    v.push(h);
                }
            });
            if let Some(h) = held {
                std::mem::forget(h);
            }
            return;
        }
        // The kernel has cleared `tid`: the child no longer uses the box (it exec'd into a new
        // address space or exited).
        let Shared { stack, data, .. } = *shared;
        drop(data);
        if let Some(stack) = stack {
            keep_stack(stack);
        }
    }
}

/// What the child runs first: the entry passes its data to the caller's function.
extern "C" fn child_start<T>(shared: *const Shared<T>) -> ! {
    // SAFETY: `clone_vm` passes a pointer to the boxed `Shared<T>`, which stays allocated until
    // the kernel has cleared `tid` (this child exec'd or exited), and which the parent only reads
    // meanwhile.
    let shared = unsafe { &*shared };
    (shared.entry)(&shared.data)
}

/// Starts `entry(&data)` in a child that shares this process's memory (clone3 with CLONE_VM and
/// CLONE_CHILD_CLEARTID; and CLONE_INTO_CGROUP when `cgroup` is given), on a stack of its own.
/// The child gets copies of the descriptor table, signal handlers and everything else, as with
/// fork. `entry` must keep the rules at the top of this module and end in exec or exit.
///
/// Gives `data` back with the error when no child was made: ENOSYS on kernels (or architectures)
/// without it, EINVAL or the kernel's refusal for the cgroup (cgroup v1, 5.3–5.6).
pub fn clone_vm<T: Sync + 'static>(
    data: T,
    entry: fn(&T) -> !,
    cgroup: Option<BorrowedFd<'_>>,
    fds: FdTable,
) -> Result<SharedChild<T>, (Errno, T)> {
    if !cfg!(target_arch = "x86_64") {
        return Err((Errno::ENOSYS, data));
    }
    sweep_limbo();
    let spare = spare_stack();
    let stack = match spare.map_or_else(ChildStack::new, Ok) {
        Ok(s) => s,
        Err(e) => return Err((e, data)),
    };
    let top = stack.top();
    let shared = Box::new(Shared {
        tid: AtomicU32::new(u32::MAX),
        entry,
        data,
        stack: Some(stack),
    });
    let mut args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_CHILD_CLEARTID) as u64,
        child_tid: shared.tid.as_ptr() as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: top - STACK_LEN as u64,
        stack_size: STACK_LEN as u64,
        ..Default::default()
    };
    if fds == FdTable::Share {
        args.flags |= libc::CLONE_FILES as u64;
    }
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    match start(&args, &*shared as *const Shared<T>, child_start::<T>) {
        Ok(pid) => Ok(SharedChild {
            pid,
            shared: ManuallyDrop::new(shared),
        }),
        Err(e) => {
            let Shared { data, stack, .. } = *shared;
            if let Some(stack) = stack {
                keep_stack(stack);
            }
            Err((e, data))
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn start<T>(
    args: &CloneArgs,
    shared: *const Shared<T>,
    first: extern "C" fn(*const Shared<T>) -> !,
) -> Result<Pid, Errno> {
    let ret: isize;
    // SAFETY: clone3 with CLONE_VM starts the child at the instruction after `syscall`, with the
    // parent's registers except rax = 0 and rsp = the top of `args.stack`, a fresh stack nothing
    // else uses. rcx and r11 are clobbered by `syscall`; r12 and r13 survive it, so the child finds
    // its function and arguments there, clears the frame pointer, and calls it with the stack
    // 16-byte aligned at the call as the ABI requires; the function never returns (`ud2` traps if
    // it did). The parent continues after label 2 with the child's pid or -errno in rax, its own
    // stack untouched (the child never ran on it). `shared` outlives the child's use of it (see
    // `SharedChild`); `args` is a valid clone_args of the size passed.
    unsafe {
        core::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") shared,
            in("r13") first,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        Err(Errno::from_raw(-ret as i32))
    } else {
        Ok(Pid::from_raw(ret as i32))
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn start<T>(
    _args: &CloneArgs,
    _shared: *const Shared<T>,
    _first: extern "C" fn(*const Shared<T>) -> !,
) -> Result<Pid, Errno> {
    Err(Errno::ENOSYS)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Probe {
        seen: AtomicU32,
    }

    fn store_and_exit(p: &Probe) -> ! {
        // A test-only breach of the module's rules (writing parent memory) that proves the
        // memory is shared: a forked child's store would land in its own copy.
        p.seen.store(7, Ordering::Release);
        super::super::process::exit_immediately(3)
    }

    #[test]
    fn child_shares_memory_and_lets_go_when_it_exits() {
        let child = match clone_vm(
            Probe {
                seen: AtomicU32::new(0),
            },
            store_and_exit,
            None,
            FdTable::Copy,
        ) {
            Ok(c) => c,
            Err((e, _)) => panic!("clone_vm: {e}"),
        };
        let status = nix::sys::wait::waitpid(child.pid(), None).unwrap();
        assert_eq!(
            status,
            nix::sys::wait::WaitStatus::Exited(child.pid(), 3),
            "the child ran its entry and exited with its code"
        );
        assert!(child.released(), "the kernel cleared the tid word at exit");
        assert_eq!(child.data().seen.load(Ordering::Acquire), 7);
    }

    fn exec_true(path: &std::ffi::CString) -> ! {
        let argv = [path.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        let args = [
            path.as_ptr() as usize,
            argv.as_ptr() as usize,
            envp.as_ptr() as usize,
            0,
            0,
            0,
        ];
        // SAFETY: NUL-terminated path and NULL-terminated arrays that live across the call.
        let _ = unsafe { raw_syscall(libc::SYS_execve, args) };
        super::super::process::exit_immediately(127)
    }

    #[test]
    fn child_lets_go_when_it_execs_and_a_released_stack_is_reused() {
        for _ in 0..3 {
            let path = std::ffi::CString::new("/bin/true").unwrap();
            let child = match clone_vm(path, exec_true, None, FdTable::Copy) {
                Ok(c) => c,
                Err((e, _)) => panic!("clone_vm: {e}"),
            };
            let status = nix::sys::wait::waitpid(child.pid(), None).unwrap();
            assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child.pid(), 0));
            assert!(child.released());
            drop(child);
            assert!(
                SPARE.with(|s| !s.borrow().is_empty()),
                "the stack went back to the spare pool"
            );
        }
    }

    fn limbo_len() -> usize {
        LIMBO.with(|l| l.borrow().len())
    }

    /// Data that says when it is dropped.
    struct DropFlag(std::sync::Arc<AtomicU32>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(1, Ordering::Release);
        }
    }

    fn pause_forever(_: &DropFlag) -> ! {
        loop {
            // SAFETY: pause takes no arguments.
            let _ = unsafe { raw_syscall(libc::SYS_pause, [0; 6]) };
        }
    }

    fn exit_at_once(_: &DropFlag) -> ! {
        super::super::process::exit_immediately(0)
    }

    #[test]
    fn wait_is_bounded_and_a_child_dropped_early_is_freed_once_it_lets_go() {
        let dropped = std::sync::Arc::new(AtomicU32::new(0));
        let flag = DropFlag(dropped.clone());
        let child = match clone_vm(flag, pause_forever, None, FdTable::Copy) {
            Ok(c) => c,
            Err((e, _)) => panic!("clone_vm: {e}"),
        };
        let t = Instant::now();
        assert_eq!(
            child.wait_released(Duration::from_millis(100)),
            Err(Errno::ETIMEDOUT)
        );
        assert!(t.elapsed() >= Duration::from_millis(100));
        let pid = child.pid();
        let before = limbo_len();
        drop(child);
        assert_eq!(limbo_len(), before + 1, "kept while the child runs");
        assert_eq!(
            dropped.load(Ordering::Acquire),
            0,
            "not freed under the child"
        );
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
        // Another test's waitpid(-1) (the supervisor's reaper runs in lib tests) may have reaped
        // it first: gone either way.
        assert!(matches!(
            nix::sys::wait::waitpid(pid, None),
            Ok(_) | Err(Errno::ECHILD)
        ));
        // The next clone_vm sweeps what has let go.
        let other = std::sync::Arc::new(AtomicU32::new(0));
        let next = match clone_vm(DropFlag(other), exit_at_once, None, FdTable::Copy) {
            Ok(c) => c,
            Err((e, _)) => panic!("clone_vm: {e}"),
        };
        assert_eq!(dropped.load(Ordering::Acquire), 1, "freed once it let go");
        assert_eq!(limbo_len(), before);
        assert_eq!(next.wait_released(Duration::from_secs(10)), Ok(()));
        assert!(matches!(
            nix::sys::wait::waitpid(next.pid(), None),
            Ok(_) | Err(Errno::ECHILD)
        ));
    }

    #[test]
    fn raw_syscall_reports_errno_without_setting_it() {
        Errno::clear();
        // SAFETY: close takes an integer; this one is not an open descriptor.
        let r = unsafe { raw_syscall(libc::SYS_close, [usize::MAX >> 33, 0, 0, 0, 0, 0]) };
        assert_eq!(r, Err(Errno::EBADF));
        assert_eq!(Errno::last_raw(), 0, "errno untouched");
    }
}
