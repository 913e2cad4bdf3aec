//! VM tests of atomic OS updates (issue 13, docs/os.md): the Debian image with the real ostree CLI
//! under QEMU TCG, several boots of one disk. The host plays the bootloader between boots
//! (qemu/boot.sh: `-no-reboot`, then `choose_entry` on the image, which decrements a counted
//! entry before booting it, as the Boot Loader Specification says); the guest driver
//! (tests/vm/os.sh, chosen per boot with `vmtest.os=STEPS`) makes commits in the node's own repo,
//! runs `initctl os upgrade|rollback` and prints `initctl os status`. Entry names are read back
//! from the image with debugfs, and `e2fsck -fn` runs after every orderly shutdown.
//!
//! The hung upgrade needs an init built with the test-only `fault-injection` feature (only the
//! hung commit carries it; the production binary ignores the kernel argument that wedges it):
//! the test builds it with cargo into target/fault-init, or takes `LIFSEA_FAULT_BIN`.
//!
//! Each test prints its figures (`OS-MEASURE ...`) with `--nocapture`.

mod vm_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vm_support::*;

/// One disk booted again and again, the way a machine with a bootloader would be.
struct OsVm {
    work: WorkDir,
    disk: PathBuf,
    boots: usize,
    /// Arguments every boot gets (after the entry's options).
    append: Vec<String>,
}

/// A boot's console, plus when (host time since the boot began) the guest said it was healthy.
struct Boot {
    run: Run,
    wall: Duration,
    healthy_after: Option<Duration>,
}

impl OsVm {
    fn new(name: &str) -> OsVm {
        let image = image("debian", "direct");
        let work = WorkDir::new(name);
        let disk = work.copy_disk(&image);
        OsVm {
            work,
            disk,
            boots: 0,
            append: Vec::new(),
        }
    }

