//! machine-id on first boot and after, sysctl.d application with overrides and bad lines, and
//! coldplug's modalias walk over a sysfs-shaped tree matched against the real Debian aliases.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lifsea_init::boot::machine::{apply_sysctl, ensure_machine_id, valid_machine_id, MachineError};
use lifsea_init::devices::coldplug::{collect_modaliases, wanted_modules, SKIPPED_BY_DEFAULT};
use lifsea_init::devices::modalias::parse_aliases;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lifsea-machine-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn machine_id_is_generated_once_and_kept() {
    let etc = tmpdir("mid");
    for random in [Some(Path::new("/dev/urandom")), None] {
        let _ = std::fs::remove_file(etc.join("machine-id"));
        let (id, new) = ensure_machine_id(&etc, random).unwrap();
        assert!(new);
        assert!(valid_machine_id(&id), "{id}");
        assert_eq!(
            std::fs::read_to_string(etc.join("machine-id")).unwrap(),
            format!("{id}\n")
        );
        let (again, new_again) = ensure_machine_id(&etc, random).unwrap();
        assert_eq!((again.as_str(), new_again), (id.as_str(), false));
    }
    // Empty (an image built with `: > /etc/machine-id`) and systemd's "uninitialized" get replaced.
    let mut seen = BTreeSet::new();
    for old in ["", "uninitialized\n"] {
        std::fs::write(etc.join("machine-id"), old).unwrap();
        let (id, new) = ensure_machine_id(&etc, None).unwrap();
        assert!(new && valid_machine_id(&id));
        seen.insert(id);
    }
    assert_eq!(seen.len(), 2, "two generations give two different ids");
    // An /etc that cannot be written is reported, not a panic (root ignores modes: here "/etc"
    // is a regular file, so no directory can be made there either).
    let err = ensure_machine_id(&etc.join("machine-id"), None).unwrap_err();
    assert!(matches!(err, MachineError::WriteMachineId { .. }));
    std::fs::remove_dir_all(&etc).unwrap();
}

