//! Reading superblocks and partition tables off PID 1. A disk that stops answering (a detached
//! network volume, a failing drive) leaves a reader in uninterruptible sleep for as long as the
//! block layer retries; if that reader were PID 1, nothing would reap, restart or shut down. So
//! the devices subsystem asks a helper process, `lifsea-init probe-block`, to read the devices and
//! print what it found, and reads the answer from a pipe in the event loop.
//!
//! The helper reports facts (`BlockInfo`), not link names: PID 1 names and escapes the links
//! itself (`links::link_names`), so nothing the helper prints can steer a link outside
//! /dev/disk. A probe that has not answered within its bound is abandoned (killed, which takes
//! effect once the read returns) and logged; the other devices are not held up by it. A device
//! removed while its probe runs gets no links from that stale answer.

use crate::collections::strmap::FdMap;
use crate::collections::strmap::StrMap;
use std::io::Read;
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::blockdev::GptPartition;
use super::fsprobe::{self, FsIdent};
use super::links::{self, BlockInfo};

/// The helper's subcommand.
pub const SUBCOMMAND: &str = "probe-block";

/// What one helper may print: a few hundred bytes per device.
const MAX_OUTPUT: usize = 256 * 1024;
/// Devices per helper: more wait for the next one.
const MAX_DEVICES_PER_JOB: usize = 256;

/// `lifsea-init probe-block --sys DIR --dev DIR -- NAME...`: one JSON line per device.
pub fn main(args: &[String]) -> i32 {
    let mut sys = PathBuf::from("/sys/class/block");
    let mut dev = PathBuf::from("/dev");
    let mut it = args.iter();
    let mut names = Vec::new();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--sys" => sys = it.next().map(PathBuf::from).unwrap_or(sys),
            "--dev" => dev = it.next().map(PathBuf::from).unwrap_or(dev),
            "--" => names.extend(it.by_ref().cloned()),
            _ => names.push(a.clone()),
        }
    }
    if names.is_empty() {
        eprintln!("usage: lifsea-init probe-block [--sys DIR] [--dev DIR] [--] NAME...");
        return 2;
    }
    for n in names {
        // A line per device as soon as it is read: PID 1 keeps the answers that arrived before a
        // later device hung.
        println!("{}", info_to_json(&links::probe(&n, &sys, &dev)));
    }
    0
}

/// The report line for one device.
pub fn info_to_json(i: &BlockInfo) -> Value {
    json!({
        "dev": i.devname,
        "fs": i.fs.as_ref().map(|f| json!({"type": f.fstype, "uuid": f.uuid, "label": f.label})),
        "part": i.part.as_ref().map(|p| json!({"number": p.number, "partuuid": p.partuuid, "name": p.name})),
        "disk_id": i.disk_id,
        "partition": i.partition,
    })
}

/// One report line back into a `BlockInfo`; `None` for a line that is not one.
pub fn info_from_json(line: &str) -> Option<BlockInfo> {
    // from_slice, like every JSON reader in the binary: one copy of serde_json's parser.
    let v: Value = serde_json::from_slice(line.as_bytes()).ok()?;
    let s = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
    let fs = match v.get("fs") {
        Some(f) if !f.is_null() => Some(FsIdent {
            fstype: fsprobe::known_type(f.get("type")?.as_str()?)?,
            uuid: s(f, "uuid")?,
            label: s(f, "label")?,
        }),
        _ => None,
    };
    let part = match v.get("part") {
        Some(p) if !p.is_null() => Some(GptPartition {
            number: u32::try_from(p.get("number")?.as_u64()?).ok()?,
            partuuid: s(p, "partuuid")?,
            name: s(p, "name")?,
        }),
        _ => None,
    };
    let partition = match v.get("partition") {
        Some(n) if !n.is_null() => Some(u32::try_from(n.as_u64()?).ok()?),
        _ => None,
    };
    Some(BlockInfo {
        devname: s(&v, "dev")?,
        fs,
        part,
        disk_id: s(&v, "disk_id"),
        partition,
    })
}

struct Job {
    out: ChildStdout,
    buf: Vec<u8>,
    /// Each device with the generation it was asked for in.
    devs: Vec<(String, u64)>,
    deadline: Instant,
}

/// The probes under way, and which answers are still wanted.
pub struct ProbeJobs {
    helper: PathBuf,
    sys_class_block: PathBuf,
    dev_root: PathBuf,
    timeout: Duration,
    jobs: FdMap<Job>,
    /// Helpers given up on: still to be reaped.
    abandoned: FdMap<()>,
    /// The newest generation per device; an answer from an older one is stale.
    generation: StrMap<u64>,
    next_generation: u64,
}

impl ProbeJobs {
    pub fn new(helper: &Path, sys_class_block: &Path, dev_root: &Path, timeout: Duration) -> Self {
        ProbeJobs {
            helper: helper.to_path_buf(),
            sys_class_block: sys_class_block.to_path_buf(),
            dev_root: dev_root.to_path_buf(),
            timeout,
            jobs: FdMap::new(),
            abandoned: FdMap::new(),
            generation: StrMap::new(),
            next_generation: 0,
        }
    }

