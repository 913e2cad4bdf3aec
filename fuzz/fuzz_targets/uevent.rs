//! Kernel uevents from the NETLINK_KOBJECT_UEVENT socket (`devices::uevent::parse`), and the input
//! events of the power button (`devices::power`). A parsed uevent re-encoded in the kernel's format
//! parses back to itself; a DEVNAME always stays below /dev.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifsea_init::devices::power::{has_key, parse_events, power_pressed, INPUT_EVENT_LEN};
use lifsea_init::devices::uevent::{encode, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = parse(data) {
        if let Some(name) = ev.devname() {
            assert!(!name.is_empty() && !name.starts_with('/'));
            assert!(
                name.split('/').all(|c| c != ".." && !c.is_empty()),
                "{name:?}"
            );
        }
        assert!(ev.devpath.starts_with('/') && !ev.devpath.contains("/../"));
        let action = ev
            .get("ACTION")
            .expect("parsed uevent has ACTION")
            .to_string();
        let env: Vec<(&str, &str)> = ev
            .env
            .iter()
            .filter(|(k, _)| *k != "ACTION" && *k != "DEVPATH")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let again = parse(&encode(&action, &ev.devpath, &env)).expect("re-encoded uevent parses");
        assert_eq!(again, ev);
        let _ = (ev.subsystem(), ev.modalias());
    }
    let events = parse_events(data);
    assert_eq!(events.len(), data.len() / INPUT_EVENT_LEN);
    let _ = power_pressed(&events);
    let text = String::from_utf8_lossy(data);
    for code in [0u16, 63, 64, 116, 767] {
        let _ = has_key(&text, code);
    }
});
