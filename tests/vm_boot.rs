//! VM tests: boot real Debian cloud kernels in QEMU (TCG) on ostree disk images built with the real
//! ostree CLI, and judge the boot by what the guest checker (tests/vm/check.sh, run as a unit) prints
//! on the serial console, plus `e2fsck -fn` on the image after poweroff.
//!
//! They take minutes and download a kernel package, so they are `#[ignore]`d for a plain
//! `cargo test` and run by tests/run.sh (`--include-ignored`), which CI calls. `LIFSEA_VM_INIT=standin` boots the
//! busybox stand-in init instead of lifsea-init, to check the harness itself.

mod vm_support;

use vm_support::*;

/// Checks every image must pass (names as check.sh prints them).
const BASE_CHECKS: &[&str] = &[
    "usr-readonly",
    "writable-etc",
    "writable-var",
    "mount:/",
    "mount:/usr",
    "mount:/var",
    "mount:/sysroot",
    "mount:/boot",
    "mount:/proc",
    "mount:/sys",
    "mount:/dev",
    "mount:/run",
    "mount:/sys/fs/cgroup",
    // After containerd's spawn (boot::late_mounts): the checker is ordered after `mounts`.
    "mount:/dev/pts",
    "mount:/dev/shm",
    "mount:/dev/mqueue",
    "mount:/sys/kernel/security",
    "mount:/sys/fs/bpf",
    "netdev-virtio",
    "sysroot-physical",
    "ostree-booted",
    "cmdline-ostree",
    "control-api",
    "net-online",
    "net-address",
    "net-default-route",
    "net-resolv",
    "net-online-unit",
];

/// Two boots of one disk: everything passes both times, the /var marker of boot 1 is seen in
/// boot 2, poweroff is orderly and leaves a clean filesystem each time.
fn boot_twice(image: &Image, name: &str) {
    let work = WorkDir::new(name);
    let disk = work.copy_disk(image);
    for boot in 1..=2 {
        let run = boot_disk(
            image,
            &disk,
            &work.path(&format!("console-{boot}.log")),
            &[],
        );
        run.assert_no_panic();
        run.assert_checks_pass(BASE_CHECKS);
        assert!(
            run.console.contains(&format!("CHECK-INFO boot={boot}")),
            "boot {boot}: checker saw another boot count\n{}",
            run.tail()
        );
        if boot == 2 {
            run.assert_checks_pass(&["var-persist"]);
        }
        run.assert_powered_off();
        assert_fsck_clean(&disk);
    }
}

#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn direct_mode_nvme_boots_to_checker_twice() {
    boot_twice(&image("tiny", "direct"), "direct");
}

#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn initramfs_mode_virtio_blk_boots_to_checker_twice() {
    boot_twice(&image("tiny", "initramfs"), "initramfs");
}

