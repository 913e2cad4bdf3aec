//! mount(2), umount2(2), pivot_root(2) and chroot(2), one function per intention, for the early
//! mounts, the ostree root assembly and the initramfs root switch.

use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Mounts a filesystem (`mount(2)` with a source, a type, flags and data).
pub fn mount_fs(
    source: &str,
    target: &Path,
    fstype: &str,
    flags: u64,
    data: &str,
) -> nix::Result<()> {
    let data = if data.is_empty() { None } else { Some(data) };
    mount(
        Some(source),
        target,
        Some(fstype),
        MsFlags::from_bits_truncate(flags),
        data,
    )
}

/// Bind-mounts `src` onto `dst` (`mount(2)` with `MS_BIND`, recursive with `MS_REC`).
pub fn bind(src: &Path, dst: &Path, recursive: bool) -> nix::Result<()> {
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_SILENT;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(Some(src), dst, None::<&str>, flags, None::<&str>)
}

/// Makes an existing bind mount read-only at the mount level only (`MS_BIND|MS_REMOUNT|MS_RDONLY`),
/// leaving the superblock writable for other mounts of the same filesystem.
pub fn remount_bind_readonly(target: &Path) -> nix::Result<()> {
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_SILENT,
        None::<&str>,
    )
}

/// Makes a read-only bind mount writable again at the mount level (`MS_BIND|MS_REMOUNT`): the
/// short window in which the init renames its boot entry on `/sysroot`.
pub fn remount_bind_writable(target: &Path) -> nix::Result<()> {
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_SILENT,
        None::<&str>,
    )
}

/// Remounts a filesystem's superblock read-write (`MS_REMOUNT` without `MS_RDONLY`): the kernel
/// mounts the root read-only by default, and the deployment's /etc and /var must accept writes.
pub fn remount_superblock_rw(target: &Path) -> nix::Result<()> {
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_SILENT,
        None::<&str>,
    )
}

/// Makes the mount at `target` and everything below it private (`MS_REC|MS_PRIVATE`), so moves
/// and pivots are allowed and nothing propagates back.
pub fn make_rprivate(target: &Path) -> nix::Result<()> {
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
}

/// Moves a mount (`MS_MOVE`).
pub fn move_mount(src: &Path, dst: &Path) -> nix::Result<()> {
    mount(Some(src), dst, None::<&str>, MsFlags::MS_MOVE, None::<&str>)
}

/// umount2(2) of `path`, lazily (MNT_DETACH) when `lazy`.
pub fn unmount(path: &Path, lazy: bool) -> nix::Result<()> {
    let flags = if lazy {
        MntFlags::MNT_DETACH
    } else {
        MntFlags::empty()
    };
    umount2(path, flags)
}

/// mount(2) with MS_REMOUNT|MS_RDONLY: what cannot be unmounted is at least made clean.
pub fn remount_read_only(path: &Path) -> nix::Result<()> {
    mount(
        None::<&str>,
        path,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    )
}

/// `pivot_root(new_root, put_old)`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> nix::Result<()> {
    nix::unistd::pivot_root(new_root, put_old)
}

/// `chroot(path)`.
pub fn chroot(path: &Path) -> nix::Result<()> {
    nix::unistd::chroot(path)
}

/// Whether `/` is the initramfs (`statfs(2)` says ramfs or tmpfs).
pub fn root_is_ramfs() -> bool {
    use nix::sys::statfs::{statfs, FsType, TMPFS_MAGIC};
    // RAMFS_MAGIC from <linux/magic.h>; neither nix nor libc names it for musl.
    let ramfs = FsType(0x8584_58f6);
    match statfs("/") {
        Ok(s) => s.filesystem_type() == ramfs || s.filesystem_type() == TMPFS_MAGIC,
        Err(_) => false,
    }
}
