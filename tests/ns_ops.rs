//! `initctl ops` end to end without a VM: the real init as PID 1 of a PID namespace (container
//! mode) supervises a real containerd (the host's package, own state directories), and `initctl
//! ops` runs real `ctr` and runc containers from a busybox toolbox root filesystem written by the
//! test. Proves the descriptors passed over the control socket (the command writes straight to
//! initctl's stdout), the host's pid and network namespaces and root at /host, the exit status,
//! the cleanup (no container, task or snapshot left), the session log, and that killing initctl
//! ends the session and removes the container. Needs root, containerd, ctr, runc, busybox.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Ns;

const T: Duration = Duration::from_secs(60);

struct Node {
    ns: Ns,
    sock: PathBuf,
    logs: PathBuf,
}

fn need(path: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is needed (apt-get install containerd runc busybox-static)"
    );
}

/// A busybox root filesystem like the image's toolbox: mount points present, nothing writable
/// needed (runc mounts tmpfs where tools write).
fn toolbox(dir: &Path) {
    for d in [
        "bin", "proc", "dev", "sys", "tmp", "run", "root", "host", "etc",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for a in ["sh", "cat", "sleep", "true", "readlink", "ls"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(a)).unwrap();
    }
    for f in ["etc/hosts", "etc/resolv.conf"] {
        std::fs::write(dir.join(f), "").unwrap();
    }
}

fn node(name: &str) -> Node {
    for p in [
        "/usr/bin/containerd",
        "/usr/bin/ctr",
        "/usr/sbin/runc",
        "/bin/busybox",
    ] {
        need(p);
    }
    let mut ns = Ns::new(name);
    let sock = ns.root.join("containerd.sock");
    let state = ns.root.join("containerd");
    let config = ns.root.join("containerd.toml");
    std::fs::write(
        &config,
        format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{1}\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n  disable = true\n",
            state.display(),
            sock.display()
        ),
    )
    .unwrap();
    ns.unit(
        "containerd",
        &format!(
            "exec = [\"/usr/bin/containerd\", \"--config\", \"{}\"]\nready = \"notify\"\n\
             ready-timeout = \"60s\"\nkill = \"main\"\nstop-timeout = \"10s\"\n",
            config.display()
        ),
    );
    let tb = ns.root.join("toolbox");
    toolbox(&tb);
    let logs = ns.root.join("log");
    ns.env("LIFSEA_OPS_ADDRESS", &sock.display().to_string());
    ns.env("LIFSEA_OPS_TOOLBOX", &tb.display().to_string());
    ns.extra_args = format!("--log-dir {}", logs.display());
    Node { ns, sock, logs }
}

fn initctl(run: &Path) -> Command {
    let mut c = Command::new(common::BIN);
    c.arg("initctl").arg("--run-dir").arg(run);
    c
}

