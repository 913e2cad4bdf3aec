//! Plain-text files under /etc and the init's own state files: /etc/hostname, /etc/machine-id,
//! sysctl.d, /etc/passwd and /etc/group (unit users, device rules), the device node rules, and
//! modules-load.d. Sysctl keys must never name a path outside /proc/sys.
//!
//! Input: NUL-separated parts: the file under test, passwd, group.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use lifsea_init::boot::machine::{parse_hostname, parse_sysctl, sysctl_path, valid_machine_id};
use lifsea_init::devices::rules;
use lifsea_init::units::users::{parse_group, parse_passwd, resolve};

fuzz_target!(|data: &[u8]| {
    let p = common::parts(data, 3);
    let text = &p[0];
    if let Some(h) = parse_hostname(text) {
        assert!(!h.is_empty() && h.len() <= 64 && !h.contains(char::is_whitespace));
    }
    let _ = valid_machine_id(text);
    let (settings, _bad) = parse_sysctl(text);
    for s in &settings {
        let path = sysctl_path(Path::new("/proc/sys"), &s.key);
        assert!(path.starts_with("/proc/sys/"), "{:?} -> {path:?}", s.key);
        assert!(
            path.components()
                .all(|c| matches!(c, Component::RootDir | Component::Normal(_))),
            "{:?} -> {path:?}",
            s.key
        );
    }
    let users = parse_passwd(&p[1]);
    let _ = parse_group(&p[2]);
    for u in users.iter().take(4) {
        if u.name.bytes().all(|b| b.is_ascii_digit()) && u.name.parse::<u32>().is_ok() {
            continue; // a number names a uid, not a user (documented in `users::resolve`)
        }
        let c = resolve(Some(&u.name), None, &p[1], &p[2]).expect("a listed user resolves");
        assert_eq!(c.uid, users.iter().find(|x| x.name == u.name).unwrap().uid);
    }
    let (rs, _errors) = rules::parse("fuzz.rules", text, &p[1], &p[2]);
    for r in &rs {
        assert!(r.mode <= 0o7777);
        assert!(!r.pattern.is_empty());
        let _ = rules::rule_for(&rs, &r.pattern);
    }
    let _ = lifsea_init::node::parse_modules_load(text);
});
