//! A panic inside PID 1's event loop loses nothing (issue 12, finding 3). Panics are injected at
//! named points (`LIFSEA_FAULT`, only in a build with `--features fault-injection`); the init must
//! log them, rebuild what they lost (spawns, timers, reaped exits, stops) and go on.
//! Needs root (unshare):
//! `cargo test --release --features fault-injection --test ns_faults` (tests/run.sh runs it so).
//! Without the feature the init has no injection points, so the file compiles to nothing.
#![cfg(feature = "fault-injection")]

mod common;

use std::time::{Duration, Instant};

use common::Ns;

const T: Duration = Duration::from_secs(20);

/// The starts of a boot whose dispatch panicked after the core moved every unit to `starting`
/// (the spawn actions were lost): before the fix the panic escaped the init.
#[test]
fn ns_panic_in_boot_dispatch_loses_no_start() {
    let mut ns = Ns::new("fault-boot");
    ns.env("LIFSEA_FAULT", "after:boot");
    ns.unit(
        "daemon",
        r#"exec = ["/bin/sh", "-c", "echo up > @OUT@/daemon; exec sleep 100"]
"#,
    );
    ns.unit(
        "once",
        r#"type = "oneshot"
exec = ["/bin/sh", "-c", "echo done > @OUT@/once"]
"#,
    );
    ns.start();
    assert!(
        ns.wait_for(T, || !ns.read("daemon").is_empty()
            && !ns.read("once").is_empty()),
        "{}",
        ns.log()
    );
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    assert!(
        ns.log().contains("injected fault after:boot"),
        "{}",
        ns.log()
    );
    ns.stop(T);
}

/// A panic while dispatching a reaped exit: the exit must not be lost (the unit restarts).
#[test]
fn ns_panic_on_a_reaped_exit_still_restarts_the_unit() {
    let mut ns = Ns::new("fault-exit");
    ns.env("LIFSEA_FAULT", "before:exited:crashy");
    ns.unit(
        "crashy",
        r#"restart = "always"
exec = ["/bin/sh", "-c", "echo run >> @OUT@/crashy; sleep 0.3; exit 1"]
"#,
    );
    ns.start();
    assert!(
        ns.wait_for(T, || ns.lines("crashy").len() >= 3),
        "runs: {}\n{}",
        ns.lines("crashy").len(),
        ns.log()
    );
    assert!(
        ns.log().contains("injected fault before:exited:crashy"),
        "{}",
        ns.log()
    );
    ns.stop(T);
}

/// A panic right after the core began the shutdown (signals and stop timers lost): the shutdown
/// must still end, at the latest by the unit's stop-timeout escalation.
#[test]
fn ns_panic_at_shutdown_still_ends_in_time() {
    let mut ns = Ns::new("fault-shutdown");
    ns.env("LIFSEA_FAULT", "after:shutdown");
    ns.unit(
        "svc",
        r#"stop-timeout = "1s"
exec = ["/bin/sh", "-c", "echo up > @OUT@/svc; exec sleep 100"]
"#,
    );
    ns.start();
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    let asked = Instant::now();
    ns.stop(Duration::from_secs(15));
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        asked.elapsed()
    );
    assert!(
        ns.log().contains("injected fault after:shutdown"),
        "{}",
        ns.log()
    );
}
