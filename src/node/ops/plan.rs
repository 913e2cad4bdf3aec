//! What an ops session runs, as plain data: the `ctr` command lines that start the toolbox
//! container and remove it afterwards, the container's name, and the exit status initctl reports.
//! Pure, so the exact flags are unit-tested without containerd.

use std::path::PathBuf;
use std::time::Duration;

use crate::control::protocol::OpsRequest;
use crate::supervisor::subsystem::ChildExit;

/// Where things are for ops sessions (docs/node.md, "Ops container").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsConfig {
    /// The containerd client; the init keeps gRPC out of its own process by running it.
    pub ctr: PathBuf,
    /// containerd's socket.
    pub address: PathBuf,
    /// containerd namespace of ops containers, apart from kubelet's `k8s.io`.
    pub namespace: String,
    /// The toolbox root filesystem shipped in the image (read-only; writable tmpfs on top).
    pub toolbox: PathBuf,
    /// Parent of each container's cgroup (`--cgroup PARENT/ID`); `None` leaves ctr's default.
    pub cgroup_parent: Option<String>,
    /// The init's pid namespace as a path the runtime can open (`/proc/1/ns/pid` on a machine).
    pub pid_ns: PathBuf,
    /// The init's network namespace, joined by path when `--net-host` cannot be used.
    pub net_ns: PathBuf,
    /// Where `ops.log` (the session log) goes; `None`: the kernel log only.
    pub log_dir: Option<PathBuf>,
    /// Sessions at once; one more is refused.
    pub max_sessions: usize,
    /// After the client went away: how long `ctr run` has to end after SIGTERM before SIGKILL.
    pub term_grace: Duration,
    /// How long each cleanup `ctr` may take before it is killed and the next step runs.
    pub cleanup_timeout: Duration,
}

/// Shipped defaults (paths of the Debian image and of containerd's own defaults).
pub const TOOLBOX_DIR: &str = "/usr/lib/lifsea/toolbox";
pub const CTR: &str = "/usr/bin/ctr";
pub const CONTAINERD_SOCKET: &str = "/run/containerd/containerd.sock";
pub const NAMESPACE: &str = "lifsea-ops";
pub const CGROUP_PARENT: &str = "/system/ops";
/// The command search path inside the toolbox.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl OpsConfig {
    /// A machine: the shipped paths, pid namespace of PID 1.
    pub fn machine(log_dir: Option<PathBuf>) -> Self {
        Self {
            ctr: PathBuf::from(CTR),
            address: PathBuf::from(CONTAINERD_SOCKET),
            namespace: NAMESPACE.into(),
            toolbox: PathBuf::from(TOOLBOX_DIR),
            cgroup_parent: Some(CGROUP_PARENT.into()),
            pid_ns: PathBuf::from(format!("/proc/{}/ns/pid", std::process::id())),
            net_ns: PathBuf::from(format!("/proc/{}/ns/net", std::process::id())),
            log_dir,
            max_sessions: 4,
            term_grace: Duration::from_secs(3),
            cleanup_timeout: Duration::from_secs(15),
        }
    }
}

/// The container's name: unique within a boot by `seq`, and across boots by `nonce`, because
/// containerd keeps its records in /var and a session cut short by a crash may leave one behind.
pub fn container_id(seq: u64, nonce: u32) -> String {
    format!("ops-{seq}-{nonce:08x}")
}

/// `ctr ... run ...` for one session. Privileged, the host's network (`--net-host`) and pid
/// namespace (`--with-ns pid:...`), the host's root at `/host` with its submounts and later mounts
/// (`rbind`, `rslave`: host mounts propagate in, none propagate out), writable tmpfs over the
/// read-only toolbox where tools write. No CMD: an interactive `/bin/sh`. `host_files`: the host
/// has /etc/hosts and /etc/resolv.conf, which `--net-host` bind-mounts (and fails without);
/// otherwise the network namespace is joined by path and the toolbox's own files stay.
pub fn run_args(cfg: &OpsConfig, id: &str, req: &OpsRequest, host_files: bool) -> Vec<String> {
    let mut a = global_args(cfg);
    a.push("run".into());
    if req.tty {
        a.push("-t".into());
    }
    a.extend(
        [
            "--privileged",
            "--with-ns",
            &format!("pid:{}", cfg.pid_ns.display()),
            "--mount",
            "type=bind,src=/,dst=/host,options=rbind:rslave",
        ]
        .map(String::from),
    );
    if host_files {
        a.push("--net-host".into());
    } else {
        a.push("--with-ns".into());
        a.push(format!("network:{}", cfg.net_ns.display()));
    }
    for dir in ["/tmp", "/run", "/root"] {
        a.push("--mount".into());
        a.push(format!(
            "type=tmpfs,src=tmpfs,dst={dir},options=nosuid:nodev:mode=0755"
        ));
    }
    if let Some(parent) = &cfg.cgroup_parent {
        a.push("--cgroup".into());
        a.push(format!("{}/{id}", parent.trim_end_matches('/')));
    }
    if req.tty {
        a.push("--env".into());
        a.push(format!("TERM={}", req.term.as_deref().unwrap_or("xterm")));
    }
    // A `--rootfs` container has no image config, so no PATH unless given.
    a.push("--env".into());
    a.push(format!("PATH={PATH}"));
    a.push("--env".into());
    a.push("HOME=/root".into());
    // `--rootfs` is a switch: the first operand is then a directory, not an image.
    a.push("--rootfs".into());
    a.push(cfg.toolbox.display().to_string());
    a.push(id.into());
    if req.argv.is_empty() {
        a.push("/bin/sh".into());
    } else {
        a.extend(req.argv.iter().cloned());
    }
    a
}

