//! Text the kernel hands the init from /proc and cgroupfs: mountinfo, /proc/PID/cgroup,
//! /proc/PID/stat, /proc/swaps, cgroup.events, cpu.stat, cgroup.procs, cgroup.controllers; plus
//! the ostree deployment path resolved from `ostree=`. Read lossily from bytes, since a process
//! name in /proc/PID/stat or a mount path can hold any byte.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lifsea_init::boot::ostree::parse_deployment_path;
use lifsea_init::procfs::{is_mounted, parse_mountinfo, parse_proc_cgroup, parse_stat_ppid};
use lifsea_init::supervisor::cgroup::{
    controllers_to_enable, parse_cpu_usage, parse_populated, parse_procs, pick_cgroup2,
};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mounts = parse_mountinfo(&text);
    assert!(mounts.len() <= text.lines().count());
    for m in mounts.iter().take(4) {
        assert!(is_mounted(&text, &m.mount_point));
    }
    if let Some(p) = pick_cgroup2(&mounts) {
        assert!(mounts
            .iter()
            .any(|m| Path::new(&m.mount_point) == p && m.fs_type == "cgroup2"));
    }
    if let Some(cg) = parse_proc_cgroup(&text) {
        assert_eq!(cg, cg.trim());
    }
    let _ = parse_stat_ppid(&text);
    let _ = lifsea_init::node::parse_swaps(&text);
    let _ = parse_populated(&text);
    let _ = parse_cpu_usage(&text);
    let _ = parse_procs(&text);
    let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
    for c in controllers_to_enable(a, b) {
        assert!(a.split_whitespace().any(|w| w == c));
        assert!(!b.split_whitespace().any(|w| w == c));
    }
    let wanted: Vec<String> = b.split_whitespace().take(8).map(str::to_string).collect();
    let (have, missing) = lifsea_init::node::split_controllers(&wanted, a);
    assert_eq!(have.len() + missing.len(), wanted.len());
    if let Some(d) = parse_deployment_path(Path::new(a)) {
        assert!(!d.stateroot.contains('/') && !d.checksum.contains('/'));
        assert_eq!(d.path, Path::new(a));
    }
});
