//! Shared helpers for the VM tests: build (cached) images through qemu/build-image.sh, boot copies
//! of them through qemu/boot.sh, and read the console the guest checker writes.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

/// Upper bound for one QEMU run (seconds); TCG on a loaded 2-core machine is slow.
pub fn boot_timeout() -> String {
    std::env::var("LIFSEA_VM_TIMEOUT").unwrap_or_else(|_| "240".to_string())
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// "real" (lifsea-init, the default) or "standin" (qemu/standin-init.sh).
pub fn init_kind() -> String {
    std::env::var("LIFSEA_VM_INIT").unwrap_or_else(|_| "real".to_string())
}

/// Runs a command to completion, panicking with its output when it fails.
fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The init to put in images: `LIFSEA_BIN` when set (e.g. an integration build), else the binary
/// cargo built for this test run, in this run's profile.
pub fn init_binary() -> PathBuf {
    std::env::var_os("LIFSEA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_lifsea-init")))
}

#[derive(Debug, Clone)]
pub struct Image {
    pub dir: PathBuf,
    pub variant: String,
    pub mode: String,
}

/// Builds (or finds in the cache) an image, once per process and kind; different kinds build in
/// parallel (build-image.sh itself locks what they share: the kernel, the Debian tree).
pub fn image(variant: &str, mode: &str) -> Image {
    image_with(variant, mode, &[])
}

/// Like `image`, with more build-image.sh arguments (e.g. `--deploys 2`).
pub fn image_with(variant: &str, mode: &str, extra: &[&str]) -> Image {
    type Slot = Arc<Mutex<Option<PathBuf>>>;
    static BUILT: OnceLock<Mutex<HashMap<String, Slot>>> = OnceLock::new();
    let slot: Slot = {
        let mut map = BUILT
            .get_or_init(|| Mutex::new(HashMap::new()))
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.entry(format!("{variant}-{mode}-{}", extra.join(" ")))
            .or_default()
            .clone()
    };
    let mut built = slot.lock().unwrap_or_else(|p| p.into_inner());
    let dir = match &*built {
        Some(dir) => dir.clone(),
        None => {
            let out = run_ok(
                Command::new("bash")
                    .arg(repo().join("qemu/build-image.sh"))
                    .args(["--variant", variant, "--mode", mode, "--init", &init_kind()])
                    .args(extra)
                    .env("LIFSEA_BIN", init_binary()),
                &format!("build-image {variant} {mode}"),
            );
            let dir = PathBuf::from(out.lines().last().unwrap_or_default().trim());
            *built = Some(dir.clone());
            dir
        }
    };
    assert!(
        dir.join("disk.img").exists(),
        "no disk.img in {}",
        dir.display()
    );
    Image {
        dir,
        variant: variant.to_string(),
        mode: mode.to_string(),
    }
}

/// A per-test scratch directory under the system temp dir, removed on drop.
pub struct WorkDir(PathBuf);

