//! Full disks (issue 12): with the unit log directory (/var) and the run directory (/run) on
//! tiny tmpfs mounts filled to the last byte, the init lives, units keep running, the control API
//! answers, dropped log lines are counted and shown, the failure is logged once per episode, and
//! logging to disk resumes (saying how many lines are missing) once there is room again.
//! Needs root (mount, unshare).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::control::initctl_as;
use common::Ns;

const T: Duration = Duration::from_secs(20);

/// A tmpfs of `size` mounted at `dir` for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }

    /// Writes a file until the filesystem refuses more (ENOSPC); returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 4096];
        loop {
            if let Err(e) = f.write_all(&block) {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "{e}");
                break;
            }
        }
        // Small writes too, so that not even a short line fits.
        while f.write_all(b"x").is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn status(ns: &Ns, unit: &str) -> String {
    let (code, out, err) = initctl_as(&ns.run, &["status", unit], None);
    assert_eq!(code, 0, "initctl status {unit}: {err}");
    out
}

fn dropped_lines(status: &str) -> Option<u64> {
    let line = status
        .lines()
        .find(|l| l.trim_start().starts_with("log:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn ns_full_var_and_run_degrade_logging_only() {
    let mut ns = Ns::new("fulldisk");
    let log_dir = ns.root.join("log");
    let var = Tmpfs::mount(&log_dir, "256k");
    // The run directory too: filled before the init starts, so even boot-timeline.json fails.
    let run = Tmpfs::mount(&ns.run, "64k");
    run.fill();
    ns.extra_args = format!("--log-dir {}", log_dir.display());
    ns.unit(
        "chatty",
        r#"exec = ["/bin/sh", "-c", "i=0; while :; do echo \"chatty line $i\"; i=$((i+1)); sleep 0.01; done"]
"#,
    );
    ns.unit(
        "other",
        r#"exec = ["/bin/sh", "-c", "echo up > @OUT@/other; exec sleep 1000"]
"#,
    );
    ns.start();
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    assert!(
        ns.log().contains("boot-timeline.json"),
        "the failed timeline write is reported\n{}",
        ns.log()
    );
    let file = log_dir.join("chatty.log");
    assert!(ns.wait_for(T, || std::fs::read_to_string(&file)
        .is_ok_and(|t| t.contains("chatty line 1"))));

    // /var full.
    let filler = var.fill();
    assert!(
        ns.wait_for(T, || dropped_lines(&status(&ns, "chatty"))
            .is_some_and(|n| n > 20)),
        "no dropped lines counted:\n{}\n{}",
        status(&ns, "chatty"),
        ns.log()
    );
    // The init lives and serves; the other unit still runs.
    assert!(
        status(&ns, "other").contains("running"),
        "{}",
        status(&ns, "other")
    );
    assert!(!ns.read("other").is_empty());
    let (code, logs, _) = initctl_as(&ns.run, &["logs", "chatty"], None);
    assert_eq!(code, 0);
    assert!(logs.contains("log file not written"), "{logs}");
    assert!(logs.contains("chatty line"), "lines stay in memory: {logs}");
    // Logged once for the episode, however many writes failed.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ns.log().matches("counted as dropped from disk").count(),
        1,
        "{}",
        ns.log()
    );

    // Room again: the file resumes, saying how many lines it misses.
    std::fs::remove_file(&filler).unwrap();
    assert!(
        ns.wait_for(T, || std::fs::read_to_string(&file).is_ok_and(
            |t| t.contains("lines of this log are missing from its file")
        )),
        "{}",
        ns.log()
    );
    let counted = dropped_lines(&status(&ns, "chatty")).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let note = text
        .lines()
        .find(|l| l.contains("lines of this log are missing"))
        .unwrap();
    let noted: u64 = note
        .split(" init ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(noted, counted, "{note}");
    assert!(ns.wait_log(T, "unit logs: writing again"), "{}", ns.log());
    ns.stop(T);
    drop(run);
    drop(var);
}
