//! Fault injection and power cuts in QEMU (issue 12, items 2 and 3), judged on the real kernel with
//! the OOM killer, cgroup2 with the pids controller, ext4 with its journal and (Debian image)
//! containerd. The guest half is tests/vm/faults.sh (sourced by the checker on `vmtest.faults` or
//! `vmtest.powercut`); this file boots, cuts power and inspects the disk.
//!
//! `LIFSEA_VM_TESTS=1 cargo test --release --test vm_faults -- --include-ignored --nocapture`

mod vm_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vm_support::*;

fn info_lines(run: &Run, prefixes: &[&str]) {
    for l in run
        .console
        .lines()
        .filter(|l| prefixes.iter().any(|p| l.starts_with(p)))
    {
        eprintln!("{l}");
    }
}

/// The tiny image: PID 1 at oom_score_adj -1000 and nice -10 while its units get neither, and a
/// fork bomb held by `pids-max` while the API answers every call (the 100 ms bound is asserted on
/// the host in ns_storm.rs: under TCG one `initctl` exec alone takes hundreds of ms). The machine
/// then powers off in order with a clean filesystem.
#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn faults_in_the_vm_spare_pid1() {
    let image = image("tiny", "direct");
    let work = WorkDir::new("faults");
    let disk = work.copy_disk(&image);
    let run = boot_disk(
        &image,
        &disk,
        &work.path("console.log"),
        &["--append", "vmtest.faults"],
    );
    info_lines(
        &run,
        &[
            "CHECK pid1",
            "CHECK fork-bomb",
            "CHECK-INFO api-ms",
            "CHECK-INFO fork-bomb",
        ],
    );
    run.assert_no_panic();
    run.assert_checks_pass(&[
        "control-api",
        "pid1-oom-score-adj",
        "pid1-shield",
        "fork-bomb",
    ]);
    run.assert_powered_off();
    assert_fsck_clean(&disk);
}

/// Memory exhaustion by a unit allocating without bound (no memory.max): the OOM killer takes the
/// hog, never PID 1 (-1000), and the control API answers every call during the pressure.
#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn oom_takes_the_hog_never_pid1() {
    let image = image("tiny", "direct");
    let work = WorkDir::new("oom");
    let disk = work.copy_disk(&image);
    let run = boot_disk(
        &image,
        &disk,
        &work.path("console.log"),
        &["--append", "vmtest.oom"],
    );
    info_lines(&run, &["CHECK oom", "CHECK-INFO oom"]);
    run.assert_no_panic();
    run.assert_checks_pass(&["control-api", "oom"]);
    run.assert_powered_off();
    assert_fsck_clean(&disk);
}

/// The Debian image: containerd killed with SIGKILL while it starts (before READY=1) comes back
/// under its restart policy and answers `ctr version`; the fork bomb passes there too.
#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn containerd_killed_mid_start_comes_back() {
    let image = image("debian", "direct");
    let work = WorkDir::new("faults-debian");
    let disk = work.copy_disk(&image);
    let run = boot_disk(
        &image,
        &disk,
        &work.path("console.log"),
        &["--append", "vmtest.faults"],
    );
    info_lines(&run, &["CHECK containerd", "CHECK fork-bomb"]);
    run.assert_no_panic();
    run.assert_checks_pass(&["containerd", "containerd-mid-start", "fork-bomb"]);
    run.assert_powered_off();
    assert_fsck_clean(&disk);
}

/// When to cut the power in one boot: once `marker` is on the console, after `delay`.
struct Cut {
    marker: &'static str,
    delay: Duration,
}

/// Host pids whose command line contains `needle` (the unique console path picks our QEMU).
fn pids_with_arg(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for ent in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(ent.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if argv
            .first()
            .is_some_and(|a| a.ends_with("qemu-system-x86_64"))
            && argv.iter().any(|a| a.contains(needle))
        {
            out.push(pid);
        }
    }
    out
}

