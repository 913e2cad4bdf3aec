//! sd_notify datagrams (`supervisor::notify::parse`): any process of a unit, under any user, may
//! send one to `$NOTIFY_SOCKET`. Also the cgroup membership test that decides whom a datagram
//! speaks for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifsea_init::supervisor::notify::{cgroup_contains, parse};

fuzz_target!(|data: &[u8]| {
    let m = parse(data);
    if let Some(pid) = m.main_pid {
        // MAINPID=0 or a negative pid would make a stop signal a process group or everyone.
        assert!(pid > 0, "MAINPID {pid} accepted");
    }
    if m.ready {
        assert!(String::from_utf8_lossy(data)
            .lines()
            .any(|l| l == "READY=1"));
    }
    // Splitting a datagram's text into two cgroup paths: membership is reflexive and `a/b` is in `a`,
    // never the other way round.
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
    if !a.is_empty() {
        assert!(cgroup_contains(a, a));
        let below = format!("{a}/x");
        assert!(cgroup_contains(a, &below));
        assert!(!cgroup_contains(&below, a));
    }
    let _ = cgroup_contains(a, b);
});
