//! The shipped kubelet and containerd units (units/*.toml, only the binary paths, the config path
//! and the healthz port rewritten) run by the real init as PID 1 of a PID namespace, against
//! **stand-in** executables written by this test (never shipped in images): the kubelet stand-in
//! records its argv, environment and cgroup and serves /healthz (503 until told otherwise, then
//! 200); the containerd stand-in sends READY=1 after a delay. Issue 10, items 3 and 4.
//! Needs root (unshare) and /usr/bin/python3.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::control::initctl_as;
use common::Ns;

const T: Duration = Duration::from_secs(30);
const PYTHON: &str = "/usr/bin/python3";

/// Records what kubelet would see and serves /healthz on the port named in its --config file.
const KUBELET_STANDIN: &str = r#"
import json, os, sys, time, http.server
out = sys.argv[1]
args = sys.argv[2:]
def rec(name, data):
    with open(os.path.join(out, name + ".tmp"), "w") as f:
        f.write(data)
    os.rename(os.path.join(out, name + ".tmp"), os.path.join(out, name))
rec("kubelet.env", json.dumps(dict(os.environ)))
rec("kubelet.cgroup", open("/proc/self/cgroup").read())
rec("kubelet.started", repr(time.time()))
rec("kubelet.argv", json.dumps(args))
config = [a.split("=", 1)[1] for a in args if a.startswith("--config=")][0]
port = int([l.split(":")[1] for l in open(config) if l.startswith("healthzPort:")][0])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        healthy = os.path.exists(os.path.join(out, "healthy")) and self.path == "/healthz"
        self.send_response(200 if healthy else 503)
        self.end_headers()
        self.wfile.write(b"ok" if healthy else b"not yet")
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

/// sd_notify READY=1 after `delay` seconds; writes the time it did so.
const CONTAINERD_STANDIN: &str = r#"
import os, socket, sys, time
out, delay = sys.argv[1], float(sys.argv[2])
time.sleep(delay)
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
t = time.time()
s.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])
open(os.path.join(out, "containerd.ready"), "w").write(repr(t))
while True:
    time.sleep(3600)
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A shipped unit, minus `oom-score-adjust` and `limits`: lowering the one and raising the other
/// need CAP_SYS_RESOURCE, which the sandboxes these tests run in may lack.
fn shipped(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("units/{name}.toml"));
    let text = std::fs::read_to_string(p).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("oom-score-adjust") && !l.starts_with("limits"))
        .collect();
    assert_eq!(
        kept.len() + 2,
        text.lines().count(),
        "precondition: {name}'s two lines"
    );
    kept.join("\n")
}

struct Node {
    ns: Ns,
    config: PathBuf,
    port: u16,
}

/// The shipped units with the stand-ins in place of the binaries.
fn node(name: &str, containerd_delay: &str) -> Node {
    assert!(
        Path::new(PYTHON).exists(),
        "{PYTHON} is needed for the stand-ins"
    );
    let ns = Ns::new(name);
    let port = free_port();
    let kubelet_py = ns.root.join("kubelet-standin.py");
    let containerd_py = ns.root.join("containerd-standin.py");
    std::fs::write(&kubelet_py, KUBELET_STANDIN).unwrap();
    std::fs::write(&containerd_py, CONTAINERD_STANDIN).unwrap();
    let config = ns.root.join("var/lib/kubelet/config.yaml");
    let out = ns.out.display().to_string();
    let kubelet = shipped("kubelet")
        .replace(
            "\"/usr/bin/kubelet\",",
            &format!("\"{PYTHON}\", \"{}\", \"{out}\",", kubelet_py.display()),
        )
        .replace(
            "/var/lib/kubelet/config.yaml",
            &config.display().to_string(),
        )
        .replace("127.0.0.1:10248", &format!("127.0.0.1:{port}"));
    assert!(kubelet.contains(&format!("127.0.0.1:{port}/healthz")));
    let containerd = shipped("containerd").replace(
        "exec = [\"/usr/bin/containerd\"]",
        &format!(
            "exec = [\"{PYTHON}\", \"{}\", \"{out}\", \"{containerd_delay}\"]",
            containerd_py.display()
        ),
    );
    assert!(containerd.contains("standin"));
    ns.unit("kubelet", &kubelet);
    // node-prep would change the host: a oneshot that succeeds stands in for it.
    ns.unit(
        "node-prep",
        "type = \"oneshot\"\nexec = [\"/bin/sh\", \"-c\", \"exit 0\"]\n",
    );
    ns.unit("containerd", &containerd);
    Node { ns, config, port }
}

fn write_config(n: &Node) {
    std::fs::create_dir_all(n.config.parent().unwrap()).unwrap();
    let tmp = n.config.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\nhealthzPort:{}\n",
            n.port
        ),
    )
    .unwrap();
    std::fs::rename(tmp, &n.config).unwrap();
}

fn status(ns: &Ns, unit: &str) -> String {
    initctl_as(&ns.run, &["status", unit], None).1
}

