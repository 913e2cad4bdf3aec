//! The devices subsystem fed from a socketpair, with a temporary /dev and /sys tree and a shell
//! script standing in for the module-loading helper.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

use super::*;
use crate::devices::power::{EV_KEY, KEY_POWER};
use crate::devices::uevent::encode;

struct Tree(PathBuf);
impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tree(tag: &str) -> Tree {
    let t = std::env::temp_dir().join(format!("lifsea-devsub-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&t);
    for d in [
        "dev/input",
        "sys/class/block",
        "sys/class/input",
        "run",
        "etc",
    ] {
        std::fs::create_dir_all(t.join(d)).unwrap();
    }
    Tree(t)
}

fn config(t: &Path, helper: Option<PathBuf>) -> DevicesConfig {
    DevicesConfig {
        dev_root: t.join("dev"),
        sys_root: t.join("sys"),
        run_dir: t.join("run"),
        helper,
        coldplug_all: false,
        device_timeout: Duration::from_secs(5),
        rules_files: vec![t.join("etc/devices.rules")],
        etc_dir: t.join("etc"),
        probe_helper: None,
        probe_timeout: Duration::from_secs(5),
    }
}

/// A datagram socketpair: the subsystem reads one end, the test writes the other.
fn pair() -> (UeventSocket, std::os::fd::OwnedFd) {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::Datagram,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    (UeventSocket::from_fd(a).unwrap(), b)
}

fn send(fd: &std::os::fd::OwnedFd, msg: &[u8]) {
    nix::sys::socket::send(
        std::os::fd::AsRawFd::as_raw_fd(fd),
        msg,
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
}

fn ext4(label: &str) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    b[1024 + 0x38..1024 + 0x3a].copy_from_slice(&0xEF53u16.to_le_bytes());
    b[1024 + 0x68..1024 + 0x78].copy_from_slice(&[0xab; 16]);
    b[1024 + 0x78..1024 + 0x78 + label.len()].copy_from_slice(label.as_bytes());
    b
}

fn facts(out: &[Notice]) -> Vec<String> {
    out.iter()
        .filter_map(|n| match n {
            Notice::FactReached(f) => Some(f.clone()),
            _ => None,
        })
        .collect()
}

/// Runs the subsystem until its socket is drained.
fn pump(d: &mut Devices, out: &mut Vec<Notice>) {
    let fd = d.poll_fds()[0].0;
    d.on_ready(fd, PollFlags::POLLIN, Instant::now(), out);
}

#[test]
fn hotplugged_disk_gets_links_facts_and_loses_them_on_remove() {
    let t = tree("disk");
    std::fs::write(
        t.0.join("etc/devices.rules"),
        "/dev/vdb 0640\n/dev/kvm 0666\n",
    )
    .unwrap();
    let (sock, peer) = pair();
    let mut d = Devices::new(config(&t.0, None), Some(sock));
    let mut out = Vec::new();
    assert!(d.deadline().is_some(), "coldplug is due at once");
    d.tick(Instant::now(), &mut out);
    // No helper: nothing to load, so coldplug is done at once.
    assert!(d.settled());
    assert!(facts(&out).contains(&"devices".to_string()));
    assert!(t.0.join("dev/fd").is_symlink());

    // The disk appears: sysfs entry and node first, then the uevent (the kernel's order).
    std::fs::create_dir_all(t.0.join("sys/class/block/vdb")).unwrap();
    std::fs::write(t.0.join("sys/class/block/vdb/serial"), "vol1\n").unwrap();
    std::fs::write(t.0.join("dev/vdb"), ext4("data")).unwrap();
    out.clear();
    send(
        &peer,
        &encode(
            "add",
            "/devices/pci0000:00/0000:00:05.0/virtio3/block/vdb",
            &[
                ("SUBSYSTEM", "block"),
                ("DEVNAME", "vdb"),
                ("DEVTYPE", "disk"),
            ],
        ),
    );
    send(&peer, b"add@/devices/x\0ACTION=add\0garbage\0");
    pump(&mut d, &mut out);
    let link = t.0.join("dev/disk/by-label/data");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("../../vdb"));
    assert!(t.0.join("dev/disk/by-id/virtio-vol1").is_symlink());
    let mode = std::fs::metadata(t.0.join("dev/vdb"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640, "the rule applied on add");
    let s = d.status();
    assert_eq!(s["uevents"]["handled"], 1);
    assert_eq!(s["uevents"]["dropped"], 1);
    assert_eq!(s["links"]["vdb"][1], "disk/by-label/data");

    // change: mkfs made a new filesystem with another label.
    std::fs::write(t.0.join("dev/vdb"), ext4("scratch")).unwrap();
    send(
        &peer,
        &encode(
            "change",
            "/devices/v/block/vdb",
            &[("SUBSYSTEM", "block"), ("DEVNAME", "vdb")],
        ),
    );
    pump(&mut d, &mut out);
    assert!(!link.is_symlink());
    assert!(t.0.join("dev/disk/by-label/scratch").is_symlink());

    send(
        &peer,
        &encode(
            "remove",
            "/devices/v/block/vdb",
            &[("SUBSYSTEM", "block"), ("DEVNAME", "vdb")],
        ),
    );
    pump(&mut d, &mut out);
    assert!(!t.0.join("dev/disk/by-label/scratch").is_symlink());
    assert!(!t.0.join("dev/disk/by-id/virtio-vol1").is_symlink());
    assert!(d.links().is_empty());
}

#[test]
fn drivers_requested_during_coldplug_wait_for_it_then_go_to_one_helper() {
    let t = tree("helper");
    let log = t.0.join("helper.log");
    let script = t.0.join("helper.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (sock, peer) = pair();
    let mut d = Devices::new(config(&t.0, Some(script)), Some(sock));
    let mut out = Vec::new();
    d.tick(Instant::now(), &mut out);
    assert!(!d.settled());
    let Coldplug::Running { pid, .. } = d.coldplug else {
        panic!("coldplug helper not running: {:?}", d.coldplug)
    };
    let reap = |pid: i32| {
        nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
    };
    reap(pid);
    send(
        &peer,
        &encode(
            "add",
            "/devices/pci0000:00/0000:00:05.0/virtio3",
            &[
                ("SUBSYSTEM", "virtio"),
                ("MODALIAS", "virtio:d00000002v00001AF4"),
            ],
        ),
    );
    pump(&mut d, &mut out);
    assert_eq!(d.queued, vec!["virtio:d00000002v00001AF4"]);
    assert!(!facts(&out).contains(&"devices".to_string()));
    // Someone else's child is not ours.
    assert!(!d.child_exited(pid + 100_000, ChildExit::Code(0), &mut out));
    assert!(d.child_exited(pid, ChildExit::Code(0), &mut out));
    assert!(d.settled());
    assert!(facts(&out).contains(&"devices".to_string()));
    assert!(out.iter().any(|n| matches!(n, Notice::Stamp { name, event: TimelineEvent::Ready, .. } if name == "coldplug")));
    let (&hp, _) = d.helpers.iter().next().expect("a hotplug helper");
    reap(hp);
    assert!(d.child_exited(hp, ChildExit::Code(1), &mut out));
    assert!(d.helpers.is_empty());
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        text,
        "modprobe --coldplug\nmodprobe --origin hotplug -q -a -- virtio:d00000002v00001AF4\n"
    );
    // After coldplug, a new device's driver is requested at once.
    send(
        &peer,
        &encode(
            "add",
            "/devices/x/virtio4",
            &[("MODALIAS", "virtio:d00000001v00001AF4")],
        ),
    );
    pump(&mut d, &mut out);
    assert_eq!(d.helpers.len(), 1);
    let (&hp, _) = d.helpers.iter().next().unwrap();
    reap(hp);
    // The load record is read back for `initctl devices`.
    std::fs::write(
        t.0.join("run").join(RECORD_FILE),
        "hotplug\tvirtio_blk\t1500\tok\tvirtio:d00000002v00001AF4\n",
    )
    .unwrap();
    assert_eq!(d.status()["modules"][0]["module"], "virtio_blk");
}

#[test]
fn power_button_found_on_hotplug_and_a_second_press_is_ignored() {
    let t = tree("power");
    let (sock, peer) = pair();
    let mut d = Devices::new(config(&t.0, None), Some(sock));
    let mut out = Vec::new();
    d.tick(Instant::now(), &mut out);
    assert!(d.power_buttons().is_empty());
    let caps = t.0.join("sys/class/input/event3/device/capabilities");
    std::fs::create_dir_all(&caps).unwrap();
    std::fs::write(caps.join("key"), "10000000000000 0\n").unwrap();
    let fifo = t.0.join("dev/input/event3");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Keep a writer open before the subsystem opens the reader, so it does not see end of file.
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    send(
        &peer,
        &encode(
            "add",
            "/devices/LNXSYSTM:00/LNXPWRBN:00/input/input3/event3",
            &[("SUBSYSTEM", "input"), ("DEVNAME", "input/event3")],
        ),
    );
    pump(&mut d, &mut out);
    assert_eq!(d.power_buttons(), vec!["event3"]);
    let fds = d.poll_fds();
    assert_eq!(fds.len(), 2);
    let button_fd = fds[1].0;
    let press = |mut w: &std::fs::File| {
        let mut r = vec![0u8; 16];
        r.extend_from_slice(&EV_KEY.to_ne_bytes());
        r.extend_from_slice(&KEY_POWER.to_ne_bytes());
        r.extend_from_slice(&1i32.to_ne_bytes());
        w.write_all(&r).unwrap();
    };
    out.clear();
    press(&rw);
    d.on_ready(button_fd, PollFlags::POLLIN, Instant::now(), &mut out);
    assert_eq!(out, vec![Notice::Shutdown(ShutdownKind::Poweroff)]);
    out.clear();
    press(&rw);
    d.on_ready(button_fd, PollFlags::POLLIN, Instant::now(), &mut out);
    assert!(
        out.is_empty(),
        "a second press does not start another shutdown"
    );
    // The device goes away.
    send(
        &peer,
        &encode(
            "remove",
            "/devices/x/event3",
            &[("SUBSYSTEM", "input"), ("DEVNAME", "input/event3")],
        ),
    );
    pump(&mut d, &mut out);
    assert!(d.power_buttons().is_empty());
}

#[test]
fn device_facts_are_reached_when_the_path_appears_or_fail_after_the_timeout() {
    let t = tree("facts");
    let (sock, peer) = pair();
    let mut d = Devices::new(config(&t.0, None), Some(sock));
    let mut out = Vec::new();
    let t0 = Instant::now();
    d.tick(t0, &mut out);
    out.clear();
    std::fs::write(t.0.join("dev/kvm"), "").unwrap();
    let wanted = vec![
        "devices".to_string(),
        "device:/dev/kvm".to_string(),
        "device:/dev/disk/by-label/data".to_string(),
        "device:/dev/disk/by-label/never".to_string(),
    ];
    d.facts_wanted(&wanted, t0, &mut out);
    assert_eq!(
        facts(&out),
        vec!["device:/dev/kvm"],
        "present at once; others wait"
    );
    assert_eq!(d.deadline(), Some(t0 + Duration::from_secs(5)));
    out.clear();
    std::fs::create_dir_all(t.0.join("sys/class/block/vdb")).unwrap();
    std::fs::write(t.0.join("dev/vdb"), ext4("data")).unwrap();
    send(
        &peer,
        &encode(
            "add",
            "/devices/v/block/vdb",
            &[("SUBSYSTEM", "block"), ("DEVNAME", "vdb")],
        ),
    );
    pump(&mut d, &mut out);
    d.tick(t0 + Duration::from_secs(1), &mut out);
    assert_eq!(facts(&out), vec!["device:/dev/disk/by-label/data"]);
    out.clear();
    d.tick(t0 + Duration::from_secs(5), &mut out);
    assert_eq!(
        out,
        vec![Notice::FactFailed {
            fact: "device:/dev/disk/by-label/never".into(),
            reason: "/dev/disk/by-label/never did not appear within 5 s".into()
        }]
    );
    assert_eq!(d.deadline(), None);
    // Offered again later (a reload added a unit that wants it): watched with a fresh timeout.
    out.clear();
    d.facts_wanted(
        &["device:/dev/disk/by-label/never".to_string()],
        t0 + Duration::from_secs(6),
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(d.deadline(), Some(t0 + Duration::from_secs(11)));
}
