//! What services tell the supervisor: sd_notify datagrams (attributed to a unit by the sender's
//! credentials), output lines, s6 readiness pipes, readiness probes and cgroup.events changes.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use super::event_loop::Supervisor;
use super::notify;
use super::readiness;
use super::state::Event;
use crate::sys::notify_socket::{NotifySocket, MAX_MESSAGE};

/// Bytes read from one pipe per wakeup, so one chatty service cannot starve the loop.
const READ_BUDGET: usize = 64 * 1024;
/// Notify datagrams read per wakeup, for the same reason (the kernel queues only
/// net.unix.max_dgram_qlen of them, 10 by default, so more would rarely be waiting anyway).
const NOTIFY_BUDGET: usize = 8;

impl Supervisor {
    pub(super) fn on_notify(&mut self, sock: &NotifySocket) {
        for _ in 0..NOTIFY_BUDGET {
            let d = match sock.receive() {
                Ok(Some(d)) => d,
                Ok(None) => return,
                Err(nix::errno::Errno::EMSGSIZE) => {
                    log::debug!("notify socket: dropped a datagram over {MAX_MESSAGE} bytes");
                    continue;
                }
                Err(e) => {
                    log::debug!("notify socket: {e}");
                    return;
                }
            };
            let Some(pid) = d.pid else { continue };
            let Some(unit) = self.attribute(pid) else {
                log::debug!("notify message from pid {pid} belongs to no unit; ignored");
                continue;
            };
            let msg = notify::parse(&d.data);
            if let Some(mp) = msg.main_pid {
                if self.owns_pid(&unit, mp) {
                    self.dispatch(Event::MainPid {
                        unit: unit.clone(),
                        pid: mp,
                    });
                } else {
                    log::warn!("unit {unit}: refused MAINPID={mp}: not a process of this unit");
                }
            }
            if let Some(s) = msg.status {
                self.status_text.insert(unit.clone(), s);
            }
            if let Some(e) = msg.errno {
                log::info!("unit {unit}: reports errno {e}");
            }
            if msg.stopping {
                log::debug!("unit {unit}: stopping");
            }
            if msg.ready {
                self.dispatch(Event::Ready(unit));
            }
        }
    }

    /// Which unit a notify sender belongs to: main pid, cgroup member, or descendant of the main pid.
    pub(super) fn attribute(&self, pid: i32) -> Option<String> {
        if let Some(u) = self.core.unit_by_pid(pid) {
            return Some(u.to_string());
        }
        let proc_dir = Path::new("/proc");
        if self.env.cgroups.is_some() {
            if let Some(cg) = notify::cgroup_of(proc_dir, pid) {
                for (name, unit) in &self.units {
                    let rel = format!("/{}", self.cgroup_rel(unit));
                    if notify::cgroup_contains(&rel, &cg)
                        && self.core.get(name).is_some_and(|e| e.pid.is_some())
                    {
                        return Some(name.clone());
                    }
                }
            }
        }
        self.core
            .entries()
            .find(|(_, e)| {
                e.pid
                    .is_some_and(|main| notify::descends_from(proc_dir, pid, main))
            })
            .map(|(n, _)| n.clone())
    }

    /// Whether `pid` may become `unit`'s main process: a live process of the unit's own, never
    /// the init itself. With cgroups: inside the unit's group; without: the main process or a
    /// descendant of it. Otherwise a stop would signal whatever the service named (`MAINPID=1`
    /// would reboot the machine, another unit's pid would kill that unit).
    pub(super) fn owns_pid(&self, unit: &str, pid: i32) -> bool {
        if pid <= 1 || pid as u32 == std::process::id() {
            return false;
        }
        let proc_dir = Path::new("/proc");
        match (&self.env.cgroups, self.units.get(unit)) {
            (Some(_), Some(u)) => {
                let rel = format!("/{}", self.cgroup_rel(u));
                notify::cgroup_of(proc_dir, pid)
                    .is_some_and(|cg| notify::cgroup_contains(&rel, &cg))
            }
            (Some(_), None) => false,
            (None, _) => self
                .core
                .get(unit)
                .and_then(|e| e.pid)
                .is_some_and(|main| main == pid || notify::descends_from(proc_dir, pid, main)),
        }
    }

