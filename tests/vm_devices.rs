//! VM test of devices without udev (docs/devices.md), on the tiny image in direct mode: the guest
//! checker's device checks (by-label link of the root, `devices` reached, power button found,
//! blacklisted module not loaded, overlay mount answered by the init's modprobe), then, driven
//! through the QEMU monitor: a hot-added virtio-blk disk gets virtio_blk loaded and its by-label
//! link within 1 s, the link goes away after `device_del`, and `system_powerdown` (the ACPI power
//! button) powers the guest off in order with a clean filesystem.
//!
//! `#[ignore]`d for a plain `cargo test`, like tests/vm_boot.rs; tests/run.sh runs it.

mod vm_support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vm_support::*;

const DEVICE_CHECKS: &[&str] = &[
    "dev-disk-by-label",
    "devices-fact",
    "power-button",
    "modprobe-blacklist",
    "kernel-modprobe",
    "hotplug-link",
    "hotplug-remove",
];

/// Waits until the console log has a line starting with `marker`; panics with the log on timeout.
fn wait_for(log: &Path, marker: &str, limit: Duration) {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read(log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if text.lines().any(|l| l.starts_with(marker)) {
            return;
        }
        assert!(
            t0.elapsed() < limit,
            "no {marker} on the console within {limit:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends one human-monitor command and returns what QEMU answered before its next prompt.
fn monitor(sock: &Path, cmd: &str) -> String {
    let mut s = UnixStream::connect(sock).expect("connect to the QEMU monitor");
    s.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut buf = [0u8; 4096];
    let mut text = String::new();
    // The banner ends with the first prompt.
    while !text.contains("(qemu)") {
        let n = s.read(&mut buf).expect("read the monitor banner");
        assert!(n > 0, "monitor closed: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    s.write_all(format!("{cmd}\n").as_bytes())
        .expect("write to the monitor");
    let mut reply = String::new();
    while reply.matches("(qemu)").count() < 1 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => reply.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    reply
}

#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn hotplug_links_blacklist_kernel_modprobe_and_power_button() {
    assert_ne!(
        init_kind(),
        "standin",
        "devices belong to the real init: run this test without LIFSEA_VM_INIT=standin"
    );
    let image = image("tiny", "direct");
    let work = WorkDir::new("devices");
    let disk = work.copy_disk(&image);
    let hot = work.path("hot.img");
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-L", "lifsea-hot"])
        .arg(&hot)
        .arg("16M")
        .status()
        .expect("run mkfs.ext4");
    assert!(st.success(), "mkfs.ext4 failed");
    let log = work.path("console.log");
    let sock = work.path("monitor.sock");
    let qemu = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/qemu/boot.sh"))
        .args(["--timeout", &boot_timeout(), "--log"])
        .arg(&log)
        .arg("--monitor")
        .arg(&sock)
        .args(["--append", "vmtest.hotplug"])
        .arg(&disk)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start qemu/boot.sh");
    let limit = Duration::from_secs(200);

    wait_for(&log, "HOTPLUG-WAIT", limit);
    let r = monitor(
        &sock,
        &format!(
            "drive_add 0 if=none,id=hot0,format=raw,file={}",
            hot.display()
        ),
    );
    assert!(r.contains("OK"), "drive_add: {r}");
    let r = monitor(
        &sock,
        "device_add virtio-blk-pci,drive=hot0,id=hot0,bus=hotport",
    );
    assert!(!r.contains("Error"), "device_add: {r}");

    wait_for(&log, "HOTPLUG-REMOVE-WAIT", limit);
    let r = monitor(&sock, "device_del hot0");
    assert!(!r.contains("Error"), "device_del: {r}");

    wait_for(&log, "POWERDOWN-WAIT", limit);
    let pressed = Instant::now();
    monitor(&sock, "system_powerdown");
    let out = qemu.wait_with_output().expect("wait for qemu/boot.sh");
    let shutdown = pressed.elapsed();
    let console = std::fs::read(&log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let run = Run {
        console,
        exit: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    run.assert_no_panic();
    run.assert_checks_pass(DEVICE_CHECKS);
    run.assert_powered_off();
    eprintln!(
        "power button to QEMU exit: {} ms; {}",
        shutdown.as_millis(),
        run.console
            .lines()
            .find(|l| l.starts_with("CHECK-INFO hotplug-link-ms="))
            .unwrap_or("")
    );
    assert_fsck_clean(&disk);
}
