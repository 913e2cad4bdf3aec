//! `initctl os status` as text: the entries in the bootloader's order with tries and blessing,
//! then what this boot is doing (counting, blessed, fell back) and the last update job.

use serde_json::Value;

/// Renders the `os` subsystem's report; `None` when it has an unexpected shape (shown as JSON).
pub fn render(r: &Value) -> Option<String> {
    let entries = r.get("entries")?.as_array()?;
    let mut s = String::new();
    s.push_str("ENTRY                              TRIES  STATE     COMMIT        TITLE\n");
    for e in entries {
        let str_of = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("-");
        let tries = match (
            e.get("tries_left").and_then(Value::as_u64),
            e.get("tries_done").and_then(Value::as_u64),
        ) {
            (Some(l), Some(d)) => format!("{l}-{d}"),
            (Some(l), None) => format!("{l}"),
            _ => "-".into(),
        };
        let state = if e.get("bad").and_then(Value::as_bool) == Some(true) {
            "bad"
        } else if e.get("blessed").and_then(Value::as_bool) == Some(true) {
            "blessed"
        } else {
            "counting"
        };
        let commit: String = str_of("commit").chars().take(12).collect();
        let booted = if e.get("booted").and_then(Value::as_bool) == Some(true) {
            "*"
        } else {
            " "
        };
        s.push_str(&format!(
            "{booted}{:<34} {:<6} {:<9} {:<13} {}\n",
            str_of("file"),
            tries,
            state,
            commit,
            str_of("title")
        ));
    }
    for (key, label) in [
        ("counting", "counting"),
        ("stage", "this boot"),
        ("not_counted", "not counted"),
        ("fallback", "fallback"),
        ("error", "error"),
        ("config_error", "config error"),
        ("job", "running"),
        ("last_job", "last update"),
    ] {
        if let Some(v) = r.get(key).and_then(Value::as_str) {
            s.push_str(&format!("{label}: {v}\n"));
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_entries_and_state() {
        let r = json!({
            "entries": [
                {"file": "ostree-2-d+0-3.conf", "tries_left": 0, "tries_done": 3, "bad": true, "blessed": false, "title": "next", "commit": "0123456789abcdef", "booted": false},
                {"file": "ostree-1-d.conf", "tries_left": null, "bad": false, "blessed": true, "title": "prev", "commit": null, "booted": true},
            ],
            "fallback": "booted the previous deployment after 3 failed tries of next",
        });
        let t = render(&r).unwrap();
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[1].starts_with(" ostree-2-d+0-3.conf")
                && lines[1].contains(" 0-3 ")
                && lines[1].contains(" bad ")
                && lines[1].contains("0123456789ab "),
            "{t}"
        );
        assert!(
            lines[2].starts_with("*ostree-1-d.conf") && lines[2].contains("blessed"),
            "{t}"
        );
        assert_eq!(
            lines[3],
            "fallback: booted the previous deployment after 3 failed tries of next"
        );
        assert_eq!(render(&json!({"x": 1})), None);
    }
}
