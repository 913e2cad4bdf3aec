//! Tests of loading unit directories: later directories override earlier ones, enable/disable
//! markers apply, and broken or unreadable files are collected instead of aborting the load.

use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A fresh directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("lifsea-load-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn sub(&self, name: &str) -> PathBuf {
        let p = self.0.join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

const GOOD: &str = "exec = [\"/bin/true\"]\n";

#[test]
fn later_directory_replaces_and_missing_directory_is_fine() {
    let t = TempDir::new("prec");
    let vendor = t.sub("vendor");
    let admin = t.sub("admin");
    write(
        &vendor,
        "a.toml",
        "description = \"vendor a\"\nexec = [\"/bin/a\"]\n",
    );
    write(
        &vendor,
        "b.toml",
        "description = \"vendor b\"\nexec = [\"/bin/b\"]\n",
    );
    write(
        &admin,
        "a.toml",
        "description = \"admin a\"\nexec = [\"/bin/a2\"]\n",
    );
    write(&admin, "README", "not a unit");
    write(&admin, "c.toml~", "editor backup");
    let out = load_dirs(&[vendor.clone(), t.0.join("missing"), admin.clone()]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.units.keys().collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(out.units["a"].description, "admin a");
    assert_eq!(out.units["a"].source, admin.join("a.toml"));
    assert_eq!(out.units["b"].description, "vendor b");
}

#[test]
fn a_valid_override_hides_a_broken_vendor_file() {
    let t = TempDir::new("hide");
    let vendor = t.sub("vendor");
    let admin = t.sub("admin");
    write(&vendor, "a.toml", "exec = \"broken\"\n");
    write(&admin, "a.toml", GOOD);
    let out = load_dirs(&[vendor, admin]);
    assert!(out.errors.is_empty() && out.broken.is_empty());
    assert!(out.units.contains_key("a"));
}

#[test]
fn markers_override_enabled() {
    let t = TempDir::new("markers");
    let vendor = t.sub("vendor");
    let admin = t.sub("admin");
    write(&vendor, "on.toml", GOOD);
    write(&vendor, "off.toml", "exec = [\"/x\"]\nenabled = false\n");
    write(&vendor, "both.toml", GOOD);
    write(&vendor, "early.toml", GOOD);
    write(&vendor, "early.disabled", "");
    write(&admin, "early.toml", GOOD); // admin file after the vendor marker: marker no longer applies
    write(&vendor, "same.toml", GOOD);
    write(&vendor, "same.disabled", ""); // marker beside the file applies
    write(&admin, "on.disabled", "");
    write(&admin, "off.enabled", "");
    write(&admin, "both.enabled", "");
    write(&admin, "both.disabled", "");
    write(&admin, "ghost.disabled", ""); // marker without a unit: ignored
    let out = load_dirs(&[vendor, admin]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let enabled = |n: &str| out.units[n].enabled;
    assert!(!enabled("on"));
    assert!(enabled("off"));
    assert!(!enabled("both"));
    assert!(enabled("early"));
    assert!(!enabled("same"));
    assert!(!out.units.contains_key("ghost"));
}

#[test]
fn broken_files_are_collected_with_every_error() {
    let t = TempDir::new("broken");
    let d = t.sub("u");
    write(
        &d,
        "good.toml",
        "exec = [\"/bin/true\"]\nrequires = [\"bad\"]\n",
    );
    write(
        &d,
        "bad.toml",
        "exec = [\"rel\"]\nstop-timeout = \"forever\"\n",
    );
    write(&d, "syntax.toml", "exec = [\n");
    write(&d, "bad name.toml", GOOD);
    write(&d, "network.toml", GOOD);
    fs::create_dir(d.join("dir.toml")).unwrap();
    let out = load_dirs(std::slice::from_ref(&d));
    let lines: Vec<String> = out.errors.iter().map(|e| e.to_string()).collect();
    let p = |n: &str| d.join(n).display().to_string();
    assert_eq!(
        lines,
        vec![
            format!("{}: invalid unit name \"bad name\": use letters, digits, '_', '.', '@' and '-', start with a letter or digit, at most 64 characters", p("bad name.toml")),
            format!("{}:1:9: exec: program must be an absolute path, got \"rel\"", p("bad.toml")),
            format!("{}:2:16: stop-timeout: invalid duration \"forever\": expected a number like 500ms, 10s, 2m, 1h or 1m30s", p("bad.toml")),
            format!("{}: cannot read: Is a directory (os error 21)", p("dir.toml")),
            format!("{}: unit name \"network\" is reserved for a built-in fact", p("network.toml")),
            format!("{}:1:9: unclosed array, expected `]`", p("syntax.toml")),
        ]
    );
    assert_eq!(out.units.keys().collect::<Vec<_>>(), vec!["good"]);
    assert_eq!(
        out.broken.keys().collect::<Vec<_>>(),
        vec!["bad", "dir", "syntax"]
    );
    assert_eq!(out.broken["bad"].len(), 2);
    assert_eq!(out.broken["bad"][0].unit.as_deref(), Some("bad"));
    assert_eq!(out.errors[0].unit, None);
}

#[test]
fn unreadable_directory_is_an_error() {
    let t = TempDir::new("notdir");
    let file = t.0.join("plain");
    write(&t.0, "plain", "");
    let out = load_dirs(std::slice::from_ref(&file));
    assert_eq!(out.errors.len(), 1);
    assert_eq!(
        out.errors[0].to_string(),
        format!(
            "{}: cannot read directory: Not a directory (os error 20)",
            file.display()
        )
    );
}

#[test]
fn unreadable_file_is_broken() {
    let t = TempDir::new("perm");
    let d = t.sub("u");
    // A dangling symlink cannot be read whether or not we are root.
    std::os::unix::fs::symlink(t.0.join("nowhere"), d.join("gone.toml")).unwrap();
    let out = load_dirs(std::slice::from_ref(&d));
    assert_eq!(out.broken.keys().collect::<Vec<_>>(), vec!["gone"]);
    assert_eq!(
        out.errors[0].to_string(),
        format!(
            "{}: cannot read: No such file or directory (os error 2)",
            d.join("gone.toml").display()
        )
    );
}

/// Finding 10 of issue 12: a FIFO named `*.toml` made loading block in open(2) forever (PID 1
/// loads units on its only thread). It is refused as not a regular file, and the rest loads.
#[test]
fn fifo_named_toml_is_refused_without_blocking() {
    let t = TempDir::new("fifo");
    let d = t.sub("units");
    write(&d, "good.toml", GOOD);
    nix::unistd::mkfifo(
        &d.join("pipe.toml"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    let dirs = vec![d.clone()];
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load_dirs(&dirs));
    });
    let out = rx
        .recv_timeout(std::time::Duration::from_secs(3))
        .expect("loading blocked on a FIFO");
    assert!(out.units.contains_key("good"));
    let msgs: Vec<String> = out.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(
        msgs,
        vec![format!(
            "{}: cannot read: not a regular file",
            d.join("pipe.toml").display()
        )]
    );
}
