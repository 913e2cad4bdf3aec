//! The DHCP client state machine (`net::dhcp::Client`) driven by a sequence of events decoded from
//! the input: replies (with the xid and MAC the client expects patched in, so they get past the
//! first checks), timer expiries, carrier changes and release. The first part of the input is the
//! lease file remembered from the last boot (`/var/lib/lifsea/dhcp-IF.lease`, JSON).
//!
//! Input: `LEASE_JSON \0 EVENTS`; each event is one byte of kind, then for a packet two bytes of
//! length and the packet.
#![no_main]

#[path = "common/lease.rs"]
mod lease;

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use lifsea_init::net::dhcp::lease::Saved;
use lifsea_init::net::dhcp::{Action, Client, Input, State};

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

fuzz_target!(|data: &[u8]| {
    let (file, mut events) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let remembered = std::str::from_utf8(file)
        .ok()
        .and_then(|t| serde_json::from_str::<Saved>(t).ok())
        .map(|s| s.lease);
    let mut c = Client::new(MAC, 0x5eed, remembered);
    let mut now = Instant::now();
    let mut buf = Vec::new();
    let mut steps = 0;
    while let Some((&kind, rest)) = events.split_first() {
        events = rest;
        steps += 1;
        // Nearly every step makes the client encode a packet (dhcproto writes it byte by byte,
        // each byte a traced comparison), so the cost per input is the number of steps. A whole
        // lease life (start, offer, ack, renew, rebind, expiry, restart) takes under ten events:
        // 24 allow two of them plus noise, at well under half the cost of 64.
        if steps > 24 {
            break;
        }
        let acts = match kind % 8 {
            0 => c.step(Input::Start, now),
            1 | 2 | 3 => {
                let len = match events {
                    [a, b, ..] => usize::from(u16::from_le_bytes([*a, *b])),
                    _ => 0,
                };
                events = events.get(2..).unwrap_or(&[]);
                let take = len.min(events.len());
                buf.clear();
                buf.extend_from_slice(&events[..take]);
                events = &events[take..];
                // kind 3 sends the bytes as they are; 1 and 2 make them an answer to this client.
                if kind % 8 != 3 && buf.len() >= 34 {
                    buf[4..8].copy_from_slice(&c.xid().to_be_bytes());
                    buf[28..34].copy_from_slice(&MAC);
                }
                c.step(Input::Packet(&buf), now)
            }
            4 => {
                if let Some(d) = c.deadline() {
                    now = now.max(d);
                }
                c.step(Input::Timer, now)
            }
            5 => c.step(Input::CarrierDown, now),
            6 => c.step(Input::CarrierUp, now),
            _ => {
                now += Duration::from_secs(u64::from(kind) * 97);
                c.step(Input::Release, now)
            }
        };
        for a in &acts {
            match a {
                Action::Apply { lease, .. } => lease::check(lease),
                Action::Send { packet, .. } => assert!(!packet.is_empty()),
                Action::Remove { .. } | Action::Dropped(_) => {}
            }
        }
        if let Some(d) = c.deadline() {
            assert!(d >= now, "deadline in the past in state {:?}", c.state());
        }
        if let Some(l) = c.lease() {
            lease::check(l);
        }
        let _ = c.lease_times();
        if c.state() == State::Stopped {
            assert!(c.step(Input::Start, now).is_empty());
        }
    }
});