/// The Debian image (containerd, runc, real ostree CLI): the booted deployment is the one
/// `ostree admin status` marks, which needs /run/ostree-booted and / being the deployment itself.
#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn debian_image_ostree_admin_status_marks_booted_deployment() {
    let image = image("debian", "direct");
    let work = WorkDir::new("debian");
    let disk = work.copy_disk(&image);
    let run = boot_disk(&image, &disk, &work.path("console.log"), &[]);
    run.assert_no_panic();
    let mut checks = BASE_CHECKS.to_vec();
    checks.push("ostree-status");
    checks.push("containerd");
    // A Kubernetes node (issue 10, docs/node.md): node-prep's modules, sysctls, controllers down to
    // /kubepods; a ctr container from a local rootfs in /kubepods; kill -9 of containerd restarts
    // it with the container's task still running; the poweroff below happens with it running.
    checks.extend(["node-prep", "ctr-run", "ctr-survives-restart"]);
    // The ops container (`initctl ops`): the host's hostname through /host, the exit status, the
    // host's pid namespace, nothing left in containerd, the session log. Then the kubelet stand-in
    // through the shipped unit: skipped, started once its config appears, ready by /healthz.
    checks.extend([
        "ops-hostname",
        "ops-exit-status",
        "ops-session-log",
        "kubelet-skipped",
        "kubelet-standin",
    ]);
    // The figures for docs/node.md (containerd ready, its restart, kubelet ready, ops -- true),
    // shown with --nocapture.
    for l in run.console.lines().filter(|l| {
        l.starts_with("CHECK-INFO containerd-ready-at")
            || l.starts_with("CHECK-INFO kubelet-ready-at")
            || l.starts_with("CHECK-INFO ops-true-ms")
            || l.starts_with("CHECK ctr-")
            || l.starts_with("CHECK ops-")
            || l.starts_with("CHECK kubelet-")
            || l.starts_with("CHECK node-prep")
            || l.contains("node's containers")
            || l.contains("[ STOP ]")
    }) {
        eprintln!("{l}");
    }
    run.assert_checks_pass(&checks);
    run.assert_powered_off();
    // Node shutdown: kubelet stops before containerd; the container left running below /kubepods
    // is stopped by stage 3's bounded drain, nothing left, before the disk is unmounted. The last
    // occurrences: containerd was also stopped once by the kill -9 check.
    let at = |needle: &str| {
        run.console
            .rfind(needle)
            .unwrap_or_else(|| panic!("no {needle:?} on the console\n{}", run.tail()))
    };
    assert!(
        at("[ STOP ] kubelet") < at("[ STOP ] containerd"),
        "containerd stopped before kubelet\n{}",
        run.tail()
    );
    assert!(at("stopping the node's containers: kubepods") > at("[ STOP ] containerd"));
    // `sleep` as a container's pid 1 ignores SIGTERM (no handler), so cgroup.kill ends it after
    // the bound: either way the groups are empty before unmount.
    assert!(
        run.console.contains("the node's containers stopped in")
            || run.console.contains("the node's containers killed in"),
        "the node's containers were not stopped within the bound\n{}",
        run.tail()
    );
    assert!(!run.console.contains("left in the node's cgroups"));
    assert_fsck_clean(&disk);
    // Boot 2 of the same disk: kubelet's config and admin unit are there from boot 1, so the
    // stand-in comes up at boot, after containerd: the two figures of one boot for docs/node.md.
    let run = boot_disk(
        &image,
        &disk,
        &work.path("console-2.log"),
        &["--append", "vmtest.figures"],
    );
    run.assert_no_panic();
    for l in run
        .console
        .lines()
        .filter(|l| l.starts_with("CHECK-INFO boot-figures"))
    {
        eprintln!("{l}");
    }
    run.assert_checks_pass(&["kubelet-at-boot"]);
    run.assert_powered_off();
    assert_fsck_clean(&disk);
}

/// A reboot asked of PID 1 (SIGTERM) is orderly too: QEMU ends on the kernel's restart (`-no-reboot`),
/// the filesystem is clean, and the next boot (started by the harness) sees boot 1's /var marker.
#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn reboot_is_orderly_and_next_boot_sees_var() {
    let image = image("tiny", "direct");
    let work = WorkDir::new("reboot");
    let disk = work.copy_disk(&image);
    let run = boot_disk(
        &image,
        &disk,
        &work.path("console-1.log"),
        &["--append", "vmtest.reboot"],
    );
    run.assert_no_panic();
    run.assert_checks_pass(BASE_CHECKS);
    assert!(
        !run.timed_out(),
        "QEMU ran into the timeout\n{}",
        run.tail()
    );
    assert!(
        run.console.contains("reboot: Restarting system"),
        "no kernel restart message\n{}",
        run.tail()
    );
    assert_fsck_clean(&disk);
    let run = boot_disk(&image, &disk, &work.path("console-2.log"), &[]);
    run.assert_checks_pass(&["var-persist"]);
    assert!(
        run.console.contains("CHECK-INFO boot=2"),
        "second boot did not count 2\n{}",
        run.tail()
    );
    run.assert_powered_off();
    assert_fsck_clean(&disk);
}

/// The harness plays the bootloader: after a second deploy it boots the newest entry (the one the
/// second deploy wrote, with the boot links flipped), and the init assembles that deployment.
#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn newest_of_two_deployments_is_booted() {
    let image = image_with("tiny", "direct", &["--deploys", "2"]);
    let entry = std::fs::read_to_string(image.dir.join("entry.conf")).expect("read entry.conf");
    assert!(
        entry.contains("vmtest.deploy=2"),
        "the newest entry is not the second deploy's:\n{entry}"
    );
    let work = WorkDir::new("two-deploys");
    let disk = work.copy_disk(&image);
    let run = boot_disk(&image, &disk, &work.path("console.log"), &[]);
    run.assert_no_panic();
    run.assert_checks_pass(BASE_CHECKS);
    let cmdline = run
        .console
        .lines()
        .find(|l| l.starts_with("CHECK cmdline-ostree:"))
        .unwrap_or_default();
    let ostree_arg = entry
        .split_whitespace()
        .find(|w| w.starts_with("ostree="))
        .expect("ostree= in the entry");
    assert!(
        cmdline.contains(ostree_arg),
        "booted with another ostree= than the newest entry's\n{}",
        run.tail()
    );
    // ostree numbers deployments of one commit .0, .1, ...: the second deploy made .1.
    let deployment = run
        .console
        .lines()
        .find_map(|l| l.strip_prefix("CHECK-INFO deployment="))
        .unwrap_or_default();
    assert!(
        deployment.ends_with(".1"),
        "/ is {deployment:?}, not the second deployment\n{}",
        run.tail()
    );
    run.assert_powered_off();
    assert_fsck_clean(&disk);
}

