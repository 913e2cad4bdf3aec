//! Stage 1 brings `lo` up itself: checked in a fresh network namespace, where `lo` starts down.

use std::process::Command;

#[test]
fn brings_loopback_up_in_a_new_network_namespace() {
    if std::env::var_os("LIFSEA_IN_NET_NS").is_none() {
        let out = Command::new("timeout")
            .args(["60", "unshare", "--net"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "brings_loopback_up_in_a_new_network_namespace",
                "--nocapture",
            ])
            .env("LIFSEA_IN_NET_NS", "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
        return;
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