/// `ctr -n lifsea-ops KIND ls` on the test's containerd, without its header: what is left of
/// ops sessions.
fn left(n: &Node, kind: &str) -> String {
    let out = Command::new("/usr/bin/ctr")
        .args([
            "--address",
            &n.sock.display().to_string(),
            "-n",
            "lifsea-ops",
            kind,
            "ls",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "ctr {kind} ls: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .skip(1)
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

fn started(n: &Node) {
    assert!(
        n.ns.wait_log(T, "containerd ready"),
        "containerd did not become ready:\n{}",
        n.ns.log()
    );
}

/// The command writes to initctl's own stdout (a pipe of this test) through the passed descriptor;
/// it sees the host's root at /host, the init as pid 1, the host's network namespace; its exit
/// status is initctl's; afterwards no container, task or snapshot remains and the session log has
/// both ends of every session.
#[test]
fn ns_ops_runs_a_command_on_the_callers_stdio_and_leaves_nothing_behind() {
    let mut n = node("ops");
    n.ns.start();
    started(&n);
    let run = n.ns.run.clone();
    let marker = n.ns.root.join("host-marker");
    std::fs::write(&marker, "lifsea-ops-marker\n").unwrap();
    let host_net = std::fs::read_link("/proc/self/ns/net").unwrap();
    let out = initctl(&run)
        .args(["ops", "--", "sh", "-c"])
        .arg(format!(
            "cat /host{}; cat /proc/1/comm; readlink /proc/self/ns/net; echo to-stderr >&2",
            marker.display()
        ))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}\n{}", n.ns.log());
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "lifsea-ops-marker",
            "lifsea-init",
            host_net.to_str().unwrap()
        ],
        "stderr: {stderr}"
    );
    assert_eq!(stderr.trim(), "to-stderr");
    assert_eq!(left(&n, "containers"), "");
    assert_eq!(left(&n, "tasks"), "");
    assert_eq!(left(&n, "snapshots"), "");

    let st = initctl(&run)
        .args(["ops", "--", "sh", "-c", "exit 7"])
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(7), "{}", n.ns.log());
    assert_eq!(left(&n, "containers"), "");

    // A command the toolbox lacks: ctr's own error reaches the caller's stderr, status not 0.
    let out = initctl(&run)
        .args(["ops", "--", "/no/such/tool"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no/such/tool"),
        "{out:?}"
    );
    assert_eq!(left(&n, "containers"), "");

    let log = std::fs::read_to_string(n.logs.join("ops.log")).unwrap_or_default();
    let starts = log.lines().filter(|l| l.contains(" start uid=0 ")).count();
    let ends = log.lines().filter(|l| l.contains(" end uid=0 ")).count();
    assert_eq!((starts, ends), (3, 3), "{log}");
    assert!(log.contains("exit=7 (exited 7)"), "{log}");
    assert!(log.contains("command=[\"sh\",\"-c\",\"exit 7\"]"), "{log}");
    assert!(
        n.ns.log().contains("ops session ops-1-"),
        "kernel log line missing"
    );

    // The figure for docs/node.md: `initctl ops -- true` from call to exit.
    let mut ms: Vec<u128> = (0..5)
        .map(|_| {
            let t = Instant::now();
            let st = initctl(&run)
                .args(["ops", "--", "true"])
                .stdin(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success());
            t.elapsed().as_millis()
        })
        .collect();
    ms.sort();
    eprintln!("FIGURE ops-true-ms median={} all={ms:?}", ms[2]);
    n.ns.stop(T);
}

/// initctl killed mid-session: the init sees the connection close, stops `ctr run`, deletes the
/// task and the container within its bounds, and logs the session as ended with its caller gone.
#[test]
fn ns_ops_session_ends_and_is_removed_when_the_caller_is_killed() {
    let mut n = node("ops-kill");
    n.ns.start();
    started(&n);
    let mut child = initctl(&n.ns.run)
        .args(["ops", "--", "sleep", "4242"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        n.ns.wait_for(T, || left(&n, "tasks").starts_with("ops-")
            && !Ns::pids_with("sleep 4242").is_empty()),
        "no ops task appeared\n{}",
        n.ns.log()
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let t = Instant::now();
    assert!(
        n.ns.wait_for(Duration::from_secs(40), || left(&n, "containers")
            .is_empty()
            && Ns::pids_with("sleep 4242").is_empty()),
        "container or its process left after the caller died: {:?} {:?}\n{}",
        left(&n, "containers"),
        Ns::pids_with("sleep 4242"),
        n.ns.log()
    );
    eprintln!("FIGURE ops-abandon-cleanup-ms {}", t.elapsed().as_millis());
    assert_eq!(left(&n, "tasks"), "");
    let log = std::fs::read_to_string(n.logs.join("ops.log")).unwrap_or_default();
    assert!(log.contains("caller gone"), "{log}");
    n.ns.stop(T);
}

/// With a terminal (util-linux `script` gives initctl a pseudo-terminal on stdin and stdout), no
/// command means an interactive shell on a terminal of its own inside the container (`ctr run
/// -t`): what is typed reaches it, its output and exit status come back.
#[test]
fn ns_ops_without_a_command_is_an_interactive_shell_on_the_callers_terminal() {
    need("/usr/bin/script");
    let mut n = node("ops-tty");
    n.ns.start();
    started(&n);
    let cmd = format!(
        "{} initctl --run-dir {} ops",
        common::BIN,
        n.ns.run.display()
    );
    let mut child = Command::new("/usr/bin/script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"[ -t 0 ] && echo on-a-tty; echo hi-from-$((6 * 7)); exit 5\n")
            .unwrap();
        // Keep the pipe open until the shell has read the line: script ends the session on EOF.
        let deadline = Instant::now() + T;
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("on-a-tty"), "{out:?}\n{}", n.ns.log());
    assert!(stdout.contains("hi-from-42"), "{out:?}");
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    assert_eq!(left(&n, "containers"), "");
    let log = std::fs::read_to_string(n.logs.join("ops.log")).unwrap_or_default();
    assert!(
        log.contains("tty=yes command=[\"/bin/sh\"] (interactive)"),
        "{log}"
    );
    n.ns.stop(T);
}
