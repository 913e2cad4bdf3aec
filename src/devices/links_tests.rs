//! Link naming from superblock and GPT fixtures, and the link table in a temporary /dev tree.

use super::*;

/// A 2048-byte device start with an ext4 superblock (magic, UUID, label at their offsets).
fn ext4_fixture(uuid: [u8; 16], label: &str) -> Vec<u8> {
    let mut b = vec![0u8; 4096];
    let sb = 1024;
    b[sb + 0x38..sb + 0x3a].copy_from_slice(&0xEF53u16.to_le_bytes());
    b[sb + 0x68..sb + 0x78].copy_from_slice(&uuid);
    b[sb + 0x78..sb + 0x78 + label.len()].copy_from_slice(label.as_bytes());
    b
}

/// A disk start with a GPT (512-byte sectors) whose first entry is named `name`.
fn gpt_fixture(guid: [u8; 16], name: &str) -> Vec<u8> {
    let mut b = vec![0u8; 1024 + 128 * 128];
    b[512..520].copy_from_slice(b"EFI PART");
    b[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
    b[512 + 80..512 + 84].copy_from_slice(&128u32.to_le_bytes());
    b[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
    let e = 1024;
    b[e..e + 16].copy_from_slice(&[0x11; 16]);
    b[e + 16..e + 32].copy_from_slice(&guid);
    for (i, u) in name.encode_utf16().enumerate() {
        b[e + 56 + 2 * i..e + 58 + 2 * i].copy_from_slice(&u.to_le_bytes());
    }
    b
}

const UUID: [u8; 16] = [
    0x3f, 0x2a, 0x1c, 0x44, 0x9d, 0x10, 0x4e, 0x21, 0x8a, 0x55, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
];

#[test]
fn names_from_superblock_gpt_and_serial() {
    let info = BlockInfo {
        devname: "vdb1".into(),
        fs: crate::devices::fsprobe::read_ext(&ext4_fixture(UUID, "data disk")),
        part: Some(GptPartition {
            number: 1,
            partuuid: "0a0b0c0d-0e0f-1011-1213-141516171819".into(),
            name: "my/part".into(),
        }),
        disk_id: Some("virtio-vol 1".into()),
        partition: Some(1),
    };
    let names = link_names(&info);
    let t = "../../vdb1".to_string();
    assert_eq!(
        names,
        vec![
            (
                "disk/by-uuid/3f2a1c44-9d10-4e21-8a55-010203040506".into(),
                t.clone()
            ),
            ("disk/by-label/data\\x20disk".into(), t.clone()),
            (
                "disk/by-partuuid/0a0b0c0d-0e0f-1011-1213-141516171819".into(),
                t.clone()
            ),
            ("disk/by-partlabel/my\\x2fpart".into(), t.clone()),
            ("disk/by-id/virtio-vol\\x201-part1".into(), t),
        ]
    );
    // No filesystem, no GPT, no serial: no links.
    assert!(link_names(&BlockInfo {
        devname: "vdc".into(),
        ..Default::default()
    })
    .is_empty());
    assert_eq!(escape(".."), "\\x2e\\x2e");
    assert_eq!(serial_word("  QEMU NVMe Ctrl "), "QEMU_NVMe_Ctrl");
}

struct Tree(PathBuf);
impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn tree(tag: &str) -> Tree {
    let t = std::env::temp_dir().join(format!("lifsea-links-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&t);
    std::fs::create_dir_all(&t).unwrap();
    Tree(t)
}

#[test]
fn probe_reads_sysfs_gpt_and_superblock() {
    let t = tree("probe");
    let (sys, dev) = (t.0.join("sys/class/block"), t.0.join("dev"));
    let disk_dir = t.0.join("sys/devices/pci/virtio3/block/vdb");
    std::fs::create_dir_all(disk_dir.join("vdb1")).unwrap();
    std::fs::create_dir_all(&sys).unwrap();
    std::fs::create_dir_all(&dev).unwrap();
    std::os::unix::fs::symlink(&disk_dir, sys.join("vdb")).unwrap();
    std::os::unix::fs::symlink(disk_dir.join("vdb1"), sys.join("vdb1")).unwrap();
    std::fs::write(disk_dir.join("serial"), "vol-42\n").unwrap();
    std::fs::write(disk_dir.join("vdb1/partition"), "1\n").unwrap();
    let guid = [
        0x0d, 0x0c, 0x0b, 0x0a, 0x0f, 0x0e, 0x11, 0x10, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18,
        0x19,
    ];
    std::fs::write(dev.join("vdb"), gpt_fixture(guid, "data")).unwrap();
    std::fs::write(dev.join("vdb1"), ext4_fixture(UUID, "scratch")).unwrap();

    let info = probe("vdb1", &sys, &dev);
    assert_eq!(info.partition, Some(1));
    assert_eq!(info.disk_id.as_deref(), Some("virtio-vol-42"));
    assert_eq!(info.fs.as_ref().map(|f| f.label.as_str()), Some("scratch"));
    let part = info.part.as_ref().unwrap();
    assert_eq!(part.partuuid, "0a0b0c0d-0e0f-1011-1213-141516171819");
    assert_eq!(part.name, "data");
    let disk = probe("vdb", &sys, &dev);
    assert_eq!(disk.partition, None);
    assert_eq!(disk.fs, None);
    assert_eq!(
        link_names(&disk),
        vec![(
            "disk/by-id/virtio-vol-42".to_string(),
            "../../vdb".to_string()
        )]
    );
}

/// A FAT16 partition as `mkfs.vfat -n "BOOT DISK" -i 0badcafe` left it: blkid's upper-case
/// serial as the by-uuid name, the label's space escaped as udev does.
#[test]
fn probe_names_a_fat_partition_like_udev() {
    let t = tree("fat");
    let (sys, dev) = (t.0.join("sys"), t.0.join("dev"));
    std::fs::create_dir_all(sys.join("vdc1")).unwrap();
    std::fs::create_dir_all(&dev).unwrap();
    let mut head = include_bytes!("fixtures/fat16.sb").to_vec();
    head.resize(8192, 0);
    std::fs::write(dev.join("vdc1"), head).unwrap();
    let info = probe("vdc1", &sys, &dev);
    assert_eq!(info.fs.as_ref().map(|f| f.fstype), Some("vfat"));
    assert_eq!(
        link_names(&info),
        vec![
            (
                "disk/by-uuid/0BAD-CAFE".to_string(),
                "../../vdc1".to_string()
            ),
            (
                "disk/by-label/BOOT\\x20DISK".to_string(),
                "../../vdc1".to_string()
            ),
        ]
    );
}

#[test]
fn table_creates_updates_and_removes_links() {
    let t = tree("table");
    let dev = t.0.join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    let mut table = LinkTable::new(&dev);
    let l = |n: &str, d: &str| (n.to_string(), format!("../../{d}"));
    let (created, errors) = table.set(
        "vdb",
        vec![l("disk/by-label/a", "vdb"), l("disk/by-uuid/u1", "vdb")],
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(created, vec!["disk/by-label/a", "disk/by-uuid/u1"]);
    assert_eq!(
        std::fs::read_link(dev.join("disk/by-label/a")).unwrap(),
        Path::new("../../vdb")
    );
    // change: a new filesystem (new label and UUID) replaces the old names.
    let (created, _) = table.set(
        "vdb",
        vec![l("disk/by-label/b", "vdb"), l("disk/by-uuid/u1", "vdb")],
    );
    assert_eq!(created, vec!["disk/by-label/b"]);
    assert!(!dev.join("disk/by-label/a").is_symlink());
    assert!(dev.join("disk/by-uuid/u1").is_symlink());
    // Another disk takes the same label: newest wins, and removing the first keeps it.
    table.set("vdc", vec![l("disk/by-label/b", "vdc")]);
    let (removed, errors) = table.remove("vdb");
    assert!(errors.is_empty());
    assert_eq!(removed, vec!["disk/by-uuid/u1"]);
    assert_eq!(
        std::fs::read_link(dev.join("disk/by-label/b")).unwrap(),
        Path::new("../../vdc")
    );
    assert!(!dev.join("disk/by-uuid/u1").exists());
    table.remove("vdc");
    assert!(!dev.join("disk/by-label/b").is_symlink());
    assert!(table.all().is_empty());
}

#[test]
fn standard_links_are_made_once() {
    let t = tree("std");
    assert!(standard_links(&t.0).is_empty());
    assert_eq!(
        std::fs::read_link(t.0.join("fd")).unwrap(),
        Path::new("/proc/self/fd")
    );
    assert_eq!(
        std::fs::read_link(t.0.join("stderr")).unwrap(),
        Path::new("/proc/self/fd/2")
    );
    assert!(standard_links(&t.0).is_empty());
}
