//! Finding the root device without blkid or udev: a pure reader for the GPT (partition unique
//! GUIDs and names; filesystem superblocks are `fsprobe`'s), and `find_root`, which scans
//! /sys/class/block until the `root=` device appears or the deadline passes.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use super::fsprobe::FsIdent;

/// The `root=` argument, in the forms the kernel and initramfs tools accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootSpec {
    /// `root=/dev/vda1`
    Path(String),
    /// `root=LABEL=root` (filesystem label)
    Label(String),
    /// `root=UUID=...` (filesystem UUID, compared lowercase)
    Uuid(String),
    /// `root=PARTUUID=...` (GPT partition unique GUID, compared lowercase)
    PartUuid(String),
    /// `root=PARTLABEL=...` (GPT partition name)
    PartLabel(String),
}

impl RootSpec {
    pub fn parse(v: &str) -> Option<RootSpec> {
        let spec = if let Some(x) = v.strip_prefix("LABEL=") {
            RootSpec::Label(x.to_string())
        } else if let Some(x) = v.strip_prefix("UUID=") {
            RootSpec::Uuid(x.to_ascii_lowercase())
        } else if let Some(x) = v.strip_prefix("PARTUUID=") {
            RootSpec::PartUuid(x.to_ascii_lowercase())
        } else if let Some(x) = v.strip_prefix("PARTLABEL=") {
            RootSpec::PartLabel(x.to_string())
        } else if let Some(x) = v.strip_prefix("/dev/disk/by-label/") {
            // There is no udev to make /dev/disk/by-*: read them as the tags they stand for.
            RootSpec::Label(x.to_string())
        } else if let Some(x) = v.strip_prefix("/dev/disk/by-uuid/") {
            RootSpec::Uuid(x.to_ascii_lowercase())
        } else if let Some(x) = v.strip_prefix("/dev/disk/by-partuuid/") {
            RootSpec::PartUuid(x.to_ascii_lowercase())
        } else if let Some(x) = v.strip_prefix("/dev/disk/by-partlabel/") {
            RootSpec::PartLabel(x.to_string())
        } else if v.starts_with('/') {
            RootSpec::Path(v.to_string())
        } else {
            return None;
        };
        match &spec {
            RootSpec::Path(s)
            | RootSpec::Label(s)
            | RootSpec::Uuid(s)
            | RootSpec::PartUuid(s)
            | RootSpec::PartLabel(s)
                if s.is_empty() =>
            {
                None
            }
            _ => Some(spec),
        }
    }
}

impl fmt::Display for RootSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RootSpec::Path(p) => write!(f, "{p}"),
            RootSpec::Label(x) => write!(f, "LABEL={x}"),
            RootSpec::Uuid(x) => write!(f, "UUID={x}"),
            RootSpec::PartUuid(x) => write!(f, "PARTUUID={x}"),
            RootSpec::PartLabel(x) => write!(f, "PARTLABEL={x}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("root device {spec} did not appear within {} s; available block devices: {}", .waited.as_secs(), if .available.is_empty() { "none".to_string() } else { .available.join(", ") })]
    NotFound {
        spec: String,
        waited: Duration,
        available: Vec<String>,
    },
}

/// One GPT partition entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPartition {
    /// 1-based index in the entry array: the kernel's partition number.
    pub number: u32,
    /// The unique partition GUID in the kernel's PARTUUID string form (lowercase, mixed-endian).
    pub partuuid: String,
    pub name: String,
}

/// Where the partition entries are, from the GPT header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GptHeader {
    pub entries_lba: u64,
    pub num_entries: u32,
    pub entry_size: u32,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// UUID bytes in on-disk order (ext4) → 8-4-4-4-12.
pub fn uuid_string(b: &[u8; 16]) -> String {
    format!(
        "{}-{}-{}-{}-{}",
        hex(&b[0..4]),
        hex(&b[4..6]),
        hex(&b[6..8]),
        hex(&b[8..10]),
        hex(&b[10..16])
    )
}

