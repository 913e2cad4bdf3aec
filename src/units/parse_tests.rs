//! Tests of the unit-file parser: documented defaults, every key, and every error a file can hold
//! reported in order with its position.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use caps::Capability;
use nix::sys::resource::Resource;
use nix::sys::signal::Signal;

use super::*;
use crate::units::schema::{CapabilitySpec, CgroupSpec, Limit};

fn ok(text: &str) -> Unit {
    match parse_unit("svc", Path::new("/u/svc.toml"), text) {
        Ok(u) => u,
        Err(e) => panic!("unexpected errors: {e:?}"),
    }
}

/// Every error of `text` as the `path:line:col: message` lines `check` prints.
fn errs(text: &str) -> Vec<String> {
    match parse_unit("svc", Path::new("/u/svc.toml"), text) {
        Ok(u) => panic!("expected errors, got {u:?}"),
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn minimal_unit_gets_documented_defaults() {
    let u = ok("exec = [\"/bin/sleep\", \"1\"]\n");
    assert_eq!(u.name, "svc");
    assert_eq!(u.source, PathBuf::from("/u/svc.toml"));
    assert_eq!(u.description, "");
    assert_eq!(u.exec, vec!["/bin/sleep", "1"]);
    assert!(u.env.is_empty() && u.working_dir.is_none() && u.user.is_none() && u.group.is_none());
    assert_eq!(u.kind, UnitType::Daemon);
    assert!(u.requires.is_empty() && u.wants.is_empty() && u.after.is_empty());
    assert_eq!(u.ready, Readiness::Exec);
    assert_eq!(u.ready_timeout, Duration::from_secs(90));
    assert_eq!(u.restart, RestartPolicy::OnFailure);
    assert_eq!(u.restart_delay, Duration::from_millis(100));
    assert_eq!(u.restart_delay_max, Duration::from_secs(30));
    assert_eq!(u.restart_reset_after, Duration::from_secs(60));
    assert_eq!(u.stop_signal, Signal::SIGTERM);
    assert_eq!(u.stop_timeout, Duration::from_secs(10));
    assert_eq!(u.kill_mode, KillMode::Cgroup);
    assert_eq!(
        u.cgroup,
        CgroupSpec {
            path: "system/svc".into(),
            delegate: false,
            pids_max: None,
        }
    );
    assert_eq!(u.oom_score_adjust, None);
    assert!(u.limits.is_empty());
    assert_eq!(u.capabilities, None);
    assert!(!u.no_new_privileges);
    assert!(u.enabled);
}

#[test]
fn every_key_is_read() {
    let u = ok(r#"
description = "everything"
exec = ["/usr/bin/thing", "--flag"]
env = { PATH = "/usr/bin", _X1 = "y" }
working-dir = "/var/lib/thing"
user = "thing"
group = 42
type = "daemon"
requires = ["db", "network"]
wants = ["metrics", "db"]
after = ["network-online"]
ready = { fd = 5 }
ready-timeout = "1m30s"
restart = "always"
restart-delay = "250ms"
restart-delay-max = "1m"
restart-reset-after = 120
stop-signal = "int"
stop-timeout = "3s"
kill = "main"
cgroup = { path = "podruntime/thing", delegate = true }
oom-score-adjust = -999
limits = { nofile = 65536, nproc = "infinity", core = "0:infinity", memlock = "1024" }
capabilities = { bounding = ["CAP_NET_ADMIN", "net_raw", "Net_Admin"], ambient = ["net_raw"] }
no-new-privileges = true
enabled = false
"#);
    assert_eq!(u.description, "everything");
    assert_eq!(u.exec, vec!["/usr/bin/thing", "--flag"]);
    assert_eq!(
        u.env,
        vec![
            ("PATH".into(), "/usr/bin".into()),
            ("_X1".into(), "y".into())
        ]
    );
    assert_eq!(u.working_dir, Some(PathBuf::from("/var/lib/thing")));
    assert_eq!(
        (u.user.as_deref(), u.group.as_deref()),
        (Some("thing"), Some("42"))
    );
    assert_eq!(u.requires, vec!["db", "network"]);
    assert_eq!(u.wants, vec!["metrics", "db"]);
    assert_eq!(u.after, vec!["network-online"]);
    assert_eq!(u.ready, Readiness::Fd(5));
    assert_eq!(u.ready_timeout, Duration::from_secs(90));
    assert_eq!(u.restart, RestartPolicy::Always);
    assert_eq!(u.restart_delay, Duration::from_millis(250));
    assert_eq!(u.restart_delay_max, Duration::from_secs(60));
    assert_eq!(u.restart_reset_after, Duration::from_secs(120));
    assert_eq!(u.stop_signal, Signal::SIGINT);
    assert_eq!(u.stop_timeout, Duration::from_secs(3));
    assert_eq!(u.kill_mode, KillMode::Main);
    assert_eq!(
        u.cgroup,
        CgroupSpec {
            path: "podruntime/thing".into(),
            delegate: true,
            pids_max: None,
        }
    );
    assert_eq!(u.oom_score_adjust, Some(-999));
    let inf = u64::MAX;
    assert_eq!(
        u.limits,
        vec![
            Limit {
                resource: Resource::RLIMIT_CORE,
                soft: 0,
                hard: inf
            },
            Limit {
                resource: Resource::RLIMIT_MEMLOCK,
                soft: 1024,
                hard: 1024
            },
            Limit {
                resource: Resource::RLIMIT_NOFILE,
                soft: 65536,
                hard: 65536
            },
            Limit {
                resource: Resource::RLIMIT_NPROC,
                soft: inf,
                hard: inf
            },
        ]
    );
    assert_eq!(
        u.capabilities,
        Some(CapabilitySpec {
            bounding: Some(vec![Capability::CAP_NET_ADMIN, Capability::CAP_NET_RAW]),
            ambient: vec![Capability::CAP_NET_RAW],
        })
    );
    assert!(u.no_new_privileges);
    assert!(!u.enabled);
}

#[test]
fn readiness_forms() {
    let r = |v: &str| ok(&format!("exec = [\"/x\"]\nready = {v}\n")).ready;
    assert_eq!(r("\"exec\""), Readiness::Exec);
    assert_eq!(r("\"notify\""), Readiness::Notify);
    assert_eq!(r("{ fd = 3 }"), Readiness::Fd(3));
    assert_eq!(
        r("{ path = \"/run/x.pid\" }"),
        Readiness::Path("/run/x.pid".into())
    );
    assert_eq!(
        r("{ unix = \"/run/x.sock\" }"),
        Readiness::Unix("/run/x.sock".into())
    );
    let addr: SocketAddr = "127.0.0.1:10248".parse().unwrap();
    assert_eq!(r("{ tcp = \"127.0.0.1:10248\" }"), Readiness::Tcp(addr));
    let addr: SocketAddr = "[::1]:80".parse().unwrap();
    assert_eq!(r("{ tcp = \"[::1]:80\" }"), Readiness::Tcp(addr));
    match r("{ http = \"http://127.0.0.1:10248/healthz\" }") {
        Readiness::Http(t) => assert_eq!(t.to_string(), "http://127.0.0.1:10248/healthz"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn readiness_errors() {
    let e = |v: &str| errs(&format!("exec = [\"/x\"]\nready = {v}\n"));
    assert_eq!(
        e("{ fd = 2 }"),
        vec!["/u/svc.toml:2:9: ready.fd: must be 3 or more (0, 1 and 2 are stdin, stdout and stderr), got 2"]
    );
    assert_eq!(
        e("{ tcp = \"localhost:80\" }"),
        vec!["/u/svc.toml:2:9: ready.tcp: expected a numeric address and port like \"127.0.0.1:8080\" or \"[::1]:8080\", got \"localhost:80\""]
    );
    assert_eq!(
        e("{ path = \"run/x\" }"),
        vec!["/u/svc.toml:2:9: ready.path: must be an absolute path, got \"run/x\""]
    );
    let expected = "/u/svc.toml:2:9: ready: expected \"exec\", \"notify\" or a table with one key: fd, path, unix, tcp or http";
    assert_eq!(e("\"socket\""), vec![expected]);
    assert_eq!(e("{ fd = 3, path = \"/x\" }"), vec![expected]);
    assert_eq!(e("{ https = \"/x\" }"), vec![expected]);
    assert_eq!(
        e("{ http = \"http://10.1.2.3:10248/healthz\" }"),
        vec!["/u/svc.toml:2:9: ready.http: the host must be a loopback address or localhost (the probe runs on PID 1's thread), got \"10.1.2.3\""]
    );
    assert_eq!(
        errs("exec = [\"/x\"]\ntype = \"oneshot\"\nready = \"notify\"\n"),
        vec!["/u/svc.toml:3:9: ready: a oneshot unit is ready when it exits with status 0; remove ready"]
    );
}

#[test]
fn oneshot_defaults_and_restart_rules() {
    let u = ok("exec = [\"/x\"]\ntype = \"oneshot\"\n");
    assert_eq!(
        (u.kind, u.restart, u.ready),
        (UnitType::Oneshot, RestartPolicy::No, Readiness::Exec)
    );
    let u = ok("exec = [\"/x\"]\ntype = \"oneshot\"\nrestart = \"on-failure\"\n");
    assert_eq!(u.restart, RestartPolicy::OnFailure);
    assert_eq!(
        errs("exec = [\"/x\"]\ntype = \"oneshot\"\nrestart = \"always\"\n"),
        vec!["/u/svc.toml:3:11: restart: \"always\" would rerun a oneshot unit forever; use \"on-failure\" or make it a daemon"]
    );
    assert_eq!(
        errs("exec = [\"/x\"]\nrestart = \"sometimes\"\ntype = \"service\"\n"),
        vec![
            "/u/svc.toml:2:11: restart: expected one of \"no\", \"on-failure\", \"always\", got \"sometimes\"",
            "/u/svc.toml:3:8: type: expected one of \"daemon\", \"oneshot\", got \"service\"",
        ]
    );
    assert_eq!(
        errs("exec = [\"/x\"]\nrestart-delay = \"5s\"\nrestart-delay-max = \"1s\"\n"),
        vec!["/u/svc.toml:3:21: restart-delay-max: must not be shorter than restart-delay (5s)"]
    );
    // A long restart-delay without restart-delay-max raises the default cap instead of failing.
    let u = ok("exec = [\"/x\"]\nrestart-delay = \"1m\"\n");
    assert_eq!(u.restart_delay_max, Duration::from_secs(60));
}

#[test]
fn durations_in_files() {
    let d = |v: &str| ok(&format!("exec = [\"/x\"]\nstop-timeout = {v}\n")).stop_timeout;
    assert_eq!(d("\"500ms\""), Duration::from_millis(500));
    assert_eq!(d("\"2m\""), Duration::from_secs(120));
    assert_eq!(d("\"1h\""), Duration::from_secs(3600));
    assert_eq!(d("7"), Duration::from_secs(7));
    let e = |v: &str| errs(&format!("exec = [\"/x\"]\nstop-timeout = {v}\n"));
    assert_eq!(
        e("-3"),
        vec!["/u/svc.toml:2:16: stop-timeout: must not be negative, got -3"]
    );
    assert_eq!(
        e("\"-3s\""),
        vec!["/u/svc.toml:2:16: stop-timeout: invalid duration \"-3s\": must not be negative"]
    );
    assert_eq!(
        e("\"ten\""),
        vec!["/u/svc.toml:2:16: stop-timeout: invalid duration \"ten\": expected a number like 500ms, 10s, 2m, 1h or 1m30s"]
    );
    assert_eq!(
        e("1.5"),
        vec!["/u/svc.toml:2:16: stop-timeout: expected a duration like \"10s\" or a number of seconds, found float"]
    );
}

/// Finding 2 of issue 12: a duration too large for `Instant + Duration` passed `check` and then
/// panicked PID 1 at every boot. Durations are bounded at one year, as strings and as integers.
#[test]
fn durations_longer_than_a_year_are_refused() {
    let e = |v: &str| errs(&format!("exec = [\"/x\"]\nready-timeout = {v}\n"));
    assert_eq!(
        e("\"9999999999999999999\""),
        vec!["/u/svc.toml:2:17: ready-timeout: invalid duration \"9999999999999999999\": longer than the maximum of 1 year (8760h)"]
    );
    assert_eq!(
        e("\"8761h\""),
        vec!["/u/svc.toml:2:17: ready-timeout: invalid duration \"8761h\": longer than the maximum of 1 year (8760h)"]
    );
    assert_eq!(
        e("31536001"),
        vec!["/u/svc.toml:2:17: ready-timeout: 31536001 seconds is longer than the maximum of 1 year (8760h)"]
    );
    let d = |v: &str| ok(&format!("exec = [\"/x\"]\nready-timeout = {v}\n")).ready_timeout;
    assert_eq!(d("\"8760h\""), Duration::from_secs(31_536_000));
    assert_eq!(d("31536000"), Duration::from_secs(31_536_000));
}

#[test]
fn every_error_of_a_file_is_reported_in_order() {
    let text = r#"description = 3
exec = ["bin/x", 7]
env = { "1X" = "a", OK = 1 }
working-dir = "relative"
user = "a:b"
group = -1
requires = ["ok", "a/b"]
stop-signal = "SIGNOPE"
kill = "all"
cgroup = { path = "/abs", delegate = "yes" }
oom-score-adjust = 1001
limits = { nofile = "infinity", files = 3, core = "5:2", nproc = -1 }
capabilities = { bounding = ["net_admin"], ambient = ["sys_admin", "bogus"] }
no-new-privileges = 1
enabled = "no"
"#;
    assert_eq!(
        errs(text),
        vec![
            "/u/svc.toml:1:15: description: expected a string, found integer",
            "/u/svc.toml:2:9: exec: program must be an absolute path, got \"bin/x\"",
            "/u/svc.toml:2:18: exec: expected a string, found integer",
            "/u/svc.toml:3:9: env: invalid variable name \"1X\"",
            "/u/svc.toml:3:26: env.OK: expected a string, found integer",
            "/u/svc.toml:4:15: working-dir: must be an absolute path, got \"relative\"",
            "/u/svc.toml:5:8: user: invalid name \"a:b\"",
            "/u/svc.toml:6:9: group: id -1 is out of range (0 to 4294967294)",
            "/u/svc.toml:7:19: requires: invalid unit name \"a/b\"",
            "/u/svc.toml:8:15: stop-signal: unknown signal \"SIGNOPE\"",
            "/u/svc.toml:9:8: kill: expected one of \"cgroup\", \"main\", got \"all\"",
            "/u/svc.toml:10:19: cgroup.path: must be relative to the cgroup root (no leading /), got \"/abs\"",
            "/u/svc.toml:10:38: cgroup.delegate: expected true or false, found string",
            "/u/svc.toml:11:20: oom-score-adjust: must be between -1000 and 1000, got 1001",
            "/u/svc.toml:12:21: limits.nofile: infinity is not allowed for nofile (the kernel caps it at fs.nr_open, 1048576 by default): give a number",
            "/u/svc.toml:12:33: limits: unknown resource \"files\" (known: as, core, cpu, data, fsize, locks, memlock, msgqueue, nice, nofile, nproc, rss, rtprio, rttime, sigpending, stack)",
            "/u/svc.toml:12:51: limits.core: soft limit 5 exceeds hard limit 2",
            "/u/svc.toml:12:66: limits.nproc: must not be negative, got -1",
            "/u/svc.toml:13:55: capabilities.ambient: CAP_SYS_ADMIN is not in the bounding set",
            "/u/svc.toml:13:68: capabilities.ambient: unknown capability \"bogus\"",
            "/u/svc.toml:14:21: no-new-privileges: expected true or false, found integer",
            "/u/svc.toml:15:11: enabled: expected true or false, found string",
        ]
    );
}

#[test]
fn exec_rules() {
    assert_eq!(
        errs("description = \"x\"\n"),
        vec!["/u/svc.toml: missing required key exec"]
    );
    assert_eq!(
        errs("exec = []\n"),
        vec!["/u/svc.toml:1:8: exec: must not be empty"]
    );
    assert_eq!(
        errs("exec = [\"/bin/x\\u0000\"]\n"),
        vec!["/u/svc.toml:1:9: exec: must not contain a NUL character"]
    );
    assert_eq!(
        errs("exec = \"/bin/true\"\n"),
        vec!["/u/svc.toml:1:8: exec: invalid type: string \"/bin/true\", expected an array"]
    );
}

#[test]
fn toml_syntax_and_unknown_keys_have_positions() {
    assert_eq!(
        errs("exec = [\"/x\"\n"),
        vec!["/u/svc.toml:1:13: unclosed array, expected `]`"]
    );
    let e = errs("exec = [\"/x\"]\nrestart_delay = \"1s\"\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with(
            "/u/svc.toml:2:1: unknown field `restart_delay`, expected one of `description`, `exec`"
        ),
        "{e:?}"
    );
    assert_eq!(
        errs("exec = [\"/x\"]\ncgroup = { path = \"a\", what = 1 }\n"),
        vec!["/u/svc.toml:2:24: unknown field `what`, expected one of `path`, `delegate`, `pids-max`"]
    );
    assert_eq!(
        errs("exec = [\"/x\"]\ncapabilities = \"all\"\n"),
        vec!["/u/svc.toml:2:16: capabilities: invalid type: string \"all\", expected a table"]
    );
}

/// Finding 7 of issue 12: a unit's group overlapping the init's own (`init`) or the parent of the
/// default unit groups (`system`) made stopping it signal PID 1 or every default unit.
#[test]
fn cgroup_paths_overlapping_the_init_or_system_are_refused() {
    for (path, why) in [
        ("init", "must not be the init's own group \"init\" or below it, got \"init\""),
        (
            "init/x",
            "must not be the init's own group \"init\" or below it, got \"init/x\"",
        ),
        (
            "system",
            "must not be \"system\", the parent of every default unit group (use system/<name>), got \"system\"",
        ),
    ] {
        assert_eq!(
            errs(&format!(
                "exec = [\"/x\"]\ncgroup = {{ path = {path:?} }}\n"
            )),
            vec![format!("/u/svc.toml:2:19: cgroup.path: {why}")]
        );
    }
    for path in ["system/other", "initial", "podruntime/init", "systemd"] {
        let u = ok(&format!(
            "exec = [\"/x\"]\ncgroup = {{ path = {path:?} }}\n"
        ));
        assert_eq!(u.cgroup.path, path);
    }
}

#[test]
fn accounts_cgroups_and_names() {
    let u = ok("exec = [\"/x\"]\nuser = \"1000\"\ngroup = \"docker\"\n");
    assert_eq!(
        (u.user.as_deref(), u.group.as_deref()),
        (Some("1000"), Some("docker"))
    );
    assert_eq!(
        errs("exec = [\"/x\"]\nuser = true\n"),
        vec!["/u/svc.toml:2:8: user: expected a name or a numeric id, found boolean"]
    );
    assert_eq!(
        errs("exec = [\"/x\"]\nuser = \"4294967295\"\n"),
        vec!["/u/svc.toml:2:8: user: id 4294967295 is out of range (0 to 4294967294)"]
    );
    for (path, why) in [
        ("a/../b", "must not contain \"..\", got \"a/../b\""),
        (
            "a//b",
            "must not contain empty or \".\" components, got \"a//b\"",
        ),
        (
            "./a",
            "must not contain empty or \".\" components, got \"./a\"",
        ),
        (
            "a/",
            "must not contain empty or \".\" components, got \"a/\"",
        ),
        ("", "must not contain empty or \".\" components, got \"\""),
    ] {
        assert_eq!(
            errs(&format!(
                "exec = [\"/x\"]\ncgroup = {{ path = {path:?} }}\n"
            )),
            vec![format!("/u/svc.toml:2:19: cgroup.path: {why}")]
        );
    }
    let u = ok("exec = [\"/x\"]\ncgroup = { delegate = true }\n");
    assert_eq!(
        (u.cgroup.path.as_str(), u.cgroup.delegate),
        ("system/svc", true)
    );
    assert_eq!(check_unit_name("good-name@1.x"), Ok(()));
    assert_eq!(
        check_unit_name("bad name"),
        Err("invalid unit name \"bad name\": use letters, digits, '_', '.', '@' and '-', start with a letter or digit, at most 64 characters".into())
    );
    assert_eq!(
        check_unit_name("devices"),
        Err("unit name \"devices\" is reserved for a built-in fact".into())
    );
}

#[test]
fn capabilities_without_bounding_keep_ambient() {
    let u = ok("exec = [\"/x\"]\ncapabilities = { ambient = [\"CAP_NET_BIND_SERVICE\"] }\n");
    assert_eq!(
        u.capabilities,
        Some(CapabilitySpec {
            bounding: None,
            ambient: vec![Capability::CAP_NET_BIND_SERVICE]
        })
    );
    let u = ok("exec = [\"/x\"]\ncapabilities = { bounding = [] }\n");
    assert_eq!(u.capabilities.and_then(|c| c.bounding), Some(vec![]));
}

#[test]
fn line_col_counts_characters() {
    assert_eq!(line_col("ab\ncdé f", 0), (1, 1));
    assert_eq!(line_col("ab\ncdé f", 3), (2, 1));
    assert_eq!(line_col("ab\ncdé f", 8), (2, 5));
    assert_eq!(line_col("ab", 99), (1, 3));
}

#[test]
fn device_facts_are_dependencies_and_bad_ones_are_errors() {
    let u = ok("exec = [\"/bin/true\"]\nrequires = [\"device:/dev/disk/by-label/data\"]\nafter = [\"device:/dev/kvm\", \"device:/dev/kvm\"]\n");
    assert_eq!(u.requires, vec!["device:/dev/disk/by-label/data"]);
    assert_eq!(u.after, vec!["device:/dev/kvm"]);
    assert_eq!(
        errs("exec = [\"/bin/true\"]\nafter = [\"device:/dev/../etc\", \"device:/etc/x\"]\n"),
        vec![
            "/u/svc.toml:2:10: after: invalid device fact \"device:/dev/../etc\": use device:/dev/PATH without '.', '..' or empty components",
            "/u/svc.toml:2:32: after: invalid device fact \"device:/etc/x\": use device:/dev/PATH without '.', '..' or empty components",
        ]
    );
}

#[test]
fn conditions_and_negations() {
    use crate::units::condition::{Condition, ConditionKind};
    let u = ok(concat!(
        "exec = [\"/x\"]\n",
        "condition = { path-exists = \"/etc/a\", file-not-empty = [\"/var/b\", \"!/var/c\"], ",
        "kernel-cmdline = \"!lifsea.nokubelet\" }\n"
    ));
    let c = |kind, negate, arg: &str| Condition {
        kind,
        negate,
        arg: arg.into(),
    };
    assert_eq!(
        u.conditions,
        vec![
            c(ConditionKind::FileNotEmpty, false, "/var/b"),
            c(ConditionKind::FileNotEmpty, true, "/var/c"),
            c(ConditionKind::KernelCmdline, true, "lifsea.nokubelet"),
            c(ConditionKind::PathExists, false, "/etc/a"),
        ]
    );
    assert!(ok("exec = [\"/x\"]\n").conditions.is_empty());
}

#[test]
fn condition_errors_have_positions() {
    let e = |v: &str| errs(&format!("exec = [\"/x\"]\ncondition = {v}\n"));
    assert_eq!(
        e("{ path-exists = \"etc/a\" }"),
        vec!["/u/svc.toml:2:29: condition.path-exists: must be an absolute path (with an optional leading '!'), got \"etc/a\""]
    );
    assert_eq!(
        e("{ file-exists = \"/a\" }"),
        vec!["/u/svc.toml:2:15: condition: unknown test \"file-exists\" (known: path-exists, file-not-empty, kernel-cmdline)"]
    );
    assert_eq!(
        e("{ kernel-cmdline = \"a b\" }"),
        vec!["/u/svc.toml:2:32: condition.kernel-cmdline: must be one command-line word without spaces or quotes, got \"a b\""]
    );
    assert_eq!(
        e("{ kernel-cmdline = [] }"),
        vec!["/u/svc.toml:2:32: condition.kernel-cmdline: must not be an empty array"]
    );
    assert_eq!(
        e("{ path-exists = 3 }"),
        vec!["/u/svc.toml:2:29: condition.path-exists: expected a string or an array of strings, found integer"]
    );
    assert_eq!(
        e("\"/a\""),
        vec!["/u/svc.toml:2:13: condition: invalid type: string \"/a\", expected a table"]
    );
}

#[test]
fn cgroup_pids_max_is_bounded_and_positioned() {
    let u = ok("exec = [\"/x\"]\ncgroup = { pids-max = 64 }\n");
    assert_eq!(u.cgroup.pids_max, Some(64));
    assert_eq!(u.cgroup.path, "system/svc");
    let u = ok("exec = [\"/x\"]\ncgroup = { pids-max = \"max\", path = \"a/b\" }\n");
    assert_eq!(u.cgroup.pids_max, None);
    assert_eq!(
        ok("exec = [\"/x\"]\ncgroup = { pids-max = 4194304 }\n")
            .cgroup
            .pids_max,
        Some(4_194_304)
    );
    for (value, why) in [
        ("0", "must be between 1 and 4194304 (or \"max\"), got 0"),
        ("-5", "must be between 1 and 4194304 (or \"max\"), got -5"),
        (
            "4194305",
            "must be between 1 and 4194304 (or \"max\"), got 4194305",
        ),
        (
            "\"lots\"",
            "expected a positive integer or \"max\", found \"lots\"",
        ),
        (
            "true",
            "expected a positive integer or \"max\", found boolean",
        ),
        ("1.5", "expected a positive integer or \"max\", found float"),
    ] {
        assert_eq!(
            errs(&format!(
                "exec = [\"/x\"]\ncgroup = {{ pids-max = {value} }}\n"
            )),
            vec![format!("/u/svc.toml:2:23: cgroup.pids-max: {why}")],
            "value {value}"
        );
    }
}
