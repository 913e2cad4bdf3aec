//! The init keeps its promises when its own sockets cannot be made (issue 12, finding 6): a run
//! directory whose socket paths exceed the 108 bytes of `sun_path` used to make it retry the
//! notify bind every second forever, with SIGTERM blocked and no child reaped. It must boot its
//! units without sd_notify and still obey signals. Needs root (unshare).

mod common;

use std::time::{Duration, Instant};

use common::Ns;

const T: Duration = Duration::from_secs(20);

#[test]
fn ns_unbindable_notify_socket_degrades_and_still_obeys_sigterm() {
    let mut ns = Ns::new("degraded");
    let long = ns.root.join("r".repeat(120));
    std::fs::create_dir_all(&long).unwrap();
    assert!(long.join("notify.sock").as_os_str().len() > 108);
    ns.run = long;
    ns.unit(
        "worker",
        r#"exec = ["/bin/sh", "-c", "echo up > @OUT@/worker; exec sleep 100"]
"#,
    );
    ns.unit(
        "once",
        r#"type = "oneshot"
exec = ["/bin/sh", "-c", "for i in 1 2 3; do (true &); done; echo done > @OUT@/once"]
"#,
    );
    ns.start();
    assert!(
        ns.wait_for(T, || !ns.read("worker").is_empty()
            && !ns.read("once").is_empty()),
        "{}",
        ns.log()
    );
    assert!(ns.wait_log(T, "boot complete in"), "{}", ns.log());
    assert!(ns.log().contains("notify.sock"), "{}", ns.log());
    let asked = Instant::now();
    ns.stop(Duration::from_secs(10));
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
}
