//! Shutdown ends in bounded time (issue 12, finding 11): a global deadline after which the init
//! kills what is still stopping and goes on, and repeated SIGTERM/SIGINT force the end at once.
//! Needs root (unshare).

mod common;

use std::time::{Duration, Instant};

use common::Ns;
use nix::sys::signal::Signal;

const T: Duration = Duration::from_secs(20);

/// A unit that ignores SIGTERM and has a long stop-timeout.
const STUBBORN: &str = r#"stop-timeout = "60s"
exec = ["/bin/sh", "-c", "trap '' TERM; echo up > @OUT@/up; while :; do sleep 0.05; done"]
"#;

#[test]
fn ns_shutdown_deadline_forces_the_end() {
    let mut ns = Ns::new("deadline");
    ns.env("LIFSEA_SHUTDOWN_TIMEOUT", "2s");
    ns.unit("stubborn", STUBBORN);
    ns.start();
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    assert!(ns.wait_for(T, || !ns.read("up").is_empty()));
    let asked = Instant::now();
    ns.stop(Duration::from_secs(10));
    let took = asked.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(5),
        "shutdown took {took:?}\n{}",
        ns.log()
    );
    assert!(
        ns.log()
            .contains("shutdown deadline (2s) passed: stubborn still stopping"),
        "{}",
        ns.log()
    );
}

#[test]
fn ns_repeated_sigterm_forces_the_end() {
    let mut ns = Ns::new("sigterm3");
    ns.unit("stubborn", STUBBORN);
    ns.start();
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    assert!(ns.wait_for(T, || !ns.read("up").is_empty()));
    let asked = Instant::now();
    for _ in 0..3 {
        ns.signal(Signal::SIGTERM);
        std::thread::sleep(Duration::from_millis(100));
    }
    let st = ns.wait_exit(Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", ns.log());
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "took {:?}",
        asked.elapsed()
    );
    assert!(ns.log().contains("stubborn still stopping"), "{}", ns.log());
}