/// A wrong `ostree=` must be reported on the console (naming the path) within the timeout, without
/// a kernel panic: no hang, no panic loop.
#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn wrong_ostree_argument_gives_clear_message_without_hang() {
    let bad =
        "/ostree/boot.1/lifsea/0000000000000000000000000000000000000000000000000000000000000000/0";
    for mode in ["direct", "initramfs"] {
        let image = image("tiny", mode);
        let work = WorkDir::new(&format!("bad-ostree-{mode}"));
        let disk = work.copy_disk(&image);
        let run = boot_disk(
            &image,
            &disk,
            &work.path("console.log"),
            &[
                "--ostree",
                bad,
                "--until",
                "0000000000000000000000000000000000000000",
            ],
        );
        let line = run.init_line_mentioning(bad);
        assert!(
            line.is_some(),
            "{mode}: no console line from the init names the bad ostree= path\n{}",
            run.tail()
        );
        assert!(
            !run.timed_out(),
            "{mode}: QEMU ran into the timeout\n{}",
            run.tail()
        );
        run.assert_no_panic();
        assert!(
            !run.console.contains("CHECKS-DONE"),
            "{mode}: the checker ran on a wrong ostree="
        );
    }
}

/// Initramfs mode without the root disk: stage 0 waits a bounded time and says which root it
/// waited for.
#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn missing_root_disk_in_initramfs_mode_gives_clear_message() {
    let image = image("tiny", "initramfs");
    let work = WorkDir::new("no-disk");
    let disk = work.copy_disk(&image);
    let run = boot_disk(
        &image,
        &disk,
        &work.path("console.log"),
        &["--no-disk", "--until", "LABEL=lifsea-root"],
    );
    let line = run.init_line_mentioning("LABEL=lifsea-root");
    assert!(
        line.is_some(),
        "no console line from the init names the missing root LABEL=lifsea-root\n{}",
        run.tail()
    );
    assert!(
        !run.timed_out(),
        "QEMU ran into the timeout\n{}",
        run.tail()
    );
    run.assert_no_panic();
}

/// `mkinitramfs --list` names exactly the root-disk modules and their modules.dep closure.
#[test]
#[ignore = "boots QEMU for minutes: tests/run.sh runs it (--include-ignored)"]
fn mkinitramfs_list_names_exactly_the_root_disk_modules() {
    assert_ne!(
        init_kind(),
        "standin",
        "mkinitramfs belongs to the real init: run this test without LIFSEA_VM_INIT=standin"
    );
    let kernel = kernel();
    let listed = mkinitramfs_list(&kernel);
    let mut names: Vec<String> = listed.iter().map(|p| module_name(p)).collect();
    names.sort();
    let mut expected: Vec<String> = [
        "virtio",
        "virtio_blk",
        "virtio_pci",
        "virtio_pci_legacy_dev",
        "virtio_pci_modern_dev",
        "virtio_ring",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    expected.sort();
    assert_eq!(names, expected, "mkinitramfs --list printed {listed:?}");
    // The order is a load order: every module comes after the modules it depends on.
    let pos = |n: &str| names_in_order(&listed).iter().position(|x| x == n);
    for (module, dep) in [
        ("virtio_blk", "virtio"),
        ("virtio", "virtio_ring"),
        ("virtio_pci", "virtio_pci_modern_dev"),
    ] {
        assert!(
            pos(dep) < pos(module),
            "{dep} must be listed before {module}: {listed:?}"
        );
    }
}

fn names_in_order(listed: &[String]) -> Vec<String> {
    listed.iter().map(|p| module_name(p)).collect()
}
