//! Boot-path clues (issue 12, finding 12): a boot that hangs must leave in the kernel log what it
//! was doing. Each module load is logged before finit_module(2) is called (a driver hanging in
//! its init never returns from it), and `find_root` says what it waits for when the wait begins
//! and again at intervals until its bound. A logger that records every line stands in for
//! /dev/kmsg; this file is its own test binary, so the global logger is ours.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lifsea_init::boot::cmdline::RootSpec;
use lifsea_init::devices::blockdev::find_root_noting;
use lifsea_init::devices::kmod;

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Recorder;

impl log::Log for Recorder {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, r: &log::Record) {
        LINES.lock().unwrap().push(r.args().to_string());
    }
    fn flush(&self) {}
}

static RECORDER: Recorder = Recorder;

fn recorded(needle: &str) -> Vec<String> {
    let _ = log::set_logger(&RECORDER);
    log::set_max_level(log::LevelFilter::Trace);
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lifsea-clues-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The load is named in the log even though the call then fails (a file that is no module): the
/// line is written before the call, not from its result.
#[test]
fn each_module_load_is_logged_before_the_call() {
    recorded("");
    let d = tmpdir("kmod");
    let bogus = d.join("hangs_here.ko");
    std::fs::write(&bogus, b"not an ELF module").unwrap();
    assert!(kmod::load_file(&bogus).is_err());
    let lines = recorded("hangs_here.ko");
    assert_eq!(
        lines,
        vec![format!("loading module {}", bogus.display())],
        "{lines:?}"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// Waiting for a root device that never comes: a line at the start and one per interval, each
/// naming the device and the block devices seen.
#[test]
fn find_root_says_what_it_waits_for_until_its_bound() {
    recorded("");
    let d = tmpdir("root");
    let (dev, sys) = (d.join("dev"), d.join("sys"));
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::create_dir_all(sys.join("vda")).unwrap();
    let started = Instant::now();
    let r = find_root_noting(
        &RootSpec::Label("never-there".into()),
        &dev,
        &sys,
        Duration::from_millis(1000),
        Duration::from_millis(300),
        || {},
    );
    assert!(r.is_err());
    assert!(started.elapsed() < Duration::from_secs(3));
    let lines = recorded("waiting for root device LABEL=never-there");
    assert!(
        (3..=5).contains(&lines.len()),
        "one line per 300 ms over 1 s: {lines:?}"
    );
    assert!(
        lines.iter().all(|l| l.ends_with("block devices: vda")),
        "{lines:?}"
    );
    assert!(lines[0].contains(": 0.0s of 1s so far"), "{lines:?}");
    std::fs::remove_dir_all(&d).unwrap();
}
