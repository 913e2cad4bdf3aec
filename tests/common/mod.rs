//! Shared harness for namespace tests: runs the real lifsea-init binary as PID 1 of a fresh PID
//! namespace (`unshare --pid --fork --mount-proc`), in container mode, with its own unit and run
//! directories and (when the host has cgroup2) its own cgroup, and cleans all of it up on drop.
//!
//! Tests observe the init the way an operator would: files its services write, its stderr log and
//! `boot-timeline.json`. Every wait is bounded; a test that times out kills the whole namespace.
#![allow(dead_code)]

pub mod control;
pub mod unshare;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

pub const BIN: &str = env!("CARGO_BIN_EXE_lifsea-init");

/// Where a cgroup2 hierarchy is mounted on this host, if anywhere.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        if post.split(' ').next()? != "cgroup2" {
            return None;
        }
        pre.split(' ').nth(4).map(PathBuf::from)
    })
}

/// Removes a cgroup subtree bottom-up (only empty groups can be removed).
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

pub struct Ns {
    pub root: PathBuf,
    pub units: PathBuf,
    pub run: PathBuf,
    pub out: PathBuf,
    stderr: PathBuf,
    cgroup: Option<PathBuf>,
    child: Option<Child>,
    exited: Option<std::process::ExitStatus>,
    /// Started without a PID namespace: the init is not PID 1.
    plain: bool,
    /// Extra environment for the init.
    env: Vec<(String, String)>,
    /// Put before the command (e.g. `ip netns exec NS `, to run the init in a network namespace).
    pub prefix: String,
    /// Appended to the init's arguments (e.g. `--net FILE`).
    pub extra_args: String,
}

impl Ns {
    pub fn new(name: &str) -> Self {
        let uniq = format!(
            "lifsea-ns-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let root = std::env::temp_dir().join(&uniq);
        let (units, run, out) = (root.join("units"), root.join("run"), root.join("out"));
        for d in [&units, &run, &out] {
            std::fs::create_dir_all(d).unwrap();
        }
        let cgroup = cgroup2_mount().map(|m| m.join(&uniq));
        if let Some(cg) = &cgroup {
            std::fs::create_dir(cg).unwrap();
        }
        Ns {
            stderr: root.join("init.log"),
            root,
            units,
            run,
            out,
            cgroup,
            child: None,
            exited: None,
            plain: false,
            env: Vec::new(),
            prefix: String::new(),
            extra_args: String::new(),
        }
    }

    /// Writes `<units>/<name>.toml`; `@OUT@` in the text becomes the output directory and `@P@`
    /// the test process id (to make process markers unique across concurrent test runs).
    pub fn unit(&self, name: &str, toml: &str) {
        let text = toml
            .replace("@OUT@", &self.out.display().to_string())
            .replace("@P@", &std::process::id().to_string());
        std::fs::write(self.units.join(format!("{name}.toml")), text).unwrap();
    }

    /// Sets an environment variable for the init (before `start`).
    pub fn env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    /// Starts the init in container mode without a PID namespace (so it is not PID 1).
    pub fn start_plain(&mut self) {
        self.plain = true;
        self.start();
    }

    pub fn start(&mut self) {
        let procs = self
            .cgroup
            .as_ref()
            .map(|c| c.join("cgroup.procs").display().to_string())
            .unwrap_or_else(|| "/dev/null".into());
        let wrapper = if self.plain {
            ""
        } else {
            "unshare --pid --fork --mount-proc "
        };
        let script = format!(
            "echo $$ > {procs}; exec {}{wrapper}{BIN} --container --units {} --run-dir {} {}",
            self.prefix,
            self.units.display(),
            self.run.display(),
            self.extra_args,
        );
        let stderr = std::fs::File::create(&self.stderr).unwrap();
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .env("LIFSEA_DEBUG", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// The init's pid on the host: the child of unshare (or the started process itself).
    pub fn init_pid(&self) -> Option<i32> {
        let unshare = self.child.as_ref()?.id() as i32;
        if self.plain {
            return Some(unshare);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            for ent in std::fs::read_dir("/proc").ok()?.flatten() {
                let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                    continue;
                };
                let Ok(stat) = std::fs::read_to_string(ent.path().join("stat")) else {
                    continue;
                };
                let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                    continue;
                };
                if rest
                    .split_whitespace()
                    .nth(1)
                    .and_then(|p| p.parse::<i32>().ok())
                    == Some(unshare)
                {
                    return Some(pid);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn signal(&self, sig: Signal) {
        let pid = self.init_pid().expect("init pid");
        kill(Pid::from_raw(pid), sig).unwrap();
    }

    /// Waits for the init (unshare) to exit; None on timeout.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                self.exited = Some(st);
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Waits until the control API accepts connections: the init binds it after the boot
    /// dispatch, so a unit started by that dispatch may already be running before it exists.
    pub fn wait_for_api(&self, timeout: Duration) -> bool {
        let sock = self.run.join("control.sock");
        self.wait_for(timeout, || {
            std::os::unix::net::UnixStream::connect(&sock).is_ok()
        })
    }

    /// Polls `pred` every 20 ms until it holds or `timeout` passes.
    pub fn wait_for(&self, timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if pred() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.out.join(file)).unwrap_or_default()
    }

    pub fn lines(&self, file: &str) -> Vec<String> {
        self.read(file).lines().map(str::to_string).collect()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, timeout: Duration, needle: &str) -> bool {
        self.wait_for(timeout, || self.log().contains(needle))
    }

    pub fn timeline(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.run.join("boot-timeline.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Parent pid of a host process.
    pub fn ppid(pid: i32) -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        rest.split_whitespace().nth(1)?.parse().ok()
    }

    /// Host pids whose command line is exactly `cmd` (arguments joined by single spaces). Exact,
    /// because a shell's own command line often contains the command it is about to run.
    pub fn pids_with(cmd: &str) -> Vec<i32> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return out;
        };
        for ent in rd.flatten() {
            let Some(pid) = ent.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            if let Ok(raw) = std::fs::read(ent.path().join("cmdline")) {
                let argv: Vec<String> = raw
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                if argv.join(" ") == cmd {
                    out.push(pid);
                }
            }
        }
        out
    }

    /// Names of the groups below the test's cgroup (what the init created and did not remove).
    pub fn cgroup_children(&self) -> Vec<String> {
        let Some(cg) = &self.cgroup else {
            return Vec::new();
        };
        let Ok(rd) = std::fs::read_dir(cg) else {
            return Vec::new();
        };
        rd.flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect()
    }

    /// The test's own cgroup (the init's base), when the host has cgroup2.
    pub fn cgroup_dir(&self) -> Option<&Path> {
        self.cgroup.as_deref()
    }

    pub fn has_cgroup(&self) -> bool {
        self.cgroup.is_some()
    }

    /// Stops the init with SIGTERM and asserts it exits 0 in time.
    pub fn stop(&mut self, timeout: Duration) {
        self.signal(Signal::SIGTERM);
        let st = self.wait_exit(timeout);
        assert!(
            st.is_some_and(|s| s.success()),
            "init did not exit cleanly: {st:?}\n{}",
            self.log()
        );
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            if self.exited.is_none() {
                let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(cg) = &self.cgroup {
            let _ = std::fs::write(cg.join("cgroup.kill"), "1");
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                let ev = std::fs::read_to_string(cg.join("cgroup.events")).unwrap_or_default();
                if !ev.contains("populated 1") {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            remove_cgroup_tree(cg);
        }
        if std::env::var_os("LIFSEA_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}
