//! Boot Loader Specification entries under /boot/loader/entries (`os::bls`) and boot counting
//! (`os::bootcount`): file names with `+LEFT-DONE` counters, entry text, the order the bootloader
//! and the init agree on, and the renames that count and bless.
//!
//! Input: NUL-separated entries, each `FILE_NAME\nTEXT`.
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::cmp::Ordering;

use libfuzzer_sys::fuzz_target;
use lifsea_init::os::bls::{file_name, parse_entry, parse_file_name};
use lifsea_init::os::bootcount::{
    blessed_name, choose, decremented, own_entry, sort_entries, vercmp, with_tries,
};

fn counts_back(name: &str, id: &str) {
    let n = parse_file_name(name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
    assert_eq!(n.id, id);
}

fuzz_target!(|data: &[u8]| {
    let parts = common::parts(data, 8);
    let mut entries = Vec::new();
    for part in &parts {
        let (file, text) = part.split_once('\n').unwrap_or((part, ""));
        if let Ok(n) = parse_file_name(file) {
            // The name the init and the bootloader write parses back to the same id and counter.
            let again = parse_file_name(&file_name(&n.id, n.counter)).expect("file_name parses");
            assert_eq!(again, n);
        }
        if let Ok(e) = parse_entry(file, text) {
            if let Some(new) = decremented(&e) {
                counts_back(&new, &e.id);
                let c = parse_file_name(&new).unwrap().counter.unwrap();
                assert_eq!(Some(c.left + 1), e.tries_left());
            }
            if let Some(b) = blessed_name(&e) {
                counts_back(&b, &e.id);
                assert!(parse_file_name(&b).unwrap().counter.is_none());
            }
            counts_back(&with_tries(&e, 3), &e.id);
            entries.push(e);
        }
    }
    sort_entries(&mut entries);
    if let Some(c) = choose(&entries) {
        assert!(entries.iter().any(|e| e.file_name == c.file_name));
        // The first in the order boots; a bad one only when every entry is bad.
        assert_eq!(c.file_name, entries[0].file_name);
        if entries[0].bad() {
            assert!(entries.iter().all(|e| e.bad()));
        }
    }
    if let Some(e) = entries.first() {
        if let Some(arg) = e.option("ostree") {
            let own = own_entry(&entries, arg);
            if let Some(o) = own {
                assert_eq!(o.option("ostree"), Some(arg));
            }
        }
    }
    // vercmp must be a total order, or sorting the entries could panic or disagree with the
    // bootloader: antisymmetric and transitive over the first three parts.
    let (a, b, c) = (&parts[0], &parts[1], &parts[2]);
    assert_eq!(vercmp(a, a), Ordering::Equal);
    assert_eq!(vercmp(a, b), vercmp(b, a).reverse(), "{a:?} {b:?}");
    let (ab, bc, ac) = (vercmp(a, b), vercmp(b, c), vercmp(a, c));
    if ab != Ordering::Greater && bc != Ordering::Greater {
        assert_ne!(
            ac,
            Ordering::Greater,
            "{a:?} <= {b:?} <= {c:?} but {a:?} > {c:?}"
        );
    }
    if ab == Ordering::Equal && bc == Ordering::Equal {
        assert_eq!(ac, Ordering::Equal);
    }
});
