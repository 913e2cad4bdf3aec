//! The one rule for unit names arriving from outside (API requests, log file names).
//!
//! Names come from untrusted clients and end up in paths (`<admin dir>/<name>.enabled`,
//! `<log dir>/<name>.log`), so the rule excludes every way of leaving a directory: no `/`, no leading
//! `.` (which also rules out `.` and `..`), nothing but a small ASCII alphabet, and a length bound. It
//! is the rule unit file names follow (`units::values::valid_unit_name`), re-exported here.

// One rule for every place a unit name comes from: the unit loader's. The tests below pin down
// that it holds for names arriving over the API too.
pub use crate::units::values::{valid_unit_name, MAX_UNIT_NAME};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["containerd", "kubelet", "getty@tty1", "a", "x-y_z.1", "9p"] {
            assert!(valid_unit_name(n), "{n}");
        }
        assert!(valid_unit_name(&"a".repeat(MAX_UNIT_NAME)));
    }

    #[test]
    fn refuses_anything_that_could_form_a_path() {
        for n in [
            "",
            ".",
            "..",
            "../etc/passwd",
            "a/b",
            "/abs",
            ".hidden",
            "-flag",
            "_x",
            "@x",
            "a b",
            "a\0b",
            "a\nb",
            "é",
            "a\\b",
            "a:b",
        ] {
            assert!(!valid_unit_name(n), "{n:?}");
        }
        assert!(!valid_unit_name(&"a".repeat(MAX_UNIT_NAME + 1)));
    }
}
