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
    assert_eq!(find("sys/fs/cgroup").fs_type, "cgroup2");
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
    let third = apply_early_mounts(&bad, &root.join("other"), mi);
    assert_eq!(
        third[0].1,
        MountOutcome::Failed(nix::Error::ENODEV),
        "unknown filesystem type"
    );
    assert_eq!(third[1].1, MountOutcome::Mounted);
}
