//! Stage 1 brings `lo` up itself: checked in a fresh network namespace, where `lo` starts down.

mod common;

use std::process::Command;

use common::unshare::{inside, rerun_inside, Space};

#[test]
fn brings_loopback_up_in_a_new_network_namespace() {
    if !inside(Space::Net) {
        return rerun_inside(Space::Net, "brings_loopback_up_in_a_new_network_namespace");
    }
    let show = || {
        let o = Command::new("ip")
            .args(["-o", "link", "show", "lo"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(!show().contains(",UP"), "lo starts down: {}", show());
    lifsea_init::sys::netif::set_link_up("lo").unwrap();
    assert!(show().contains(",UP"), "lo is up: {}", show());
    let err = lifsea_init::sys::netif::set_link_up("nosuchif0").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
    assert!(lifsea_init::sys::netif::set_link_up("").is_err());
}
