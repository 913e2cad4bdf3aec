//! Re-runs one test of the calling test binary alone inside a fresh namespace made by `unshare`,
//! so what it mounts or configures vanishes with the namespace instead of touching the host; the
//! outer run only judges whether the inner one passed.

use std::path::PathBuf;
use std::process::Command;

/// Which namespace the inner run gets; each has its own marker variable, so a test binary can
/// tell the outer run from the inner one.
#[derive(Clone, Copy)]
pub enum Space {
    /// A private mount namespace (`unshare --mount --propagation private`).
    Mount,
    /// A network namespace, where only a down `lo` exists (`unshare --net`).
    Net,
}

impl Space {
    fn marker(self) -> &'static str {
        match self {
            Space::Mount => "LIFSEA_IN_MOUNT_NS",
            Space::Net => "LIFSEA_IN_NET_NS",
        }
    }

    fn flags(self) -> &'static [&'static str] {
        match self {
            Space::Mount => &["--mount", "--propagation", "private"],
            Space::Net => &["--net"],
        }
    }
}

/// True in the inner run, inside the namespace.
pub fn inside(space: Space) -> bool {
    std::env::var_os(space.marker()).is_some()
}

/// The inner run's scratch directory, unique to the test and removed by the outer run afterwards.
pub fn test_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("LIFSEA_TEST_DIR").expect("LIFSEA_TEST_DIR set by rerun_inside"))
}

/// Runs `test` of this binary again, alone, inside `space` (60 s at most), then removes its
/// scratch directory and asserts it passed.
pub fn rerun_inside(space: Space, test: &str) {
    let dir = std::env::temp_dir().join(format!("lifsea-ns-{test}-{}", std::process::id()));
    let out = Command::new("timeout")
        .arg("60")
        .arg("unshare")
        .args(space.flags())
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(space.marker(), "1")
        .env("LIFSEA_TEST_DIR", &dir)
        .output()
        .unwrap();
    if dir.exists() {
        // ostree marks deployment dirs immutable; without this they would stay behind.
        let _ = Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(&dir)
            .output();
        let _ = std::fs::remove_dir_all(&dir);
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{test} in a namespace:\n{text}"
    );
}
