//! What a filesystem says about itself (type, UUID, label), read from its superblock without
//! blkid: for `/dev/disk/by-uuid`, `/dev/disk/by-label` and `root=UUID=`/`root=LABEL=`.
//!
//! A container host's disks carry few filesystem types: ext4 or XFS for the root and data volumes
//! (XFS is what many clouds' CSI drivers format with), Btrfs on some images, FAT on the EFI system
//! partition, and swap areas (kubelet refuses to run with swap on, so an operator must be able to
//! find them by label). Each reader is pure: it takes the first `PROBE_LEN` bytes of the device
//! (less when the device is shorter) and answers `None` unless the magic matches. The names follow
//! blkid's, so links made here are the ones fstab entries and runbooks written for udev expect.

use super::blockdev::uuid_string;

/// Bytes a probe needs from the start of a device: Btrfs's superblock lies at 64 KiB.
pub const PROBE_LEN: usize = BTRFS_SB_OFFSET + 4096;

const EXT_SB_OFFSET: usize = 1024;
const EXT_MAGIC: u16 = 0xEF53;
const BTRFS_SB_OFFSET: usize = 0x10000;
/// Page sizes a swap header may be written for; the magic ends the first page.
const SWAP_PAGE_SIZES: [usize; 4] = [4096, 8192, 16384, 65536];

/// What a filesystem superblock says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsIdent {
    /// blkid's TYPE: `ext4`, `xfs`, `btrfs`, `vfat`, `swap`.
    pub fstype: &'static str,
    /// blkid's form: lowercase 8-4-4-4-12 for most, `ABCD-1234` for FAT; empty when there is none.
    pub uuid: String,
    /// Empty when there is none.
    pub label: String,
}

/// The types the readers here report, for reading a report back.
pub const TYPES: [&str; 7] = ["ext2", "ext3", "ext4", "xfs", "btrfs", "swap", "vfat"];

/// `name` as one of `TYPES`.
pub fn known_type(name: &str) -> Option<&'static str> {
    TYPES.into_iter().find(|t| *t == name)
}

