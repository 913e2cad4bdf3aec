//! The boot chart (pure): one horizontal bar per stage, fact and unit on a shared time axis, like
//! systemd-analyze plot, as a self-contained SVG a person opens in a browser.
//!
//! Every name is XML-escaped: unit names are restricted, but stage names and anything else that
//! reaches the timeline are not, and a chart must never be an injection vector.

use std::fmt::Write as _;

use super::analyze::{Analysis, Entry};
use super::table::{fmt_duration_us, fmt_seconds_us};
use crate::timeline::SubjectKind;

const LABEL_W: f64 = 220.0;
const PLOT_W: f64 = 1000.0;
const ROW_H: f64 = 22.0;
const TOP: f64 = 50.0;

/// Escapes text for use in XML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab/newline are not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

/// A tick label no wider than the space between ticks: "250ms", "1.5s", "12s".
fn tick_label(t_us: u64, step_us: u64) -> String {
    if step_us < 1_000_000 && t_us < 1_000_000 {
        format!("{}ms", t_us / 1000)
    } else if step_us < 1_000_000 {
        format!("{:.1}s", t_us as f64 / 1e6)
    } else {
        format!("{}s", t_us / 1_000_000)
    }
}

/// A tick step that gives at most about 10 ticks over `span_us`.
fn tick_step_us(span_us: u64) -> u64 {
    let mut base = 1_000u64;
    loop {
        for m in [1, 2, 5] {
            let step = base * m;
            if span_us / step <= 10 {
                return step;
            }
        }
        base = base.saturating_mul(10);
    }
}

fn stamps(a: &Analysis) -> impl Iterator<Item = u64> + '_ {
    a.entries
        .iter()
        .flat_map(|e| [e.start_us, e.ready_us, e.failed_us])
        .flatten()
        .chain(a.boot_complete_us)
}

/// Stamps later than this after the kernel's start cannot be a machine's boot: the init runs in a
/// container (CLOCK_BOOTTIME counts the host's uptime), so the axis starts at the first stamp.
const CONTAINER_ORIGIN_AFTER_US: u64 = 600_000_000;

/// Where the time axis starts: the kernel's start on a machine (kernel time is part of the boot),
/// the first stamp otherwise.
fn origin(a: &Analysis) -> u64 {
    let first = stamps(a).min().unwrap_or(0);
    if first > CONTAINER_ORIGIN_AFTER_US {
        first
    } else {
        0
    }
}

fn kind_class(k: SubjectKind) -> &'static str {
    match k {
        SubjectKind::Stage => "stage",
        SubjectKind::Fact => "fact",
        SubjectKind::Unit => "unit",
    }
}

/// The bar of one entry: its x range in µs, its state class and its label suffix.
fn bar(e: &Entry, end_us: u64) -> (u64, u64, &'static str, String) {
    match (e.start_us, e.ready_us, e.failed_us) {
        (Some(s), Some(r), _) => (s, r, "ready", fmt_duration_us(r.saturating_sub(s))),
        (Some(s), None, Some(f)) => (
            s,
            f,
            "failed",
            format!("failed after {}", fmt_duration_us(f.saturating_sub(s))),
        ),
        (Some(s), None, None) => (s, end_us, "pending", "not ready".into()),
        (None, Some(r), _) => (r, r, "ready", format!("@{}", fmt_seconds_us(r))),
        (None, None, Some(f)) => (f, f, "failed", "failed".into()),
        (None, None, None) => (0, 0, "pending", String::new()),
    }
}

