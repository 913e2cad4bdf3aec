//! Superblock and GPT readers against real images made by mkfs.ext4 and sgdisk, and `find_root`
//! against a fake /dev + /sys/class/block pointing at those images.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lifsea_init::boot::cmdline::RootSpec;
use lifsea_init::devices::blockdev::{find_root, read_gpt, scan_once, BlockError};
use lifsea_init::devices::fsprobe::identify;

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("lifsea-bd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ext4_image(path: &Path, label: &str, uuid: &str) {
    std::fs::write(path, vec![0u8; 4 << 20]).unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", label, "-U", uuid])
        .arg(path));
}

const UUID: &str = "2f1c9e54-7a0b-4c1d-9e8f-0123456789ab";

#[test]
fn reads_label_and_uuid_written_by_mkfs_ext4() {
    let d = tmpdir("ext4");
    let img = d.join("fs.img");
    ext4_image(&img, "mylabel", UUID);
    let bytes = std::fs::read(&img).unwrap();
    let id = identify(&bytes[..2048]).expect("ext4 superblock");
    assert_eq!(id.fstype, "ext4");
    assert_eq!(id.label, "mylabel");
    assert_eq!(id.uuid, UUID);
    // And blkid, the tool we replace, agrees.
    if let Ok(out) = Command::new("blkid")
        .args(["-o", "value", "-s", "UUID"])
        .arg(&img)
        .output()
    {
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), UUID);
        }
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn reads_gpt_partuuid_and_name_written_by_sgdisk() {
    let d = tmpdir("gpt");
    let img = d.join("disk.img");
    std::fs::write(&img, vec![0u8; 8 << 20]).unwrap();
    let guid = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";
    let g2 = "6A2B7C1D-0000-4E5F-A1B2-C3D4E5F60718";
    run(Command::new("sgdisk")
        .args([
            "-n",
            "1:2048:+2M",
            "-c",
            "1:lifsea-sys",
            "-u",
            &format!("1:{guid}"),
        ])
        .args(["-n", "2:0:0", "-c", "2:data", "-u", &format!("2:{g2}")])
        .arg(&img));
    let parts = read_gpt(&img).expect("a GPT");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].number, 1);
    assert_eq!(parts[0].partuuid, guid.to_ascii_lowercase());
    assert_eq!(parts[0].name, "lifsea-sys");
    assert_eq!(parts[1].number, 2);
    assert_eq!(parts[1].partuuid, g2.to_ascii_lowercase());
    assert_eq!(parts[1].name, "data");
    // A filesystem image is not a GPT disk.
    let fs = d.join("fs.img");
    ext4_image(&fs, "x", UUID);
    assert_eq!(read_gpt(&fs), None);
    std::fs::remove_dir_all(&d).unwrap();
}

/// dev/{vda,vdb,vdb1} and sys/{vda,vdb,vdb/vdb1/partition}: vda holds an ext4 filesystem, vdb a
/// GPT whose first partition is vdb1.
fn fake_machine(d: &Path) -> (PathBuf, PathBuf) {
    let dev = d.join("dev");
    let sys = d.join("sys");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::create_dir_all(sys.join("vda")).unwrap();
    std::fs::create_dir_all(sys.join("vdb/vdb1")).unwrap();
    std::fs::write(sys.join("vdb/vdb1/partition"), "1\n").unwrap();
    std::fs::create_dir_all(sys.join("vdb1")).unwrap();
    std::fs::write(sys.join("vdb1/partition"), "1\n").unwrap();
    ext4_image(&dev.join("vda"), "lifsea-root", UUID);
    std::fs::write(dev.join("vdb"), vec![0u8; 8 << 20]).unwrap();
    run(Command::new("sgdisk")
        .args([
            "-n",
            "1:2048:0",
            "-c",
            "1:root-b",
            "-u",
            "1:11111111-2222-3333-4444-555555555555",
        ])
        .arg(dev.join("vdb")));
    std::fs::write(dev.join("vdb1"), b"").unwrap();
    (dev, sys)
}

#[test]
fn find_root_resolves_label_uuid_partuuid_partlabel_and_path() {
    let d = tmpdir("find");
    let (dev, sys) = fake_machine(&d);
    let none = Duration::from_millis(0);
    let f = |s: RootSpec| find_root(&s, &dev, &sys, none, || {}).unwrap();
    assert_eq!(f(RootSpec::Label("lifsea-root".into())), dev.join("vda"));
    assert_eq!(f(RootSpec::Uuid(UUID.into())), dev.join("vda"));
    assert_eq!(
        f(RootSpec::PartUuid(
            "11111111-2222-3333-4444-555555555555".into()
        )),
        dev.join("vdb1")
    );
    assert_eq!(f(RootSpec::PartLabel("root-b".into())), dev.join("vdb1"));
    let p = dev.join("vda").to_string_lossy().into_owned();
    assert_eq!(f(RootSpec::Path(p.clone())), PathBuf::from(p));
    assert_eq!(
        scan_once(&RootSpec::Label("other".into()), &dev, &sys),
        None
    );
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn find_root_times_out_with_the_devices_it_saw_and_waits_for_late_ones() {
    let d = tmpdir("wait");
    let (dev, sys) = fake_machine(&d);
    let start = Instant::now();
    let err = find_root(
        &RootSpec::Label("missing".into()),
        &dev,
        &sys,
        Duration::from_millis(300),
        || {},
    )
    .unwrap_err();
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let BlockError::NotFound { available, .. } = &err;
    assert_eq!(
        available,
        &vec!["vda".to_string(), "vdb".to_string(), "vdb1".to_string()]
    );
    let msg = err.to_string();
    assert!(
        msg.contains("LABEL=missing") && msg.contains("vda, vdb, vdb1"),
        "{msg}"
    );

    // A device that shows up while we wait is found: the hook "loads a driver" on its 3rd call.
    let late = dev.join("late");
    let mut calls = 0;
    let found = find_root(
        &RootSpec::Path(late.to_string_lossy().into_owned()),
        &dev,
        &sys,
        Duration::from_secs(5),
        || {
            calls += 1;
            if calls == 3 {
                std::fs::write(&late, b"").unwrap();
            }
        },
    )
    .unwrap();
    assert_eq!(found, late);
    assert_eq!(calls, 3);
    std::fs::remove_dir_all(&d).unwrap();
}
