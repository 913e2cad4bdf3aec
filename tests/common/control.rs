//! Helpers shared by the control API tests that drive the real `initctl` binary and read the boot
//! chart it writes.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

/// Runs `lifsea-init initctl --run-dir <run_dir> <args>`, as `uid` (and the same gid) when given;
/// returns the exit code (-1 when killed by a signal), stdout and stderr.
pub fn initctl_as(run_dir: &Path, args: &[&str], uid: Option<u32>) -> (i32, String, String) {
    let mut c = Command::new(super::BIN);
    c.arg("initctl").arg("--run-dir").arg(run_dir).args(args);
    if let Some(u) = uid {
        c.uid(u).gid(u);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// How many unit bars (`rect` elements whose class starts with `bar unit`) the SVG chart at
/// `path` holds; it is read with a real XML parser, so a malformed chart fails here.
pub fn svg_unit_bars(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    doc.descendants()
        .filter(|n| n.tag_name().name() == "rect")
        .filter(|n| {
            n.attribute("class")
                .is_some_and(|c| c.starts_with("bar unit"))
        })
        .count()
}
