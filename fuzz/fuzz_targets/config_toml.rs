//! The init's own TOML configuration under /etc/lifsea: network.toml (`net::config::parse`, then
//! merged with the kernel's `ip=` by `plan`), os.toml (`os::config::parse`, boot health and
//! watchdog) and node.toml (`node::parse_config`). The first byte picks the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use lifsea_init::units::values::MAX_DURATION;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 3 {
        0 => {
            let Ok(cfg) = lifsea_init::net::config::parse(Path::new("network.toml"), text) else {
                return;
            };
            assert!(cfg.online_timeout <= MAX_DURATION);
            for l in &cfg.links {
                for (_, prefix) in &l.addresses {
                    assert!(*prefix <= 32);
                }
                for r in &l.routes {
                    assert!(r.prefix <= 32);
                }
                let _ = l
                    .matcher
                    .matches("eth0", Some([2, 0, 0, 0, 0, 1]), Some("virtio_net"));
                if let (Some(n), None, None) = (&l.matcher.name, l.matcher.mac, &l.matcher.driver) {
                    // A name pattern matches the name it spells (`eth*` matches `eth`).
                    let probe = n.strip_suffix('*').unwrap_or(n);
                    assert!(l.matcher.matches(probe, None, None), "{n:?}");
                }
            }
            let _ = lifsea_init::net::config::plan(Some(cfg), &[], None);
        }
        1 => {
            if let Ok(c) = lifsea_init::os::config::parse(Path::new("os.toml"), text) {
                assert!(c.healthy_for < c.deadline && c.deadline <= MAX_DURATION);
                assert!((1..=100).contains(&c.tries));
                if let Some(w) = c.watchdog {
                    assert!(w <= MAX_DURATION);
                }
            }
        }
        _ => {
            if let Ok(c) = lifsea_init::node::parse_config(text) {
                assert!(lifsea_init::units::parse::check_cgroup_path(&c.pods_cgroup).is_ok());
                assert!(c.directories.iter().all(|d| d.is_absolute()));
            }
        }
    }
});
