//! The kernel module index and configuration: `modules.alias`, `modules.dep`, `modules.builtin`,
//! `modules.softdep` (depmod's output in the image), modprobe.d files, /proc/modules, the load
//! records the init keeps, and the resolution of a request (name, alias or device modalias) into
//! a load plan, with fnmatch globbing of alias patterns.
//!
//! Input: up to seven NUL-separated parts: alias, dep, builtin, softdep, modprobe.d, /proc/modules,
//! requests (whitespace-separated).
#![no_main]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use lifsea_init::devices::index::{ModuleIndex, Resolved};
use lifsea_init::devices::loader::parse_records;
use lifsea_init::devices::modalias::{
    glob_match, modules_for, normalize, parse_proc_modules, DepTable,
};
use lifsea_init::devices::modprobe_d::ModprobeConfig;

fuzz_target!(|data: &[u8]| {
    let p = common::parts(data, 7);
    let index = ModuleIndex::parse_with_softdeps(&p[0], &p[1], &p[2], &p[3]);
    let mut cfg = ModprobeConfig::default();
    let _ = cfg.parse_file("fuzz.conf", &p[4]);
    let _ = parse_proc_modules(&p[5]);
    let _ = lifsea_init::mkinitramfs::builtin_modules(&p[2]);
    let _ = lifsea_init::node::parse_modules_load(&p[4]);
    let requests = common::words(&p[6]);
    // The index already parsed modules.alias and modules.dep; parsing them again here cost a
    // quarter of each input's time and checked nothing new (the parsers are pure).
    let aliases = &index.aliases;
    for r in requests.iter().take(8) {
        match index.resolve(&cfg, r) {
            Resolved::Modules(ms) => {
                let plan = index.plan(&cfg, &ms);
                let mut seen = BTreeSet::new();
                for s in &plan {
                    assert!(
                        seen.insert(s.module.clone()),
                        "{} twice in {plan:?}",
                        s.module
                    );
                }
            }
            _ => {}
        }
        for m in modules_for(aliases, r) {
            assert!(aliases
                .iter()
                .any(|a| a.module == m && glob_match(&a.pattern, r)));
        }
        // A text without glob characters matches itself, and `*` matches anything.
        if !r.contains(['*', '?', '[', '\\']) {
            assert!(glob_match(r, r), "{r:?} does not match itself");
        }
        assert!(glob_match("*", r));
    }
    let dep = &index.dep;
    let (order, _unknown) = dep.load_order(&requests);
    let unique: BTreeSet<&String> = order.iter().collect();
    assert_eq!(unique.len(), order.len(), "{order:?}");
    // modules.dep of an initramfs is the subset rendered from the full one: it reads back the same.
    let all: lifsea_init::collections::keyset::StrSet = dep.modules.keys().cloned().collect();
    let back = DepTable::parse(&dep.render_subset(&all));
    assert_eq!(&back, dep);
    for r in requests.iter().take(4) {
        let _ = dep.path_of(r);
        assert_eq!(normalize(&normalize(r)), normalize(r));
    }
    // The load records the init writes (`module\tpath...`), read back after a crash.
    for rec in parse_records(&p[4]) {
        let line = rec.to_line();
        assert_eq!(parse_records(&line), vec![rec]);
    }
});
