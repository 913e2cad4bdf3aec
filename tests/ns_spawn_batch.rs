//! Spawns in flight (src/supervisor/spawn_batch.rs): the init starts the units one event makes
//! startable back to back and settles their execs afterwards. Checked here against real
//! processes: more units than the window start at once, a unit whose exec fails among them
//! fails with the errno and path and takes its requirers down, a `ready = "exec"` unit's
//! dependents start only after its exec, and no child of a failed exec is left behind.
//! Needs root (unshare).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Ns;

const T: Duration = Duration::from_secs(30);

fn sleeper(deps: &str) -> String {
    format!("exec = [\"/bin/sleep\", \"1000\"]\nready = \"exec\"\n{deps}")
}

#[test]
fn ns_batched_spawns_keep_order_failures_and_reaping() {
    let mut ns = Ns::new("batch");
    // 30 roots: the boot event starts more than the window (16) at once.
    for i in 0..30 {
        ns.unit(&format!("r{i}"), &sleeper(""));
    }
    // A binary tree of 31 units, each requiring its parent: every level is a batch of its own.
    for i in 0..31 {
        let deps = if i == 0 {
            String::new()
        } else {
            format!("requires = [\"t{}\"]\n", (i - 1) / 2)
        };
        ns.unit(&format!("t{i}"), &sleeper(&deps));
    }
    ns.unit(
        "broken",
        "exec = [\"/nonexistent/ns-batch-binary\"]\nready = \"exec\"\n",
    );
    ns.unit("b0", &sleeper("requires = [\"broken\"]\n"));
    ns.unit("b1", &sleeper("requires = [\"broken\", \"r3\"]\n"));
    ns.unit("b2", &sleeper("requires = [\"b0\"]\n"));
    // Ordering only: starts once the broken unit has failed.
    ns.unit("c", &sleeper("after = [\"broken\"]\n"));
    ns.start();
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    let tl = ns.timeline().expect("boot-timeline.json");
    let units: BTreeMap<String, serde_json::Value> = tl["units"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["name"].as_str().unwrap().to_string(), u.clone()))
        .collect();
    assert_eq!(units.len(), 30 + 31 + 5, "{units:?}");
    let failure = |n: &str| units[n]["failure"].as_str().unwrap_or_default().to_string();
    for (name, u) in &units {
        if ["broken", "b0", "b1", "b2"].contains(&name.as_str()) {
            assert_eq!(u["state"], "failed", "{name}: {u}");
            continue;
        }
        assert_eq!(u["state"], "running", "{name}: {u}\n{}", ns.log());
        let (started, ready) = (u["started_us"].as_u64(), u["ready_us"].as_u64());
        assert!(started.is_some() && ready >= started, "{name}: {u}");
    }
    assert!(
        failure("broken")
            .contains("exec /nonexistent/ns-batch-binary failed: No such file or directory"),
        "{}",
        failure("broken")
    );
    for b in ["b0", "b1"] {
        assert!(
            failure(b).contains("dependency broken failed"),
            "{b}: {}",
            failure(b)
        );
    }
    assert!(
        failure("b2").contains("dependency b0 failed"),
        "{}",
        failure("b2")
    );
    // Only the boot's first few spawns get a `cgroup <unit>` span, however many one event
    // starts before any of them is settled.
    let spans = tl["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "stage" && e["event"] == "start")
        .filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with("cgroup ")))
        .count();
    if ns.has_cgroup() {
        assert!((1..=4).contains(&spans), "{spans} cgroup spans");
    }
    // The same first spawns get a `spawn <unit>` span (PID 1's side of the start), which begins
    // after the unit's cgroup is made and ends no later than its exec was seen.
    let entries = tl["entries"].as_array().unwrap();
    let stamp = |name: &str, event: &str| {
        entries
            .iter()
            .find(|e| e["kind"] == "stage" && e["name"] == name && e["event"] == event)
            .and_then(|e| e["at_us"].as_u64())
    };
    let spawned: Vec<&str> = entries
        .iter()
        .filter(|e| e["kind"] == "stage" && e["event"] == "start")
        .filter_map(|e| e["name"].as_str()?.strip_prefix("spawn "))
        .collect();
    assert!((1..=4).contains(&spawned.len()), "{spawned:?}");
    for unit in spawned {
        let begun = stamp(&format!("spawn {unit}"), "start").unwrap();
        let done = stamp(&format!("spawn {unit}"), "ready").expect("the span ends");
        assert!(begun <= done);
        if let Some(cg) = stamp(&format!("cgroup {unit}"), "ready") {
            assert!(
                cg <= begun,
                "{unit}: cgroup ready at {cg}, spawn began at {begun}"
            );
        }
        if let Some(started) = units[unit]["started_us"].as_u64() {
            assert!(
                done <= started,
                "{unit}: spawn span ends at {done}, exec seen at {started}"
            );
        }
    }
    // ready = "exec": a dependent starts only after its dependency's exec was seen.
    for i in 1..31 {
        let parent = format!("t{}", (i - 1) / 2);
        let (p, c) = (
            units[&parent]["started_us"].as_u64().unwrap(),
            units[&format!("t{i}")]["started_us"].as_u64().unwrap(),
        );
        assert!(c >= p, "t{i} started at {c}, before {parent} at {p}");
    }
    // The failed exec's child was reaped by the spawn, not left as a zombie of the init; every
    // other child is its unit's sleep.
    let init = ns.init_pid().expect("init pid");
    let children =
        std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap_or_default();
    let kids: Vec<&str> = children.split_whitespace().collect();
    assert_eq!(kids.len(), 30 + 31 + 1, "{kids:?}");
    for k in kids {
        let stat = std::fs::read_to_string(format!("/proc/{k}/stat")).unwrap_or_default();
        let state = stat.rsplit(") ").next().and_then(|s| s.split(' ').next());
        assert_ne!(state, Some("Z"), "zombie child {k}: {stat}");
        let comm = std::fs::read_to_string(format!("/proc/{k}/comm")).unwrap_or_default();
        assert_eq!(comm.trim(), "sleep", "child {k}");
    }
    ns.stop(T);
}
