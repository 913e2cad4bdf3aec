//! Pure parsers for the scalar values a unit file spells as strings: durations, signals,
//! capabilities, resource limits and names.
//!
//! They live apart from the TOML walk in `parse.rs` so that each grammar can be tested on its own and
//! so that other modules (the control API checks unit names) can reuse them. Every function returns a
//! message meant to follow "key: " in an error line.

use std::str::FromStr;
use std::time::Duration;

use caps::Capability;
use nix::sys::resource::Resource;
use nix::sys::signal::Signal;

use super::schema::FACTS;

/// The longest unit name accepted: names become cgroup and log file names.
pub const MAX_UNIT_NAME: usize = 64;

/// Whether `name` is a valid unit name: `[A-Za-z0-9][A-Za-z0-9_.@-]*`, at most 64 bytes.
///
/// The first character can be neither `.` nor `-`, and `/` never appears, so a valid name can never
/// form a path outside the directory it is joined to (`.`, `..`) nor look like an option.
pub fn valid_unit_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= MAX_UNIT_NAME
        && first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'))
}

/// Whether `name` is one of the init's built-in facts, or a device fact (`is_device_fact`).
pub fn is_fact(name: &str) -> bool {
    FACTS.contains(&name) || is_device_fact(name)
}

/// Whether `name` is a device fact: `device:` and an absolute path under /dev without `.`, `..`
/// or empty components (`device:/dev/disk/by-label/data`). The devices subsystem reaches it when
/// the path exists, or fails it after its timeout.
pub fn is_device_fact(name: &str) -> bool {
    name.strip_prefix("device:/dev/").is_some_and(|rest| {
        !rest.is_empty()
            && name.len() <= 4096
            && rest
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
    })
}

/// Whether `name` may be used as an environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` can be a user or group name: no separator of /etc/passwd (`:`), no whitespace or
/// control characters, not purely numeric (numbers are ids) and not empty.
pub fn valid_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && !name.bytes().all(|b| b.is_ascii_digit())
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && c != ':' && c != ',' && c != '/')
}

/// The longest duration a unit may name: one year. Every timeout and delay becomes a deadline
/// (`Instant + Duration`) in PID 1; nothing longer has a use, and the bound keeps that sum far from
/// overflowing (which would panic the init on every boot while the file stays in /etc).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// What follows "is longer than" in the error for a duration over `MAX_DURATION`.
const MAX_DURATION_WORDS: &str = "the maximum of 1 year (8760h)";

/// The error for an integer number of seconds, when it exceeds `MAX_DURATION`.
pub fn check_duration_secs(secs: u64) -> Result<Duration, String> {
    if secs > MAX_DURATION.as_secs() {
        return Err(format!(
            "{secs} seconds is longer than {MAX_DURATION_WORDS}"
        ));
    }
    Ok(Duration::from_secs(secs))
}

/// Parses a duration string: one or more `<digits><unit>` segments with unit `ms`, `s`, `m` or `h`
/// (`"500ms"`, `"10s"`, `"1m30s"`); a string of digits alone means seconds. At most `MAX_DURATION`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration_unbounded(text)?;
    if d > MAX_DURATION {
        return Err(format!(
            "invalid duration {text:?}: longer than {MAX_DURATION_WORDS}"
        ));
    }
    Ok(d)
}

fn parse_duration_unbounded(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration {text:?}: {why}");
    let s = text.trim();
    if s.is_empty() {
        return Err(bad("empty"));
    }
    if s.starts_with('-') {
        return Err(bad("must not be negative"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| bad("too large"));
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad("expected a number like 500ms, 10s, 2m, 1h or 1m30s"));
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad("too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Some(Duration::from_millis(number)),
            "s" => Some(Duration::from_secs(number)),
            "m" => number.checked_mul(60).map(Duration::from_secs),
            "h" => number.checked_mul(3600).map(Duration::from_secs),
            "" => return Err(bad("missing unit after a number (use ms, s, m or h)")),
            other => return Err(bad(&format!("unknown unit {other:?} (use ms, s, m or h)"))),
        };
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or_else(|| bad("too large"))?;
    }
    Ok(total)
}

