//! initctl's rendering of subsystem reports (`initctl net`, `initctl devices`): each subsystem
//! answers the `subsystem` op with its own JSON; this module turns a known shape into text for
//! people and shows anything else as indented JSON, so a newer init never breaks an older client.

use serde_json::Value;

/// initctl verbs that ask a subsystem for its report, and the subsystem each one names.
pub const SUBSYSTEM_VERBS: &[(&str, &str)] = &[
    ("net", "net"),
    ("devices", "devices"),
    ("modules", "devices"),
    ("os", "os"),
];

/// Text for a subsystem's report.
pub fn render_subsystem(name: &str, report: &Value) -> String {
    let text = match name {
        "net" => crate::net::view::render(report),
        "devices" => crate::devices::view::render(report),
        "os" => crate::os::view::render(report),
        _ => None,
    };
    text.unwrap_or_else(|| pretty(report))
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}
