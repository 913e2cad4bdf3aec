//! The `modprobe` face of the binary, run as a process the way the kernel and the devices
//! subsystem run it, against a module tree under a temporary root (`-d ROOT -S KVER`): exit
//! status and messages for unknown and built-in modules, the plan (`-n`) with modprobe.d options,
//! softdeps and the blacklist, and the argv[0] dispatch. Nothing is loaded (`-n`), so no root.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_lifsea-init");
const KVER: &str = "6.1.0-test";

struct Root(PathBuf);
impl Drop for Root {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn root(tag: &str) -> Root {
    let r = std::env::temp_dir().join(format!("lifsea-modprobe-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&r);
    let m = r.join("lib/modules").join(KVER);
    std::fs::create_dir_all(&m).unwrap();
    std::fs::create_dir_all(r.join("etc/modprobe.d")).unwrap();
    std::fs::create_dir_all(r.join("proc")).unwrap();
    std::fs::write(
        m.join("modules.dep"),
        "kernel/fs/overlayfs/overlay.ko:\n\
         kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n\
         kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n\
         kernel/net/core/failover.ko:\n\
         kernel/drivers/firmware/qemu_fw_cfg.ko:\n",
    )
    .unwrap();
    std::fs::write(
        m.join("modules.alias"),
        "alias fs-overlay overlay\nalias virtio:d00000001v* virtio_net\nalias acpi*:QEMU0002:* qemu_fw_cfg\n",
    )
    .unwrap();
    std::fs::write(m.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
    std::fs::write(
        r.join("proc/modules"),
        "failover 16384 1 net_failover, Live 0x0\n",
    )
    .unwrap();
    std::fs::write(
        r.join("proc/cmdline"),
        "root=/dev/vda virtio_net.napi_tx=1\n",
    )
    .unwrap();
    std::fs::write(
        r.join("etc/modprobe.d/test.conf"),
        "options virtio_net napi_weight=64\nsoftdep virtio_net post: fs-overlay\nblacklist qemu_fw_cfg\n",
    )
    .unwrap();
    Root(r)
}

fn modprobe(argv0: &str, root: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    std::os::unix::process::CommandExt::arg0(&mut cmd, argv0);
    if argv0 == "lifsea-init" {
        cmd.arg("modprobe");
    }
    let out = cmd
        .arg("-d")
        .arg(root)
        .args(["-S", KVER])
        .args(args)
        .output()
        .expect("run the binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_module_fails_with_a_message_and_builtin_succeeds() {
    let r = root("unknown");
    let (code, _, err) = modprobe("/usr/lib/lifsea/modprobe", &r.0, &["-q", "--", "nosuchmod"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "modprobe: FATAL: module nosuchmod not found in directory {}\n",
            r.0.join("lib/modules").join(KVER).display()
        )
    );
    let (code, out, err) = modprobe("modprobe", &r.0, &["-q", "--", "ext4"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    let (code, _, err) = modprobe("modprobe", &r.0, &["-r", "overlay"]);
    assert_eq!(code, 1);
    assert_eq!(err, "modprobe: removing modules is not supported\n");
}

#[test]
fn plan_follows_modprobe_d_the_command_line_and_proc_modules() {
    let r = root("plan");
    let m = r.0.join("lib/modules").join(KVER);
    let (code, out, err) = modprobe("lifsea-init", &r.0, &["-n", "virtio:d00000001v00001AF4"]);
    assert_eq!(code, 0, "{err}");
    // failover is loaded already; options from modprobe.d then the command line; softdep post.
    assert_eq!(
        out,
        format!(
            "insmod {m}/kernel/drivers/net/net_failover.ko \n\
             insmod {m}/kernel/drivers/net/virtio_net.ko napi_weight=64 napi_tx=1\n\
             insmod {m}/kernel/fs/overlayfs/overlay.ko \n",
            m = m.display()
        )
    );
    // Blacklisted: not through its alias, but by name (as with kmod), unless -b.
    let (code, out, _) = modprobe("modprobe", &r.0, &["-n", "acpi:QEMU0002:"]);
    assert_eq!((code, out.as_str()), (0, ""));
    let (_, out, _) = modprobe("modprobe", &r.0, &["-n", "qemu_fw_cfg"]);
    assert!(out.contains("qemu_fw_cfg.ko"), "{out}");
    let (_, out, _) = modprobe("modprobe", &r.0, &["-n", "-b", "qemu_fw_cfg"]);
    assert_eq!(out, "");
    // Parameters after the name join the options.
    let (_, out, _) = modprobe("modprobe", &r.0, &["-n", "overlay", "redirect_dir=on"]);
    assert_eq!(
        out,
        format!(
            "insmod {}/kernel/fs/overlayfs/overlay.ko redirect_dir=on\n",
            m.display()
        )
    );
}

#[test]
fn missing_module_tree_is_reported() {
    let r = root("notree");
    let (code, _, err) = modprobe("modprobe", &r.0, &["-S", "9.9.9", "overlay"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("modprobe: FATAL: no modules.dep for kernel 9.9.9"),
        "{err}"
    );
}