/// The first filesystem whose magic matches `head`, the device's first bytes.
pub fn identify(head: &[u8]) -> Option<FsIdent> {
    read_ext(head)
        .or_else(|| read_xfs(head))
        .or_else(|| read_btrfs(head))
        .or_else(|| read_swap(head))
        // Last: a FAT boot sector is the weakest signature, and other filesystems' first
        // sector can carry leftovers of one.
        .or_else(|| read_fat(head))
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn uuid_at(b: &[u8], at: usize) -> String {
    let mut u = [0u8; 16];
    u.copy_from_slice(&b[at..at + 16]);
    if u.iter().all(|&x| x == 0) {
        return String::new();
    }
    uuid_string(&u)
}

/// A NUL-terminated (or full-width) label field.
fn c_label(raw: &[u8]) -> String {
    let end = raw.iter().position(|&c| c == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// ext2/3/4: the superblock 1024 bytes in.
pub fn read_ext(head: &[u8]) -> Option<FsIdent> {
    let sb = head.get(EXT_SB_OFFSET..EXT_SB_OFFSET + 1024)?;
    if le16(sb, 0x38) != EXT_MAGIC {
        return None;
    }
    // blkid tells ext2/3/4 apart by features; link names do not depend on it.
    let incompat = u32::from_le_bytes([sb[0x60], sb[0x61], sb[0x62], sb[0x63]]);
    let compat = u32::from_le_bytes([sb[0x5c], sb[0x5d], sb[0x5e], sb[0x5f]]);
    let fstype = if incompat & 0x2C0 != 0 {
        // extents, 64bit or flex_bg
        "ext4"
    } else if compat & 0x4 != 0 {
        // has_journal
        "ext3"
    } else {
        "ext2"
    };
    Some(FsIdent {
        fstype,
        uuid: uuid_at(sb, 0x68),
        label: c_label(&sb[0x78..0x88]),
    })
}

/// XFS: `XFSB` at the start, big-endian fields; the UUID bytes are in display order.
pub fn read_xfs(head: &[u8]) -> Option<FsIdent> {
    let sb = head.get(0..120)?;
    if &sb[0..4] != b"XFSB" {
        return None;
    }
    Some(FsIdent {
        fstype: "xfs",
        uuid: uuid_at(sb, 32),
        label: c_label(&sb[108..120]),
    })
}

/// Btrfs: the primary superblock at 64 KiB, magic `_BHRfS_M` at 0x40 in it.
pub fn read_btrfs(head: &[u8]) -> Option<FsIdent> {
    let sb = head.get(BTRFS_SB_OFFSET..BTRFS_SB_OFFSET + 0x12b + 256)?;
    if &sb[0x40..0x48] != b"_BHRfS_M" {
        return None;
    }
    Some(FsIdent {
        fstype: "btrfs",
        uuid: uuid_at(sb, 0x20),
        label: c_label(&sb[0x12b..0x12b + 256]),
    })
}

/// Linux swap (v1, `SWAPSPACE2`): UUID and label follow the 1024-byte boot block and three
/// 32-bit words (version, last page, bad pages).
pub fn read_swap(head: &[u8]) -> Option<FsIdent> {
    if !SWAP_PAGE_SIZES
        .into_iter()
        .any(|p| head.get(p - 10..p) == Some(b"SWAPSPACE2".as_slice()))
    {
        return None;
    }
    let hdr = head.get(1024..1024 + 12 + 32)?;
    Some(FsIdent {
        fstype: "swap",
        uuid: uuid_at(hdr, 12),
        label: c_label(&hdr[28..44]),
    })
}

/// FAT12/16/32 boot sector: the volume serial (shown `ABCD-1234`, upper case, as blkid does) and
/// the label from the extended BIOS parameter block, when its signature says they are there.
pub fn read_fat(head: &[u8]) -> Option<FsIdent> {
    let bs = head.get(0..512)?;
    if bs[510..512] != [0x55, 0xAA] {
        return None;
    }
    // Bytes per sector must be a power of two in 512..=4096 and the jump instruction present:
    // an MBR alone also ends with 55 AA.
    let bps = le16(bs, 11);
    if !(bs[0] == 0xEB || bs[0] == 0xE9) || !(512..=4096).contains(&bps) || !bps.is_power_of_two() {
        return None;
    }
    // Where the extended block's signature sits: after FAT32's longer parameter block, or
    // FAT12/16's. The type string a few bytes on tells which.
    let sig_at = if &bs[0x52..0x57] == b"FAT32" {
        0x42
    } else if &bs[0x36..0x39] == b"FAT" {
        0x26
    } else {
        return None;
    };
    // 0x29 (or 0x28, serial only) marks the extended block.
    let (uuid, label) = match bs[sig_at] {
        0x29 | 0x28 => {
            let serial = u32::from_le_bytes([
                bs[sig_at + 1],
                bs[sig_at + 2],
                bs[sig_at + 3],
                bs[sig_at + 4],
            ]);
            let uuid = format!("{:04X}-{:04X}", serial >> 16, serial & 0xFFFF);
            let label = if bs[sig_at] == 0x29 {
                let raw = String::from_utf8_lossy(&bs[sig_at + 5..sig_at + 16]).into_owned();
                let l = raw.trim_end_matches([' ', '\0']).to_string();
                // mkfs's placeholder for "no label".
                if l == "NO NAME" {
                    String::new()
                } else {
                    l
                }
            } else {
                String::new()
            };
            (uuid, label)
        }
        _ => (String::new(), String::new()),
    };
    Some(FsIdent {
        fstype: "vfat",
        uuid,
        label,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixtures: the superblock bytes of images made by the real tools (xfsprogs, btrfs-progs,
    // dosfstools, util-linux mkswap) with the UUIDs and labels below; `blkid` on those images
    // printed the same values.
    const XFS: &[u8] = include_bytes!("fixtures/xfs.sb");
    const BTRFS_SB: &[u8] = include_bytes!("fixtures/btrfs.sb");
    const FAT32: &[u8] = include_bytes!("fixtures/fat32.sb");
    const FAT16: &[u8] = include_bytes!("fixtures/fat16.sb");
    const SWAP: &[u8] = include_bytes!("fixtures/swap.sb");

    fn at(offset: usize, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; PROBE_LEN];
        v[offset..offset + bytes.len()].copy_from_slice(bytes);
        v
    }

    fn ident(t: &'static str, uuid: &str, label: &str) -> Option<FsIdent> {
        Some(FsIdent {
            fstype: t,
            uuid: uuid.into(),
            label: label.into(),
        })
    }

    #[test]
    fn xfs_from_mkfs_xfs() {
        assert_eq!(
            identify(&at(0, XFS)),
            ident("xfs", "3d1f0c2a-5b6e-4f70-8a91-b2c3d4e5f607", "xfsdata")
        );
    }

    #[test]
    fn btrfs_from_mkfs_btrfs() {
        assert_eq!(
            identify(&at(BTRFS_SB_OFFSET, BTRFS_SB)),
            ident("btrfs", "0c7e1d2f-3a4b-4c5d-9e6f-708192a3b4c5", "btrdata")
        );
        // The superblock alone, without the 64 KiB before it, is not enough to find it.
        assert_eq!(read_btrfs(BTRFS_SB), None);
    }

    #[test]
    fn fat_from_mkfs_vfat() {
        assert_eq!(identify(&at(0, FAT32)), ident("vfat", "1A2B-3C4D", "ESP"));
        assert_eq!(
            identify(&at(0, FAT16)),
            ident("vfat", "0BAD-CAFE", "BOOT DISK")
        );
    }

    #[test]
    fn fat_placeholder_label_is_no_label() {
        let mut b = at(0, FAT32);
        b[0x47..0x52].copy_from_slice(b"NO NAME    ");
        assert_eq!(identify(&b), ident("vfat", "1A2B-3C4D", ""));
    }

    #[test]
    fn an_mbr_is_not_fat() {
        let mut b = vec![0u8; 512];
        b[510] = 0x55;
        b[511] = 0xAA;
        assert_eq!(identify(&b), None);
    }

    #[test]
    fn swap_from_mkswap() {
        assert_eq!(
            identify(&at(0, SWAP)),
            ident("swap", "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9", "swap0")
        );
    }

    #[test]
    fn ext_types_by_features() {
        let mut b = vec![0u8; 2048];
        b[1024 + 0x38..1024 + 0x3a].copy_from_slice(&EXT_MAGIC.to_le_bytes());
        assert_eq!(read_ext(&b).map(|i| i.fstype), Some("ext2"));
        b[1024 + 0x5c] = 0x4;
        assert_eq!(read_ext(&b).map(|i| i.fstype), Some("ext3"));
        b[1024 + 0x60] = 0x40;
        assert_eq!(read_ext(&b).map(|i| i.fstype), Some("ext4"));
        // No UUID set: no by-uuid name rather than all zeros.
        assert_eq!(read_ext(&b).map(|i| i.uuid), Some(String::new()));
    }

    #[test]
    fn short_or_empty_input_is_nothing() {
        for n in [0, 1, 100, 511, 512, 2048, PROBE_LEN] {
            assert_eq!(identify(&vec![0u8; n]), None, "{n} zero bytes");
        }
        // Truncated right after each magic: no panic, no answer.
        assert_eq!(identify(&XFS[..100]), None);
        assert_eq!(
            identify(&at(0, SWAP)[..4096]).map(|i| i.fstype),
            Some("swap")
        );
        assert_eq!(identify(&at(0, SWAP)[..1030]), None);
    }
}