/// Boots `disk` and SIGKILLs its QEMU (no shutdown, no flush of the guest's caches) at `cut`;
/// returns the console, or panics when the marker never came.
fn boot_and_cut(disk: &Path, log: &Path, cut: &Cut) -> String {
    let mut child = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/qemu/boot.sh"))
        .args(["--timeout", &boot_timeout(), "--log"])
        .arg(log)
        .args(["--append", "vmtest.nopoweroff vmtest.powercut"])
        .arg(disk)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log.with_extension("boot.err")).expect("boot.sh stderr file"))
        .spawn()
        .expect("run qemu/boot.sh");
    let console = || {
        std::fs::read(log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(boot_timeout().parse().unwrap_or(240));
    while !console().contains(cut.marker) {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            let err = std::fs::read_to_string(log.with_extension("boot.err")).unwrap_or_default();
            panic!(
                "no {:?} on the console:\n{}\n--- boot.sh ---\n{err}",
                cut.marker,
                console()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(cut.delay);
    let qemu = pids_with_arg(&format!("file:{}", log.display()));
    assert_eq!(qemu.len(), 1, "expected one QEMU for {}", log.display());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(qemu[0]),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    console()
}

fn debugfs(disk: &Path, request: &str) -> String {
    let out = Command::new("debugfs")
        .args(["-R", request])
        .arg(disk)
        .output()
        .expect("run debugfs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Names in a directory of the image (debugfs `ls -p`: /inode/mode/uid/gid/name/size/).
fn ls(disk: &Path, dir: &str) -> Vec<(String, u64)> {
    debugfs(disk, &format!("ls -p {dir}"))
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('/').collect();
            let (name, size) = (f.get(5)?, f.get(6)?);
            (!name.is_empty() && *name != "." && *name != "..")
                .then(|| (name.to_string(), size.parse().unwrap_or(0)))
        })
        .collect()
}

/// Replays the journal of a copy of `disk` (what the next mount would do), then `e2fsck -fn` on
/// it must find nothing; returns the copy for inspection.
fn replayed_copy(disk: &Path, dir: &Path) -> PathBuf {
    let copy = dir.join("replayed.img");
    let ok = Command::new("cp")
        .arg("--sparse=always")
        .arg(disk)
        .arg(&copy)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "copy disk");
    let out = Command::new("e2fsck")
        .args(["-fy", "-E", "journal_only"])
        .arg(&copy)
        .output()
        .expect("run e2fsck");
    // 0: nothing to do, 1: journal replayed.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "journal replay failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_fsck_clean(&copy);
    copy
}

/// The init's state files on a (replayed) disk, each either absent (not written yet) or whole:
/// machine-id, DHCP leases, enable markers. Returns the machine-id.
fn check_state_files(disk: &Path) -> Option<String> {
    let deploy = "/ostree/deploy/lifsea/deploy";
    let csum = ls(disk, deploy)
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| n.ends_with(".0"))
        .expect("a deployment in the image");
    let etc = format!("{deploy}/{csum}/etc");
    let id = debugfs(disk, &format!("cat {etc}/machine-id"));
    let machine_id = if ls(disk, &etc).iter().any(|(n, _)| n == "machine-id") {
        assert!(
            id.len() == 33 && id.ends_with('\n') && id[..32].bytes().all(|b| b.is_ascii_hexdigit()),
            "half-written machine-id: {id:?}"
        );
        Some(id.trim().to_string())
    } else {
        None
    };
    let var = "/ostree/deploy/lifsea/var/lib/lifsea";
    for (name, _) in ls(disk, var).iter().filter(|(n, _)| n.ends_with(".lease")) {
        let text = debugfs(disk, &format!("cat {var}/{name}"));
        let v: Result<serde_json::Value, _> = serde_json::from_str(&text);
        assert!(
            v.as_ref().is_ok_and(|v| v.is_object()),
            "half-written lease {name}: {text:?}"
        );
    }
    for (name, size) in ls(disk, &format!("{etc}/lifsea/units")) {
        if name.ends_with(".enabled") || name.ends_with(".disabled") {
            assert_eq!(size, 0, "marker {name} has content");
        }
    }
    machine_id
}

/// Power cuts (QEMU SIGKILLed) at six moments of boot and run, on one disk, while units write
/// under /var, log fast and flip enable markers: every next boot reaches its checks, the journal
/// replays to a filesystem `e2fsck -fn` finds clean, the init's state files are whole, and the
/// machine-id never changes once written. A last boot powers off in order.
#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn power_cuts_leave_a_bootable_disk_and_whole_state_files() {
    let image = image("tiny", "direct");
    let work = WorkDir::new("powercut");
    let disk = work.copy_disk(&image);
    let ms = Duration::from_millis;
    let cuts = [
        // First boot: while the init writes the machine-id, starts units and takes its lease.
        Cut {
            marker: "as init process",
            delay: ms(1500),
        },
        Cut {
            marker: "CHECK-START",
            delay: ms(0),
        },
        Cut {
            marker: "POWERCUT-READY",
            delay: ms(300),
        },
        Cut {
            marker: "POWERCUT-READY",
            delay: ms(1000),
        },
        Cut {
            marker: "POWERCUT-READY",
            delay: ms(2500),
        },
        Cut {
            marker: "POWERCUT-READY",
            delay: ms(5000),
        },
    ];
    let mut id: Option<String> = None;
    let mut clean_boots = 0;
    for (i, cut) in cuts.iter().enumerate() {
        if i > 0 {
            // The harness's bootloader reads /boot with debugfs, which (like GRUB) does not replay
            // the journal: after a cut it can see a half-applied /boot and find no entry. Replay
            // first, as the kernel does at mount (the copy checked below shows the same result).
            let out = Command::new("e2fsck")
                .args(["-fy", "-E", "journal_only"])
                .arg(&disk)
                .output()
                .expect("run e2fsck");
            assert!(matches!(out.status.code(), Some(0 | 1)), "replay: {out:?}");
        }
        let console = boot_and_cut(&disk, &work.path(&format!("console-{i}.log")), cut);
        assert!(
            !console.contains("Kernel panic"),
            "boot {i} panicked:\n{console}"
        );
        // Every boot after a cut came up to its marker (boot_and_cut panics otherwise); where the
        // checker got through, none of its checks failed.
        if i > 0 {
            clean_boots += 1;
        }
        if cut.marker == "POWERCUT-READY" {
            let failed: Vec<&str> = console
                .lines()
                .filter(|l| l.starts_with("CHECK ") && l.contains(": FAIL"))
                .collect();
            assert!(failed.is_empty(), "boot {i}: {failed:?}");
        }
        let copy = replayed_copy(&disk, &work.path(""));
        let now = check_state_files(&copy);
        if let (Some(before), Some(after)) = (&id, &now) {
            assert_eq!(before, after, "the machine-id changed after cut {i}");
        }
        id = id.or(now);
        let _ = std::fs::remove_file(&copy);
        eprintln!(
            "cut {i}: {:?} after {:?}: journal replayed, e2fsck clean, state whole",
            cut.marker, cut.delay
        );
    }
    // The last boot after all cuts: every check passes and the poweroff is orderly.
    let run = boot_disk(&image, &disk, &work.path("console-final.log"), &[]);
    run.assert_no_panic();
    run.assert_checks_pass(&["control-api", "writable-var", "var-persist", "net-online"]);
    run.assert_powered_off();
    assert_fsck_clean(&disk);
    clean_boots += 1;
    assert!(id.is_some(), "no machine-id was ever written");
    eprintln!(
        "power cuts: {} cuts, {clean_boots} boots after a cut reached their checks",
        cuts.len()
    );
}
