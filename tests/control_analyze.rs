//! Boot analysis and the SVG chart on a known DAG of stamps (pure), the chart checked with a real
//! XML parser; and `initctl check` delegating to the offline unit checker.

use lifsea_init::collections::strmap::StrMap;
use std::process::Command;

use lifsea_init::control::analyze::{analyze, blame, critical_chain, entries};
use lifsea_init::control::ops::UnitStatus;
use lifsea_init::control::svg;
use lifsea_init::timeline::{Stamp, SubjectKind, TimelineEvent};

fn st(ms: u64, kind: SubjectKind, name: &str, event: TimelineEvent) -> Stamp {
    Stamp {
        at_us: ms * 1000,
        kind,
        name: name.into(),
        event,
    }
}

fn status(name: &str, after: &[&str], requires: &[&str]) -> UnitStatus {
    UnitStatus {
        name: name.into(),
        state: "running".into(),
        enabled: true,
        readiness: "exec".into(),
        requires: requires.iter().map(|s| s.to_string()).collect(),
        after: after.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// mounts(fact) 200 → net-setup 200..700 → containerd 700..1900 (requires net-setup, after
/// mounts) → kubelet 1900..2600; sidecar 250..2000 has no deps; "weird<&>" unit fails.
fn dag() -> (Vec<Stamp>, Vec<UnitStatus>) {
    use SubjectKind::*;
    use TimelineEvent::*;
    let stamps = vec![
        st(100, Stage, "stage 1 <machine & setup>", Start),
        st(200, Stage, "stage 1 <machine & setup>", Ready),
        st(200, Fact, "mounts", Ready),
        st(200, Unit, "net-setup", Start),
        st(700, Unit, "net-setup", Ready),
        st(250, Unit, "sidecar", Start),
        st(2000, Unit, "sidecar", Ready),
        st(700, Unit, "containerd", Start),
        st(1900, Unit, "containerd", Ready),
        st(1900, Unit, "kubelet", Start),
        st(2600, Unit, "kubelet", Ready),
        st(300, Unit, "weird<&>", Start),
        st(350, Unit, "weird<&>", Failed),
        st(2600, Stage, "boot", BootComplete),
    ];
    let units = vec![
        status("net-setup", &["mounts"], &[]),
        status("sidecar", &[], &[]),
        status("containerd", &["mounts"], &["net-setup"]),
        status("kubelet", &["sidecar"], &["containerd"]),
    ];
    (stamps, units)
}

#[test]
fn critical_chain_and_blame_on_a_known_dag() {
    let (stamps, units) = dag();
    let a = analyze(&stamps, &units);
    let chain: Vec<(&str, u64)> = a
        .critical_chain
        .iter()
        .map(|l| (l.name.as_str(), l.ready_us / 1000))
        .collect();
    // kubelet waited for containerd (ready 1900), not sidecar (ready 2000, after kubelet started).
    assert_eq!(
        chain,
        [
            ("kubelet", 2600),
            ("containerd", 1900),
            ("net-setup", 700),
            ("mounts", 200)
        ]
    );
    let b: Vec<&str> = a.blame.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(b, ["sidecar", "containerd", "kubelet", "net-setup"]);
    assert_eq!(a.boot_complete_us, Some(2_600_000));
    // The same via the building blocks, with deps given directly.
    let mut deps = StrMap::new();
    deps.insert("kubelet".to_string(), vec!["sidecar".to_string()]);
    let e = entries(&stamps);
    let only_sidecar: Vec<String> = critical_chain(&e, &deps)
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(
        only_sidecar,
        ["kubelet"],
        "sidecar became ready after kubelet started"
    );
    assert_eq!(blame(&e).len(), 4);
}

#[test]
fn svg_is_xml_with_one_bar_per_stage_fact_and_unit() {
    let (stamps, units) = dag();
    let a = analyze(&stamps, &units);
    let text = svg::render(&a);
    let doc = roxmltree::Document::parse(&text).expect("chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let bars: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "rect")
        .filter_map(|n| {
            let class = n.attribute("class")?;
            class.starts_with("bar ").then(|| {
                let title = n
                    .children()
                    .find(|c| c.tag_name().name() == "title")
                    .and_then(|t| t.text())
                    .unwrap_or("")
                    .to_string();
                (class.to_string(), title)
            })
        })
        .collect();
    let units: Vec<&(String, String)> = bars
        .iter()
        .filter(|(c, _)| c.starts_with("bar unit"))
        .collect();
    assert_eq!(units.len(), 5, "{bars:?}");
    assert_eq!(
        bars.iter()
            .filter(|(c, _)| c.starts_with("bar stage"))
            .count(),
        1
    );
    assert_eq!(
        bars.iter()
            .filter(|(c, _)| c.starts_with("bar fact"))
            .count(),
        1
    );
    // Names with markup survive escaping and come back intact from the parser.
    assert!(
        bars.iter()
            .any(|(c, t)| c == "bar unit failed" && t.starts_with("unit weird<&>")),
        "{bars:?}"
    );
    assert!(bars
        .iter()
        .any(|(_, t)| t.starts_with("stage stage 1 <machine & setup>")));
    // Bars lie on one time axis: kubelet starts where containerd ends.
    let x_of = |name: &str| -> (f64, f64) {
        let n = doc
            .descendants()
            .find(|n| {
                n.tag_name().name() == "rect"
                    && n.children().any(|c| {
                        c.text()
                            .is_some_and(|t| t.starts_with(&format!("unit {name}:")))
                    })
            })
            .unwrap();
        let x: f64 = n.attribute("x").unwrap().parse().unwrap();
        let w: f64 = n.attribute("width").unwrap().parse().unwrap();
        (x, x + w)
    };
    let (_, containerd_end) = x_of("containerd");
    let (kubelet_start, _) = x_of("kubelet");
    assert!(
        (containerd_end - kubelet_start).abs() < 0.2,
        "{containerd_end} vs {kubelet_start}"
    );
}

#[test]
fn initctl_check_delegates_to_the_unit_checker() {
    let dir = std::env::temp_dir().join(format!("lifsea-ctlcheck-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("good")).unwrap();
    std::fs::create_dir_all(dir.join("bad")).unwrap();
    std::fs::write(dir.join("good/a.toml"), "exec = [\"/bin/true\"]\n").unwrap();
    std::fs::write(
        dir.join("bad/b.toml"),
        "exec = [\"/bin/true\"]\nbogus-key = 1\n",
    )
    .unwrap();
    let run = |d: &str| {
        Command::new(env!("CARGO_BIN_EXE_lifsea-init"))
            .args(["initctl", "check"])
            .arg(dir.join(d))
            .output()
            .unwrap()
    };
    let good = run("good");
    assert_eq!(good.status.code(), Some(0), "{good:?}");
    let json = Command::new(env!("CARGO_BIN_EXE_lifsea-init"))
        .args(["initctl", "--run-dir", "/nonexistent", "--json", "check"])
        .arg(dir.join("bad"))
        .output()
        .unwrap();
    assert_eq!(json.status.code(), Some(1), "{json:?}");
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(v.to_string().contains("bogus-key"), "{v}");
    let bad = run("bad");
    assert_eq!(bad.status.code(), Some(1), "{bad:?}");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&bad.stdout),
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(all.contains("b.toml") && all.contains("bogus-key"), "{all}");
    std::fs::remove_dir_all(&dir).unwrap();
}
