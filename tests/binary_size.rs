//! The size budget of the static release binary (issue 11 item 5; docs/binary-size.md says what
//! the binary is made of and how it was brought down).
//!
//! Measures the binary cargo built for this test run, stripped the way docs/binary-size.md
//! measures it (`strip -o`, so a build with `CARGO_PROFILE_RELEASE_STRIP=false` for symbol tables
//! measures the same), and fails when it grows past the ceiling. Only a release build is the
//! shipped binary: under a debug build the test is ignored with the command that runs it.

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_lifsea-init");

/// Stripped bytes the release binary may have. Issue 11's budget with networking and hotplug is
/// 2.0 MB (2,000,000 bytes); this ceiling is the measured size after the reductions in
/// docs/binary-size.md (1,971,072 after the third pass, 1,987,456 with the spawns in flight and
/// the cgroup catch-up merged beside it) plus a page for growth, so that a
/// change that adds waste back fails here and says so. Lower it whenever the binary shrinks;
/// raise it only together with a line in docs/binary-size.md.
const CEILING: u64 = 1_995_000;

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "measures the release binary: cargo test --release --test binary_size"
)]
fn stripped_release_binary_stays_under_the_ceiling() {
    let out = std::env::temp_dir().join(format!("lifsea-size-{}", std::process::id()));
    let status = Command::new("strip")
        .arg("-o")
        .arg(&out)
        .arg(BIN)
        .status()
        .expect("run strip (binutils)");
    assert!(
        status.success(),
        "strip -o {} {BIN}: {status}",
        out.display()
    );
    let size = std::fs::metadata(&out)
        .expect("stat the stripped copy")
        .len();
    let _ = std::fs::remove_file(&out);
    // The subject is the static binary; a dynamic one would be measuring something else. And a
    // static PIE: PID 1 keeps ASLR, so dropping the position independence is no way to shrink it.
    let file = Command::new("file").arg(BIN).output().expect("run file(1)");
    let kind = String::from_utf8_lossy(&file.stdout).to_string();
    assert!(
        kind.contains("static-pie linked"),
        "{BIN} is not a static PIE: {kind}"
    );
    assert!(
        size <= CEILING,
        "stripped {} is {size} bytes, over the ceiling of {CEILING} (see docs/binary-size.md for \
         how to find what grew: nm --size-sort on a CARGO_PROFILE_RELEASE_STRIP=false build)",
        PathBuf::from(BIN).display()
    );
    println!("stripped size: {size} bytes (ceiling {CEILING})");
}