/// The cleanup after `ctr run` ended: `ctr run` deletes the task when it sees the task exit, so
/// after a normal end only the container record is left (`containers delete`, which also removes a
/// snapshot if there were one); after ctr was killed or the client went away the task may still
/// run, so it is killed and deleted first (`tasks delete --force`).
pub fn cleanup_steps(cfg: &OpsConfig, id: &str, task_may_run: bool) -> Vec<Vec<String>> {
    let mut steps = Vec::new();
    if task_may_run {
        let mut a = global_args(cfg);
        a.extend(["tasks", "delete", "--force", id].map(String::from));
        steps.push(a);
    }
    let mut a = global_args(cfg);
    a.extend(["containers", "delete", id].map(String::from));
    steps.push(a);
    steps
}

fn global_args(cfg: &OpsConfig) -> Vec<String> {
    vec![
        "--address".into(),
        cfg.address.display().to_string(),
        "--namespace".into(),
        cfg.namespace.clone(),
    ]
}

/// initctl's exit status for the session: the command's, as `ctr run` passes it on; a shell's
/// 128+N when ctr itself was killed by signal N.
pub fn exit_status(e: ChildExit) -> i32 {
    match e {
        ChildExit::Code(c) => c,
        ChildExit::Signal(s) => 128 + s,
    }
}

/// "exited 3" / "killed by signal 9", for logs.
pub fn describe(e: ChildExit) -> String {
    match e {
        ChildExit::Code(c) => format!("exited {c}"),
        ChildExit::Signal(s) => format!("killed by signal {s}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OpsConfig {
        let mut c = OpsConfig::machine(None);
        c.pid_ns = PathBuf::from("/proc/1/ns/pid");
        c.net_ns = PathBuf::from("/proc/1/ns/net");
        c
    }

    #[test]
    fn run_puts_flags_before_rootfs_and_the_command_last() {
        let req = OpsRequest {
            argv: vec!["cat".into(), "/host/etc/hostname".into()],
            tty: false,
            term: None,
        };
        let a = run_args(&cfg(), "ops-1-0000abcd", &req, true);
        let s = a.join(" ");
        assert!(s.starts_with(
            "--address /run/containerd/containerd.sock --namespace lifsea-ops run --privileged --with-ns pid:/proc/1/ns/pid --mount type=bind,src=/,dst=/host,options=rbind:rslave --net-host"
        ), "{s}");
        let without = run_args(&cfg(), "ops-1-0000abcd", &req, false).join(" ");
        assert!(!without.contains("--net-host"));
        assert!(
            without.contains("--with-ns network:/proc/1/ns/net"),
            "{without}"
        );
        assert!(s.ends_with(
            "--cgroup /system/ops/ops-1-0000abcd --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env HOME=/root --rootfs /usr/lib/lifsea/toolbox ops-1-0000abcd cat /host/etc/hostname"
        ), "{s}");
        assert!(!a.contains(&"-t".to_string()));
        assert!(s.contains("dst=/tmp,options=nosuid:nodev:mode=0755"));
    }

    #[test]
    fn no_command_is_a_shell_and_a_terminal_gets_its_term() {
        let req = OpsRequest {
            argv: vec![],
            tty: true,
            term: Some("xterm-256color".into()),
        };
        let mut c = cfg();
        c.cgroup_parent = None;
        let a = run_args(&c, "ops-2-00000001", &req, true);
        assert_eq!(a[4..6], ["run".to_string(), "-t".to_string()]);
        assert!(a.contains(&"TERM=xterm-256color".to_string()));
        assert!(!a.contains(&"--cgroup".to_string()));
        assert_eq!(a.last().map(String::as_str), Some("/bin/sh"));
        // A command argument that looks like a flag stays an argument of the command.
        let req = OpsRequest {
            argv: vec!["ls".into(), "--rootfs".into()],
            ..OpsRequest::default()
        };
        let a = run_args(&c, "x", &req, true);
        assert_eq!(a[a.len() - 3..], ["x", "ls", "--rootfs"].map(String::from));
    }

    #[test]
    fn cleanup_deletes_the_task_only_when_it_may_still_run() {
        let c = cfg();
        let normal = cleanup_steps(&c, "ops-1-a", false);
        assert_eq!(normal.len(), 1);
        assert_eq!(
            normal[0][4..],
            ["containers", "delete", "ops-1-a"].map(String::from)
        );
        let cut = cleanup_steps(&c, "ops-1-a", true);
        assert_eq!(cut.len(), 2);
        assert_eq!(
            cut[0][4..],
            ["tasks", "delete", "--force", "ops-1-a"].map(String::from)
        );
        assert_eq!(cut[1], normal[0]);
    }

    #[test]
    fn names_and_exit_statuses() {
        assert_eq!(container_id(3, 0xbeef), "ops-3-0000beef");
        assert_eq!(exit_status(ChildExit::Code(7)), 7);
        assert_eq!(exit_status(ChildExit::Signal(9)), 137);
        assert_eq!(describe(ChildExit::Signal(15)), "killed by signal 15");
    }
}
