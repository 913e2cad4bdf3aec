//! Hung boots count too: the init arms `/dev/watchdog` early (loading `softdog` when the platform
//! has no hardware watchdog, as on the Debian cloud kernel) and pets it from the event loop at a
//! third of its timeout, so a wedged PID 1 reboots the machine and consumes a boot try. An orderly
//! shutdown disarms it with the magic close. Off unless `/etc/lifsea/os.toml` sets
//! `watchdog = "60s"`: a VM test of it has not run yet, so it is not forced on every boot.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::supervisor::subsystem::PollFlags;
use crate::supervisor::{ChildExit, Notice, Subsystem};

/// What the subsystem needs of the device (a fake in the tests).
pub trait Dog {
    fn pet(&mut self) -> std::io::Result<()>;
    fn disarm(&mut self) -> std::io::Result<()>;
}

impl Dog for crate::sys::watchdog::Watchdog {
    fn pet(&mut self) -> std::io::Result<()> {
        crate::sys::watchdog::Watchdog::pet(self)
    }
    fn disarm(&mut self) -> std::io::Result<()> {
        crate::sys::watchdog::Watchdog::disarm(self)
    }
}

/// The petting subsystem.
pub struct WatchdogSub {
    dog: Option<Box<dyn Dog>>,
    timeout: Duration,
    next_pet: Option<Instant>,
    pets: u64,
    /// The module loader helper's pid, while softdog loads.
    helper: Option<i32>,
    device: PathBuf,
    error: Option<String>,
    /// Shutdown began: nothing gets armed any more (softdog may finish loading during a quick
    /// shutdown, and an armed, unpetted watchdog would reset a machine still powering off).
    stopping: bool,
}

impl WatchdogSub {
    /// Around an armed device.
    pub fn with_dog(dog: Box<dyn Dog>, timeout: Duration, now: Instant) -> WatchdogSub {
        WatchdogSub {
            dog: Some(dog),
            timeout,
            next_pet: Some(now),
            pets: 0,
            helper: None,
            device: PathBuf::from("/dev/watchdog"),
            error: None,
            stopping: false,
        }
    }

    /// The machine's: arms `/dev/watchdog`, or loads softdog first (a helper the loop reaps).
    pub fn machine(timeout: Duration) -> WatchdogSub {
        let mut w = WatchdogSub {
            dog: None,
            timeout,
            next_pet: None,
            pets: 0,
            helper: None,
            device: PathBuf::from("/dev/watchdog"),
            error: None,
            stopping: false,
        };
        if w.device.exists() {
            w.arm(Instant::now());
        } else {
            let exe = Path::new("/proc/self/exe");
            let mut cmd = std::process::Command::new(exe);
            std::os::unix::process::CommandExt::arg0(&mut cmd, "lifsea-init");
            match cmd.args(["modprobe", "-q", "softdog"]).spawn() {
                Ok(c) => w.helper = Some(c.id() as i32),
                Err(e) => w.error = Some(format!("load softdog: {e}")),
            }
        }
        w
    }

    fn arm(&mut self, now: Instant) {
        let secs = self.timeout.as_secs().clamp(1, u32::MAX as u64) as u32;
        match crate::sys::watchdog::Watchdog::arm(&self.device, secs) {
            Ok((dog, taken)) => {
                log::info!(
                    "watchdog: {} armed, timeout {taken} s",
                    self.device.display()
                );
                self.timeout = Duration::from_secs(u64::from(taken.max(1)));
                self.dog = Some(Box::new(dog));
                self.next_pet = Some(now);
                #[cfg(feature = "fault-injection")]
                wedge_if_asked();
            }
            Err(e) => {
                log::warn!("watchdog: cannot arm {}: {e}", self.device.display());
                self.error = Some(format!("arm {}: {e}", self.device.display()));
            }
        }
    }

    fn interval(&self) -> Duration {
        (self.timeout / 3).max(Duration::from_millis(500))
    }
}