/// Renders the chart.
pub fn render(a: &Analysis) -> String {
    let origin = origin(a);
    let end_us = stamps(a).max().unwrap_or(0).max(origin + 1_000);
    let scale = PLOT_W / (end_us - origin) as f64;
    let x = |us: u64| LABEL_W + us.saturating_sub(origin) as f64 * scale;
    let height = TOP + ROW_H * a.entries.len() as f64 + 30.0;
    let width = LABEL_W + PLOT_W + 160.0;
    let mut s = String::new();
    let _ = writeln!(s, r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    s.push_str(
        "<style>.stage{fill:#8fa8c8}.fact{fill:#c8a84f}.unit.ready{fill:#6fae6f}\
         .unit.failed{fill:#d05050}.unit.pending{fill:#b0b0b0}.tick{stroke:#ddd}\
         .done{stroke:#d05050;stroke-dasharray:4,3}</style>\n",
    );
    let title = match a.boot_complete_us {
        Some(t) => format!(
            "lifsea-init boot chart: boot complete at {}",
            fmt_seconds_us(t)
        ),
        None => "lifsea-init boot chart: boot not complete".to_string(),
    };
    let title = if origin > 0 {
        format!(
            "{title} (axis: time since the first stamp at {})",
            fmt_seconds_us(origin)
        )
    } else {
        title
    };
    let _ = writeln!(
        s,
        r#"<text x="10" y="18" font-size="14">{}</text>"#,
        escape(&title)
    );
    let step = tick_step_us(end_us - origin);
    let mut t = origin;
    while t <= end_us {
        let _ = writeln!(
            s,
            r#"<line class="tick" x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}"/><text x="{0:.1}" y="{3:.1}" text-anchor="middle">{4}</text>"#,
            x(t),
            TOP - 8.0,
            height - 25.0,
            TOP - 12.0,
            escape(&tick_label(t - origin, step))
        );
        t += step;
    }
    for (i, e) in a.entries.iter().enumerate() {
        let y = TOP + ROW_H * i as f64;
        let (from, to, state, note) = bar(e, end_us);
        let w = (x(to) - x(from)).max(2.0);
        let kind = kind_class(e.kind);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LABEL_W - 6.0,
            y + 15.0,
            escape(&format!("{kind} {}", e.name))
        );
        let _ = writeln!(
            s,
            r#"<rect class="bar {kind} {state}" x="{:.1}" y="{:.1}" width="{w:.1}" height="{:.1}"><title>{}</title></rect>"#,
            x(from),
            y + 3.0,
            ROW_H - 6.0,
            escape(&format!("{} {}: {note}", kind, e.name))
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x(from) + w + 4.0,
            y + 15.0,
            escape(&note)
        );
    }
    if let Some(done) = a.boot_complete_us {
        let _ = writeln!(
            s,
            r#"<line class="done" x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}"/>"#,
            x(done),
            TOP - 8.0,
            height - 25.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(escape("x\u{1}y"), "x?y");
    }

    #[test]
    fn ticks_are_round_and_few() {
        assert_eq!(tick_step_us(1_000), 1_000);
        assert_eq!(tick_step_us(2_000_000), 200_000);
        assert_eq!(tick_step_us(9_000_000), 1_000_000);
        assert_eq!(tick_step_us(300_000_000), 50_000_000);
    }

    #[test]
    fn tick_labels_fit_their_step() {
        assert_eq!(tick_label(200_000, 100_000), "200ms");
        assert_eq!(tick_label(1_500_000, 500_000), "1.5s");
        assert_eq!(tick_label(20_000_000, 5_000_000), "20s");
    }

    fn analysis(times_us: &[u64]) -> Analysis {
        use crate::timeline::{Stamp, TimelineEvent};
        let stamps: Vec<Stamp> = times_us
            .iter()
            .enumerate()
            .map(|(i, &t)| Stamp {
                at_us: t,
                kind: SubjectKind::Unit,
                name: format!("u{i}"),
                event: TimelineEvent::Start,
            })
            .collect();
        super::super::analyze::analyze(&stamps, &[])
    }

    /// A machine's chart starts at the kernel's start; a container's (host uptime in the stamps)
    /// at its first stamp, so its bars are not squeezed against the right edge.
    #[test]
    fn axis_origin_depends_on_where_the_stamps_are() {
        assert_eq!(origin(&analysis(&[2_300_000, 4_000_000])), 0);
        let a = analysis(&[17_634_100_000, 17_634_400_000]);
        assert_eq!(origin(&a), 17_634_100_000);
        let svg = render(&a);
        assert!(svg.contains(">0ms</text>"), "{svg}");
        assert!(svg.contains("time since the first stamp"), "{svg}");
    }
}
