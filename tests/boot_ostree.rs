//! `ostree=` resolution against a hand-made symlink layout and against a sysroot made by the real
//! ostree CLI; root assembly (both modes) in a private mount namespace (`unshare --mount`, root).

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::unshare::{inside, rerun_inside, Space};
use lifsea_init::boot::mount_ops::SysMounts;
use lifsea_init::boot::ostree::{
    assemble_at, assemble_direct, mark_booted, resolve_deployment, Deployment, OstreeError,
};

/// Inside the namespace the outer test names the directory, so it can remove it afterwards.
fn tmpdir(tag: &str) -> PathBuf {
    let d = match std::env::var_os("LIFSEA_TEST_DIR") {
        Some(d) => PathBuf::from(d),
        None => std::env::temp_dir().join(format!("lifsea-ostree-{tag}-{}", std::process::id())),
    };
    remove(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// ostree marks deployment dirs immutable.
fn remove(d: &Path) {
    if d.exists() {
        let _ = Command::new("chattr").arg("-R").arg("-i").arg(d).output();
        let _ = std::fs::remove_dir_all(d);
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn resolves_the_boot_symlink_chain() {
    let s = tmpdir("links");
    let dep = s.join("ostree/deploy/myos/deploy/abc123.0");
    std::fs::create_dir_all(&dep).unwrap();
    std::fs::create_dir_all(s.join("ostree/boot.1.1/myos/bootcsum")).unwrap();
    symlink("boot.1.1", s.join("ostree/boot.1")).unwrap();
    symlink(
        "../../../deploy/myos/deploy/abc123.0",
        s.join("ostree/boot.1.1/myos/bootcsum/0"),
    )
    .unwrap();
    let d = resolve_deployment(&s, "/ostree/boot.1/myos/bootcsum/0").unwrap();
    assert_eq!(
        d,
        Deployment {
            path: PathBuf::from("ostree/deploy/myos/deploy/abc123.0"),
            stateroot: "myos".into(),
            checksum: "abc123".into(),
            serial: 0,
        }
    );
    // An absolute link stays inside the sysroot instead of escaping to the host's /.
    symlink(
        "/ostree/deploy/myos/deploy/abc123.0",
        s.join("ostree/boot.1.1/myos/bootcsum/1"),
    )
    .unwrap();
    assert_eq!(
        resolve_deployment(&s, "/ostree/boot.1/myos/bootcsum/1")
            .unwrap()
            .path,
        d.path
    );
    // Wrong arguments: a missing serial, and a path that is not a deployment.
    assert!(matches!(
        resolve_deployment(&s, "/ostree/boot.1/myos/bootcsum/7"),
        Err(OstreeError::Resolve { .. })
    ));
    assert!(matches!(
        resolve_deployment(&s, "/ostree/boot.1/myos"),
        Err(OstreeError::NotDeployment { .. })
    ));
    symlink("loop", s.join("ostree/loop")).unwrap();
    assert!(matches!(
        resolve_deployment(&s, "/ostree/loop"),
        Err(OstreeError::Loop { .. })
    ));
    remove(&s);
}

/// A sysroot made the way the image builder makes it: init-fs, os-init, commit, deploy.
/// Returns (sysroot, the `ostree=` value from the BLS entry, the deployed commit).
fn real_sysroot(tag: &str) -> (PathBuf, String, String) {
    let d = tmpdir(tag);
    let r = d.join("rootfs");
    for p in [
        "usr/etc",
        "usr/lib/modules/6.1.0-test",
        "usr/share",
        "sysroot",
        "var",
        "boot",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
    ] {
        std::fs::create_dir_all(r.join(p)).unwrap();
    }
    std::fs::write(r.join("usr/lib/os-release"), "ID=lifsea\n").unwrap();
    std::fs::write(r.join("usr/share/marker"), "deployed\n").unwrap();
    std::fs::write(r.join("usr/etc/hostname"), "node\n").unwrap();
    std::fs::write(r.join("usr/lib/modules/6.1.0-test/vmlinuz"), "not a kernel").unwrap();
    symlink("sysroot/ostree", r.join("ostree")).unwrap();
    let s = d.join("sysroot");
    let repo = s.join("ostree/repo");
    std::fs::create_dir_all(&s).unwrap();
    run(Command::new("ostree").args(["admin", "init-fs"]).arg(&s));
    run(Command::new("ostree")
        .args(["admin", "os-init", "testos"])
        .arg(format!("--sysroot={}", s.display())));
    run(Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["config", "set", "sysroot.bootloader", "none"]));
    let commit = run(Command::new("ostree")
        .arg(format!("--repo={}", repo.display()))
        .args(["commit", "--branch=test/base", "--subject=t"])
        .arg(format!("--tree=dir={}", r.display())))
    .trim()
    .to_string();
    run(Command::new("ostree")
        .args(["admin", "deploy", "--os=testos", "--karg=root=LABEL=x"])
        .arg(format!("--sysroot={}", s.display()))
        .arg("test/base"));
    let entries = std::fs::read_dir(s.join("boot/loader/entries")).unwrap();
    let entry = entries.flatten().next().unwrap().path();
    let text = std::fs::read_to_string(entry).unwrap();
    let arg = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ostree="))
        .expect("ostree= in the BLS entry")
        .to_string();
    (s, arg, commit)
}

#[test]
fn resolves_a_deployment_made_by_the_ostree_cli() {
    let (s, arg, commit) = real_sysroot("cli");
    let d = resolve_deployment(&s, &arg).unwrap();
    assert_eq!(d.stateroot, "testos");
    assert_eq!(d.checksum, commit);
    assert_eq!(d.serial, 0);
    assert_eq!(
        std::fs::read_to_string(s.join(&d.path).join("usr/share/marker")).unwrap(),
        "deployed\n"
    );
    remove(s.parent().unwrap());
}

fn write_err(p: &Path) -> Option<i32> {
    std::fs::write(p, b"x").err().and_then(|e| e.raw_os_error())
}

#[test]
fn initramfs_mode_assembles_the_deployment_with_the_physical_root_under_it() {
    if !inside(Space::Mount) {
        return rerun_inside(
            Space::Mount,
            "initramfs_mode_assembles_the_deployment_with_the_physical_root_under_it",
        );
    }
    let (s, arg, _) = real_sysroot("initramfs");
    // Stage 0 has the physical root as a mount: make the sysroot one.
    lifsea_init::sys::mount::bind(&s, &s, false).unwrap();
    let d = resolve_deployment(&s, &arg).unwrap();
    let target = s.parent().unwrap().join("newroot");
    assemble_at(&mut SysMounts, &s, &d, &target, true).unwrap();
    assert_eq!(
        std::fs::read_to_string(target.join("usr/share/marker")).unwrap(),
        "deployed\n"
    );
    assert_eq!(
        write_err(&target.join("usr/x")),
        Some(libc::EROFS),
        "/usr must be read-only"
    );
    std::fs::write(target.join("etc/x"), b"x").expect("/etc writable");
    std::fs::write(target.join("var/x"), b"x").expect("/var writable");
    // /var is the stateroot's var, seen through the physical root now under <target>/sysroot.
    assert!(target.join("sysroot/ostree/deploy/testos/var/x").exists());
    assert_eq!(
        write_err(&target.join("sysroot/x")),
        Some(libc::EROFS),
        "/sysroot read-only"
    );
    assert!(
        target.join("boot/loader").exists(),
        "/boot bound from the sysroot"
    );
    mark_booted(&target.join("run")).unwrap();
    assert!(target.join("run/ostree-booted").exists());
}

#[test]
fn direct_mode_pivots_into_the_deployment() {
    if !inside(Space::Mount) {
        return rerun_inside(Space::Mount, "direct_mode_pivots_into_the_deployment");
    }
    let (s, arg, _) = real_sysroot("direct");
    lifsea_init::sys::mount::bind(&s, &s, false).unwrap();
    let d = resolve_deployment(&s, &arg).unwrap();
    let deploy_ino = std::fs::metadata(s.join(&d.path))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    // Be PID 1 on the physical root: chroot into it, then assemble with "/" as the sysroot.
    lifsea_init::sys::mount::chroot(&s).unwrap();
    std::env::set_current_dir("/").unwrap();
    assemble_direct(&mut SysMounts, Path::new("/"), &d, false, true).unwrap();
    assert_eq!(
        std::fs::read_to_string("/usr/share/marker").unwrap(),
        "deployed\n"
    );
    let root_ino = std::fs::metadata("/")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    assert_eq!(
        root_ino, deploy_ino,
        "/ is the deployment directory (what `ostree admin status` checks)"
    );
    assert!(
        Path::new("/sysroot/ostree/deploy/testos").is_dir(),
        "physical root at /sysroot"
    );
    assert_eq!(write_err(Path::new("/usr/x")), Some(libc::EROFS));
    assert_eq!(write_err(Path::new("/sysroot/x")), Some(libc::EROFS));
    std::fs::write("/etc/x", b"x").expect("/etc writable");
    std::fs::write("/var/x", b"x").expect("/var writable");
    assert!(Path::new("/sysroot/ostree/deploy/testos/var/x").exists());
}