/// Formats a duration the way a unit file would spell it (for messages and docs).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1000)
    }
}

/// Parses a signal name, `"SIGTERM"` or `"TERM"`, in any case.
pub fn parse_signal(text: &str) -> Result<Signal, String> {
    let upper = text.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full).map_err(|_| format!("unknown signal {text:?}"))
}

/// Parses a capability name, `"CAP_NET_ADMIN"` or `"net_admin"`, in any case.
pub fn parse_capability(text: &str) -> Result<Capability, String> {
    let upper = text.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    Capability::from_str(&full).map_err(|_| format!("unknown capability {text:?}"))
}

/// Resource names accepted under `limits`, as `setrlimit(2)` spells them without `RLIMIT_`.
pub const RESOURCES: &[(&str, Resource)] = &[
    ("as", Resource::RLIMIT_AS),
    ("core", Resource::RLIMIT_CORE),
    ("cpu", Resource::RLIMIT_CPU),
    ("data", Resource::RLIMIT_DATA),
    ("fsize", Resource::RLIMIT_FSIZE),
    ("locks", Resource::RLIMIT_LOCKS),
    ("memlock", Resource::RLIMIT_MEMLOCK),
    ("msgqueue", Resource::RLIMIT_MSGQUEUE),
    ("nice", Resource::RLIMIT_NICE),
    ("nofile", Resource::RLIMIT_NOFILE),
    ("nproc", Resource::RLIMIT_NPROC),
    ("rss", Resource::RLIMIT_RSS),
    ("rtprio", Resource::RLIMIT_RTPRIO),
    ("rttime", Resource::RLIMIT_RTTIME),
    ("sigpending", Resource::RLIMIT_SIGPENDING),
    ("stack", Resource::RLIMIT_STACK),
];

/// Looks a `limits` key up in [`RESOURCES`].
pub fn resource_by_name(name: &str) -> Option<Resource> {
    RESOURCES.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// The value `u64::MAX` stands for "infinity" (`RLIM_INFINITY`).
pub const INFINITY: u64 = u64::MAX;

/// Parses one side of a limit written as a string: digits or `"infinity"`.
fn parse_limit_part(text: &str) -> Option<u64> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("infinity") || t.eq_ignore_ascii_case("unlimited") {
        Some(INFINITY)
    } else if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse().ok()
    } else {
        None
    }
}

/// Parses a limit string: `"infinity"`, `"1024"` or `"SOFT:HARD"` (each side a number or infinity).
/// Returns `(soft, hard)`; a single value sets both.
pub fn parse_limit(text: &str) -> Result<(u64, u64), String> {
    let bad =
        || format!("invalid limit {text:?}: expected an integer, \"infinity\" or \"SOFT:HARD\"");
    let (soft, hard) = match text.split_once(':') {
        Some((s, h)) => (
            parse_limit_part(s).ok_or_else(bad)?,
            parse_limit_part(h).ok_or_else(bad)?,
        ),
        None => {
            let v = parse_limit_part(text).ok_or_else(bad)?;
            (v, v)
        }
    };
    check_limit_order(soft, hard)?;
    Ok((soft, hard))
}

/// Refuses a soft limit above the hard one, which setrlimit(2) would refuse at start time.
pub fn check_limit_order(soft: u64, hard: u64) -> Result<(), String> {
    if soft > hard {
        Err(format!(
            "soft limit {} exceeds hard limit {}",
            show_limit(soft),
            show_limit(hard)
        ))
    } else {
        Ok(())
    }
}

