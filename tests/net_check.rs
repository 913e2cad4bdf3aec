//! `lifsea-init check --network FILE`: the real binary validating a network.toml offline.

use std::process::Command;

fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lifsea-init"))
        .arg("check")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn network_toml_errors_with_line_and_column() {
    let dir = std::env::temp_dir().join(format!("lifsea-netcheck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[[link]]\nname = \"eth0\"\naddresses = [\"10.0.0.5/24\"]\n",
    )
    .unwrap();
    let bad = dir.join("network.toml");
    std::fs::write(
        &bad,
        "online-timeout = \"1x\"\n[[link]]\nmac = \"zz\"\ngateway = \"1.2.3\"\n",
    )
    .unwrap();
    let (code, out) = check(&["--network", good.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, "0 units, 0 errors\n"));
    let (code, out) = check(&["--network", bad.to_str().unwrap()]);
    let p = bad.display();
    assert_eq!(code, 1);
    assert_eq!(
        out,
        format!(
            "{p}:1:18: online-timeout: invalid duration \"1x\": unknown unit \"x\" (use ms, s, m or h)\n\
             {p}:3:7: mac: \"zz\" is not a MAC address like 52:54:00:12:34:56\n\
             {p}:4:11: gateway: \"1.2.3\" is not an IPv4 address\n\
             0 units, 3 errors\n"
        )
    );
    let (code, out) = check(&["--json", "--network", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["errors"][1]["kind"], "network");
    assert_eq!(v["errors"][1]["line"], 3);
    assert_eq!(v["errors"][1]["column"], 7);
    std::fs::remove_dir_all(&dir).unwrap();
}
