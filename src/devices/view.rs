//! `initctl devices`: the devices subsystem's report as text for people. Pure: JSON in, text
//! out; a field missing from the report (an older init) is shown as unknown, never a failure.

use serde_json::Value;

/// Renders the report of `Devices::status`; `None` when it does not have that shape (the caller
/// then shows the JSON).
pub fn render(report: &Value) -> Option<String> {
    let cold = report.get("coldplug")?;
    let mut out = String::new();
    let state = cold
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    match cold.get("ms").and_then(Value::as_u64) {
        Some(ms) => out.push_str(&format!("coldplug: {state} ({ms} ms)\n")),
        None => out.push_str(&format!("coldplug: {state}\n")),
    }
    let modules = report
        .get("modules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    out.push_str(&format!("\nmodules loaded ({}):\n", modules.len()));
    if !modules.is_empty() {
        out.push_str(&format!(
            "  {:<10} {:<24} {:>9}  {}\n",
            "BY", "MODULE", "TIME", "REQUEST / RESULT"
        ));
    }
    for m in &modules {
        let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        let us = m.get("micros").and_then(Value::as_u64).unwrap_or(0);
        let result = s("result");
        let tail = if result == "ok" {
            s("request")
        } else {
            format!("{}  FAILED: {result}", s("request"))
        };
        out.push_str(&format!(
            "  {:<10} {:<24} {:>6}.{} ms  {tail}\n",
            s("origin"),
            s("module"),
            us / 1000,
            (us % 1000) / 100
        ));
    }
    if let Some(links) = report.get("links").and_then(Value::as_object) {
        out.push_str("\nlinks:\n");
        for (dev, names) in links {
            for n in names.as_array().into_iter().flatten() {
                out.push_str(&format!("  /dev/{} -> {dev}\n", n.as_str().unwrap_or("?")));
            }
        }
    }
    let list = |k: &str| -> Vec<String> {
        report
            .get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let buttons = list("power_buttons");
    out.push_str(&format!(
        "\npower button: {}\n",
        if buttons.is_empty() {
            "none found".to_string()
        } else {
            buttons
                .iter()
                .map(|b| format!("/dev/input/{b}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    ));
    let waiting = list("waiting_for");
    if !waiting.is_empty() {
        out.push_str(&format!("waiting for: {}\n", waiting.join(", ")));
    }
    if let Some(u) = report.get("uevents") {
        let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
        out.push_str(&format!(
            "uevents: {} handled, {} dropped, {} not from the kernel\n",
            n("handled"),
            n("dropped"),
            n("foreign")
        ));
        for e in u
            .get("last_errors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push_str(&format!("  dropped: {}\n", e.as_str().unwrap_or("?")));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_a_report() {
        let r = json!({
            "coldplug": {"state": "done", "ms": 412},
            "modules": [
                {"origin": "coldplug", "module": "virtio_net", "micros": 12345, "result": "ok", "request": "virtio:d00000001v00001AF4"},
                {"origin": "kernel", "module": "overlay", "micros": 800, "result": "load module x: No such file", "request": "fs-overlay"}
            ],
            "links": {"nvme0n1": ["disk/by-label/root"]},
            "power_buttons": ["event0"],
            "waiting_for": ["device:/dev/disk/by-label/data"],
            "uevents": {"handled": 40, "dropped": 1, "foreign": 0, "last_errors": ["empty uevent"]},
        });
        let text = render(&r).unwrap();
        assert!(text.starts_with("coldplug: done (412 ms)\n"), "{text}");
        assert!(
            text.contains(
                "  coldplug   virtio_net                   12.3 ms  virtio:d00000001v00001AF4\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("fs-overlay  FAILED: load module x: No such file"),
            "{text}"
        );
        assert!(text.contains("  /dev/disk/by-label/root -> nvme0n1\n"));
        assert!(text.contains("power button: /dev/input/event0\n"));
        assert!(text.contains("waiting for: device:/dev/disk/by-label/data\n"));
        assert!(text.contains(
            "uevents: 40 handled, 1 dropped, 0 not from the kernel\n  dropped: empty uevent\n"
        ));
        assert_eq!(render(&json!({"other": 1})), None);
    }
}
