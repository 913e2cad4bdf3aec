//! The harness's bootloader half (qemu/lib.sh `choose_entry`) on a real ext4 image built with
//! mkfs.ext4 -d, as the VM tests' disks are: counted entries are decremented inside the image
//! (debugfs), the fallback follows when the tries are spent, and e2fsck finds the image clean after
//! every boot. No VM: the kernel is not needed to check what the bootloader does to the disk.

use std::path::{Path, PathBuf};
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn entries(img: &Path) -> Vec<String> {
    let out = Command::new("debugfs")
        .args(["-R", "ls -l /boot/loader/entries"])
        .arg(img)
        .output()
        .unwrap();
    let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|n| n.ends_with(".conf"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// One boot: the entry's `ostree=` the bootloader picked.
fn boot(img: &Path) -> String {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("qemu/lib.sh");
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"set -euo pipefail; source "$1"; choose_entry "$2" "$3""#)
        .arg("bash")
        .arg(&lib)
        .arg(img)
        .arg(env!("CARGO_BIN_EXE_lifsea-init"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fsck = Command::new("e2fsck")
        .args(["-fn"])
        .arg(img)
        .output()
        .unwrap();
    assert!(
        fsck.status.success(),
        "e2fsck -n: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ostree=").map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn counted_entry_is_tried_three_times_then_falls_back() {
    assert!(
        have("debugfs") && have("mkfs.ext4") && have("e2fsck"),
        "e2fsprogs missing: run tests/setup.sh"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("os-bootloader-image");
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    let loader = root.join("boot/loader.1/entries");
    std::fs::create_dir_all(&loader).unwrap();
    std::os::unix::fs::symlink("loader.1", root.join("boot/loader")).unwrap();
    let entry = |file: &str, v: u32, ostree: &str| {
        std::fs::write(
            loader.join(file),
            format!("title t{v}\nversion {v}\noptions root=LABEL=r ostree={ostree}\nlinux /k{v}\n"),
        )
        .unwrap()
    };
    entry("ostree-1-lifsea.conf", 1, "/old");
    entry("ostree-2-lifsea+3.conf", 2, "/new");
    let img = dir.join("disk.img");
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-L", "lifsea-root", "-d"])
        .arg(&root)
        .arg(&img)
        .arg("16M")
        .status()
        .unwrap();
    assert!(st.success());

    let booted: Vec<String> = (0..5).map(|_| boot(&img)).collect();
    assert_eq!(booted, ["/new", "/new", "/new", "/old", "/old"]);
    assert_eq!(
        entries(&img),
        ["ostree-1-lifsea.conf", "ostree-2-lifsea+0-3.conf"]
    );
}
