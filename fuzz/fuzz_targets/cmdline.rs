//! The kernel command line, read from /proc/cmdline by stage 0, stage 1, the network (`ip=`,
//! `lifsea.net.timeout=`), module loading (`modprobe.blacklist=`, `MODULE.PARAM=`) and unit
//! conditions; plus the init's own argv (`cli::parse`), which the kernel passes after `--`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifsea_init::boot::cmdline;
use lifsea_init::devices::blockdev::RootSpec;
use lifsea_init::devices::modprobe_d::ModprobeConfig;
use lifsea_init::net::ipconfig;
use lifsea_init::procfs::cmdline_words;
use lifsea_init::units::condition::cmdline_has;
use lifsea_init::units::values::MAX_DURATION;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let p = cmdline::parse(&text);
    if let Some(root) = &p.root {
        // `root=` round trip: what a message prints parses back to the same device.
        assert_eq!(RootSpec::parse(&root.to_string()).as_ref(), Some(root));
    }
    let words = cmdline_words(&text);
    let mut probed = 0;
    for w in &words {
        if let Some(v) = w.strip_prefix("ip=") {
            let _ = ipconfig::parse(v);
        }
        // A word with a value answers a condition on its bare key. `cmdline_has` scans every
        // word, so probing all of them is quadratic (a 2 KB line of `a=` words took most of the
        // time per input): the first 16 keys and the last one are enough to catch a scan that
        // stops early or misreads a key.
        if let Some((k, _)) = w.split_once('=') {
            probed += 1;
            if probed <= 16 || std::ptr::eq(w, words.last().unwrap_or(w)) {
                assert!(cmdline_has(&words, k), "{k:?} not found in {words:?}");
            }
        }
    }
    let (configs, timeout, _errors) = ipconfig::from_cmdline(&words);
    assert!(configs.len() <= words.len());
    if let Some(t) = timeout {
        assert!(t <= MAX_DURATION);
    }
    let _ = lifsea_init::net::config::plan(None, &configs, timeout);
    let mut mp = ModprobeConfig::default();
    mp.apply_cmdline(&text);
    for m in &p.module_blacklist {
        let _ = mp.is_blacklisted(m);
        let _ = mp.params_for(m);
    }
    let _ = lifsea_init::cli::parse(&words, None);
    let _ = lifsea_init::cli::parse(&words, Some("x"));
});
