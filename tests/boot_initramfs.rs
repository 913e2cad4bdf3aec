//! `lifsea-init mkinitramfs`: the module list and closure (against a crafted tree and against the
//! Debian cloud kernel's tree, checked with kmod's own `modprobe --show-depends`), and the archive
//! round-tripped through GNU cpio (plain and gzip).

mod common;

use common::unshare::{inside, rerun_inside, test_dir, Space};
use std::collections::BTreeSet;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_lifsea-init");

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lifsea-initramfs-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn mk(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("mkinitramfs")
        .args(args)
        .output()
        .unwrap()
}

fn lines(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// kver/{kernel/...ko, modules.dep, modules.alias, modules.builtin}: blk needs ring and bus,
/// bus needs ring; net needs ring and failover; fs is built in.
fn crafted_tree(d: &Path) -> PathBuf {
    let m = d.join("lib/modules/9.9.9-test");
    for (p, body) in [
        ("kernel/drivers/ring.ko", "RING"),
        ("kernel/drivers/bus.ko", "BUS"),
        ("kernel/drivers/block/blk.ko", "BLK"),
        ("kernel/drivers/net/net-x.ko", "NET"),
        ("kernel/net/failover.ko", "FAILOVER"),
    ] {
        std::fs::create_dir_all(m.join(p).parent().unwrap()).unwrap();
        std::fs::write(m.join(p), body).unwrap();
    }
    std::fs::write(
        m.join("modules.dep"),
        "kernel/drivers/ring.ko:\nkernel/drivers/bus.ko: kernel/drivers/ring.ko\n\
         kernel/drivers/block/blk.ko: kernel/drivers/bus.ko kernel/drivers/ring.ko\n\
         kernel/drivers/net/net-x.ko: kernel/net/failover.ko kernel/drivers/ring.ko\nkernel/net/failover.ko:\n",
    )
    .unwrap();
    std::fs::write(
        m.join("modules.alias"),
        "alias virtio:d00000002v* blk\nalias virtio:d00000001v* net_x\nalias pci:v00001AF4d* bus\n",
    )
    .unwrap();
    std::fs::write(m.join("modules.builtin"), "kernel/fs/fsx/fsx.ko\n").unwrap();
    m
}

#[test]
fn lists_the_dependency_closure_in_load_order() {
    let d = tmpdir("list");
    let m = crafted_tree(&d);
    let o = mk(&[
        "--kernel-modules",
        m.to_str().unwrap(),
        "--modules",
        "blk,fsx",
        "--list",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(lines(&o), vec!["ring", "bus", "blk"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("fsx is built into the kernel"));
    let o = mk(&[
        "--kernel-modules",
        m.to_str().unwrap(),
        "--modules",
        "net-x,blk",
        "--list",
    ]);
    assert_eq!(lines(&o), vec!["failover", "ring", "net_x", "bus", "blk"]);
    let o = mk(&[
        "--kernel-modules",
        m.to_str().unwrap(),
        "--modules",
        "blk,nosuch,other",
        "--list",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nosuch, other"), "{err}");
    let o = mk(&["--modules", "blk"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "missing --kernel-modules is a usage error"
    );
    std::fs::remove_dir_all(&d).unwrap();
}

fn extract(archive: &Path, into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    let file = std::fs::File::open(archive).unwrap();
    let out = Command::new("cpio")
        .args(["-i", "-d", "--quiet", "--no-absolute-filenames"])
        .current_dir(into)
        .stdin(file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cpio -i: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn archive_round_trips_through_gnu_cpio() {
    let d = tmpdir("cpio");
    let m = crafted_tree(&d);
    let fake_init = d.join("fake-init");
    std::fs::write(&fake_init, b"#!/bin/sh\necho odd-length-binary\n").unwrap();
    // The same tree and module list, only the compression differs between the two archives.
    let build = |compress: &str, out: &Path| {
        mk(&[
            "--kernel-modules",
            m.to_str().unwrap(),
            "--modules",
            "blk",
            "--binary",
            fake_init.to_str().unwrap(),
            "--compress",
            compress,
            "-o",
            out.to_str().unwrap(),
        ])
    };
    let img = d.join("initramfs.cpio");
    let o = build("none", &img);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let x = d.join("x");
    extract(&img, &x);
    assert_eq!(
        std::fs::read(x.join("init")).unwrap(),
        std::fs::read(&fake_init).unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(x.join("init"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o755
    );
    let k = x.join("lib/modules/9.9.9-test");
    assert_eq!(
        std::fs::read_to_string(k.join("kernel/drivers/block/blk.ko")).unwrap(),
        "BLK"
    );
    assert_eq!(
        std::fs::read_to_string(k.join("kernel/drivers/bus.ko")).unwrap(),
        "BUS"
    );
    assert!(
        !k.join("kernel/drivers/net/net-x.ko").exists(),
        "only the closure is included"
    );
    let dep = std::fs::read_to_string(k.join("modules.dep")).unwrap();
    assert_eq!(dep.lines().count(), 3, "{dep}");
    assert!(
        dep.contains("kernel/drivers/block/blk.ko: kernel/drivers/bus.ko kernel/drivers/ring.ko")
    );
    let alias = std::fs::read_to_string(k.join("modules.alias")).unwrap();
    assert_eq!(
        alias,
        "alias virtio:d00000002v* blk\nalias pci:v00001AF4d* bus\n"
    );
    for dir in ["dev", "proc", "sys", "sysroot", "run"] {
        assert!(x.join(dir).is_dir(), "{dir}");
    }
    assert!(std::fs::symlink_metadata(x.join("dev/console"))
        .unwrap()
        .file_type()
        .is_char_device());

    // gzip: the same member list.
    let gz = d.join("initramfs.gz");
    let o = build("gzip", &gz);
    assert!(o.status.success());
    let list = |cmd: &str| -> BTreeSet<String> {
        let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    let plain = list(&format!("cpio -t --quiet < {}", img.display()));
    let zipped = list(&format!("gzip -dc {} | cpio -t --quiet", gz.display()));
    assert_eq!(plain, zipped);
    assert!(
        plain.contains("init") && plain.contains("lib/modules/9.9.9-test/kernel/drivers/ring.ko")
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// The Debian cloud kernel's module tree, if the QEMU harness cached it.
fn debian_module_tree() -> Option<PathBuf> {
    let cache = std::env::var_os("LIFSEA_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/lifsea-cache"));
    let base = cache.join("kernel/root/lib/modules");
    let dir = std::fs::read_dir(base).ok()?.flatten().next()?.path();
    dir.join("modules.dep").exists().then_some(dir)
}

#[test]
#[ignore = "needs the Debian kernel in target/lifsea-cache: tests/run.sh fetches it and runs this"]
fn debian_kernel_closure_matches_modprobe() {
    let tree = debian_module_tree().expect(
        "no Debian kernel in the cache: run `bash -c '. qemu/lib.sh; ensure_kernel'` (tests/run.sh does)",
    );
    let kver = tree.file_name().unwrap().to_str().unwrap().to_string();
    let root = tree.parent().unwrap().parent().unwrap().parent().unwrap();
    for wanted in ["virtio_blk", "virtio_net", "virtio_pci", "virtio_scsi"] {
        let o = mk(&[
            "--kernel-modules",
            tree.to_str().unwrap(),
            "--modules",
            wanted,
            "--list",
        ]);
        assert!(o.status.success());
        let ours = lines(&o);
        let out = Command::new("modprobe")
            .args(["--show-depends", "-d"])
            .arg(root)
            .args(["-S", &kver, wanted])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "modprobe: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .map(lifsea_init::devices::modalias::module_name)
            .collect();
        let a: BTreeSet<&String> = ours.iter().collect();
        let b: BTreeSet<&String> = theirs.iter().collect();
        assert_eq!(a, b, "closure of {wanted}");
        assert_eq!(
            ours.last(),
            Some(&wanted.to_string()),
            "the module itself loads last"
        );
    }
    // ext4 and nvme are built into the cloud kernel: nothing to include, and said so.
    let o = mk(&[
        "--kernel-modules",
        tree.to_str().unwrap(),
        "--modules",
        "ext4,nvme",
        "--list",
    ]);
    assert!(o.status.success());
    assert!(lines(&o).is_empty());
}

/// Stage 0 frees the initramfs before switching root: files on the initramfs go, the new root
/// (kept by path) and anything on another filesystem (a moved /dev, the new root's mounts) stay.
#[test]
fn freeing_the_initramfs_never_crosses_into_mounts() {
    use std::os::unix::fs::MetadataExt;
    if !inside(Space::Mount) {
        return rerun_inside(
            Space::Mount,
            "freeing_the_initramfs_never_crosses_into_mounts",
        );
    }
    let root = test_dir();
    std::fs::create_dir_all(&root).unwrap();
    lifsea_init::sys::mount::mount_fs("tmpfs", &root, "tmpfs", 0, "").unwrap();
    for d in ["lib/modules/x/kernel", "dev", "newroot/usr"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("init"), b"binary").unwrap();
    std::fs::write(root.join("lib/modules/x/kernel/a.ko"), b"ko").unwrap();
    std::os::unix::fs::symlink("/nonexistent", root.join("lib/link")).unwrap();
    std::fs::write(root.join("newroot/usr/keep"), b"keep").unwrap();
    // /dev is another filesystem, like the devtmpfs stage 0 moves into the new root.
    lifsea_init::sys::mount::mount_fs("tmpfs", &root.join("dev"), "tmpfs", 0, "").unwrap();
    std::fs::write(root.join("dev/console-ish"), b"dev").unwrap();
    let dev = std::fs::metadata(&root).unwrap().dev();
    lifsea_init::boot::stage0::remove_tree_on_dev(&root, dev, &root.join("newroot"));
    let mut left: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, vec!["dev", "newroot"]);
    assert!(
        root.join("dev/console-ish").exists(),
        "other filesystems are not entered"
    );
    assert!(
        root.join("newroot/usr/keep").exists(),
        "the new root is kept"
    );
}
