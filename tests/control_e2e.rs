//! Every initctl verb against a real `lifsea-init --container` (spawned directly, as a subreaper, not
//! as PID 1), with real unit processes; initctl is the same binary run as `lifsea-init initctl`.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::control::{initctl_as, svg_unit_bars};
use common::{cgroup2_mount, BIN};
use serde_json::Value;

const ALPHA: &str = r#"description = "alpha ticks"
exec = ["/bin/sh", "-c", "echo alpha starting; while true; do echo tick; sleep 0.1; done"]
"#;

const BETA: &str = r#"description = "beta needs alpha"
exec = ["/bin/sh", "-c", "exec sleep 300"]
requires = ["alpha"]
after = ["alpha"]
"#;

static COUNTER: AtomicU32 = AtomicU32::new(0);

struct Init {
    dir: PathBuf,
    child: Child,
    started: Instant,
    /// A cgroup of its own: a container-mode init puts its units below its own cgroup, so inits of
    /// parallel tests must not share one (they would stop each other's units).
    cgroup: Option<PathBuf>,
}

/// Kills whatever is left in a cgroup subtree and removes it bottom-up, for a bounded time.
fn remove_cgroup(dir: &Path) {
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    let deadline = Instant::now() + Duration::from_secs(5);
    fn remove_tree(d: &Path) -> bool {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    remove_tree(&e.path());
                }
            }
        }
        std::fs::remove_dir(d).is_ok() || !d.exists()
    }
    while !remove_tree(dir) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Init {
    fn start() -> Init {
        let dir = std::env::temp_dir().join(format!(
            "lifsea-e2e-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("units")).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("units/alpha.toml"), ALPHA).unwrap();
        std::fs::write(dir.join("units/beta.toml"), BETA).unwrap();
        let cgroup = cgroup2_mount().map(|m| m.join(dir.file_name().unwrap()));
        let enter = match &cgroup {
            Some(cg) => {
                std::fs::create_dir_all(cg).unwrap();
                format!("echo $$ > {}/cgroup.procs && ", cg.display())
            }
            None => String::new(),
        };
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("{enter}exec \"$0\" \"$@\""))
            .arg(BIN)
            .arg("--container")
            .arg("--units")
            .arg(dir.join("units"))
            .arg("--run-dir")
            .arg(dir.join("run"))
            .arg("--log-dir")
            .arg(dir.join("log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let init = Init {
            dir,
            child,
            started: Instant::now(),
            cgroup,
        };
        init.wait_for("both units running", Duration::from_secs(10), || {
            init.state("alpha") == "running" && init.state("beta") == "running"
        });
        init
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        initctl_as(&self.run_dir(), args, None)
    }

    fn status(&self, unit: &str) -> Value {
        let (code, out, err) = self.ctl(&["--json", "status", unit]);
        if code == 3 && Instant::now() < self.started + Duration::from_secs(10) {
            // The socket is not bound yet while the init starts up.
            return Value::Null;
        }
        assert!(code == 0 || code == 1, "status {unit}: {code} {err}");
        serde_json::from_str(&out).unwrap_or(Value::Null)
    }

    fn state(&self, unit: &str) -> String {
        self.status(unit)["state"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    fn pid(&self, unit: &str) -> Option<i64> {
        self.status(unit)["pid"].as_i64()
    }

    fn wait_for(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the init to exit by itself; returns its exit status.
    fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Init {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            // SIGTERM is an orderly shutdown: the init stops its units before exiting.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            if self.wait_exit(Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if let Some(cg) = &self.cgroup {
            remove_cgroup(cg);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn status_list_start_stop_restart() {
    let init = Init::start();
    let (code, out, _) = init.ctl(&["list"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("UNIT "), "{out}");
    assert!(out.contains("alpha") && out.contains("beta"), "{out}");
    let (code, out, _) = init.ctl(&["status", "beta"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("state: running") && out.contains("requires: alpha"),
        "{out}"
    );
    let (code, _, err) = init.ctl(&["status", "nosuch"]);
    assert_eq!(code, 4, "{err}");
    if let Some(cg) = &init.cgroup {
        // Usage comes from the unit's cgroup below the init's own (cpu.stat exists in every
        // cgroup; memory.current only where the memory controller is enabled, not on this host).
        let st = init.status("beta");
        let dir = st["cgroup"].as_str().unwrap_or_default().to_string();
        assert!(dir.starts_with(cg.to_str().unwrap()), "{st}");
        assert!(st["cpu_usec"].as_u64().is_some(), "{st}");
    }

    let (code, out, _) = init.ctl(&["stop", "beta"]);
    assert_eq!(code, 0, "{out}");
    init.wait_for("beta stopped", Duration::from_secs(10), || {
        init.state("beta") == "inactive" && init.pid("beta").is_none()
    });
    assert_eq!(
        init.state("alpha"),
        "running",
        "stopping beta leaves alpha alone"
    );

    assert_eq!(init.ctl(&["start", "beta"]).0, 0);
    init.wait_for("beta running again", Duration::from_secs(10), || {
        init.state("beta") == "running"
    });

    let before = init.pid("alpha").unwrap();
    assert_eq!(init.ctl(&["restart", "alpha"]).0, 0);
    init.wait_for("alpha restarted", Duration::from_secs(10), || {
        init.state("alpha") == "running" && init.pid("alpha").is_some_and(|p| p != before)
    });
}

#[test]
fn enable_disable_write_markers_and_act() {
    let init = Init::start();
    let units = init.dir.join("units");
    let (code, out, err) = init.ctl(&["disable", "beta"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("beta.disabled"), "{out}");
    assert!(units.join("beta.disabled").exists());
    init.wait_for("beta stopped by disable", Duration::from_secs(10), || {
        init.pid("beta").is_none()
    });
    // A reload now reads the marker: beta stays down and shows as disabled.
    assert_eq!(init.ctl(&["reload"]).0, 0);
    init.wait_for("beta disabled", Duration::from_secs(5), || {
        init.status("beta")["enabled"] == false
    });
    assert!(init.pid("beta").is_none());

    let (code, out, err) = init.ctl(&["enable", "beta"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(units.join("beta.enabled").exists());
    assert!(!units.join("beta.disabled").exists());
    init.wait_for("beta running after enable", Duration::from_secs(10), || {
        init.state("beta") == "running"
    });
    assert_eq!(init.ctl(&["disable", "../../etc/passwd"]).0, 2);
    assert_eq!(init.ctl(&["enable", "nosuch"]).0, 4);
    assert!(!units.join("nosuch.enabled").exists());
}

#[test]
fn reload_starts_new_stops_removed_restarts_changed() {
    let init = Init::start();
    let units = init.dir.join("units");
    std::fs::write(
        units.join("delta.toml"),
        "description = \"delta\"\nexec = [\"/bin/sh\", \"-c\", \"exec sleep 300\"]\n",
    )
    .unwrap();
    let (code, out, err) = init.ctl(&["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("started: delta"), "{out}");
    init.wait_for("delta running", Duration::from_secs(10), || {
        init.state("delta") == "running"
    });

    let alpha_pid = init.pid("alpha").unwrap();
    std::fs::write(
        units.join("alpha.toml"),
        ALPHA.replace("alpha ticks", "alpha, changed"),
    )
    .unwrap();
    std::fs::remove_file(units.join("delta.toml")).unwrap();
    let (code, out, _) = init.ctl(&["--json", "reload"]);
    assert_eq!(code, 0);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert!(
        report["restarted"]
            .as_array()
            .unwrap()
            .contains(&"alpha".into()),
        "{out}"
    );
    assert!(
        report["stopped"]
            .as_array()
            .unwrap()
            .contains(&"delta".into()),
        "{out}"
    );
    assert!(
        report["unchanged"]
            .as_array()
            .unwrap()
            .contains(&"beta".into()),
        "{out}"
    );
    init.wait_for("alpha restarted by reload", Duration::from_secs(10), || {
        init.pid("alpha").is_some_and(|p| p != alpha_pid)
    });
    // A removed unit is stopped; the supervisor forgets it once it is down (at the latest on the
    // next reload).
    init.wait_for("delta stopped", Duration::from_secs(10), || {
        let (code, out, _) = init.ctl(&["--json", "status", "delta"]);
        code == 4 || serde_json::from_str::<Value>(&out).is_ok_and(|v| v["pid"].is_null())
    });
    assert_eq!(init.ctl(&["reload"]).0, 0);
    assert_eq!(init.ctl(&["status", "delta"]).0, 4);

    std::fs::write(units.join("bad.toml"), "exce = 1\n").unwrap();
    let (code, _, err) = init.ctl(&["reload"]);
    assert_eq!(code, 1, "a reload with errors exits 1");
    assert!(err.contains("bad.toml"), "{err}");
}

#[test]
fn logs_tail_and_follow() {
    let init = Init::start();
    init.wait_for("a few ticks", Duration::from_secs(10), || {
        init.ctl(&["logs", "alpha", "-n", "5"]).1.lines().count() == 5
    });
    let (code, out, _) = init.ctl(&["logs", "alpha", "-n", "2"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines.iter().all(|l| l.ends_with("tick") && l.contains('T')),
        "{out}"
    );
    let (_, out, _) = init.ctl(&["--json", "logs", "alpha", "-n", "1000"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    let texts: Vec<&str> = v["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["stream"] == "stdout")
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts[0], "alpha starting");
    assert!(texts[1..].iter().all(|t| *t == "tick"));

    let mut follow = Command::new(BIN)
        .arg("initctl")
        .arg("--run-dir")
        .arg(init.run_dir())
        .args(["logs", "alpha", "-f", "-n", "0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut r = BufReader::new(follow.stdout.take().unwrap());
    let t = Instant::now();
    for _ in 0..5 {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0);
        assert!(line.trim_end().ends_with("tick"), "{line}");
    }
    // Five new lines at 10 per second: live, not a dump of the past.
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    let _ = follow.kill();
    let _ = follow.wait();
}

#[test]

fn logs_persist_to_the_log_dir() {
    let init = Init::start();
    let file = init.dir.join("log/alpha.log");
    init.wait_for("alpha.log written", Duration::from_secs(10), || {
        std::fs::read_to_string(&file).is_ok_and(|t| t.lines().any(|l| l.ends_with(" stdout tick")))
    });
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.lines().any(|l| l.ends_with(" stdout alpha starting")),
        "{text}"
    );
}

#[test]
fn analyze_text_svg_json() {
    let init = Init::start();
    let (code, out, err) = init.ctl(&["analyze"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Critical chain"), "{out}");
    let chain: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Critical chain"))
        .skip(1)
        .take(2)
        .collect();
    assert!(chain[0].starts_with("beta @"), "{out}");
    assert!(chain[1].starts_with("└─alpha @"), "{out}");
    let svg = init.dir.join("boot.svg");
    let (code, _, err) = init.ctl(&["analyze", "--svg", svg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(svg_unit_bars(&svg), 2);
    let (code, out, _) = init.ctl(&["analyze", "--json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["critical_chain"][0]["name"], "beta");
    assert!(v["boot_complete_us"].as_u64().is_some());
}

#[test]
fn stuck_client_does_not_delay_service_restart_or_others() {
    let init = Init::start();
    let sock = init.run_dir().join("control.sock");
    let stuck = UnixStream::connect(&sock).unwrap();
    stuck.set_nonblocking(true).unwrap();
    let req = b"{\"v\":1,\"id\":1,\"op\":\"list\"}\n".repeat(2000);
    let _ = (&stuck).write_all(&req);
    let mut silent = UnixStream::connect(&sock).unwrap();
    silent.write_all(b"{\"v\":1,").unwrap();

    let before = init.pid("alpha").unwrap();
    let t = Instant::now();
    assert_eq!(init.ctl(&["restart", "alpha"]).0, 0);
    init.wait_for("alpha restarted", Duration::from_secs(5), || {
        init.pid("alpha").is_some_and(|p| p != before)
    });
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(stuck);
    drop(silent);
}

#[test]
fn non_root_is_refused_by_the_real_init() {
    let init = Init::start();
    let sock = init.run_dir().join("control.sock");
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(init.run_dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    let before = init.pid("beta");
    let (code, _, err) = initctl_as(&init.run_dir(), &["stop", "beta"], Some(65534));
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("serves root only (peer uid 65534)"), "{err}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(init.pid("beta"), before, "nothing happened");
}

#[test]
fn poweroff_stops_units_and_ends_the_init() {
    let mut init = Init::start();
    let alpha = init.pid("alpha").unwrap() as i32;
    let (code, out, _) = init.ctl(&["poweroff"]);
    assert_eq!(code, 0);
    assert!(out.contains("poweroff requested"), "{out}");
    assert_eq!(init.wait_exit(Duration::from_secs(15)), Some(0));
    let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(alpha), None).is_ok();
    assert!(!alive, "alpha's process survived poweroff");
    let (code, _, err) = init.ctl(&["list"]);
    assert_eq!(code, 3, "{err}");
}
