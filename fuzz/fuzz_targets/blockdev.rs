//! What stage 0 and the device links read from disks: filesystem superblocks (`devices::fsprobe`:
//! ext2/3/4, XFS, Btrfs, swap, FAT) and the GPT header and partition entries
//! (`devices::blockdev`), turned into `/dev/disk/by-*` names (`devices::links::link_names`), and the
//! probe helper's report line as PID 1 reads it back (`devices::probe_jobs`). A disk's content is
//! untrusted: a USB stick may carry any label.
//!
//! Input: the first bytes of a device; the GPT header is read at offset 512 and the entries at
//! offset 1024 of the same input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifsea_init::devices::blockdev::{parse_gpt_entries, parse_gpt_header};
use lifsea_init::devices::fsprobe::identify;
use lifsea_init::devices::probe_jobs::{info_from_json, info_to_json};
use lifsea_init::devices::links::{link_names, BlockInfo};

fuzz_target!(|data: &[u8]| {
    let fs = identify(data);
    let mut info = BlockInfo {
        devname: "vda1".into(),
        fs,
        part: None,
        disk_id: None,
        partition: Some(1),
    };
    if let Some(h) = data.get(512..).and_then(parse_gpt_header) {
        assert!(h.entry_size >= 128 && h.entry_size <= 4096 && h.num_entries <= 1024);
        let parts = parse_gpt_entries(data.get(1024..).unwrap_or(&[]), &h);
        assert!(parts.len() <= h.num_entries as usize);
        for p in &parts {
            assert!(p.number >= 1 && p.number <= h.num_entries);
        }
        info.part = parts.into_iter().next();
    }
    info.disk_id = info.fs.as_ref().map(|f| f.label.clone());
    // The helper's report reads back to what it said.
    assert_eq!(
        info_from_json(&info_to_json(&info).to_string()).as_ref(),
        Some(&info)
    );
    let _ = info_from_json(&String::from_utf8_lossy(data));
    for (name, target) in link_names(&info) {
        assert_eq!(target, "../../vda1");
        // Every link stays in its by-* directory: no `/` in the last part, never `.` or `..`.
        let mut c = name.split('/');
        assert_eq!(c.next(), Some("disk"));
        assert!(c.next().is_some_and(|d| d.starts_with("by-")));
        let leaf = c.next().expect("a leaf name");
        assert!(c.next().is_none(), "{name:?}");
        assert!(!leaf.is_empty() && leaf != "." && leaf != "..", "{name:?}");
    }
});
