//! The kernel's uevent socket for real, in a network namespace of the test's own (root): creating
//! a veth pair there makes the kernel send `add` uevents for both interfaces to that namespace's
//! sockets only; the devices subsystem reads and counts them; a message forged by a user-space
//! sender is reported as foreign and dropped.

use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::{Duration, Instant};

use lifsea_init::devices::subsystem::{Devices, DevicesConfig};
use lifsea_init::devices::uevent::{self, MAX_UEVENT_LEN};
use lifsea_init::supervisor::subsystem::{PollFlags, Subsystem};
use lifsea_init::sys::uevent_socket::{Received, UeventSocket};
use nix::sys::socket::{
    sendto, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

/// Runs `f` on a thread that has entered a new network namespace (namespaces are per thread, and
/// children forked from that thread inherit it).
fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("unshare(CLONE_NEWNET): these tests need root");
        f()
    })
    .join()
    .expect("namespace thread panicked")
}

fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("run ip");
    assert!(st.success(), "ip {args:?} failed");
}

/// Receives until `want` matches a parsed message or two seconds pass; returns what was seen.
fn receive_until(sock: &UeventSocket, want: impl Fn(&uevent::Uevent) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; MAX_UEVENT_LEN + 1];
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(2) {
        match sock.receive(&mut buf).expect("receive") {
            Received::Message(n) => {
                if let Ok(ev) = uevent::parse(&buf[..n]) {
                    seen.push(format!("{:?} {}", ev.action, ev.devpath));
                    if want(&ev) {
                        return seen;
                    }
                }
            }
            Received::Foreign(pid) => seen.push(format!("foreign {pid}")),
            Received::Empty => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    panic!("the awaited uevent did not come; saw {seen:?}");
}

#[test]
fn kernel_uevents_arrive_and_forged_ones_are_foreign() {
    in_new_netns(|| {
        let sock = UeventSocket::open_kernel().expect("open the uevent socket");
        ip(&[
            "link", "add", "lsa0", "type", "veth", "peer", "name", "lsb0",
        ]);
        let seen = receive_until(&sock, |ev| {
            ev.action == uevent::Action::Add
                && ev.subsystem() == Some("net")
                && ev.get("INTERFACE") == Some("lsb0")
        });
        assert!(!seen.iter().any(|s| s.starts_with("foreign")), "{seen:?}");

        // A user-space sender to the same group: dropped as foreign (its port id is not 0).
        let forger = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkKObjectUEvent,
        )
        .expect("forger socket");
        let msg = uevent::encode(
            "add",
            "/devices/forged",
            &[("SUBSYSTEM", "block"), ("DEVNAME", "sda")],
        );
        sendto(
            forger.as_raw_fd(),
            &msg,
            &NetlinkAddr::new(0, 1),
            MsgFlags::empty(),
        )
        .expect("send a forged uevent (needs CAP_NET_ADMIN)");
        let mut buf = vec![0u8; MAX_UEVENT_LEN + 1];
        let t0 = Instant::now();
        loop {
            match sock.receive(&mut buf).expect("receive") {
                Received::Foreign(pid) => {
                    assert_ne!(pid, 0);
                    break;
                }
                Received::Message(n) => {
                    let ev = uevent::parse(&buf[..n]).ok();
                    assert!(
                        ev.as_ref().map_or(true, |e| e.devpath != "/devices/forged"),
                        "a forged message was taken for the kernel's"
                    );
                }
                Received::Empty => {
                    assert!(
                        t0.elapsed() < Duration::from_secs(2),
                        "the forged message never came"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    });
}

#[test]
fn devices_subsystem_reads_the_kernel_socket() {
    in_new_netns(|| {
        let t = std::env::temp_dir().join(format!("lifsea-uevent-ns-{}", std::process::id()));
        for d in ["dev", "sys/class/block", "run", "etc"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        let cfg = DevicesConfig {
            dev_root: t.join("dev"),
            sys_root: t.join("sys"),
            run_dir: t.join("run"),
            helper: None,
            coldplug_all: false,
            device_timeout: Duration::from_secs(5),
            rules_files: vec![],
            etc_dir: t.join("etc"),
            probe_helper: None,
            probe_timeout: Duration::from_secs(5),
        };
        let sock = UeventSocket::open_kernel().expect("open the uevent socket");
        let mut d = Devices::new(cfg, Some(sock));
        let mut out = Vec::new();
        d.tick(Instant::now(), &mut out);
        ip(&[
            "link", "add", "lsc0", "type", "veth", "peer", "name", "lsd0",
        ]);
        let fd = d.poll_fds()[0].0;
        let t0 = Instant::now();
        while d.status()["uevents"]["handled"].as_u64().unwrap_or(0) < 2 {
            assert!(
                t0.elapsed() < Duration::from_secs(2),
                "status: {}",
                d.status()
            );
            d.on_ready(fd, PollFlags::POLLIN, Instant::now(), &mut out);
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(d.status()["uevents"]["dropped"], 0);
        let _ = std::fs::remove_dir_all(&t);
    });
}
