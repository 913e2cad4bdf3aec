//! The `/dev/disk/by-*` names every fstab, CSI driver and runbook uses, made without udev:
//! `by-uuid` and `by-label` from the filesystem superblock, `by-partuuid` and `by-partlabel` from
//! the GPT, `by-id` from the serial numbers the kernel exposes for virtio and NVMe disks. Plus
//! the standard `/dev/fd`, `/dev/stdin`, `/dev/stdout` and `/dev/stderr` links.
//!
//! `link_names` is pure (a probed `BlockInfo` in, relative link names out); `probe` reads sysfs
//! and the device; `LinkTable` keeps the links of each device correct across add, change and
//! remove under a /dev root passed as a parameter (tests use a temporary directory).

use crate::collections::strmap::StrMap;
use std::path::{Path, PathBuf};

use crate::devices::blockdev::{read_fs_ident, read_gpt, FsIdent, GptPartition};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("create link {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("remove link {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What is known about one block device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockInfo {
    /// Name under /dev (`vda1`, `nvme0n1p2`).
    pub devname: String,
    pub fs: Option<FsIdent>,
    /// The GPT entry of a partition.
    pub part: Option<GptPartition>,
    /// `virtio-SERIAL` or `nvme-MODEL_SERIAL` of the whole disk, when the kernel exposes one.
    pub disk_id: Option<String>,
    /// Partition number for a partition (for `by-id/...-partN`).
    pub partition: Option<u32>,
}

/// Escapes a label or serial the way udev does for link names: anything outside
/// `[A-Za-z0-9#+-.:=@_]` becomes `\xNN`, so no name can contain `/` or be `..`.
pub fn escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"#+-.:=@_".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if out == "." || out == ".." {
        out = out.replace('.', "\\x2e");
    }
    out
}

/// Serial words joined the way udev's `ID_SERIAL` does: trimmed, inner whitespace as `_`.
pub fn serial_word(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join("_")
}

/// Link names relative to the /dev root (`disk/by-label/root`), each with its target relative to
/// the link's directory (`../../vda1`).
pub fn link_names(info: &BlockInfo) -> Vec<(String, String)> {
    let target = format!("../../{}", info.devname);
    let mut out = Vec::new();
    let mut add = |dir: &str, name: &str| {
        if !name.is_empty() {
            out.push((format!("disk/{dir}/{}", escape(name)), target.clone()));
        }
    };
    if let Some(fs) = &info.fs {
        add("by-uuid", &fs.uuid);
        add("by-label", &fs.label);
    }
    if let Some(p) = &info.part {
        add("by-partuuid", &p.partuuid);
        add("by-partlabel", &p.name);
    }
    if let Some(id) = &info.disk_id {
        match info.partition {
            Some(n) => add("by-id", &format!("{id}-part{n}")),
            None => add("by-id", id),
        }
    }
    out
}

fn read_trim(p: &Path) -> Option<String> {
    let s = std::fs::read_to_string(p).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// The `by-id` name of a whole disk from its sysfs directory (`/sys/class/block/vda`).
pub fn disk_id(disk: &str, sys_disk: &Path) -> Option<String> {
    if disk.starts_with("vd") {
        // virtio_blk exposes the serial QEMU's `serial=` sets (empty when none).
        read_trim(&sys_disk.join("serial")).map(|s| format!("virtio-{}", serial_word(&s)))
    } else if disk.starts_with("nvme") {
        let serial = read_trim(&sys_disk.join("device/serial"))?;
        let model = read_trim(&sys_disk.join("device/model")).unwrap_or_default();
        Some(format!(
            "nvme-{}_{}",
            serial_word(&model),
            serial_word(&serial)
        ))
    } else {
        None
    }
}

/// Probes the block device `devname`: sysfs under `sys_class_block` (`/sys/class/block`), the
/// node under `dev_root`. Reads at most a few kilobytes of the device.
pub fn probe(devname: &str, sys_class_block: &Path, dev_root: &Path) -> BlockInfo {
    let sys = sys_class_block.join(devname);
    let partition = read_trim(&sys.join("partition")).and_then(|s| s.parse::<u32>().ok());
    // A partition's sysfs directory sits inside its disk's.
    let disk = match partition {
        Some(_) => std::fs::canonicalize(&sys).ok().and_then(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .map(|n| n.to_string_lossy().into_owned())
        }),
        None => Some(devname.to_string()),
    };
    let fs = read_fs_ident(&dev_root.join(devname));
    let part = match (partition, &disk) {
        (Some(n), Some(d)) => {
            read_gpt(&dev_root.join(d)).and_then(|parts| parts.into_iter().find(|p| p.number == n))
        }
        _ => None,
    };
    let disk_id = disk
        .as_deref()
        .and_then(|d| disk_id(d, &sys_class_block.join(d)));
    BlockInfo {
        devname: devname.to_string(),
        fs,
        part,
        disk_id,
        partition,
    }
}

/// The links this init made, by device, so change and remove undo exactly those.
#[derive(Debug, Default)]
pub struct LinkTable {
    dev_root: PathBuf,
    by_dev: StrMap<Vec<(String, String)>>,
}

impl LinkTable {
    pub fn new(dev_root: &Path) -> LinkTable {
        LinkTable {
            dev_root: dev_root.to_path_buf(),
            by_dev: StrMap::new(),
        }
    }

    /// Links of every device, for status reports.
    pub fn all(&self) -> &StrMap<Vec<(String, String)>> {
        &self.by_dev
    }

    /// Makes `devname`'s links exactly `links`: stale ones removed, new ones created (a link of
    /// another device with the same name is replaced: the newest device wins, as with udev's
    /// default priority). Returns the links created.
    pub fn set(
        &mut self,
        devname: &str,
        links: Vec<(String, String)>,
    ) -> (Vec<String>, Vec<LinkError>) {
        let mut errors = Vec::new();
        let old = self.by_dev.remove(devname).unwrap_or_default();
        for (name, target) in &old {
            if !links.iter().any(|(n, _)| n == name) {
                if let Err(e) = self.remove_if_ours(name, target) {
                    errors.push(e);
                }
            }
        }
        let mut created = Vec::new();
        for (name, target) in &links {
            if old.iter().any(|(n, t)| n == name && t == target)
                && self.dev_root.join(name).is_symlink()
            {
                continue;
            }
            match self.create(name, target) {
                Ok(()) => created.push(name.clone()),
                Err(e) => errors.push(e),
            }
        }
        if !links.is_empty() {
            self.by_dev.insert(devname.to_string(), links);
        }
        (created, errors)
    }

    /// Removes every link of `devname`; returns the names removed.
    pub fn remove(&mut self, devname: &str) -> (Vec<String>, Vec<LinkError>) {
        let mut errors = Vec::new();
        let mut removed = Vec::new();
        for (name, target) in self.by_dev.remove(devname).unwrap_or_default() {
            match self.remove_if_ours(&name, &target) {
                Ok(true) => removed.push(name),
                Ok(false) => {}
                Err(e) => errors.push(e),
            }
        }
        (removed, errors)
    }

    fn create(&self, name: &str, target: &str) -> Result<(), LinkError> {
        let path = self.dev_root.join(name);
        let err = |source| LinkError::Create {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        // A temporary name then rename(2): readers never see the link missing or half made.
        let tmp = path.with_file_name(format!(
            ".{}.lifsea-tmp",
            path.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(target, &tmp).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }

    /// Removes a link unless another device has taken the name since; says whether it did.
    fn remove_if_ours(&self, name: &str, target: &str) -> Result<bool, LinkError> {
        let path = self.dev_root.join(name);
        match std::fs::read_link(&path) {
            Ok(t) if t == Path::new(target) => {}
            _ => return Ok(false),
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(LinkError::Remove { path, source }),
        }
    }
}

/// `/dev/fd` and the stdio links, as udev's static nodes provide them; existing entries are kept.
pub fn standard_links(dev_root: &Path) -> Vec<LinkError> {
    let mut errors = Vec::new();
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let path = dev_root.join(name);
        if path.symlink_metadata().is_ok() {
            continue;
        }
        if let Err(source) = std::os::unix::fs::symlink(target, &path) {
            errors.push(LinkError::Create { path, source });
        }
    }
    errors
}

#[cfg(test)]
#[path = "links_tests.rs"]
mod tests;
