//! The early-mounts table applied for real in a private mount namespace (root), skipping what is
//! mounted already.

mod common;

use std::path::{Path, PathBuf};

use common::unshare::{inside, rerun_inside, test_dir, Space};
use lifsea_init::boot::mounts::{apply_early_mounts, MountOutcome, EARLY_MOUNTS, LATE_MOUNTS};
use lifsea_init::procfs::parse_mountinfo;

#[test]
fn early_mounts_mount_once_then_skip() {
    if !inside(Space::Mount) {
        return rerun_inside(Space::Mount, "early_mounts_mount_once_then_skip");
    }
    let root = test_dir();
    std::fs::create_dir_all(&root).unwrap();
    // A tmpfs root, so mount points can be created and everything vanishes with the namespace.
    lifsea_init::sys::mount::mount_fs("tmpfs", &root, "tmpfs", 0, "mode=0755").unwrap();
    let mi = Path::new("/proc/self/mountinfo");
    let mut first = apply_early_mounts(EARLY_MOUNTS, &root, mi);
    assert_eq!(first.len(), EARLY_MOUNTS.len());
    // The late rows (after the boot dispatch on a machine) land on the early ones' parents.
    first.extend(apply_early_mounts(LATE_MOUNTS, &root, mi));
    for (target, outcome) in &first {
        assert_eq!(outcome, &MountOutcome::Mounted, "{}", target.display());
    }
    let info = parse_mountinfo(&std::fs::read_to_string(mi).unwrap());
    let find = |rel: &str| {
        let p: PathBuf = root.join(rel);
        info.iter()
            .rev()
            .find(|m| Path::new(&m.mount_point) == p)
            .cloned()
            .unwrap_or_else(|| panic!("{rel} not mounted"))
    };
    let cgroup = find("sys/fs/cgroup");
    assert_eq!(cgroup.fs_type, "cgroup2");
    // The kernel shows the option among the super block's when it knows it (>= 6.0).
    let (major, minor) = kernel_version();
    if (major, minor) >= (6, 0) {
        let line = mountinfo_line(mi, &cgroup.mount_point);
        assert!(line.contains("favordynmods"), "{line}");
    }
    assert_eq!(find("dev/pts").fs_type, "devpts");
    assert!(find("run").options.contains("nosuid"));
    assert!(find("proc").options.contains("noexec"));
    let mut second = apply_early_mounts(EARLY_MOUNTS, &root, mi);
    second.extend(apply_early_mounts(LATE_MOUNTS, &root, mi));
    assert!(
        second
            .iter()
            .all(|(_, o)| o == &MountOutcome::AlreadyMounted),
        "{second:?}"
    );
    // A failing row is reported and does not stop the rest.
    let bad = [
        lifsea_init::boot::mounts::EarlyMount {
            source: "x",
            target: "/bogus",
            fstype: "no-such-fs",
            flags: 0,
            data: "",
            extra: "",
        },
        EARLY_MOUNTS[0],
    ];
    // Before /proc exists mountinfo cannot be read: rows are mounted rather than skipped.
    let fresh = apply_early_mounts(
        &EARLY_MOUNTS[..2],
        &root.join("fresh"),
        Path::new("/nonexistent/mountinfo"),
    );
    assert!(
        fresh.iter().all(|(_, o)| o == &MountOutcome::Mounted),
        "{fresh:?}"
    );
    // Options the kernel refuses are dropped, and the row is mounted without them.
    let unknown_option = [lifsea_init::boot::mounts::EarlyMount {
        source: "tmpfs",
        target: "/optional",
        fstype: "tmpfs",
        flags: 0,
        data: "mode=0711",
        extra: "no-such-option",
    }];
    let optional = apply_early_mounts(&unknown_option, &root.join("opt"), mi);
    assert_eq!(optional[0].1, MountOutcome::Mounted);
    let info = parse_mountinfo(&std::fs::read_to_string(mi).unwrap());
    let opt = info
        .iter()
        .rev()
        .find(|m| Path::new(&m.mount_point) == root.join("opt/optional"))
        .expect("mounted without the refused option");
    let line = mountinfo_line(mi, &opt.mount_point);
    assert!(line.contains("mode=711"), "{line}");
    let third = apply_early_mounts(&bad, &root.join("other"), mi);
    assert_eq!(
        third[0].1,
        MountOutcome::Failed(nix::Error::ENODEV),
        "unknown filesystem type"
    );
    assert_eq!(third[1].1, MountOutcome::Mounted);
}

/// The last mountinfo line for `mount_point` (the super block's options are at its end).
fn mountinfo_line(mi: &Path, mount_point: &str) -> String {
    std::fs::read_to_string(mi)
        .unwrap()
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(mount_point))
        .unwrap_or_else(|| panic!("{mount_point} not in mountinfo"))
        .to_string()
}

/// The running kernel's (major, minor).
fn kernel_version() -> (u32, u32) {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor)
}
