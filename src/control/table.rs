//! Plain-text rendering for people (pure): aligned tables and human time and size units.

/// A table whose columns are padded to their widest cell; the last column is not padded, so lines
/// carry no trailing blanks.
#[derive(Debug, Clone)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0usize; cols];
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (i, c) in r.iter().enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(c);
                if i + 1 < r.len() {
                    line.push_str(&" ".repeat(widths[i] - c.chars().count()));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A duration for people: "312ms" below a second, "1.234s" from there, "2min 5s" past a minute.
pub fn fmt_duration_us(us: u64) -> String {
    let ms = us / 1000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    } else if ms < 3_600_000 {
        format!("{}min {}s", ms / 60_000, (ms % 60_000) / 1000)
    } else {
        format!("{}h {}min", ms / 3_600_000, (ms % 3_600_000) / 60_000)
    }
}

/// A point in time after kernel start, always in seconds with milliseconds: "0.900s".
pub fn fmt_seconds_us(us: u64) -> String {
    format!("{}.{:03}s", us / 1_000_000, (us / 1000) % 1000)
}

/// A size for people, in binary units: "512B", "1.5K", "12.0M".
pub fn fmt_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if b < 1024 {
        return format!("{b}B");
    }
    let mut v = b as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1}{}", UNITS[u])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_without_trailing_blanks() {
        let mut t = Table::new(&["UNIT", "STATE", "PID"]);
        t.row(vec!["containerd".into(), "ready".into(), "12".into()]);
        t.row(vec!["k".into(), "failed".into(), "".into()]);
        assert_eq!(
            t.render(),
            "UNIT        STATE   PID\ncontainerd  ready   12\nk           failed\n"
        );
    }

    #[test]
    fn human_units() {
        assert_eq!(fmt_duration_us(312_400), "312ms");
        assert_eq!(fmt_duration_us(1_234_000), "1.234s");
        assert_eq!(fmt_duration_us(125_000_000), "2min 5s");
        assert_eq!(fmt_duration_us(7_500_000_000), "2h 5min");
        assert_eq!(fmt_seconds_us(900_000), "0.900s");
        assert_eq!(fmt_seconds_us(12_345_678), "12.345s");
        assert_eq!(fmt_bytes(512), "512B");
        assert_eq!(fmt_bytes(1536), "1.5K");
        assert_eq!(fmt_bytes(12 * 1024 * 1024), "12.0M");
    }
}
