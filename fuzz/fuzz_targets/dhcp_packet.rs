//! DHCP replies as they arrive on UDP port 68 (`net::dhcp::packet::parse`): anyone on the link can
//! send them. The xid and hardware address the parser checks are taken from the input itself, so
//! that the fuzzer gets past those checks into the option handling.
#![no_main]

#[path = "common/lease.rs"]
mod lease;

use libfuzzer_sys::fuzz_target;
use lifsea_init::net::dhcp::packet::{self, Reply};

fuzz_target!(|data: &[u8]| {
    let xid = data
        .get(4..8)
        .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let mut mac = [0u8; 6];
    if let Some(b) = data.get(28..34) {
        mac.copy_from_slice(b);
    }
    match packet::parse(data, xid, mac) {
        Ok(Reply::Ack(l)) => lease::check(&l),
        Ok(Reply::Offer { address, .. }) => {
            assert!(!address.is_unspecified() && !address.is_broadcast() && !address.is_multicast())
        }
        Ok(Reply::Nak { message, .. }) => {
            if let Some(m) = message {
                assert!(!m.chars().any(char::is_control) && m.chars().count() <= 128);
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Some(b) = data.get(..13) {
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let (a, x, y) = (word(0), word(4), word(8));
        let opt = |bit: u8, v: u32| (b[12] & bit != 0).then_some(v);
        let (t1, t2) = packet::timers(a, opt(1, x), opt(2, y));
        assert!(t1 <= t2 && t2 <= a, "timers({a}, {x}, {y}) = ({t1}, {t2})");
        if let Some(p) = packet::mask_prefix(a.into()) {
            assert!(p <= 32);
        }
    }
});