    /// Boots the disk once with the guest driver's steps, watching the console for OS-HEALTHY.
    fn boot(&mut self, steps: &str) -> Boot {
        self.boots += 1;
        let log = self.work.path(&format!("console-{}.log", self.boots));
        let mut args = vec![
            "--timeout".to_string(),
            boot_timeout(),
            "--log".to_string(),
            log.display().to_string(),
            "--append".to_string(),
            format!("vmtest.os={steps}"),
        ];
        for a in &self.append {
            args.push("--append".into());
            args.push(a.clone());
        }
        let start = Instant::now();
        let mut child = Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("qemu/boot.sh"))
            .args(&args)
            .arg(&self.disk)
            // choose_entry runs the init's `bootloader` verb on the host: this run's binary.
            .env("LIFSEA_BIN", init_binary())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run qemu/boot.sh");
        let mut healthy_after = None;
        let stderr = child.stderr.take().expect("boot.sh stderr");
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let mut stderr = stderr;
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        let status = loop {
            if healthy_after.is_none() {
                let text = std::fs::read(&log).unwrap_or_default();
                if String::from_utf8_lossy(&text).contains("OS-HEALTHY") {
                    healthy_after = Some(start.elapsed());
                }
            }
            match child.try_wait().expect("wait for boot.sh") {
                Some(status) => break status,
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let wall = start.elapsed();
        let console = std::fs::read(&log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let run = Run {
            console,
            exit: status.code().unwrap_or(-1),
            stderr: reader.join().unwrap_or_default(),
        };
        eprintln!(
            "boot {}: {steps}: {:.1} s host wall, exit {}, {}",
            self.boots,
            wall.as_secs_f64(),
            run.exit,
            run.stderr
                .lines()
                .find(|l| l.starts_with("bootloader:"))
                .unwrap_or("no counted entry")
        );
        Boot {
            run,
            wall,
            healthy_after,
        }
    }

    /// The BLS entry file names on the image, sorted.
    fn entries(&self) -> Vec<String> {
        let out = Command::new("debugfs")
            .args(["-R", "ls -l /boot/loader/entries"])
            .arg(&self.disk)
            .output()
            .expect("run debugfs");
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .filter(|n| n.ends_with(".conf"))
            .map(str::to_string)
            .collect();
        names.sort();
        names
    }

    /// Puts a host file into the stateroot's /var (the guest's /var/lib/lifsea-test/NAME).
    fn put_in_var(&self, host: &Path, name: &str) {
        let var = "/ostree/deploy/lifsea/var";
        let script = format!(
            "mkdir {var}/lib\nmkdir {var}/lib/lifsea-test\nwrite {} {var}/lib/lifsea-test/{name}\n",
            host.display()
        );
        let mut child = Command::new("debugfs")
            .args(["-w", "-f", "-"])
            .arg(&self.disk)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run debugfs -w");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), script.as_bytes())
            .expect("feed debugfs");
        drop(child.stdin.take());
        assert!(child.wait().expect("debugfs").success());
        let out = Command::new("debugfs")
            .args(["-R", &format!("stat {var}/lib/lifsea-test/{name}")])
            .arg(&self.disk)
            .output()
            .expect("debugfs stat");
        let size = std::fs::metadata(host).expect("stat host file").len();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains(&format!("Size: {size}")),
            "{name} did not land in the image's /var: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

impl Boot {
    fn marker(&self) -> String {
        self.line_value("OS-BOOT ", "marker=")
    }

    fn deployment(&self) -> String {
        self.line_value("OS-BOOT ", "deployment=")
    }

    /// `key=` value on the first console line starting with `prefix`.
    fn line_value(&self, prefix: &str, key: &str) -> String {
        self.run
            .console
            .lines()
            .filter(|l| l.starts_with(prefix))
            .flat_map(|l| l.split_whitespace())
            .find_map(|w| w.strip_prefix(key))
            .unwrap_or_default()
            .to_string()
    }

    /// The `initctl os status` block the driver printed last.
    fn os_status(&self) -> String {
        // The serial console ends lines with CR LF.
        let console = self.run.console.replace("\r\n", "\n");
        match console.rsplit_once("---- initctl os ----\n") {
            Some((_, last)) => last
                .split("---- end ----")
                .next()
                .unwrap_or_default()
                .to_string(),
            None => String::new(),
        }
    }

    /// The bootloader's line (boot.sh's stderr): which entry it booted, and any rename.
    fn bootloader(&self) -> String {
        self.run
            .stderr
            .lines()
            .find(|l| l.starts_with("bootloader:"))
            .unwrap_or_default()
            .to_string()
    }

    /// The kernel's last timestamp on the console: the guest's uptime when it ended.
    fn last_uptime(&self) -> f64 {
        self.run
            .console
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix('[')?;
                let (t, _) = rest.split_once(']')?;
                t.trim().parse::<f64>().ok()
            })
            .next_back()
            .unwrap_or(0.0)
    }

    fn healthy_uptime(&self) -> f64 {
        self.line_value("OS-HEALTHY ", "uptime=")
            .parse()
            .unwrap_or(0.0)
    }

    fn assert_console(&self, needle: &str) {
        assert!(
            self.run.console.contains(needle),
            "console lacks {needle:?}\n{}",
            self.run.tail()
        );
    }

    /// An orderly restart asked of the init: QEMU ended on the kernel's restart (`-no-reboot`).
    fn assert_rebooted(&self) {
        self.run.assert_no_panic();
        assert!(
            !self.run.timed_out(),
            "QEMU ran into the timeout\n{}",
            self.run.tail()
        );
        self.assert_console("reboot: Restarting system");
    }
}

/// `ostree commit` printed the checksum on the driver's OS-COMMIT line.
fn commit_of(b: &Boot, kind: &str) -> String {
    let prefix = format!("OS-COMMIT {kind} ");
    let c = b
        .run
        .console
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(
        c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()),
        "no commit checksum for {kind}\n{}",
        b.run.tail()
    );
    c
}

/// Boot 1 of every test: the base deployment commits KIND and upgrades to it; the new default
/// entry has `+TRIES` when the guest reboots. Returns the commit.
fn upgrade(vm: &mut OsVm, kind: &str, tries: u32) -> String {
    let b = vm.boot(&format!("upgrade:{kind}"));
    assert_eq!(
        b.marker(),
        "none",
        "boot 1 is not the base\n{}",
        b.run.tail()
    );
    let commit = commit_of(&b, kind);
    assert!(
        !b.run.console.contains("OS-FAIL"),
        "the upgrade failed\n{}",
        b.run.tail()
    );
    b.assert_rebooted();
    assert_fsck_clean(&vm.disk);
    let entries = vm.entries();
    let counted: Vec<&String> = entries
        .iter()
        .filter(|e| e.ends_with(&format!("+{tries}.conf")))
        .collect();
    assert_eq!(
        counted.len(),
        1,
        "after the upgrade exactly one entry has +{tries}: {entries:?}\n{}",
        b.os_status()
    );
    assert_eq!(entries.len(), 2, "{entries:?}");
    commit
}

#[test]
#[ignore = "boots QEMU (Debian image, TCG) four times: tests/run.sh runs it (--include-ignored)"]
fn good_upgrade_is_blessed_stays_default_and_rolls_back_by_hand() {
    let mut vm = OsVm::new("os-good");
    let commit = upgrade(&mut vm, "good", 3);

    // Boot 2: the bootloader takes a try, the new deployment comes up healthy and is blessed.
    let b = vm.boot("report,off");
    assert!(
        b.bootloader().contains("+3.conf as ") && b.bootloader().contains("+2-1.conf"),
        "the bootloader did not count the try: {:?}",
        b.bootloader()
    );
    assert_eq!(b.marker(), "good", "{}", b.run.tail());
    b.assert_console("(2 tries left); blessing once healthy");
    b.assert_console("os: boot blessed: ");
    let st = b.os_status();
    let booted = st.lines().find(|l| l.starts_with('*')).unwrap_or_default();
    assert!(
        booted.contains("blessed"),
        "booted entry not blessed:\n{st}"
    );
    assert!(
        booted.contains(&commit[..12]),
        "booted entry is not {commit}:\n{st}"
    );
    b.run.assert_powered_off();
    assert_fsck_clean(&vm.disk);
    let entries = vm.entries();
    assert!(
        entries.iter().all(|e| !e.contains('+')),
        "an entry still counts after the blessing: {entries:?}"
    );

    // Boot 3: no counter left, the blessed deployment stays the default; roll back by hand.
    let b = vm.boot("report,rollback");
    assert_eq!(b.bootloader(), "", "nothing should count now");
    assert_eq!(b.marker(), "good", "{}", b.run.tail());
    b.assert_console("OS-ROLLBACK ");
    // The job's end reboots at once (the driver may not live to print the status): the init's
    // own console line tells.
    assert!(
        b.run
            .console
            .lines()
            .any(|l| l.contains("os rollback to ") && l.ends_with(" deployed")),
        "rollback did not deploy\n{}",
        b.run.tail()
    );
    b.assert_rebooted();
    assert_fsck_clean(&vm.disk);
    assert_eq!(vm.entries().len(), 3, "{:?}", vm.entries());

    // Boot 4: the base commit again (its second deployment), uncounted: it ran healthy before.
    let b = vm.boot("report,off");
    assert_eq!(b.marker(), "none", "{}", b.run.tail());
    assert!(
        b.deployment().ends_with(".1"),
        "not a fresh deployment of the base commit: {}",
        b.deployment()
    );
    b.assert_console("OS-HEALTHY");
    b.run.assert_powered_off();
    assert_fsck_clean(&vm.disk);
    assert!(vm.entries().iter().all(|e| !e.contains('+')));
}

/// Tries 2..=N+1 boot a bad deployment; the last one the previous deployment. Returns the figures
/// (host wall from the bad deployment's first boot to the healthy node, sum of guest uptimes).
fn fall_back(vm: &mut OsVm, kind: &str, commit: &str, tries: u32, each: impl Fn(&Boot, &Path)) {
    let t0 = Instant::now();
    let mut guest = 0.0;
    let mut walls = Vec::new();
    for t in 1..=tries {
        let b = vm.boot("report,off");
        let left = tries - t;
        let from = match t {
            1 => format!("+{tries}.conf"),
            _ => format!("+{}-{}.conf", left + 1, t - 1),
        };
        assert!(
            b.bootloader().contains(&format!("{from} as "))
                && b.bootloader().ends_with(&format!("+{left}-{t}.conf")),
            "try {t}: the bootloader did not count it: {:?}",
            b.bootloader()
        );
        each(&b, &vm.disk);
        guest += b.last_uptime();
        walls.push(b.wall.as_secs_f64());
        assert!(
            vm.entries()
                .iter()
                .any(|e| e.ends_with(&format!("+{left}-{t}.conf"))),
            "{:?}",
            vm.entries()
        );
    }
    // The bootloader falls back: the previous (blessed) entry boots.
    let b = vm.boot("report,off");
    assert!(
        b.bootloader().starts_with("bootloader: booting ")
            && !b.bootloader().contains(" as ")
            && !b.bootloader().contains('+'),
        "the bad entry must not boot again, the uncounted previous one must: {:?}",
        b.bootloader()
    );
    assert_eq!(b.marker(), "none", "{}", b.run.tail());
    let healthy = b
        .healthy_after
        .unwrap_or_else(|| panic!("the fallback boot never got healthy\n{}", b.run.tail()));
    let host = t0.elapsed().as_secs_f64() - (b.wall - healthy).as_secs_f64();
    guest += b.healthy_uptime();
    let want = format!("after {tries} failed tries of {commit}");
    b.assert_console("os: booted the previous deployment");
    b.assert_console(&want);
    let st = b.os_status();
    assert!(
        st.contains("fallback: booted the previous deployment") && st.contains(&want),
        "initctl os status does not tell:\n{st}"
    );
    let bad = st.lines().find(|l| l.contains(&format!("+0-{tries}.conf")));
    assert!(
        bad.is_some_and(|l| l.contains(" bad ")),
        "the bad entry is not shown bad:\n{st}"
    );
    assert!(
        b.run.console.contains("os fallback"),
        "no `os fallback` in the timeline\n{}",
        b.run.tail()
    );
    // The previous deployment's init arms the watchdog that os.toml asks for (the production
    // build, deaf to LIFSEA_FAULT), pets it and disarms it on the orderly poweroff.
    b.assert_console("watchdog: /dev/watchdog armed");
    b.assert_console("watchdog: disarmed (magic close)");
    b.run.assert_powered_off();
    assert_fsck_clean(&vm.disk);
    eprintln!(
        "OS-MEASURE {kind}: bad deployment's first boot to a healthy node on the previous one: \
         {host:.1} s host wall, {guest:.1} s of guest uptime ({tries} tries; boots {walls:.1?} s \
         host wall, then healthy {:.1} s into the fallback boot)",
        healthy.as_secs_f64()
    );
}

#[test]
#[ignore = "boots QEMU (Debian image, TCG) five times: tests/run.sh runs it (--include-ignored)"]
fn bad_upgrade_boots_three_times_then_falls_back() {
    let mut vm = OsVm::new("os-bad");
    let commit = upgrade(&mut vm, "bad", 3);
    let deployed = format!("ostree: booting ostree/deploy/lifsea/deploy/{commit}.");
    fall_back(&mut vm, "bad", &commit, 3, |b, disk| {
        // The init gives up before the checker starts (it waits for containerd): the init's own
        // line names the deployment.
        b.assert_console(&deployed);
        b.assert_console("unit containerd failed; rebooting without blessing");
        b.assert_rebooted();
        assert_fsck_clean(disk);
    });
}

#[test]
#[ignore = "builds a fault-injection init and boots QEMU (Debian image, TCG) four times: tests/run.sh runs it (--include-ignored)"]
fn hung_upgrade_is_reset_by_the_watchdog_and_falls_back() {
    let fault = fault_binary();
    let mut vm = OsVm::new("os-hung");
    vm.put_in_var(&fault, "init-fault");
    // Inert for the production init (it never reads it); the fault-injection build wedges on it.
    vm.append = vec![
        "LIFSEA_FAULT=hang:watchdog-armed".into(),
        "vmtest.os.tries=2".into(),
        "vmtest.os.watchdog=30s".into(),
    ];
    let commit = upgrade(&mut vm, "hung", 2);
    // A watchdog reset unmounts nothing: the journal needs replaying (the next boot's kernel does
    // it), so `e2fsck` is checked after the orderly fallback boot instead.
    let deployed = format!("ostree: booting ostree/deploy/lifsea/deploy/{commit}.");
    fall_back(&mut vm, "hung", &commit, 2, |b, _| {
        b.assert_console(&deployed);
        b.assert_console("watchdog: fault injection: PID 1 wedges now");
        b.assert_console("Initiating system reboot");
        assert!(
            !b.run.timed_out(),
            "the watchdog did not reset the guest\n{}",
            b.run.tail()
        );
        assert!(
            !b.run.console.contains("OS-BOOT"),
            "the driver ran on a wedged init\n{}",
            b.run.tail()
        );
    });
}

/// The init with the test-only `fault-injection` feature: `LIFSEA_FAULT_BIN`, else built here.
fn fault_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("LIFSEA_FAULT_BIN") {
        return PathBuf::from(p);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = root.join("target/fault-init");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--features",
            "fault-injection",
            "--bin",
            "lifsea-init",
        ])
        .arg("--target-dir")
        .arg(&target)
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .output()
        .expect("run cargo build --features fault-injection");
    assert!(
        out.status.success(),
        "cargo build --features fault-injection failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = target.join("x86_64-unknown-linux-musl/debug/lifsea-init");
    assert!(bin.exists(), "no {}", bin.display());
    bin
}
