//! `lifsea-init check` as an image builder runs it: the real binary on real directories, checking
//! exit codes, the one-error-per-line output and the JSON report.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("lifsea-check-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs `lifsea-init check ARGS`, killed after 20 s; returns (exit code, stdout, stderr).
fn check(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_lifsea-init"))
        .arg("check")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("check {args:?} did not finish within 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().unwrap_or(-1), out, err)
}

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

#[test]
fn good_units_pass() {
    let t = TempDir::new("good");
    write(
        &t.0,
        "db.toml",
        "description = \"database\"\nexec = [\"/usr/bin/db\"]\nready = \"notify\"\nafter = [\"mounts\"]\n",
    );
    write(
        &t.0,
        "api.toml",
        "exec = [\"/usr/bin/api\"]\nrequires = [\"db\"]\nwants = [\"optional-cache\"]\n",
    );
    write(
        &t.0,
        "setup.toml",
        "type = \"oneshot\"\nexec = [\"/bin/true\"]\nenabled = false\n",
    );
    let (code, out, err) = check(&[t.0.to_str().unwrap()]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "3 units, 0 errors\n", "")
    );
    let (code, out, _) = check(&["--json", t.0.to_str().unwrap()]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["units"], serde_json::json!(["api", "db", "setup"]));
    assert_eq!(v["disabled"], serde_json::json!(["setup"]));
    assert_eq!(v["errors"], serde_json::json!([]));
}

#[test]
fn bad_units_list_every_error() {
    let t = TempDir::new("bad");
    let d = t.0.as_path();
    write(
        d,
        "a.toml",
        "exec = [\"/bin/a\"]\nrequires = [\"b\", \"ghost\"]\n",
    );
    write(d, "b.toml", "exec = [\"/bin/b\"]\nafter = [\"a\"]\n");
    write(
        d,
        "bad.toml",
        "exec = [\"bin/x\"]\nstop-timeout = \"10y\"\nkill = \"all\"\n",
    );
    write(
        d,
        "typo.toml",
        "exec = [\"/bin/x\"]\nrestrat = \"always\"\n",
    );
    write(
        d,
        "uses-bad.toml",
        "exec = [\"/bin/x\"]\nrequires = [\"bad\"]\n",
    );
    write(d, "network.toml", "exec = [\"/bin/x\"]\n");
    let p = |n: &str| d.join(n).display().to_string();
    let (code, out, err) = check(&[d.to_str().unwrap()]);
    assert_eq!(code, 1, "stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    let expected = [
        format!("{}:1:9: exec: program must be an absolute path, got \"bin/x\"", p("bad.toml")),
        format!(
            "{}:2:16: stop-timeout: invalid duration \"10y\": unknown unit \"y\" (use ms, s, m or h)",
            p("bad.toml")
        ),
        format!("{}:3:8: kill: expected one of \"cgroup\", \"main\", got \"all\"", p("bad.toml")),
        format!("{}: unit name \"network\" is reserved for a built-in fact", p("network.toml")),
    ];
    assert_eq!(&lines[..4], &expected[..], "{out}");
    assert!(
        lines[4].starts_with(&format!(
            "{}:2:1: unknown field `restrat`, expected one of",
            p("typo.toml")
        )),
        "{out}"
    );
    // The dependency on the broken unit is not repeated as "unknown unit".
    assert_eq!(
        &lines[5..],
        &[
            "unit a: depends on unknown unit ghost",
            "unit a: dependency cycle: a -> b -> a",
            "5 units, 7 errors",
        ],
        "{out}"
    );

    let (code, out, _) = check(&["--json", d.to_str().unwrap()]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["units"], serde_json::json!(["a", "b", "uses-bad"]));
    assert_eq!(v["broken"], serde_json::json!(["bad", "typo"]));
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 7);
    assert_eq!(errors[0]["kind"], "file");
    assert_eq!(errors[0]["path"], p("bad.toml"));
    assert_eq!(
        (errors[0]["line"].as_u64(), errors[0]["column"].as_u64()),
        (Some(1), Some(9))
    );
    assert_eq!(errors[0]["unit"], "bad");
    assert_eq!(errors[3]["unit"], serde_json::Value::Null);
    assert_eq!(errors[6]["kind"], "graph");
    assert_eq!(errors[6]["unit"], "a");
    assert_eq!(
        errors[6]["message"],
        "unit a: dependency cycle: a -> b -> a"
    );
}

