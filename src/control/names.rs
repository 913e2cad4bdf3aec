//! The one rule for unit names arriving from outside (API requests, log file names).
//!
//! Names come from untrusted clients and end up in paths (`<admin dir>/<name>.enabled`,
//! `<log dir>/<name>.log`), so the rule excludes every way of leaving a directory: no `/`, no leading
//! `.` (which also rules out `.` and `..`), nothing but a small ASCII alphabet, and a length bound. It
//! is the same rule unit file names follow.

/// Longest accepted unit name, in bytes.
pub const MAX_UNIT_NAME: usize = 64;

/// `[A-Za-z0-9][A-Za-z0-9_.@-]*`, at most `MAX_UNIT_NAME` bytes.
pub fn valid_unit_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let Some(first) = bytes.first() else {
        return false;
    };
    bytes.len() <= MAX_UNIT_NAME
        && first.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'))
}

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
