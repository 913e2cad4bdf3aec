//! `qemu/crit-path --native`: the init's critical path (its first instruction to containerd's
//! spawn) measured on the host's CPU, the init as PID 1 of a PID namespace in container mode with
//! the bench image's units behind stand-in programs. The test runs two rounds and checks that every
//! round gave a breakdown with the stages of the path, and that no unit ran a real program of the
//! host. No time is asserted: the figures are the benchmark's, not the test's. Needs root.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_lifsea-init");

#[test]
fn crit_path_native_reports_each_stage_up_to_containerds_spawn() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::temp_dir().join(format!("lifsea-crit-native-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let json = work.join("cp.json");
    let keep = work.join("keep");
    let out = Command::new("python3")
        .arg(repo.join("qemu/crit-path"))
        .args(["--native", "--rounds", "2", "--timeout", "30"])
        .arg("--bin")
        .arg(format!("t={BIN}"))
        .arg("--json")
        .arg(&json)
        .arg("--keep")
        .arg(&keep)
        .output()
        .expect("run qemu/crit-path");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "crit-path --native failed:\n{text}");
    assert!(
        text.contains("t: n 2, critical path median"),
        "no summary:\n{text}"
    );
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["profile"], "native", "{report:#}");
    assert_eq!(report["failures"]["t"], 0, "{report:#}");
    let boots = report["boots"]["t"].as_array().expect("boots.t");
    assert_eq!(boots.len(), 2, "{report:#}");
    for b in boots {
        let critical = b["critical_ms"].as_f64().expect("critical_ms");
        let spans = b["spans"].as_object().expect("spans");
        for stage in [
            "startup",
            "unit-files",
            "load-units",
            "supervisor-state",
            "boot-dispatch",
            "spawn containerd",
        ] {
            let ms = spans
                .get(stage)
                .and_then(Value::as_f64)
                .unwrap_or_else(|| panic!("no {stage} span in {b:#}"));
            assert!(ms >= 0.0, "{stage} {ms} ms in {b:#}");
        }
        // These two lie wholly inside the path (the dispatch goes on past containerd).
        for stage in ["startup", "spawn containerd"] {
            assert!(
                spans[stage].as_f64().unwrap() <= critical,
                "{stage} in {b:#}"
            );
        }
        assert!(critical > 0.0, "{b:#}");
    }
    // Every unit ran a stand-in: nothing of the host's containerd (or node-prep) was started.
    let units = keep.join("units");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&units).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let unit: toml::Table = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let exec: Vec<&str> = unit["exec"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        match name.as_str() {
            "containerd" => assert_eq!(exec[..2], ["/bin/sh", "-c"], "{exec:?}"),
            _ => assert_eq!(exec, ["/bin/true"], "{name}"),
        }
        seen.push(name);
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "bench-marker",
            "containerd",
            "kubelet",
            "node-prep",
            "vm-net-online"
        ]
    );
    assert!(units.join("kubelet.disabled").exists());
    std::fs::remove_dir_all(&work).unwrap();
}