#[test]
fn sysctl_admin_overrides_vendor_and_reports_bad_lines() {
    let d = tmpdir("sysctl");
    let vendor = d.join("usr/lib/lifsea/sysctl.d");
    let admin = d.join("etc/lifsea/sysctl.d");
    let proc_sys = d.join("proc/sys");
    std::fs::create_dir_all(&vendor).unwrap();
    std::fs::create_dir_all(&admin).unwrap();
    for k in ["net/ipv4/ip_forward", "vm/swappiness", "kernel/pid_max"] {
        let p = proc_sys.join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, "0\n").unwrap();
    }
    std::fs::write(
        vendor.join("10-node.conf"),
        "net.ipv4.ip_forward = 1\nvm.swappiness = 60\n",
    )
    .unwrap();
    std::fs::write(vendor.join("20-k8s.conf"), "kernel.pid_max = 4194304\n").unwrap();
    // Same name in /etc replaces the vendor file entirely.
    std::fs::write(
        admin.join("10-node.conf"),
        "vm.swappiness=10\nthis is wrong\n-net.nope.missing = 1\nnet.missing.key = 2\n",
    )
    .unwrap();
    std::fs::write(admin.join("README"), "not a .conf file = 1\n").unwrap();
    let (applied, errors) = apply_sysctl(&[vendor.clone(), admin.clone()], &proc_sys);
    let read = |k: &str| std::fs::read_to_string(proc_sys.join(k)).unwrap();
    assert_eq!(read("vm/swappiness"), "10\n");
    assert_eq!(
        read("net/ipv4/ip_forward"),
        "0\n",
        "vendor 10-node.conf was overridden as a whole"
    );
    assert_eq!(read("kernel/pid_max"), "4194304\n");
    assert_eq!(applied, 2);
    let msgs: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].starts_with(&format!("{}:2: ", admin.join("10-node.conf").display())),
        "{msgs:?}"
    );
    assert!(msgs[1].contains("net.missing.key"), "{msgs:?}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn coldplug_finds_modaliases_and_matching_modules() {
    let d = tmpdir("coldplug");
    let sys = d.join("sys");
    // Like sysfs: devices live under devices/, each bus lists its devices as symlinks.
    let dev = |path: &str, bus: &str, alias: &str| {
        let dir = sys.join("devices").join(path);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("modalias"), format!("{alias}\n")).unwrap();
        let links = sys.join("bus").join(bus).join("devices");
        std::fs::create_dir_all(&links).unwrap();
        let name = path.rsplit('/').next().unwrap();
        std::os::unix::fs::symlink(&dir, links.join(name)).unwrap();
    };
    dev(
        "pci0000:00/0000:00:02.0",
        "pci",
        "pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00",
    );
    dev(
        "pci0000:00/0000:00:02.0/virtio0",
        "virtio",
        "virtio:d00000001v00001AF4",
    );
    dev(
        "pci0000:00/0000:00:03.0/virtio1",
        "virtio",
        "virtio:d00000002v00001AF4",
    );
    dev("platform/unknown", "platform", "platform:nothing-matches");
    let input = sys.join("devices/LNXSYSTM:00/LNXPWRBN:00/input/input2");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("modalias"),
        "input:b0019v0000p0001e0000-e0,1,k74,ramlsfw\n",
    )
    .unwrap();
    std::fs::create_dir_all(sys.join("class/input")).unwrap();
    std::os::unix::fs::symlink(&input, sys.join("class/input/input2")).unwrap();
    // A modalias file of a device on no bus is not a device coldplug knows about.
    std::fs::create_dir_all(sys.join("devices/virtual/x")).unwrap();
    std::fs::write(
        sys.join("devices/virtual/x/modalias"),
        "virtio:d00000009v0\n",
    )
    .unwrap();
    let aliases = collect_modaliases(&sys);
    assert_eq!(aliases.len(), 5, "{aliases:?}");
    let table = parse_aliases(
        "alias virtio:d00000001v* virtio_net\nalias virtio:d00000002v* virtio_blk\n\
         alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci\n",
    );
    let want = wanted_modules(
        &table,
        &aliases,
        &["virtio_blk".to_string()],
        SKIPPED_BY_DEFAULT,
    );
    assert_eq!(
        want,
        vec!["virtio_pci", "virtio_net"],
        "blacklisted virtio_blk is left out"
    );
    // The CPU's modalias selects modules only when asked for.
    std::fs::create_dir_all(sys.join("devices/system/cpu")).unwrap();
    std::fs::write(
        sys.join("devices/system/cpu/modalias"),
        "cpu:type:x86,ven0002fam0017mod0031:feature:,0000,0001,00E8\n",
    )
    .unwrap();
    let table = parse_aliases("alias cpu:type:x86,ven*fam*mod*:feature:*00E8* kvm_amd\n");
    let aliases = collect_modaliases(&sys);
    assert_eq!(aliases.len(), 6);
    assert!(wanted_modules(&table, &aliases, &[], SKIPPED_BY_DEFAULT).is_empty());
    assert_eq!(wanted_modules(&table, &aliases, &[], &[]), vec!["kvm_amd"]);
    std::fs::remove_dir_all(&d).unwrap();
}

/// On this machine's real sysfs, reading through /sys/bus finds exactly what a full walk of
/// /sys/devices finds (`find`), in a fraction of the directory reads.
#[test]
fn bus_walk_matches_a_full_sysfs_walk() {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("find /sys/devices -name modalias -type f -exec cat {} + 2>/dev/null")
        .output()
        .unwrap();
    let full: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    assert!(!full.is_empty());
    let ours: BTreeSet<String> = collect_modaliases(Path::new("/sys")).into_iter().collect();
    assert_eq!(ours, full);
}