fn state(ns: &Ns, unit: &str) -> String {
    status(ns, unit)
        .lines()
        .find_map(|l| l.trim().strip_prefix("state: "))
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_default()
        .to_string()
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Without its config kubelet is skipped with the reason, boot completes without it, and it does
/// not start; once the file is written it starts without a restart of anything, in the documented
/// cgroup with the documented arguments, and becomes running only when /healthz answers 200.
#[test]
fn ns_kubelet_waits_for_its_config_then_starts_and_is_ready_by_http() {
    let mut n = node("kubelet-cond", "0.2");
    n.ns.start();
    let ns = &n.ns;
    assert!(
        ns.wait_for(T, || !ns.read("containerd.ready").is_empty()),
        "{}",
        ns.log()
    );
    assert!(
        ns.wait_log(T, "boot complete"),
        "boot waited for a skipped unit:\n{}",
        ns.log()
    );
    // Longer than the re-check interval: still skipped, never started.
    std::thread::sleep(Duration::from_millis(1500));
    let st = status(ns, "kubelet");
    assert_eq!(state(ns, "kubelet"), "skipped", "{st}");
    assert!(
        st.contains("skipped: condition: ") && st.contains("config.yaml is missing or empty"),
        "{st}"
    );
    assert!(!st.contains("failure: condition"), "{st}");
    assert!(
        ns.read("kubelet.argv").is_empty(),
        "kubelet ran without a config"
    );
    // An empty file does not count.
    std::fs::create_dir_all(n.config.parent().unwrap()).unwrap();
    std::fs::write(&n.config, "").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(state(ns, "kubelet"), "skipped");

    let written = now_secs();
    write_config(&n);
    assert!(
        ns.wait_for(Duration::from_secs(5), || !ns
            .read("kubelet.argv")
            .is_empty()),
        "kubelet did not start once its config appeared:\n{}",
        ns.log()
    );
    let started: f64 = ns.read("kubelet.started").trim().parse().unwrap();
    assert!(
        started - written < 2.5,
        "kubelet started {:.2} s after its config appeared",
        started - written
    );
    eprintln!(
        "FIGURE kubelet stand-in started {:.3} s after its config appeared",
        started - written
    );
    // /healthz answers 503: starting, not running.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        state(ns, "kubelet"),
        "starting",
        "{}",
        status(ns, "kubelet")
    );
    std::fs::write(ns.out.join("healthy"), "").unwrap();
    let healthy = Instant::now();
    assert!(
        ns.wait_for(Duration::from_secs(5), || state(ns, "kubelet") == "running"),
        "{}\n{}",
        status(ns, "kubelet"),
        ns.log()
    );
    eprintln!(
        "FIGURE kubelet running {} ms after /healthz turned 200 (initctl polled every 20 ms)",
        healthy.elapsed().as_millis()
    );
    assert!(status(ns, "kubelet").contains(&format!(
        "readiness: http http://127.0.0.1:{}/healthz",
        n.port
    )));

    let argv: Vec<String> = serde_json::from_str(&ns.read("kubelet.argv")).unwrap();
    for flag in [
        format!("--config={}", n.config.display()),
        "--container-runtime-endpoint=unix:///run/containerd/containerd.sock".into(),
        "--cgroup-driver=cgroupfs".into(),
        "--cgroup-root=/".into(),
        "--kubelet-cgroups=/podruntime/kubelet".into(),
        "--runtime-cgroups=/podruntime/containerd".into(),
    ] {
        assert!(argv.contains(&flag), "{flag} missing from {argv:?}");
    }
    let env: serde_json::Value = serde_json::from_str(&ns.read("kubelet.env")).unwrap();
    assert!(env["PATH"].as_str().unwrap().contains("/usr/sbin"), "{env}");
    assert!(env.get("NOTIFY_SOCKET").is_some(), "{env}");
    if ns.has_cgroup() {
        // The cgroup2 line (hosts with a hybrid hierarchy list v1 controllers too).
        let cg = ns.read("kubelet.cgroup");
        let v2 = cg.lines().find_map(|l| l.strip_prefix("0::"));
        assert!(
            v2.is_some_and(|p| p.ends_with("/podruntime/kubelet")),
            "kubelet ran in {cg:?}"
        );
    }
    n.ns.stop(T);
}

/// With its config present from the start, kubelet still starts only once containerd said
/// READY=1 (containerd takes 1.5 s here).
#[test]
fn ns_kubelet_starts_only_after_containerd_is_ready() {
    let mut n = node("kubelet-order", "1.5");
    write_config(&n);
    std::fs::write(n.ns.out.join("healthy"), "").unwrap();
    let t0 = Instant::now();
    n.ns.start();
    let ns = &n.ns;
    assert!(
        ns.wait_for(T, || state(ns, "kubelet") == "running"),
        "{}\n{}",
        status(ns, "kubelet"),
        ns.log()
    );
    let ready: f64 = ns.read("containerd.ready").trim().parse().unwrap();
    let started: f64 = ns.read("kubelet.started").trim().parse().unwrap();
    assert!(
        started >= ready,
        "kubelet started {:.3} s before containerd was ready",
        ready - started
    );
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    eprintln!(
        "FIGURE kubelet stand-in started {:.3} s after containerd's READY=1",
        started - ready
    );
    n.ns.stop(T);
}