fn show_limit(v: u64) -> String {
    if v == INFINITY {
        "infinity".into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names() {
        for good in [
            "a",
            "containerd",
            "kube-let_2.service@x",
            "0",
            &"x".repeat(64),
        ] {
            assert!(valid_unit_name(good), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "-x",
            "_x",
            "a/b",
            "a b",
            "é",
            &"x".repeat(65),
        ] {
            assert!(!valid_unit_name(bad), "{bad}");
        }
        assert!(is_fact("network-online") && !is_fact("containerd"));
        assert!(is_fact("device:/dev/disk/by-label/data") && is_fact("device:/dev/kvm"));
        for bad in [
            "device:",
            "device:/dev/",
            "device:/etc/passwd",
            "device:/dev/../etc",
            "device:/dev/a//b",
            "device:dev/kvm",
        ] {
            assert!(!is_fact(bad), "{bad}");
        }
    }

    #[test]
    fn env_and_account_names() {
        assert!(valid_env_name("PATH") && valid_env_name("_x1"));
        assert!(!valid_env_name("1X") && !valid_env_name("A-B") && !valid_env_name(""));
        assert!(
            valid_account_name("nobody") && valid_account_name("_apt") && valid_account_name("u1")
        );
        for bad in ["", "12", "a:b", "a b", "-x", "a,b"] {
            assert!(!valid_account_name(bad), "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1s250ms"), Ok(Duration::from_millis(1250)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_duration("-5s"),
            Err("invalid duration \"-5s\": must not be negative".into())
        );
        assert_eq!(
            parse_duration(""),
            Err("invalid duration \"\": empty".into())
        );
        assert_eq!(
            parse_duration("10x"),
            Err("invalid duration \"10x\": unknown unit \"x\" (use ms, s, m or h)".into())
        );
        assert_eq!(
            parse_duration("1m30"),
            Err(
                "invalid duration \"1m30\": missing unit after a number (use ms, s, m or h)".into()
            )
        );
        assert_eq!(
            parse_duration("soon"),
            Err(
                "invalid duration \"soon\": expected a number like 500ms, 10s, 2m, 1h or 1m30s"
                    .into()
            )
        );
        assert_eq!(
            parse_duration("99999999999999999999999s"),
            Err("invalid duration \"99999999999999999999999s\": too large".into())
        );
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
    }

    #[test]
    fn signals_and_caps() {
        assert_eq!(parse_signal("SIGTERM"), Ok(Signal::SIGTERM));
        assert_eq!(parse_signal("int"), Ok(Signal::SIGINT));
        assert_eq!(
            parse_signal("SIGFOO"),
            Err("unknown signal \"SIGFOO\"".into())
        );
        assert_eq!(
            parse_capability("CAP_NET_ADMIN"),
            Ok(Capability::CAP_NET_ADMIN)
        );
        assert_eq!(parse_capability("net_admin"), Ok(Capability::CAP_NET_ADMIN));
        assert_eq!(
            parse_capability("Cap_Sys_Admin"),
            Ok(Capability::CAP_SYS_ADMIN)
        );
        assert_eq!(
            parse_capability("fly"),
            Err("unknown capability \"fly\"".into())
        );
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("infinity"), Ok((INFINITY, INFINITY)));
        assert_eq!(parse_limit("1024"), Ok((1024, 1024)));
        assert_eq!(parse_limit("1024:4096"), Ok((1024, 4096)));
        assert_eq!(parse_limit("1024:infinity"), Ok((1024, INFINITY)));
        assert_eq!(
            parse_limit("10:5"),
            Err("soft limit 10 exceeds hard limit 5".into())
        );
        assert_eq!(
            parse_limit("lots"),
            Err(
                "invalid limit \"lots\": expected an integer, \"infinity\" or \"SOFT:HARD\"".into()
            )
        );
        assert_eq!(
            parse_limit("1:2:3"),
            Err(
                "invalid limit \"1:2:3\": expected an integer, \"infinity\" or \"SOFT:HARD\""
                    .into()
            )
        );
        assert_eq!(RESOURCES.len(), 16);
        assert_eq!(resource_by_name("nofile"), Some(Resource::RLIMIT_NOFILE));
        assert_eq!(resource_by_name("files"), None);
    }
}