/// A GUID as stored by EFI (first three fields little-endian) → the kernel's `%pUl` string.
pub fn guid_string(b: &[u8; 16]) -> String {
    let mut s = [0u8; 16];
    s[0..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
    s[4..6].copy_from_slice(&[b[5], b[4]]);
    s[6..8].copy_from_slice(&[b[7], b[6]]);
    s[8..16].copy_from_slice(&b[8..16]);
    uuid_string(&s)
}

/// Parses a GPT header sector (LBA 1).
pub fn parse_gpt_header(sector: &[u8]) -> Option<GptHeader> {
    if sector.len() < 92 || &sector[0..8] != b"EFI PART" {
        return None;
    }
    let h = GptHeader {
        entries_lba: le64(sector, 72),
        num_entries: le32(sector, 80),
        entry_size: le32(sector, 84),
    };
    // Bounds that real tables respect; anything else is garbage, not a reason to allocate.
    if h.entry_size < 128 || h.entry_size > 4096 || h.num_entries > 1024 {
        return None;
    }
    Some(h)
}

/// Parses the partition entry array; unused entries (zero type GUID) are skipped.
pub fn parse_gpt_entries(bytes: &[u8], header: &GptHeader) -> Vec<GptPartition> {
    let size = header.entry_size as usize;
    (0..header.num_entries as usize)
        .filter_map(|i| {
            let e = bytes.get(i * size..i * size + 128)?;
            if e[0..16].iter().all(|&b| b == 0) {
                return None;
            }
            let mut guid = [0u8; 16];
            guid.copy_from_slice(&e[16..32]);
            let units: Vec<u16> = (0..36)
                .map(|k| le16(e, 56 + 2 * k))
                .take_while(|&u| u != 0)
                .collect();
            Some(GptPartition {
                number: i as u32 + 1,
                partuuid: guid_string(&guid),
                name: String::from_utf16_lossy(&units),
            })
        })
        .collect()
}

/// Reads a device's GPT, trying 512- and 4096-byte logical sectors.
pub fn read_gpt(dev: &Path) -> Option<Vec<GptPartition>> {
    let mut f = File::open(dev).ok()?;
    for sector in [512u64, 4096] {
        let mut hdr = vec![0u8; 512];
        if f.seek(SeekFrom::Start(sector)).is_err() || f.read_exact(&mut hdr).is_err() {
            continue;
        }
        let Some(h) = parse_gpt_header(&hdr) else {
            continue;
        };
        let mut entries = vec![0u8; h.num_entries as usize * h.entry_size as usize];
        f.seek(SeekFrom::Start(h.entries_lba * sector)).ok()?;
        f.read_exact(&mut entries).ok()?;
        return Some(parse_gpt_entries(&entries, &h));
    }
    None
}

/// The filesystem on `dev`, from its first `fsprobe::PROBE_LEN` bytes (fewer on a small device).
pub fn read_fs_ident(dev: &Path) -> Option<FsIdent> {
    let mut buf = Vec::with_capacity(super::fsprobe::PROBE_LEN);
    File::open(dev)
        .ok()?
        .take(super::fsprobe::PROBE_LEN as u64)
        .read_to_end(&mut buf)
        .ok()?;
    super::fsprobe::identify(&buf)
}

/// Block device names under `sys_block`, sorted (whole disks and partitions alike).
pub fn list_block_devices(sys_block: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(sys_block)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    crate::collections::sort::sort(&mut v);
    v
}

/// The child of disk `disk` whose `partition` attribute is `number` (e.g. vda, 1 → vda1).
fn partition_child(sys_block: &Path, disk: &str, number: u32) -> Option<String> {
    let rd = std::fs::read_dir(sys_block.join(disk)).ok()?;
    rd.flatten().find_map(|e| {
        let n = std::fs::read_to_string(e.path().join("partition")).ok()?;
        (n.trim().parse::<u32>().ok()? == number)
            .then(|| e.file_name().to_str().map(str::to_string))?
    })
}

/// One scan: the device node for `spec`, if it is present now.
pub fn scan_once(spec: &RootSpec, dev_dir: &Path, sys_block: &Path) -> Option<PathBuf> {
    if let RootSpec::Path(p) = spec {
        let p = PathBuf::from(p);
        return p.exists().then_some(p);
    }
    for name in list_block_devices(sys_block) {
        let node = dev_dir.join(&name);
        match spec {
            RootSpec::Label(_) | RootSpec::Uuid(_) => {
                let Some(id) = read_fs_ident(&node) else {
                    continue;
                };
                let hit = match spec {
                    RootSpec::Label(l) => &id.label == l,
                    // FAT serials are upper case, `root=UUID=` is kept lower case.
                    RootSpec::Uuid(u) => id.uuid.eq_ignore_ascii_case(u),
                    _ => false,
                };
                if hit {
                    return Some(node);
                }
            }
            RootSpec::PartUuid(_) | RootSpec::PartLabel(_) => {
                if sys_block.join(&name).join("partition").exists() {
                    continue;
                }
                let Some(parts) = read_gpt(&node) else {
                    continue;
                };
                let found = parts.iter().find(|p| match spec {
                    RootSpec::PartUuid(u) => &p.partuuid == u,
                    RootSpec::PartLabel(l) => &p.name == l,
                    _ => false,
                });
                if let Some(child) = found.and_then(|p| partition_child(sys_block, &name, p.number))
                {
                    return Some(dev_dir.join(child));
                }
            }
            RootSpec::Path(_) => {}
        }
    }
    None
}

/// How often `find_root` says again what it is still waiting for.
pub const ROOT_WAIT_NOTE_EVERY: Duration = Duration::from_secs(5);

/// Waits until the device for `spec` appears, re-scanning every 50 ms until `timeout`;
/// `between_scans` runs before each re-scan (stage 0 loads newly matching modules there). A wait
/// is logged when it begins and every `ROOT_WAIT_NOTE_EVERY` until it ends, with the block
/// devices present, so a console shows what the boot is stuck on.
pub fn find_root(
    spec: &RootSpec,
    dev_dir: &Path,
    sys_block: &Path,
    timeout: Duration,
    between_scans: impl FnMut(),
) -> Result<PathBuf, BlockError> {
    find_root_noting(
        spec,
        dev_dir,
        sys_block,
        timeout,
        ROOT_WAIT_NOTE_EVERY,
        between_scans,
    )
}

/// `find_root` with the interval between log lines as a parameter (tests shorten it).
pub fn find_root_noting(
    spec: &RootSpec,
    dev_dir: &Path,
    sys_block: &Path,
    timeout: Duration,
    note_every: Duration,
    mut between_scans: impl FnMut(),
) -> Result<PathBuf, BlockError> {
    let start = Instant::now();
    let mut next_note = start;
    loop {
        if let Some(p) = scan_once(spec, dev_dir, sys_block) {
            if next_note > start {
                log::info!(
                    "root device {spec} is {} (after {} ms)",
                    p.display(),
                    start.elapsed().as_millis()
                );
            }
            return Ok(p);
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(BlockError::NotFound {
                spec: spec.to_string(),
                waited: timeout,
                available: list_block_devices(sys_block),
            });
        }
        let now = Instant::now();
        if now >= next_note {
            let seen = list_block_devices(sys_block);
            let seen = if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            };
            log::info!(
                "waiting for root device {spec}: {:.1}s of {}s so far; block devices: {seen}",
                waited.as_secs_f64(),
                timeout.as_secs()
            );
            next_note = now.checked_add(note_every).unwrap_or(now);
        }
        std::thread::sleep(Duration::from_millis(50));
        between_scans();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_is_mixed_endian() {
        let b: [u8; 16] = [
            0xaf, 0x3d, 0xc6, 0x0f, 0x83, 0x84, 0x72, 0x47, 0x8e, 0x79, 0x3d, 0x69, 0xd8, 0x47,
            0x7d, 0xe4,
        ];
        assert_eq!(guid_string(&b), "0fc63daf-8483-4772-8e79-3d69d8477de4");
        assert_eq!(uuid_string(&b), "af3dc60f-8384-7247-8e79-3d69d8477de4");
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(super::super::fsprobe::identify(&[0u8; 2048]), None);
        assert_eq!(super::super::fsprobe::identify(&[0u8; 100]), None);
        assert_eq!(parse_gpt_header(&[0u8; 512]), None);
        let mut h = vec![0u8; 512];
        h[0..8].copy_from_slice(b"EFI PART");
        h[84..88].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(parse_gpt_header(&h), None, "entry size 7 is not a GPT");
    }
}
