//! Unit files (`units::parse::parse_unit`): TOML written by image builders and admins, read at
//! boot and at every reload. Also drives what the supervisor derives from a unit (its spec, its
//! conditions) and checks the bounds the parser promises.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use lifsea_init::supervisor::model::UnitSpec;
use lifsea_init::units::condition::{unmet, PathState};
use lifsea_init::units::parse::{check_cgroup_path, parse_unit};
use lifsea_init::units::values::{format_duration, parse_duration, MAX_DURATION};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(u) = parse_unit("fuzz", Path::new("/etc/lifsea/units/fuzz.toml"), text) else {
        return;
    };
    for d in [
        u.ready_timeout,
        u.restart_delay,
        u.restart_delay_max,
        u.restart_reset_after,
        u.stop_timeout,
    ] {
        // PID 1 adds these to `Instant`s: the parser must keep them bounded.
        assert!(d <= MAX_DURATION, "duration {d:?} over the bound");
        assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }
    assert!(
        check_cgroup_path(&u.cgroup.path).is_ok(),
        "{:?}",
        u.cgroup.path
    );
    let _ = UnitSpec::from_unit(&u, true);
    let words: Vec<String> = text
        .split_whitespace()
        .take(8)
        .map(str::to_string)
        .collect();
    let mut state = |p: &Path| {
        if p.as_os_str().len() % 2 == 0 {
            PathState::Present(Some(p.as_os_str().len() as u64))
        } else {
            PathState::Missing
        }
    };
    let _ = unmet(&u.conditions, &words, &mut state);
    for c in &u.conditions {
        let _ = c.to_string();
        let _: Option<PathBuf> = c.path().map(Path::to_path_buf);
    }
});