#[test]
fn later_directory_overrides_and_markers_apply() {
    let t = TempDir::new("layers");
    let vendor = t.0.join("vendor");
    let admin = t.0.join("admin");
    fs::create_dir_all(&vendor).unwrap();
    fs::create_dir_all(&admin).unwrap();
    write(&vendor, "svc.toml", "exec = \"broken in vendor\"\n");
    write(&admin, "svc.toml", "exec = [\"/bin/fixed\"]\n");
    write(&admin, "svc.disabled", "");
    let (code, out, _) = check(&["--json", vendor.to_str().unwrap(), admin.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["disabled"], serde_json::json!(["svc"]));
}

#[test]
fn usage_errors_exit_2() {
    let (code, _, err) = check(&[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("usage: check [--json] [--root IMAGE] [--network FILE] DIR..."),
        "{err}"
    );
    let t = TempDir::new("usage");
    let missing = t.0.join("missing");
    let (code, _, err) = check(&[missing.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert_eq!(
        err,
        format!("check: {}: not a directory\n", missing.display())
    );
    let (code, _, _) = check(&["--frobnicate", t.0.to_str().unwrap()]);
    assert_eq!(code, 2);
}

#[test]
fn shipped_units_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("units");
    let (code, out, err) = check(&["--json", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let units = v["units"].as_array().unwrap();
    assert!(units.contains(&serde_json::json!("containerd")), "{out}");
    assert!(units.contains(&serde_json::json!("kubelet")), "{out}");
}

/// The examples in docs/units.md are real unit files: every ```toml block with an `exec` key is
/// written out under the name its comment gives and checked.
#[test]
fn documented_examples_pass() {
    let doc =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/units.md")).unwrap();
    let t = TempDir::new("docs");
    let mut written = Vec::new();
    for block in doc.split("```toml\n").skip(1) {
        let text = block.split("```").next().unwrap();
        if !text.contains("exec = ") {
            continue;
        }
        // First line: "# /some/dir/<name>.toml ..."
        let first = text.lines().next().unwrap();
        let file = first
            .split_whitespace()
            .nth(1)
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap();
        assert!(file.ends_with(".toml"), "{first}");
        write(&t.0, file, text);
        written.push(file.to_string());
    }
    assert_eq!(written, vec!["containerd.toml", "node-exporter.toml"]);
    let (code, out, err) = check(&[t.0.to_str().unwrap()]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "2 units, 0 errors\n", "")
    );
}

/// `--root` checks the shipped units against an image tree: containerd and the init are there,
/// kubelet is not (as on this build machine), and the missing program is reported against its unit.
#[test]
fn root_option_checks_programs_in_the_image() {
    use std::os::unix::fs::PermissionsExt;
    let t = TempDir::new("root");
    let image = t.0.join("image");
    fs::create_dir_all(image.join("usr/bin")).unwrap();
    fs::write(image.join("usr/bin/containerd"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(
        image.join("usr/bin/containerd"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    fs::create_dir_all(image.join("usr/lib/lifsea")).unwrap();
    fs::copy(
        image.join("usr/bin/containerd"),
        image.join("usr/lib/lifsea/lifsea-init"),
    )
    .unwrap();
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("units");
    let (code, out, err) = check(&["--root", image.to_str().unwrap(), units.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        out,
        "unit kubelet: exec: program /usr/bin/kubelet not usable in the image: No such file or directory (os error 2)\n\
         3 units, 1 errors\n"
    );
    let (code, _, err) = check(&[units.to_str().unwrap(), "--root"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("check: --root needs a directory"), "{err}");
}

/// Issue 12, findings 2 and 7: what would have panicked PID 1 at boot (a duration past the end
/// of its clock) or made a stop signal PID 1 (a group overlapping the init's) fails `check`.
#[test]
fn check_refuses_huge_durations_and_groups_overlapping_the_init() {
    let t = TempDir::new("reliability");
    let d = t.0.as_path();
    write(
        d,
        "huge.toml",
        "exec = [\"/bin/x\"]\nready-timeout = \"9999999999999999999\"\n",
    );
    write(
        d,
        "inside.toml",
        "exec = [\"/bin/x\"]\ncgroup = { path = \"init\" }\n",
    );
    let (code, out, err) = check(&[d.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    let p = |n: &str| d.join(n).display().to_string();
    assert!(
        out.contains(&format!("{}:2:17: ready-timeout: invalid duration \"9999999999999999999\": longer than the maximum of 1 year (8760h)", p("huge.toml"))),
        "{out}{err}"
    );
    assert!(
        out.contains(&format!("{}:2:19: cgroup.path: must not be the init's own group \"init\" or below it, got \"init\"", p("inside.toml"))),
        "{out}{err}"
    );
}