impl WorkDir {
    pub fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p =
            std::env::temp_dir().join(format!("lifsea-vm-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).expect("create work dir");
        WorkDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A private, sparse copy of the image's pristine disk.
    pub fn copy_disk(&self, image: &Image) -> PathBuf {
        let disk = self.path("disk.img");
        run_ok(
            Command::new("cp")
                .arg("--sparse=always")
                .arg(image.dir.join("disk.img"))
                .arg(&disk),
            "copy disk",
        );
        disk
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The outcome of one QEMU run.
pub struct Run {
    pub console: String,
    pub exit: i32,
    pub stderr: String,
}

impl Run {
    /// The last lines of the console, for assertion messages.
    pub fn tail(&self) -> String {
        let lines: Vec<&str> = self.console.lines().collect();
        let from = lines.len().saturating_sub(60);
        format!(
            "--- console (last lines) ---\n{}\n--- boot.sh ---\n{}",
            lines[from..].join("\n"),
            self.stderr
        )
    }

    /// `timeout` exits 124 when it had to stop QEMU.
    pub fn timed_out(&self) -> bool {
        self.exit == 124 || self.exit == 137
    }

    /// Console lines printed after the kernel handed over to init.
    pub fn init_lines(&self) -> Vec<&str> {
        let mut started = false;
        self.console
            .lines()
            .filter(|l| {
                let keep = started;
                if l.contains("as init process") {
                    started = true;
                }
                keep
            })
            .collect()
    }

    pub fn init_line_mentioning(&self, needle: &str) -> Option<String> {
        self.init_lines()
            .into_iter()
            .find(|l| l.contains(needle) && !l.contains("ommand line:"))
            .map(str::to_string)
    }

    pub fn assert_no_panic(&self) {
        assert!(
            !self.console.contains("Kernel panic"),
            "kernel panic on the console\n{}",
            self.tail()
        );
    }

    /// The checker finished without failures and every named check printed PASS.
    pub fn assert_checks_pass(&self, names: &[&str]) {
        let done = self.console.lines().find(|l| l.starts_with("CHECKS-DONE"));
        assert!(
            done.is_some(),
            "the checker did not finish\n{}",
            self.tail()
        );
        let failed: Vec<&str> = self
            .console
            .lines()
            .filter(|l| l.starts_with("CHECK ") && l.contains(": FAIL"))
            .collect();
        assert!(
            failed.is_empty(),
            "failed checks: {failed:#?}\n{}",
            self.tail()
        );
        for name in names {
            let prefix = format!("CHECK {name}: PASS");
            assert!(
                self.console.lines().any(|l| l.starts_with(&prefix)),
                "check {name} did not pass\n{}",
                self.tail()
            );
        }
    }

    /// QEMU ended on its own after the kernel's power-down message: an orderly poweroff.
    pub fn assert_powered_off(&self) {
        assert!(
            !self.timed_out(),
            "QEMU ran into the timeout\n{}",
            self.tail()
        );
        assert!(
            self.console.contains("reboot: Power down"),
            "no kernel power-down message\n{}",
            self.tail()
        );
    }
}

/// Boots `disk` (a copy of `image`) with qemu/boot.sh and extra boot.sh arguments.
pub fn boot_disk(image: &Image, disk: &Path, log: &Path, extra: &[&str]) -> Run {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("qemu/boot.sh"))
        .args(["--timeout", &boot_timeout(), "--log"])
        .arg(log)
        .args(extra);
    if init_kind() == "standin" && image.mode == "direct" {
        cmd.args(["--append", "init=/lifsea-standin/init"]);
    }
    cmd.arg(disk);
    let out = cmd.output().expect("run qemu/boot.sh");
    let console = std::fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    Run {
        console,
        exit: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `e2fsck -fn` finds nothing to fix.
pub fn assert_fsck_clean(disk: &Path) {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(disk)
        .output()
        .expect("run e2fsck");
    assert!(
        out.status.success(),
        "e2fsck -fn reports problems ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The Debian cloud kernel as extracted in the cache.
pub struct Kernel {
    /// The extracted package (boot/, lib/modules/).
    pub root: PathBuf,
    pub moddir: PathBuf,
    pub kver: String,
}

pub fn kernel() -> Kernel {
    let out = run_ok(
        Command::new("bash").arg("-c").arg(format!(
            "set -euo pipefail; source {}; ensure_kernel >&2; echo \"$KERNEL_DIR\"; echo \"$KVER\"",
            repo().join("qemu/lib.sh").display()
        )),
        "ensure_kernel",
    );
    let mut lines = out.lines();
    let dir = PathBuf::from(lines.next().unwrap_or_default());
    let kver = lines.next().unwrap_or_default().to_string();
    Kernel {
        root: dir.join("root"),
        moddir: dir.join("root/lib/modules").join(&kver),
        kver,
    }
}

/// The modules `lifsea-init mkinitramfs --list` would pack for a virtio-blk root, one per line.
pub fn mkinitramfs_list(kernel: &Kernel) -> Vec<String> {
    let out = run_ok(
        Command::new(init_binary())
            .args([
                "mkinitramfs",
                "--list",
                "--modules",
                ROOT_DISK_MODULES,
                "--kernel-modules",
            ])
            .arg(&kernel.moddir),
        "lifsea-init mkinitramfs --list",
    );
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// What the initramfs needs to reach a virtio-blk root disk (qemu/lib.sh asks for the same).
pub const ROOT_DISK_MODULES: &str = "virtio_pci,virtio_blk";

/// `kernel/drivers/block/virtio_blk.ko.xz` -> `virtio_blk`.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}
