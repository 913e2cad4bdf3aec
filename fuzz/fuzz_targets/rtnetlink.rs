//! rtnetlink notifications from the kernel (`net::link::messages` and `net::link::event`): link,
//! address and route changes, parsed by hand from the fixed headers and attributes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifsea_init::net::link::{event, messages, RtnlEvent};

fuzz_target!(|data: &[u8]| {
    let msgs = messages(data);
    let total: usize = msgs.iter().map(|(_, _, p)| p.len() + 16).sum();
    assert!(total <= data.len());
    for (kind, _seq, payload) in &msgs {
        if let Some(RtnlEvent::Link(l)) = event(*kind, payload) {
            // The name is cut at its first NUL, as the kernel terminates it.
            assert!(!l.name.contains('\0'));
        }
    }
    // The payload alone, under every message type the init follows.
    for kind in [16u16, 17, 20, 21, 24, 25] {
        let _ = event(kind, data);
    }
});
