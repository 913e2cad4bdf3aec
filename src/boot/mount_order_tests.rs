//! The order of root assembly's mount operations, checked through the recording `MountOps`
//! without root: what ostree-prepare-root does, in the same order, and a failure stops the
//! sequence with the step named.

use std::path::{Path, PathBuf};

use super::mount_ops::RecordingMounts;
use super::ostree::{assemble_at, assemble_direct, Deployment};
use super::stage0::{enter_root, move_api_mounts};

/// A sysroot with one deployment (and, when `loader`, a /boot with a loader directory).
fn sysroot(tag: &str, loader: bool) -> (PathBuf, Deployment) {
    let s = std::env::temp_dir().join(format!("lifsea-order-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&s);
    let rel = PathBuf::from("ostree/deploy/os/deploy/abc.0");
    std::fs::create_dir_all(s.join(&rel).join("boot")).unwrap();
    std::fs::create_dir_all(s.join("ostree/deploy/os/var")).unwrap();
    if loader {
        std::fs::create_dir_all(s.join("boot/loader")).unwrap();
    }
    let d = Deployment {
        path: rel,
        stateroot: "os".into(),
        checksum: "abc".into(),
        serial: 0,
    };
    (s, d)
}

#[test]
fn direct_assembly_binds_then_pivots_then_locks_sysroot() {
    let (s, d) = sysroot("direct", true);
    let mut m = RecordingMounts::default();
    assemble_direct(&mut m, &s, &d, true, true).unwrap();
    let dep = s.join(&d.path).display().to_string();
    let sr = s.display().to_string();
    assert_eq!(
        m.calls,
        vec![
            format!("rprivate {sr}"),
            format!("rw-superblock {sr}"),
            format!("bind {dep} {dep}"),
            format!("bind {sr}/boot {dep}/boot"),
            format!("bind {sr}/ostree/deploy/os/var {dep}/var"),
            format!("bind {dep}/usr {dep}/usr"),
            format!("ro {dep}/usr"),
            format!("chdir {dep}"),
            "pivot . sysroot".to_string(),
            "chroot .".to_string(),
            "chdir /".to_string(),
            "ro /sysroot".to_string(),
        ]
    );
    let _ = std::fs::remove_dir_all(&s);
}

#[test]
fn direct_assembly_skips_what_is_not_asked_for() {
    // A writable root needs no superblock remount, no loader means no /boot bind, and
    // `lifsea.sysroot=rw` leaves /sysroot writable.
    let (s, d) = sysroot("direct-min", false);
    let mut m = RecordingMounts::default();
    assemble_direct(&mut m, &s, &d, false, false).unwrap();
    assert!(!m.calls.iter().any(|c| c.starts_with("rw-superblock")));
    assert!(!m.calls.iter().any(|c| c.contains("/boot")));
    assert_eq!(m.calls.last().map(String::as_str), Some("chdir /"));
    let _ = std::fs::remove_dir_all(&s);
}

#[test]
fn initramfs_assembly_moves_the_physical_root_before_locking_it() {
    let (s, d) = sysroot("at", false);
    let target = s.join("target");
    let mut m = RecordingMounts::default();
    assemble_at(&mut m, &s, &d, &target, true).unwrap();
    let (dep, sr, t) = (
        s.join(&d.path).display().to_string(),
        s.display().to_string(),
        target.display().to_string(),
    );
    assert_eq!(
        m.calls,
        vec![
            format!("bind {dep} {t}"),
            format!("bind {sr}/ostree/deploy/os/var {t}/var"),
            format!("bind {t}/usr {t}/usr"),
            format!("ro {t}/usr"),
            format!("move {sr} {t}/sysroot"),
            format!("ro {t}/sysroot"),
        ]
    );
    let _ = std::fs::remove_dir_all(&s);
}

#[test]
fn a_failed_step_stops_assembly_and_names_it() {
    let (s, d) = sysroot("fail", false);
    let mut m = RecordingMounts {
        fail_on: Some("bind".into()),
        ..Default::default()
    };
    let e = assemble_direct(&mut m, &s, &d, false, true).unwrap_err();
    assert_eq!(m.calls.len(), 2, "{:?}", m.calls);
    assert!(e.to_string().contains("deployment"), "{e}");
    let mut m = RecordingMounts {
        fail_on: Some("pivot".into()),
        ..Default::default()
    };
    let e = assemble_direct(&mut m, &s, &d, false, true).unwrap_err();
    assert_eq!(m.calls.last().map(String::as_str), Some("pivot . sysroot"));
    assert!(e.to_string().contains("pivot_root"), "{e}");
    let _ = std::fs::remove_dir_all(&s);
}

#[test]
fn stage0_moves_api_mounts_then_enters_the_new_root() {
    let new_root = Path::new("/deploy");
    let mut m = RecordingMounts {
        fail_on: Some("move /sys".into()),
        ..Default::default()
    };
    move_api_mounts(&mut m, new_root);
    enter_root(&mut m, new_root).unwrap();
    assert_eq!(
        m.calls,
        vec![
            "move /dev /deploy/dev",
            "move /proc /deploy/proc",
            "move /sys /deploy/sys",
            // A mount that cannot move is detached so it does not pin the initramfs.
            "detach /sys",
            "chdir /deploy",
            "move . /",
            "chroot .",
            "chdir /",
        ]
    );
    let mut m = RecordingMounts {
        fail_on: Some("chroot".into()),
        ..Default::default()
    };
    let e = enter_root(&mut m, new_root).unwrap_err();
    assert!(e.starts_with("chroot:"), "{e}");
    assert_eq!(m.calls.len(), 3);
}
