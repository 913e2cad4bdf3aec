//! VM test of the boot benchmark: `qemu/bench --rounds 1` on the fast variant set (lifsea-init
//! direct, the floor, floor + containerd) must boot each variant to its marker and write a JSON
//! report with every field the README's table is made of, and an SVG chart that embeds lifsea-init's
//! own boot chart fetched from the guest. The full benchmark (all variants, many rounds) is not
//! part of the suite: it takes tens of minutes.
//!
//! `#[ignore]`d like the tests of tests/vm_boot.rs: tests/run.sh runs it (`--include-ignored`).
//! Warm (images in `LIFSEA_CACHE`) it takes about a minute; cold it also debootstraps the systemd
//! image's package set once (~4 min) and builds three images (~3 min).

mod vm_support;

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use vm_support::*;

const VARIANTS: &[&str] = &["lifsea-direct", "floor", "floor-containerd"];

fn stat<'a>(row: &'a Value, key: &str) -> &'a Value {
    let s = &row[key];
    for field in ["median", "p90", "min", "max", "n", "samples"] {
        assert!(
            !s[field].is_null(),
            "{}: {key}.{field} missing in {row:#}",
            row["variant"]
        );
    }
    assert_eq!(s["n"], 1, "one round gives one sample: {row:#}");
    s
}

fn seconds(v: &Value) -> f64 {
    v.as_f64()
        .unwrap_or_else(|| panic!("not a number of seconds: {v}"))
}

#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn bench_one_round_reports_every_field_for_the_fast_variants() {
    let work = WorkDir::new("bench");
    let json = work.path("bench.json");
    let svg = work.path("bench.svg");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(repo.join("qemu/bench"))
        .args(["--rounds", "1", "--variants", "fast", "--fast"])
        .args(["--timeout", &boot_timeout(), "--json"])
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .arg("--keep")
        .arg(work.path("logs"))
        .env("LIFSEA_BIN", init_binary())
        .output()
        .expect("run qemu/bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "qemu/bench failed ({}):\n{stdout}\n{stderr}",
        out.status
    );

    let text = std::fs::read_to_string(&json).expect("read the JSON report");
    let report: Value = serde_json::from_str(&text).expect("the JSON report parses");
    for key in [
        "date",
        "machine",
        "rounds",
        "profiles",
        "kernel",
        "load_average",
    ] {
        assert!(!report[key].is_null(), "report.{key} missing:\n{text}");
    }
    assert_eq!(report["rounds"], 1);
    assert_eq!(report["profiles"], serde_json::json!(["fast"]));

    let rows = report["variants"].as_array().expect("variants is a list");
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["variant"] == name)
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"))
    };
    for name in VARIANTS {
        let r = row(name);
        assert_eq!(r["failures"], 0, "{name} failed:\n{text}");
        let wall = seconds(&stat(r, "wall_s")["median"]);
        let uptime = seconds(&stat(r, "uptime_s")["median"]);
        let before_clock = seconds(&stat(r, "before_clock_s")["median"]);
        // The guest clock starts after QEMU exec, firmware and the kernel's decompression.
        assert!(
            uptime > 0.0 && wall > uptime,
            "{name}: wall {wall} s, uptime {uptime} s"
        );
        assert!(
            (wall - uptime - before_clock).abs() < 0.01,
            "{name}: wall - uptime is {before_clock} s in the report, {} s by hand",
            wall - uptime
        );
        assert!(
            r["pid1_rss_kb"].as_u64().unwrap_or(0) > 0,
            "{name}: no PID 1 RSS:\n{text}"
        );
        assert!(
            r["image_bytes"].as_u64().unwrap_or(0) > 0,
            "{name}: no image size"
        );
        assert!(r["marker"].is_string(), "{name}: no marker condition");
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "{name}: no table row on stdout:\n{stdout}"
        );
    }
    // Starting containerd and asking it costs time over an init that prints at once.
    let floor = seconds(&row("floor")["uptime_s"]["median"]);
    let with_containerd = seconds(&row("floor-containerd")["uptime_s"]["median"]);
    assert!(
        with_containerd > floor,
        "floor {floor} s, floor + containerd {with_containerd} s"
    );
    // lifsea-init really was PID 1 (as ostree-prepare-root in direct mode) and the marker really
    // asked containerd and waited for the lease of the init's own DHCP client.
    assert_eq!(row("lifsea-direct")["marker"], "containerd,lease");
    // D waits for the same (its init gets the lease itself, beside containerd).
    assert_eq!(row("floor-containerd")["marker"], "containerd,lease");
    let pid1 = row("lifsea-direct")["pid1"].as_str().unwrap_or_default();
    assert!(pid1.starts_with("ostree-prepare"), "PID 1 was {pid1}");
    // Issue 9's figure: lifsea-init's coldplug start to `devices`, read from its console line.
    let devices = seconds(&stat(row("lifsea-direct"), "devices_s")["median"]);
    assert!(
        devices > 0.0 && devices < 240.0,
        "lifsea-direct coldplug took {devices} s"
    );
    assert!(
        stdout.contains("devices lifsea-direct (fast): coldplug start to devices reached"),
        "no devices line on stdout:\n{stdout}"
    );

    let ratios = report["ratios"].as_array().expect("ratios is a list");
    let a_d = ratios
        .iter()
        .find(|q| q["name"] == "A/D" && q["a"] == "lifsea-direct")
        .unwrap_or_else(|| panic!("no A/D ratio:\n{text}"));
    assert!(seconds(&a_d["uptime_s"]) > 0.0 && seconds(&a_d["wall_s"]) > 0.0);
    // One round: one pair, and its ratio is the ratio of the two boots of that round.
    assert_eq!(a_d["pairs"], 1, "{a_d:#}");
    let boot = |name: &str, key: &str| seconds(&row(name)["boots"][0][key]);
    for key in ["uptime_s", "wall_s"] {
        let paired = seconds(&a_d[format!("{key}_paired")]);
        let expect = boot("lifsea-direct", key) / boot("floor-containerd", key);
        assert!(
            (paired - expect).abs() < 0.002,
            "{key}: {paired} vs {expect}"
        );
    }
    assert!(
        stdout.contains("A/D lifsea-direct / floor-containerd"),
        "no ratio on stdout:\n{stdout}"
    );

    // The chart: a row per variant, and lifsea-init's boot chart nested in it.
    let chart = std::fs::read_to_string(&svg).expect("read the SVG chart");
    let doc = roxmltree::Document::parse(&chart).expect("the SVG chart is well-formed XML");
    let svgs: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("svg"))
        .collect();
    assert_eq!(svgs.len(), 2, "chart and the embedded boot chart:\n{chart}");
    for name in ["A lifsea-init direct", "C floor", "D floor+containerd"] {
        assert!(chart.contains(name), "no row {name} in the chart");
    }
    let inner_text: String = svgs[1].descendants().filter_map(|n| n.text()).collect();
    assert!(
        inner_text.contains("containerd"),
        "the embedded boot chart names no containerd unit:\n{inner_text}"
    );
    assert!(
        report["lifsea_analyze"].as_array().is_some_and(|l| l
            .iter()
            .any(|s| s.as_str().unwrap_or("").contains("containerd"))),
        "no initctl analyze text from the guest:\n{text}"
    );
}
