use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::supervisor::ChildExit;

/// Records calls as lines; renames for real (inside a test's temporary directory) unless told to
/// fail the call whose line starts with `fail_on`.
#[derive(Clone, Default)]
struct Rec {
    calls: Arc<Mutex<Vec<String>>>,
    fail_on: Option<&'static str>,
}

impl Rec {
    fn push(&self, line: String) -> bool {
        let fail = self.fail_on.is_some_and(|f| line.starts_with(f));
        self.calls.lock().unwrap().push(line);
        fail
    }
    fn lines(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl EntryOps for Rec {
    fn remount_rw(&mut self, t: &Path) -> nix::Result<()> {
        if self.push(format!("rw {}", t.display())) {
            return Err(nix::Error::EPERM);
        }
        Ok(())
    }
    fn remount_ro(&mut self, t: &Path) -> nix::Result<()> {
        if self.push(format!("ro {}", t.display())) {
            return Err(nix::Error::EBUSY);
        }
        Ok(())
    }
    fn rename(&mut self, f: &Path, t: &Path) -> std::io::Result<()> {
        let name = |p: &Path| p.file_name().unwrap().to_string_lossy().into_owned();
        if self.push(format!("rename {} {}", name(f), name(t))) {
            return Err(std::io::Error::from_raw_os_error(libc::EROFS));
        }
        std::fs::rename(f, t)
    }
    fn fsync_dir(&mut self, d: &Path) -> std::io::Result<()> {
        self.push(format!(
            "fsync {}",
            d.file_name().unwrap().to_string_lossy()
        ));
        std::fs::File::open(d)?.sync_all()
    }
}

struct Sysroot(PathBuf);

impl Sysroot {
    fn new(tag: &str, entries: &[(&str, &str)]) -> Sysroot {
        let root = std::env::temp_dir().join(format!("lifsea-os-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let dir = root.join(ENTRIES_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, ostree) in entries {
            std::fs::write(
                dir.join(file),
                format!(
                    "title {file}\nversion 1\noptions root=LABEL=r ostree={ostree}\nlinux /k\n"
                ),
            )
            .unwrap();
        }
        Sysroot(root)
    }
    fn files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.0.join(ENTRIES_DIR))
            .unwrap()
            .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for Sysroot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn up() -> UnitsView {
    UnitsView {
        settled: true,
        units: vec![("containerd".into(), true, "running")],
    }
}

#[test]
fn rename_inside_a_window_in_order() {
    let s = Sysroot::new("order", &[("a+1-2.conf", "/x")]);
    let mut rec = Rec::default();
    let dir = s.0.join(ENTRIES_DIR);
    rename_entry(&mut rec, &s.0, true, &dir, "a+1-2.conf", "a.conf").unwrap();
    let root = s.0.display().to_string();
    assert_eq!(
        rec.lines(),
        [
            format!("rw {root}"),
            "rename a+1-2.conf a.conf".into(),
            "fsync entries".into(),
            format!("ro {root}")
        ]
    );
    assert_eq!(s.files(), ["a.conf"]);
}

#[test]
fn the_window_closes_when_the_rename_fails() {
    let s = Sysroot::new("fail", &[("a+1-2.conf", "/x")]);
    let mut rec = Rec {
        fail_on: Some("rename"),
        ..Rec::default()
    };
    let dir = s.0.join(ENTRIES_DIR);
    let e = rename_entry(&mut rec, &s.0, true, &dir, "a+1-2.conf", "a.conf").unwrap_err();
    assert!(matches!(e, BlessError::Rename { .. }), "{e}");
    assert!(rec.lines().last().unwrap().starts_with("ro "));
    assert_eq!(s.files(), ["a+1-2.conf"]);

    // No window, nothing renamed when it cannot be opened.
    let mut rec = Rec {
        fail_on: Some("rw"),
        ..Rec::default()
    };
    let e = rename_entry(&mut rec, &s.0, true, &dir, "a+1-2.conf", "a.conf").unwrap_err();
    assert!(matches!(e, BlessError::OpenWindow { .. }));
    assert_eq!(rec.lines().len(), 1);
    // Without a window only the rename and the fsync happen.
    let mut rec = Rec::default();
    rename_entry(&mut rec, &s.0, false, &dir, "a+1-2.conf", "a.conf").unwrap();
    assert_eq!(rec.lines(), ["rename a+1-2.conf a.conf", "fsync entries"]);
}

fn blesser(s: &Sysroot, ostree: &str, cfg: &str, rec: &Rec, t0: Instant) -> (Blesser, Vec<Notice>) {
    let cfg_path = s.0.join("os.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let mut b = Blesser::new(&s.0, ostree, &cfg_path, Box::new(rec.clone()), t0);
    // Set-up's notices come with the first tick.
    let mut out = Vec::new();
    b.tick(t0, &mut out);
    (b, out)
}

#[test]
fn healthy_boot_is_blessed_after_holding() {
    let s = Sysroot::new(
        "good",
        &[("ostree-1-d.conf", "/a"), ("ostree-2-d+2-1.conf", "/b")],
    );
    let rec = Rec::default();
    let t0 = Instant::now();
    let (mut b, out) = blesser(
        &s,
        "/b",
        "healthy-for = \"10s\"\ndeadline = \"60s\"\n",
        &rec,
        t0,
    );
    assert!(out.is_empty());
    assert!(b.wants_units());
    assert_eq!(b.deadline(), Some(t0 + Duration::from_secs(60)));
    let mut out = Vec::new();
    b.units_seen(&up(), t0 + Duration::from_secs(2), &mut out);
    assert_eq!(b.deadline(), Some(t0 + Duration::from_secs(12)));
    b.tick(t0 + Duration::from_secs(11), &mut out);
    assert!(out.is_empty());
    assert_eq!(s.files(), ["ostree-1-d.conf", "ostree-2-d+2-1.conf"]);
    b.tick(t0 + Duration::from_secs(12), &mut out);
    assert_eq!(s.files(), ["ostree-1-d.conf", "ostree-2-d.conf"]);
    assert!(matches!(&out[..], [Notice::Stamp { name, .. }] if name == "os blessed"));
    assert!(!b.wants_units());
    assert_eq!(b.deadline(), None);
    let st = b.status();
    assert_eq!(st["entries"][0]["file"], "ostree-2-d.conf");
    assert_eq!(st["entries"][0]["blessed"], true);
}

#[test]
fn failed_unit_reboots_without_blessing() {
    let s = Sysroot::new(
        "bad",
        &[
            ("ostree-1-d.conf", "/a"),
            ("ostree-2-d+0-3.conf", "/c"),
            ("ostree-3-d+1-2.conf", "/b"),
        ],
    );
    let rec = Rec::default();
    let t0 = Instant::now();
    let (mut b, _) = blesser(&s, "/b", "health = [\"containerd\"]\n", &rec, t0);
    let failed = UnitsView {
        settled: true,
        units: vec![("containerd".into(), true, "failed")],
    };
    let mut out = Vec::new();
    b.units_seen(&failed, t0, &mut out);
    assert!(out.contains(&Notice::Shutdown(ShutdownKind::Reboot)));
    assert!(rec.lines().is_empty());
    // Asked once only.
    let mut out = Vec::new();
    b.units_seen(&failed, t0, &mut out);
    b.tick(t0 + Duration::from_secs(1000), &mut out);
    assert!(out.is_empty());
    assert_eq!(
        s.files(),
        [
            "ostree-1-d.conf",
            "ostree-2-d+0-3.conf",
            "ostree-3-d+1-2.conf"
        ]
    );
}

#[test]
fn deadline_reboots() {
    let s = Sysroot::new("late", &[("ostree-2-d+3.conf", "/b")]);
    let rec = Rec::default();
    let t0 = Instant::now();
    let (mut b, _) = blesser(&s, "/b", "deadline = \"60s\"\n", &rec, t0);
    let mut out = Vec::new();
    b.tick(t0 + Duration::from_secs(59), &mut out);
    assert!(out.is_empty());
    b.tick(t0 + Duration::from_secs(60), &mut out);
    assert!(out.contains(&Notice::Shutdown(ShutdownKind::Reboot)));
    assert_eq!(s.files(), ["ostree-2-d+3.conf"]);
}

#[test]
fn fallback_is_reported_and_blessed_entries_are_left_alone() {
    let s = Sysroot::new(
        "fallback",
        &[("ostree-1-d.conf", "/a"), ("ostree-2-d+0-3.conf", "/b")],
    );
    let rec = Rec::default();
    let t0 = Instant::now();
    let (mut b, out) = blesser(&s, "/a", "", &rec, t0);
    assert!(matches!(&out[..], [Notice::Stamp { name, .. }] if name == "os fallback"));
    let st = b.status();
    let msg = st["fallback"].as_str().unwrap();
    assert!(
        msg.contains("after 3 failed tries of ostree-2-d+0-3.conf (ostree-2-d+0-3.conf)"),
        "{msg}"
    );
    assert!(!b.wants_units());
    assert_eq!(b.deadline(), None);
    let mut out = Vec::new();
    b.units_seen(&up(), t0, &mut out);
    b.tick(t0 + Duration::from_secs(10_000), &mut out);
    assert!(out.is_empty());
    assert!(rec.lines().is_empty());
}

#[test]
fn unknown_entry_or_bad_config_counts_nothing_but_says_why() {
    let s = Sysroot::new("unknown", &[("ostree-2-d+3.conf", "/b")]);
    let rec = Rec::default();
    let (b, _) = blesser(&s, "/zzz", "tries = 0\n", &rec, Instant::now());
    let st = b.status();
    assert!(st["not_counted"].as_str().unwrap().contains("ostree=/zzz"));
    assert!(st["config_error"].as_str().unwrap().contains("tries"));
    assert_eq!(b.deadline(), None);
}

#[test]
fn finished_upgrade_counts_the_new_default_and_reboots() {
    let s = Sysroot::new(
        "upgraded",
        &[
            ("ostree-1-d.conf", "/ostree/boot.0/d/aa/0"),
            ("ostree-2-d.conf", "/ostree/boot.0/d/bb/0"),
        ],
    );
    let rec = Rec::default();
    let t0 = Instant::now();
    let (mut b, _) = blesser(&s, "/ostree/boot.1/d/aa/0", "tries = 2\n", &rec, t0);
    b.set_log(s.0.join("update.log"));
    std::fs::write(s.0.join("update.log"), "deployed\n").unwrap();
    b.job = Some(Job {
        pid: 4242,
        action: "upgrade".into(),
        target: "lifsea/next".into(),
        reboot: true,
    });
    // The admin changed the tries after this boot began: the upgrade takes the file's value now.
    std::fs::write(s.0.join("os.toml"), "tries = 4\n").unwrap();
    let mut out = Vec::new();
    assert!(!b.child_exited(4243, ChildExit::Code(0), &mut out));
    assert!(b.child_exited(4242, ChildExit::Code(0), &mut out));
    assert_eq!(out, [Notice::Shutdown(ShutdownKind::Reboot)]);
    assert_eq!(s.files(), ["ostree-1-d.conf", "ostree-2-d+4.conf"]);
    assert!(b.status()["last_job"]
        .as_str()
        .unwrap()
        .contains("ostree-2-d+4.conf has 4 tries"));
    assert!(b.job.is_none());
}

#[test]
fn failed_upgrade_changes_nothing_and_says_why() {
    let s = Sysroot::new("upfail", &[("ostree-1-d.conf", "/a")]);
    let rec = Rec::default();
    let (mut b, _) = blesser(&s, "/a", "", &rec, Instant::now());
    b.set_log(s.0.join("update.log"));
    std::fs::write(s.0.join("update.log"), "error: Refspec 'nope' not found\n").unwrap();
    b.job = Some(Job {
        pid: 7,
        action: "upgrade".into(),
        target: "nope".into(),
        reboot: true,
    });
    let mut out = Vec::new();
    assert!(b.child_exited(7, ChildExit::Code(1), &mut out));
    assert!(out.is_empty());
    let last = b.status()["last_job"].as_str().unwrap().to_string();
    assert!(
        last.contains("failed") && last.contains("Refspec 'nope' not found"),
        "{last}"
    );
    assert!(rec.lines().is_empty());
}

#[test]
fn requests_without_a_booted_deployment_are_refused() {
    let s = Sysroot::new("req", &[("ostree-1-d.conf", "/ostree/boot.0/d/aa/0")]);
    let rec = Rec::default();
    let (mut b, _) = blesser(&s, "/ostree/boot.0/d/aa/0", "", &rec, Instant::now());
    let mut out = Vec::new();
    // The entry's ostree= does not resolve in this bare sysroot: refused before any ostree runs.
    let e = b
        .request(&serde_json::json!({"action": "rollback"}), &mut out)
        .unwrap_err();
    assert!(e.contains("booted deployment"), "{e}");
    b.job = Some(Job {
        pid: 1,
        action: "upgrade".into(),
        target: "x".into(),
        reboot: false,
    });
    let e = b
        .request(
            &serde_json::json!({"action": "upgrade", "ref": "y"}),
            &mut out,
        )
        .unwrap_err();
    assert!(e.contains("still running"), "{e}");
    assert!(out.is_empty());
}
