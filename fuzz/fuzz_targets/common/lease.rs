//! Invariants every lease the DHCP code hands to the network manager must hold, whatever the
//! server sent: they are what `net::manager::apply` and resolv.conf rely on.
use lifsea_init::net::dhcp::Lease;

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

pub fn check(l: &Lease) {
    assert!(l.prefix <= 32, "prefix {}", l.prefix);
    for r in &l.routes {
        assert!(r.prefix <= 32, "route prefix {}", r.prefix);
    }
    assert!(l.t1 <= l.t2 && l.t2 <= l.lease_time, "timers {l:?}");
    assert!(l.dns.len() <= 8);
    assert!(l.search.len() <= 6);
    for s in &l.search {
        assert!(name_ok(s), "search {s:?}");
    }
    if let Some(h) = &l.hostname {
        assert!(name_ok(h) && h.len() <= 64, "hostname {h:?}");
    }
    if let Some(m) = l.mtu {
        assert!(m >= 576);
    }
    assert!(!l.address.is_unspecified() && !l.address.is_broadcast());
    let _ = l.broadcast_address();
    // What the init writes to /var/lib/lifsea and reads at the next boot comes back unchanged.
    let json = serde_json::to_string(l).expect("a lease serialises");
    let back: Lease = serde_json::from_str(&json).expect("a lease deserialises");
    assert_eq!(&back, l);
    // resolv.conf: one line per server, one search line; no name can inject another line.
    let servers: Vec<std::net::IpAddr> = l.dns.iter().map(|a| (*a).into()).collect();
    let text = lifsea_init::net::resolv::render(&servers, &l.search);
    for line in text.lines() {
        assert!(
            line.starts_with('#') || line.starts_with("nameserver ") || line.starts_with("search "),
            "{line:?}"
        );
    }
}