    /// Starts one helper for `devs`; returns its pid.
    pub fn start(&mut self, devs: &[String], now: Instant) -> std::io::Result<Vec<i32>> {
        let mut pids = Vec::new();
        for chunk in devs.chunks(MAX_DEVICES_PER_JOB) {
            self.next_generation += 1;
            let gen = self.next_generation;
            let mut cmd = Command::new(&self.helper);
            std::os::unix::process::CommandExt::arg0(&mut cmd, "lifsea-init");
            cmd.arg(SUBCOMMAND)
                .arg("--sys")
                .arg(&self.sys_class_block)
                .arg("--dev")
                .arg(&self.dev_root)
                .arg("--")
                .args(chunk)
                .stdin(Stdio::null())
                .stdout(Stdio::piped());
            crate::supervisor::shield::unboost(&mut cmd);
            let mut child = cmd.spawn()?;
            let Some(out) = child.stdout.take() else {
                continue;
            };
            if let Err(e) = crate::sys::poll::set_nonblocking(out.as_raw_fd()) {
                log::warn!("devices: probe pipe: {e}");
            }
            let pid = child.id() as i32;
            for d in chunk {
                self.generation.insert(d.clone(), gen);
            }
            self.jobs.insert(
                pid,
                Job {
                    out,
                    buf: Vec::new(),
                    devs: chunk.iter().map(|d| (d.clone(), gen)).collect(),
                    deadline: now.checked_add(self.timeout).unwrap_or(now),
                },
            );
            pids.push(pid);
        }
        Ok(pids)
    }

    /// Answers still in flight for `dev` are stale from now on (it was removed).
    pub fn invalidate(&mut self, dev: &str) {
        self.next_generation += 1;
        self.generation
            .insert(dev.to_string(), self.next_generation);
    }

    pub fn fds(&self) -> Vec<RawFd> {
        self.jobs.values().map(|j| j.out.as_raw_fd()).collect()
    }

    pub fn running(&self) -> usize {
        self.jobs.len()
    }

    /// Reads what a helper printed so far; false when `fd` is not a probe's.
    pub fn read_ready(&mut self, fd: RawFd) -> bool {
        match self.jobs.values_mut().find(|j| j.out.as_raw_fd() == fd) {
            Some(j) => {
                drain(j);
                true
            }
            None => false,
        }
    }

    /// A reaped child: if it was a probe, the devices it answered for that are still wanted,
    /// with what it found. `None` when `pid` was not a probe.
    pub fn finished(&mut self, pid: i32) -> Option<Vec<BlockInfo>> {
        if self.abandoned.remove(&pid).is_some() {
            return Some(Vec::new());
        }
        let mut job = self.jobs.remove(&pid)?;
        drain(&mut job);
        Some(self.take_answers(&job))
    }

    /// Abandons helpers past their bound: returns the devices they held, with what they had
    /// already answered (their links are made; the rest are not).
    pub fn overdue(&mut self, now: Instant) -> Vec<(i32, Vec<String>, Vec<BlockInfo>)> {
        let late: Vec<i32> = self
            .jobs
            .iter()
            .filter(|(_, j)| now >= j.deadline)
            .map(|(&p, _)| p)
            .collect();
        let mut out = Vec::new();
        for pid in late {
            let Some(mut job) = self.jobs.remove(&pid) else {
                continue;
            };
            drain(&mut job);
            let answers = self.take_answers(&job);
            let missing = job
                .devs
                .iter()
                .filter(|(d, _)| !answers.iter().any(|a| &a.devname == d))
                .map(|(d, _)| d.clone())
                .collect();
            // It dies once its read returns; the loop reaps it then.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            self.abandoned.insert(pid, ());
            out.push((pid, missing, answers));
        }
        out
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.jobs.values().map(|j| j.deadline).min()
    }

    /// The complete lines of a job's output that answer for a device it was asked about, in a
    /// generation still current.
    fn take_answers(&mut self, job: &Job) -> Vec<BlockInfo> {
        let text = String::from_utf8_lossy(&job.buf);
        let complete = match text.rfind('\n') {
            Some(i) => &text[..i],
            None => "",
        };
        let mut v = Vec::new();
        for line in complete.lines() {
            let Some(info) = info_from_json(line) else {
                log::warn!("devices: probe helper printed an unreadable line");
                continue;
            };
            let current = job.devs.iter().any(|(d, g)| {
                d == &info.devname && self.generation.get(d).is_some_and(|now| now == g)
            });
            if current {
                v.push(info);
            }
        }
        v
    }
}

/// Reads whatever the pipe holds now, up to the output bound.
fn drain(job: &mut Job) {
    let mut chunk = [0u8; 4096];
    loop {
        if job.buf.len() >= MAX_OUTPUT {
            return;
        }
        match job.out.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                let room = MAX_OUTPUT - job.buf.len();
                job.buf.extend_from_slice(&chunk[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_lines_round_trip() {
        let info = BlockInfo {
            devname: "vdb1".into(),
            fs: Some(FsIdent {
                fstype: "vfat",
                uuid: "1A2B-3C4D".into(),
                label: "ESP".into(),
            }),
            part: Some(GptPartition {
                number: 1,
                partuuid: "0a0b0c0d-0e0f-1011-1213-141516171819".into(),
                name: "EFI system".into(),
            }),
            disk_id: Some("virtio-vol-42".into()),
            partition: Some(1),
        };
        let line = info_to_json(&info).to_string();
        assert_eq!(info_from_json(&line), Some(info));
        let bare = BlockInfo {
            devname: "vdc".into(),
            ..Default::default()
        };
        assert_eq!(info_from_json(&info_to_json(&bare).to_string()), Some(bare));
    }

    #[test]
    fn bad_lines_are_nothing() {
        for l in [
            "",
            "{",
            "[]",
            r#"{"fs": null}"#,
            r#"{"dev": "vda", "fs": {"type": "ntfs", "uuid": "x", "label": ""}}"#,
            r#"{"dev": "vda", "partition": 99999999999}"#,
            r#"{"dev": "vda", "part": {"number": -1, "partuuid": "x", "name": "y"}}"#,
        ] {
            assert_eq!(info_from_json(l), None, "{l}");
        }
    }
}