impl Subsystem for WatchdogSub {
    fn name(&self) -> &'static str {
        "watchdog"
    }
    fn poll_fds(&self) -> Vec<(std::os::fd::RawFd, PollFlags)> {
        Vec::new()
    }
    fn deadline(&self) -> Option<Instant> {
        self.dog.as_ref().and(self.next_pet)
    }
    fn on_ready(&mut self, _: std::os::fd::RawFd, _: PollFlags, _: Instant, _: &mut Vec<Notice>) {}
    fn tick(&mut self, now: Instant, _out: &mut Vec<Notice>) {
        let Some(dog) = self.dog.as_mut() else {
            return;
        };
        if self.next_pet.is_some_and(|t| now >= t) {
            if let Err(e) = dog.pet() {
                log::warn!("watchdog: pet: {e}");
            }
            self.pets += 1;
            self.next_pet = Some(now + self.interval());
        }
    }
    fn child_exited(&mut self, pid: i32, status: ChildExit, _out: &mut Vec<Notice>) -> bool {
        if self.helper != Some(pid) {
            return false;
        }
        self.helper = None;
        if status != ChildExit::Code(0) {
            self.error = Some(format!("modprobe softdog: {status:?}"));
        }
        if self.stopping {
            log::info!("watchdog: softdog loaded during shutdown: not armed");
        } else {
            self.arm(Instant::now());
        }
        true
    }
    fn begin_shutdown(&mut self, _out: &mut Vec<Notice>) {
        self.stopping = true;
        if let Some(mut dog) = self.dog.take() {
            match dog.disarm() {
                Ok(()) => log::info!("watchdog: disarmed (magic close)"),
                Err(e) => log::warn!("watchdog: magic close: {e}"),
            }
            self.next_pet = None;
        }
    }
    fn status(&self) -> serde_json::Value {
        json!({
            "armed": self.dog.is_some(),
            "timeout_s": self.timeout.as_secs(),
            "pets": self.pets,
            "error": self.error,
        })
    }
}

/// Test-only (cargo feature `fault-injection`, never in a production build): with
/// `LIFSEA_FAULT=hang:watchdog-armed` in the environment (a kernel argument without a dot reaches
/// PID 1's environment) the init stops right after arming the watchdog, as a wedged PID 1 would,
/// so the VM tests can show that softdog reboots the machine and the boot try is consumed.
#[cfg(feature = "fault-injection")]
fn wedge_if_asked() {
    let asked = std::env::var("LIFSEA_FAULT")
        .unwrap_or_default()
        .split(';')
        .any(|t| t == "hang:watchdog-armed");
    if asked {
        log::error!("watchdog: fault injection: PID 1 wedges now (hang:watchdog-armed)");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Fake(Arc<Mutex<Vec<&'static str>>>);

    impl Dog for Fake {
        fn pet(&mut self) -> std::io::Result<()> {
            self.0.lock().unwrap().push("pet");
            Ok(())
        }
        fn disarm(&mut self) -> std::io::Result<()> {
            self.0.lock().unwrap().push("V");
            Ok(())
        }
    }

    #[test]
    fn pets_at_a_third_of_the_timeout_and_disarms_on_shutdown() {
        let fake = Fake::default();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut w = WatchdogSub::with_dog(Box::new(fake.clone()), s(30), t0);
        let mut out = Vec::new();
        assert_eq!(w.deadline(), Some(t0));
        w.tick(t0, &mut out);
        assert_eq!(w.deadline(), Some(t0 + s(10)));
        w.tick(t0 + s(9), &mut out);
        w.tick(t0 + s(10), &mut out);
        w.tick(t0 + s(25), &mut out);
        assert_eq!(*fake.0.lock().unwrap(), ["pet", "pet", "pet"]);
        assert_eq!(w.deadline(), Some(t0 + s(35)));
        w.begin_shutdown(&mut out);
        w.tick(t0 + s(100), &mut out);
        assert_eq!(*fake.0.lock().unwrap(), ["pet", "pet", "pet", "V"]);
        assert_eq!(w.deadline(), None);
        assert!(out.is_empty());
        assert_eq!(w.status()["armed"], false);
    }

    #[test]
    fn softdog_loaded_after_shutdown_began_is_not_armed() {
        let mut w = WatchdogSub {
            dog: None,
            timeout: Duration::from_secs(60),
            next_pet: None,
            pets: 0,
            helper: Some(41),
            // Arming it would fail loudly (status error): the test would see it.
            device: PathBuf::from("/nonexistent/watchdog"),
            error: None,
            stopping: false,
        };
        let mut out = Vec::new();
        w.begin_shutdown(&mut out);
        assert!(w.child_exited(41, ChildExit::Code(0), &mut out));
        assert_eq!(w.status()["armed"], false);
        assert_eq!(w.status()["error"], serde_json::Value::Null);
        assert_eq!(w.deadline(), None);
        assert!(out.is_empty());
    }

    #[test]
    fn only_its_own_helper_is_claimed() {
        let mut w = WatchdogSub::with_dog(
            Box::new(Fake::default()),
            Duration::from_secs(3),
            Instant::now(),
        );
        assert!(!w.child_exited(99, ChildExit::Code(0), &mut Vec::new()));
    }
}
