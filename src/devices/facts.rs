//! `device:/dev/PATH` facts: a unit that names one waits until PATH exists (a link to a node that
//! is gone does not count), or fails after a bounded wait; units merely ordered after it go on.
//!
//! `DeviceFacts` is the bookkeeping, shared by the machine's devices subsystem (which checks on
//! every loop pass, so a link made for a uevent reaches its fact in the same pass) and
//! `ContainerDeviceFacts`, the subsystem container mode runs instead: there the container manager
//! owns /dev and sends no uevents, so it looks again at a short interval while anything waits.

use crate::collections::strmap::StrMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::supervisor::subsystem::{Notice, Subsystem};

/// Facts units wait for, each with the time it fails at.
#[derive(Debug)]
pub struct DeviceFacts {
    dev_root: PathBuf,
    timeout: Duration,
    wanted: StrMap<Instant>,
}

impl DeviceFacts {
    pub fn new(dev_root: &Path, timeout: Duration) -> DeviceFacts {
        DeviceFacts {
            dev_root: dev_root.to_path_buf(),
            timeout,
            wanted: StrMap::new(),
        }
    }

    /// Starts waiting for the `device:` facts among `facts` not already waited for; the clock of
    /// each starts now.
    pub fn want(&mut self, facts: &[String], now: Instant) {
        for f in facts {
            if crate::units::values::is_device_fact(f) && !self.wanted.contains_key(f) {
                // A timeout is bounded at parse time; saturate rather than trust it here.
                let deadline = now.checked_add(self.timeout).unwrap_or(now);
                self.wanted.insert(f.clone(), deadline);
            }
        }
    }

    /// Reaches the facts whose path exists now, fails those past their deadline.
    pub fn check(&mut self, now: Instant, out: &mut Vec<Notice>) {
        let dev_root = &self.dev_root;
        let timeout = self.timeout;
        self.wanted.retain(|fact, deadline| {
            let rel = fact.strip_prefix("device:/dev/").unwrap_or("");
            if dev_root.join(rel).exists() {
                out.push(Notice::FactReached(fact.clone()));
                false
            } else if now >= *deadline {
                out.push(Notice::FactFailed {
                    fact: fact.clone(),
                    reason: format!(
                        "/dev/{rel} did not appear within {} s",
                        timeout.as_secs_f32()
                    ),
                });
                false
            } else {
                true
            }
        });
    }

    /// The earliest failure time among the waiting facts.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.wanted.values().min().copied()
    }

    pub fn waiting_for(&self) -> Vec<&String> {
        self.wanted.keys().collect()
    }
}

/// How often container mode looks for a waited-for path: no uevents tell it.
pub const CONTAINER_RECHECK: Duration = Duration::from_millis(250);

/// Device facts in container mode, where there is no devices subsystem.
pub struct ContainerDeviceFacts {
    facts: DeviceFacts,
}

impl ContainerDeviceFacts {
    pub fn new(dev_root: &Path, timeout: Duration) -> ContainerDeviceFacts {
        ContainerDeviceFacts {
            facts: DeviceFacts::new(dev_root, timeout),
        }
    }
}

impl Subsystem for ContainerDeviceFacts {
    fn name(&self) -> &'static str {
        "devices"
    }

    fn deadline(&self) -> Option<Instant> {
        let fail = self.facts.next_deadline()?;
        Some(fail.min(Instant::now() + CONTAINER_RECHECK))
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Notice>) {
        self.facts.check(now, out);
    }

    fn facts_wanted(&mut self, facts: &[String], now: Instant, out: &mut Vec<Notice>) {
        self.facts.want(facts, now);
        self.facts.check(now, out);
    }

    fn status(&self) -> serde_json::Value {
        json!({
            "mode": "container: no coldplug, hotplug or links; device facts only",
            "waiting_for": self.facts.waiting_for(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("lifsea-dfacts-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn reached_when_the_path_appears_failed_after_the_timeout() {
        let d = dir("basic");
        let mut f = DeviceFacts::new(&d, Duration::from_secs(5));
        let t0 = Instant::now();
        let facts = vec![
            "device:/dev/disk/by-label/data".to_string(),
            "device:/dev/kvm".to_string(),
            "network-online".to_string(),
        ];
        f.want(&facts, t0);
        assert_eq!(f.waiting_for().len(), 2, "only device facts are watched");
        let mut out = Vec::new();
        f.check(t0, &mut out);
        assert!(out.is_empty());
        std::fs::create_dir_all(d.join("disk/by-label")).unwrap();
        std::fs::write(d.join("disk/by-label/data"), "").unwrap();
        f.check(t0 + Duration::from_secs(1), &mut out);
        assert!(
            matches!(&out[..], [Notice::FactReached(x)] if x == "device:/dev/disk/by-label/data")
        );
        out.clear();
        f.check(t0 + Duration::from_secs(5), &mut out);
        assert!(
            matches!(&out[..], [Notice::FactFailed { fact, reason }]
                if fact == "device:/dev/kvm" && reason.contains("within 5 s")),
            "{out:?}"
        );
        assert!(f.waiting_for().is_empty());
    }

    #[test]
    fn a_dangling_link_does_not_count() {
        let d = dir("dangling");
        std::os::unix::fs::symlink("nothing-here", d.join("sdz")).unwrap();
        let mut f = DeviceFacts::new(&d, Duration::from_secs(5));
        let t0 = Instant::now();
        f.want(&["device:/dev/sdz".to_string()], t0);
        let mut out = Vec::new();
        f.check(t0, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn container_subsystem_wakes_the_loop_while_waiting() {
        let d = dir("container");
        let mut s = ContainerDeviceFacts::new(&d, Duration::from_secs(90));
        assert_eq!(s.deadline(), None, "nothing waited for: no wakeups");
        let mut out = Vec::new();
        s.facts_wanted(&["device:/dev/fuse".to_string()], Instant::now(), &mut out);
        assert!(out.is_empty());
        let d1 = s.deadline().expect("a recheck while waiting");
        assert!(d1 <= Instant::now() + CONTAINER_RECHECK);
        std::fs::write(d.join("fuse"), "").unwrap();
        s.tick(Instant::now(), &mut out);
        assert!(matches!(&out[..], [Notice::FactReached(x)] if x == "device:/dev/fuse"));
        assert_eq!(s.deadline(), None);
    }
}