    pub(super) fn on_cgroup_events(&mut self) {
        let Some(w) = &self.io.watcher else { return };
        let fired = w.fired();
        for id in fired {
            let unit = self
                .io
                .watches
                .iter()
                .find(|(_, w)| **w == id)
                .map(|(u, _)| u.clone());
            // Only a stop waits for the group to empty (the core ignores `GroupEmpty` in every
            // other phase, and a stop looks at the group itself when it begins): every unit's
            // first process joining its group fires a watch too, and reading cgroup.events for
            // each of those cost a file read per spawn.
            let stopping = |u: &String| {
                self.core
                    .get(u)
                    .is_some_and(|e| e.phase == super::state::Phase::Stopping)
            };
            if let Some(u) = unit.filter(stopping) {
                if !self.group_populated(&u) {
                    self.dispatch(Event::GroupEmpty(u));
                }
            }
        }
    }

    /// Drains one output pipe; returns false once it reached end of file.
    pub(super) fn drain_pipe(&mut self, idx: usize) -> bool {
        let mut buf = [0u8; 8192];
        let mut total = 0;
        let Some(p) = self.io.pipes.get_mut(idx) else {
            return false;
        };
        loop {
            match p.file.read(&mut buf) {
                Ok(0) => {
                    if let Some(tail) = p.lines.finish() {
                        log::debug!("{}: {}", p.unit, String::from_utf8_lossy(&tail));
                        self.logs.push(&p.unit, p.stream, &tail);
                    }
                    return false;
                }
                Ok(n) => {
                    for line in p.lines.feed(&buf[..n]) {
                        log::debug!("{}: {}", p.unit, String::from_utf8_lossy(&line));
                        self.logs.push(&p.unit, p.stream, &line);
                    }
                    total += n;
                    if total >= READ_BUDGET {
                        return true;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return e.kind() == std::io::ErrorKind::WouldBlock,
            }
        }
    }

    /// Reads the s6 readiness pipe; a newline means ready. Returns false once it is closed.
    pub(super) fn read_ready_fd(&mut self, unit: &str) -> bool {
        let mut buf = [0u8; 512];
        let Some(f) = self.io.ready_fds.get_mut(unit) else {
            return false;
        };
        loop {
            match f.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    if buf[..n].contains(&b'\n') {
                        self.dispatch(Event::Ready(unit.to_string()));
                        return false;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return e.kind() == std::io::ErrorKind::WouldBlock,
            }
        }
    }

    pub(super) fn run_probes(&mut self, now: Instant) {
        if self.io.next_probe.map_or(true, |t| t > now) {
            return;
        }
        let ready: Vec<String> = self
            .io
            .probes
            .iter_mut()
            .filter_map(|(u, p)| p.poll(now).then_some(u))
            .cloned()
            .collect();
        for u in ready {
            self.io.probes.remove(&u);
            self.dispatch(Event::Ready(u));
        }
        self.io.next_probe = if self.io.probes.is_empty() {
            None
        } else {
            Some(now + readiness::PROBE_INTERVAL)
        };
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixDatagram;

    use super::*;
    use crate::supervisor::Config;
    use crate::timeline::Timeline;

    /// Finding 9 of issue 12: the notify socket was drained until empty in one wakeup, so a
    /// flood of datagrams (senders refilling the queue) could hold the loop. Now a budget per
    /// wakeup; poll(2) is level-triggered, so the rest is read on the next pass.
    #[test]
    fn notify_wakeup_reads_at_most_its_budget() {
        let dir = std::env::temp_dir().join(format!("lifsea-notify-budget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = Config::for_test(vec![], dir.clone());
        let mut sup = Supervisor::new(cfg, Timeline::new(), None, String::new());
        let path = dir.join("n.sock");
        let sock = NotifySocket::bind(&path).unwrap();
        let tx = UnixDatagram::unbound().unwrap();
        tx.set_nonblocking(true).unwrap();
        // As many as the kernel queues (net.unix.max_dgram_qlen, 10 by default).
        let mut sent = 0;
        while sent < 200 && tx.send_to(b"STATUS=flood", &path).is_ok() {
            sent += 1;
        }
        assert!(
            sent > NOTIFY_BUDGET,
            "precondition: only {sent} datagrams queued"
        );
        sup.on_notify(&sock);
        let mut left = 0;
        while let Ok(Some(_)) = sock.receive() {
            left += 1;
        }
        assert_eq!(left, sent - NOTIFY_BUDGET);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
