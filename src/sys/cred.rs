//! Process credentials and capabilities: what a service child drops before exec.
//!
//! These are raw syscalls rather than libc wrappers on purpose: in a forked child only the calling
//! thread exists, and musl's `setuid` family would try to broadcast the change to threads (taking
//! locks another parent thread might have held at fork time). Capability sets are passed as bit
//! masks prepared by the caller, so nothing here allocates. Through `raw_syscall`, so they leave
//! errno alone too (a CLONE_VM child shares the parent's, see sys::clone_vm).

use nix::errno::Errno;

use super::clone_vm::raw_syscall;

/// Replaces the supplementary group list (setgroups(2)).
pub fn set_groups(groups: &[u32]) -> Result<(), Errno> {
    let args = [groups.len(), groups.as_ptr() as usize, 0, 0, 0, 0];
    // SAFETY: the pointer and length describe a live slice of gid_t-sized integers.
    unsafe { raw_syscall(libc::SYS_setgroups, args) }.map(drop)
}

/// Sets real, effective and saved group ids (setresgid(2)).
pub fn set_gid(gid: u32) -> Result<(), Errno> {
    let id = gid as usize;
    // SAFETY: integer arguments only.
    unsafe { raw_syscall(libc::SYS_setresgid, [id, id, id, 0, 0, 0]) }.map(drop)
}

/// Sets real, effective and saved user ids (setresuid(2)).
pub fn set_uid(uid: u32) -> Result<(), Errno> {
    let id = uid as usize;
    // SAFETY: integer arguments only.
    unsafe { raw_syscall(libc::SYS_setresuid, [id, id, id, 0, 0, 0]) }.map(drop)
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> Result<(), Errno> {
    let args = [option as usize, arg2 as usize, arg3 as usize, 0, 0, 0];
    // SAFETY: every option used here takes integer arguments only.
    unsafe { raw_syscall(libc::SYS_prctl, args) }.map(drop)
}

/// Keeps the permitted capabilities across the coming change to a non-zero uid
/// (prctl(2) PR_SET_KEEPCAPS).
pub fn keep_caps_on_setuid() -> Result<(), Errno> {
    prctl(libc::PR_SET_KEEPCAPS, 1, 0)
}

/// Removes one capability from the bounding set for good (prctl(2) PR_CAPBSET_DROP).
pub fn drop_bounding_cap(cap: u8) -> Result<(), Errno> {
    prctl(libc::PR_CAPBSET_DROP, cap.into(), 0)
}

/// Raises one capability into the ambient set (prctl(2) PR_CAP_AMBIENT_RAISE); it must already
/// be permitted and inheritable.
pub fn raise_ambient_cap(cap: u8) -> Result<(), Errno> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
        cap.into(),
    )
}

/// Forbids gaining privileges through exec of setuid or file-capability binaries
/// (prctl(2) PR_SET_NO_NEW_PRIVS).
pub fn set_no_new_privs() -> Result<(), Errno> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0)
}

const CAP_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Sets this thread's effective, permitted and inheritable capability sets, each given as a
/// 64-bit mask indexed by capability number (capset(2), version 3 header).
pub fn set_caps(effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
    let mut header = CapHeader {
        version: CAP_VERSION_3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    let args = [
        &mut header as *mut CapHeader as usize,
        data.as_ptr() as usize,
        0,
        0,
        0,
        0,
    ];
    // SAFETY: the header and the two-element data array (what version 3 requires) live across
    // the call and have the kernel's layout.
    unsafe { raw_syscall(libc::SYS_capset, args) }.map(drop)
}
