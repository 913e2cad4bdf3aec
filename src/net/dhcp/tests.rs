//! The DHCP client driven with packets built by `dhcproto` and a simulated clock.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::{DhcpOption, MessageType, OptionCode};

use super::client::{Action, Client, Dest, Input, State};
use super::lease::{Lease, Route};
use super::packet::{self, decode_request, server_reply, PacketError, Reply, MAX_MESSAGE};

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn sent(actions: &[Action]) -> Vec<(Dest, MessageType)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send { dest, kind, .. } => Some((*dest, *kind)),
            _ => None,
        })
        .collect()
}

fn base_opts(lease: u32) -> Vec<DhcpOption> {
    vec![
        DhcpOption::ServerIdentifier(SERVER),
        DhcpOption::AddressLeaseTime(lease),
        DhcpOption::SubnetMask(Ipv4Addr::new(255, 255, 255, 0)),
        DhcpOption::Router(vec![SERVER]),
        DhcpOption::DomainNameServer(vec![Ipv4Addr::new(10, 0, 2, 3)]),
    ]
}

fn offer(c: &Client) -> Vec<u8> {
    server_reply(MessageType::Offer, c.xid(), MAC, ADDR, base_opts(3600))
}

fn ack(c: &Client, lease: u32) -> Vec<u8> {
    server_reply(MessageType::Ack, c.xid(), MAC, ADDR, base_opts(lease))
}

fn nak(c: &Client) -> Vec<u8> {
    server_reply(
        MessageType::Nak,
        c.xid(),
        MAC,
        Ipv4Addr::UNSPECIFIED,
        vec![DhcpOption::ServerIdentifier(SERVER)],
    )
}

/// A client taken to BOUND at `t0` with a lease of `lease` seconds.
fn bound(t0: Instant, lease: u32) -> Client {
    let mut c = Client::new(MAC, 42, None);
    c.step(Input::Start, t0);
    c.step(Input::Packet(&offer(&c)), t0);
    let a = c.step(Input::Packet(&ack(&c, lease)), t0);
    assert!(matches!(
        a.as_slice(),
        [Action::Apply { renewed: false, .. }]
    ));
    assert_eq!(c.state(), State::Bound);
    c
}

#[test]
fn discover_offer_request_ack() {
    let t0 = Instant::now();
    let mut c = Client::new(MAC, 7, None);
    let a = c.step(Input::Start, t0);
    assert_eq!(sent(&a), vec![(Dest::Broadcast, MessageType::Discover)]);
    let Action::Send { packet, .. } = &a[0] else {
        panic!()
    };
    let m = decode_request(packet).unwrap();
    assert!(
        m.flags().broadcast(),
        "BROADCAST flag set before we have an address"
    );
    assert_eq!(&m.chaddr()[..6], &MAC);
    assert_eq!(m.xid(), c.xid());
    assert_eq!(c.state(), State::Selecting);

    let a = c.step(Input::Packet(&offer(&c)), t0 + secs(0));
    assert_eq!(sent(&a), vec![(Dest::Broadcast, MessageType::Request)]);
    let Action::Send { packet, .. } = &a[0] else {
        panic!()
    };
    let m = decode_request(packet).unwrap();
    assert_eq!(
        m.opts().get(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(ADDR))
    );
    assert_eq!(
        m.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(c.state(), State::Requesting);

    let a = c.step(Input::Packet(&ack(&c, 3600)), t0);
    let [Action::Apply { lease, renewed }] = a.as_slice() else {
        panic!("{a:?}")
    };
    assert!(!renewed);
    assert_eq!(lease.address, ADDR);
    assert_eq!(lease.prefix, 24);
    assert_eq!(lease.dns, vec![Ipv4Addr::new(10, 0, 2, 3)]);
    assert_eq!(
        lease.routes,
        vec![Route {
            destination: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
            gateway: Some(SERVER)
        }]
    );
    assert_eq!((lease.t1, lease.t2), (1800, 3150));
    assert_eq!(c.deadline(), Some(t0 + secs(1800)));
}

#[test]
fn lost_offer_retransmits_with_backoff_and_jitter() {
    let t0 = Instant::now();
    let mut c = Client::new(MAC, 99, None);
    c.step(Input::Start, t0);
    let xid = c.xid();
    let mut now = t0;
    let mut gaps = Vec::new();
    for _ in 0..8 {
        let next = c.deadline().unwrap();
        gaps.push(next - now);
        // A timer that fires early does nothing.
        assert!(sent(&c.step(Input::Timer, next - Duration::from_millis(1))).is_empty());
        now = next;
        let a = c.step(Input::Timer, now);
        assert_eq!(sent(&a), vec![(Dest::Broadcast, MessageType::Discover)]);
        assert_eq!(c.xid(), xid, "retransmissions keep the transaction id");
    }
    for (i, g) in gaps.iter().enumerate() {
        let base = 2u64 << i.min(5);
        let (lo, hi) = (secs(base - 1), secs(base + 1));
        assert!(*g >= lo && *g <= hi, "gap {i} = {g:?}, want {lo:?}..{hi:?}");
    }
    // Jitter: not every gap sits exactly on the base.
    assert!(gaps
        .iter()
        .enumerate()
        .any(|(i, g)| *g != secs(2u64 << i.min(5))));
    // The OFFER finally arrives.
    c.step(Input::Packet(&offer(&c)), now);
    assert_eq!(c.state(), State::Requesting);
    assert!(c.step(Input::Packet(&ack(&c, 600)), now).len() == 1);
    assert_eq!(c.state(), State::Bound);
}

#[test]
fn lost_ack_gives_up_requesting_and_rediscovers() {
    let t0 = Instant::now();
    let mut c = Client::new(MAC, 3, None);
    c.step(Input::Start, t0);
    c.step(Input::Packet(&offer(&c)), t0);
    let mut kinds = Vec::new();
    for _ in 0..4 {
        let t = c.deadline().unwrap();
        kinds.extend(sent(&c.step(Input::Timer, t)).into_iter().map(|s| s.1));
    }
    assert_eq!(
        kinds,
        vec![
            MessageType::Request,
            MessageType::Request,
            MessageType::Request,
            MessageType::Discover
        ]
    );
    assert_eq!(c.state(), State::Selecting);
}

#[test]
fn nak_in_requesting_restarts_discovery() {
    let t0 = Instant::now();
    let mut c = Client::new(MAC, 5, None);
    c.step(Input::Start, t0);
    c.step(Input::Packet(&offer(&c)), t0);
    let a = c.step(Input::Packet(&nak(&c)), t0);
    assert!(sent(&a).is_empty());
    assert!(!a.iter().any(|x| matches!(x, Action::Remove { .. })));
    assert_eq!(c.state(), State::Init);
    // The first NAK restarts at once.
    assert_eq!(c.deadline(), Some(t0));
    let a = c.step(Input::Timer, t0);
    assert_eq!(sent(&a), vec![(Dest::Broadcast, MessageType::Discover)]);
    // A second NAK backs off.
    c.step(Input::Packet(&offer(&c)), t0);
    c.step(Input::Packet(&nak(&c)), t0);
    assert_eq!(c.deadline(), Some(t0 + secs(2)));
}

#[test]
fn renew_at_t1_unicast_then_ack() {
    let t0 = Instant::now();
    let mut c = bound(t0, 3600);
    let a = c.step(Input::Timer, t0 + secs(1800));
    assert_eq!(sent(&a), vec![(Dest::Server(SERVER), MessageType::Request)]);
    let Action::Send { packet, .. } = &a[0] else {
        panic!()
    };
    let m = decode_request(packet).unwrap();
    assert_eq!(m.ciaddr(), ADDR);
    assert!(!m.flags().broadcast());
    assert!(m.opts().get(OptionCode::ServerIdentifier).is_none());
    assert!(m.opts().get(OptionCode::RequestedIpAddress).is_none());
    assert_eq!(c.state(), State::Renewing);
    // Retransmit at half the time left until T2 (1350 s / 2).
    assert_eq!(c.deadline(), Some(t0 + secs(1800 + 675)));
    let a = c.step(Input::Packet(&ack(&c, 3600)), t0 + secs(1801));
    assert!(matches!(
        a.as_slice(),
        [Action::Apply { renewed: true, .. }]
    ));
    assert_eq!(c.state(), State::Bound);
    assert_eq!(c.deadline(), Some(t0 + secs(1801 + 1800)));
}

#[test]
fn nak_in_renewing_removes_the_address() {
    let t0 = Instant::now();
    let mut c = bound(t0, 3600);
    c.step(Input::Timer, t0 + secs(1800));
    let a = c.step(Input::Packet(&nak(&c)), t0 + secs(1800));
    assert!(a.iter().any(
        |x| matches!(x, Action::Remove { lease, reason } if lease.address == ADDR && *reason == "server sent NAK")
    ));
    assert_eq!(c.state(), State::Init);
    assert!(c.lease().is_none());
}

#[test]
fn rebind_at_t2_broadcast_then_expiry_removes_address() {
    let t0 = Instant::now();
    let mut c = bound(t0, 1000); // T1 500, T2 875
    c.step(Input::Timer, t0 + secs(500));
    let mut now = t0 + secs(500);
    let mut log = Vec::new();
    while let Some(t) = c.deadline() {
        now = t;
        let a = c.step(Input::Timer, now);
        log.push((now - t0, c.state(), sent(&a)));
        if a.iter().any(|x| matches!(x, Action::Remove { .. })) {
            assert!(a
                .iter()
                .any(|x| matches!(x, Action::Remove { reason, .. } if *reason == "lease expired")));
            break;
        }
    }
    // Renewing retries at half the time left until T2 (375 s / 2), then at T2.
    assert_eq!(log[0].0, Duration::from_millis(687_500));
    assert_eq!(log[0].2, vec![(Dest::Server(SERVER), MessageType::Request)]);
    let t2 = log.iter().find(|l| l.1 == State::Rebinding).unwrap();
    assert_eq!(t2.0, secs(875));
    assert_eq!(t2.2, vec![(Dest::Broadcast, MessageType::Request)]);
    assert_eq!(now - t0, secs(1000));
    assert!(c.lease().is_none());
    // Discovery starts over right away.
    assert_eq!(c.state(), State::Selecting);
    assert_eq!(
        log.last().unwrap().2,
        vec![(Dest::Broadcast, MessageType::Discover)]
    );
}

#[test]
fn ack_in_rebinding_rebinds() {
    let t0 = Instant::now();
    let mut c = bound(t0, 1000);
    c.step(Input::Timer, t0 + secs(500));
    c.step(Input::Timer, t0 + secs(875));
    assert_eq!(c.state(), State::Rebinding);
    let a = c.step(Input::Packet(&ack(&c, 1000)), t0 + secs(900));
    assert!(matches!(
        a.as_slice(),
        [Action::Apply { renewed: true, .. }]
    ));
    assert_eq!(c.state(), State::Bound);
}

#[test]
fn init_reboot_with_remembered_lease() {
    let t0 = Instant::now();
    let remembered = {
        let c = bound(t0, 3600);
        c.lease().cloned().unwrap()
    };
    let mut c = Client::new(MAC, 11, Some(remembered));
    let a = c.step(Input::Start, t0);
    assert_eq!(sent(&a), vec![(Dest::Broadcast, MessageType::Request)]);
    let Action::Send { packet, .. } = &a[0] else {
        panic!()
    };
    let m = decode_request(packet).unwrap();
    assert_eq!(
        m.opts().get(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(ADDR))
    );
    assert!(m.opts().get(OptionCode::ServerIdentifier).is_none());
    assert_eq!(c.state(), State::InitReboot);
    c.step(Input::Packet(&ack(&c, 3600)), t0);
    assert_eq!(c.state(), State::Bound);

    // A NAK (another network) goes straight to DISCOVER; nothing was configured to remove.
    let mut c = Client::new(MAC, 12, c.lease().cloned());
    c.step(Input::Start, t0);
    let a = c.step(Input::Packet(&nak(&c)), t0);
    assert!(!a.iter().any(|x| matches!(x, Action::Remove { .. })));
    let a = c.step(Input::Timer, t0);
    assert_eq!(sent(&a), vec![(Dest::Broadcast, MessageType::Discover)]);
}

/// A first message sent before the kernel attached the link's qdisc may have been dropped:
/// when the link turns operstate UP, it goes again at once, same transaction, same deadline;
/// once answered or retransmitted, nothing more.
#[test]
fn link_ready_resends_the_unanswered_first_message_once() {
    let t0 = Instant::now();
    let t1 = t0 + Duration::from_millis(15);
    let mut c = Client::new(MAC, 7, None);
    c.step(Input::Start, t0);
    let (xid, deadline) = (c.xid(), c.deadline());
    let a = c.step(Input::LinkReady, t1);
    assert_eq!(sent(&a), vec![(Dest::Broadcast, MessageType::Discover)]);
    assert_eq!((c.xid(), c.deadline()), (xid, deadline));
    // Answered: an OFFER taken, the REQUEST out; a late LinkReady sends nothing.
    c.step(Input::Packet(&offer(&c)), t1);
    assert_eq!(c.state(), State::Requesting);
    assert!(sent(&c.step(Input::LinkReady, t1)).is_empty());

    // Already retransmitted by its timer: the retransmission went out with the link ready.
    let mut c = Client::new(MAC, 8, None);
    c.step(Input::Start, t0);
    let due = c.deadline().unwrap();
    c.step(Input::Timer, due);
    assert!(sent(&c.step(Input::LinkReady, due)).is_empty());

    // INIT-REBOOT's REQUEST for the remembered address goes again the same way.
    let remembered = bound(t0, 3600).lease().cloned().unwrap();
    let mut c = Client::new(MAC, 9, Some(remembered));
    c.step(Input::Start, t0);
    let a = c.step(Input::LinkReady, t1);
    assert_eq!(sent(&a), vec![(Dest::Broadcast, MessageType::Request)]);
    let Action::Send { packet, .. } = &a[0] else {
        panic!()
    };
    assert_eq!(
        decode_request(packet)
            .unwrap()
            .opts()
            .get(OptionCode::RequestedIpAddress),
        Some(&DhcpOption::RequestedIpAddress(ADDR))
    );

    // Bound: nothing to resend.
    let mut c = bound(t0, 3600);
    assert!(sent(&c.step(Input::LinkReady, t1)).is_empty());
}

#[test]
fn carrier_regained_rechecks_the_lease() {
    let t0 = Instant::now();
    let mut c = bound(t0, 3600);
    c.step(Input::CarrierDown, t0 + secs(10));
    assert_eq!(c.state(), State::Bound);
    let a = c.step(Input::CarrierUp, t0 + secs(20));
    assert_eq!(sent(&a), vec![(Dest::Broadcast, MessageType::Request)]);
    assert_eq!(c.state(), State::InitReboot);
    // No answer: the still-valid lease is kept, with its original T1.
    let t = c.deadline().unwrap();
    assert!(t <= t0 + secs(23));
    let a = c.step(Input::Timer, t);
    assert!(sent(&a).is_empty());
    assert_eq!(c.state(), State::Bound);
    assert_eq!(c.deadline(), Some(t0 + secs(1800)));
    assert!(c.lease().is_some());
}

#[test]
fn carrier_lost_before_lease_waits_for_carrier() {
    let t0 = Instant::now();
    let mut c = Client::new(MAC, 1, None);
    c.step(Input::Start, t0);
    c.step(Input::CarrierDown, t0);
    assert_eq!((c.state(), c.deadline()), (State::Init, None));
    let a = c.step(Input::CarrierUp, t0 + secs(5));
    assert_eq!(sent(&a), vec![(Dest::Broadcast, MessageType::Discover)]);
}

#[test]
fn release_on_shutdown() {
    let t0 = Instant::now();
    let mut c = bound(t0, 3600);
    let a = c.step(Input::Release, t0 + secs(5));
    assert_eq!(sent(&a), vec![(Dest::Server(SERVER), MessageType::Release)]);
    assert_eq!(c.state(), State::Stopped);
    assert!(c.step(Input::Timer, t0 + secs(4000)).is_empty());
}

#[test]
fn option_121_overrides_option_3() {
    let t0 = Instant::now();
    let mut c = Client::new(MAC, 2, None);
    c.step(Input::Start, t0);
    c.step(Input::Packet(&offer(&c)), t0);
    let mut opts = base_opts(3600);
    opts.push(DhcpOption::ClasslessStaticRoute(vec![
        ("0.0.0.0/0".parse().unwrap(), Ipv4Addr::new(10, 0, 2, 1)),
        (
            "192.168.7.0/24".parse().unwrap(),
            Ipv4Addr::new(10, 0, 2, 254),
        ),
        ("169.254.169.254/32".parse().unwrap(), Ipv4Addr::UNSPECIFIED),
    ]));
    let a = c.step(
        Input::Packet(&server_reply(MessageType::Ack, c.xid(), MAC, ADDR, opts)),
        t0,
    );
    let [Action::Apply { lease, .. }] = a.as_slice() else {
        panic!("{a:?}")
    };
    assert_eq!(
        lease.routes,
        vec![
            Route {
                destination: Ipv4Addr::UNSPECIFIED,
                prefix: 0,
                gateway: Some(Ipv4Addr::new(10, 0, 2, 1))
            },
            Route {
                destination: Ipv4Addr::new(192, 168, 7, 0),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 0, 2, 254))
            },
            Route {
                destination: Ipv4Addr::new(169, 254, 169, 254),
                prefix: 32,
                gateway: None
            },
        ],
        "option 3's router 10.0.2.2 is ignored"
    );
}

#[test]
fn lease_options_are_checked() {
    let mut opts = base_opts(3600);
    opts.push(DhcpOption::InterfaceMtu(9000));
    opts.push(DhcpOption::Hostname("node-1.Example".into()));
    opts.push(DhcpOption::DomainName("corp.example lab.example".into()));
    opts.push(DhcpOption::Renewal(100));
    opts.push(DhcpOption::Rebinding(50)); // inconsistent: defaults apply
    let p = server_reply(MessageType::Ack, 1, MAC, ADDR, opts);
    let Ok(Reply::Ack(l)) = packet::parse(&p, 1, MAC) else {
        panic!()
    };
    assert_eq!(l.mtu, Some(9000));
    assert_eq!(l.hostname.as_deref(), Some("node-1.example"));
    assert_eq!(l.search, vec!["corp.example", "lab.example"]);
    assert_eq!((l.t1, l.t2), (1800, 3150));

    let mut opts = base_opts(3600);
    opts.push(DhcpOption::InterfaceMtu(20));
    opts.push(DhcpOption::Hostname("evil; rm -rf /".into()));
    opts.push(DhcpOption::DomainName("bad\nnameserver 6.6.6.6".into()));
    opts.retain(|o| !matches!(o, DhcpOption::SubnetMask(_)));
    let p = server_reply(MessageType::Ack, 1, MAC, Ipv4Addr::new(172, 16, 0, 9), opts);
    let Ok(Reply::Ack(l)) = packet::parse(&p, 1, MAC) else {
        panic!()
    };
    assert_eq!(l.mtu, None);
    assert_eq!(l.hostname, None);
    assert_eq!(
        l.search,
        vec!["bad", "nameserver", "6.6.6.6"],
        "split on whitespace: no line break reaches resolv.conf"
    );
    assert_eq!(l.prefix, 16, "classful prefix without option 1");
}

#[test]
fn wrong_xid_or_mac_is_dropped() {
    let t0 = Instant::now();
    let mut c = Client::new(MAC, 8, None);
    c.step(Input::Start, t0);
    let other = server_reply(MessageType::Offer, c.xid() ^ 1, MAC, ADDR, base_opts(60));
    let a = c.step(Input::Packet(&other), t0);
    assert!(matches!(&a[..], [Action::Dropped(m)] if m.starts_with("transaction id")));
    let mut mac = MAC;
    mac[5] ^= 0xff;
    let other = server_reply(MessageType::Offer, c.xid(), mac, ADDR, base_opts(60));
    let a = c.step(Input::Packet(&other), t0);
    assert_eq!(
        a,
        vec![Action::Dropped("hardware address is not ours".into())]
    );
    assert_eq!(c.state(), State::Selecting);
}

#[test]
fn malformed_truncated_oversized_and_hostile_packets_are_dropped() {
    let t0 = Instant::now();
    let mut c = Client::new(MAC, 9, None);
    c.step(Input::Start, t0);
    let good = offer(&c);
    for len in 0..good.len() {
        // Every truncation is dropped or, if it still decodes whole, accepted: never a panic.
        let mut probe = c.clone();
        let _ = probe.step(Input::Packet(&good[..len]), t0);
    }
    assert!(matches!(
        packet::parse(&good[..10], c.xid(), MAC),
        Err(PacketError::Decode(_))
    ));
    let big = vec![0u8; MAX_MESSAGE + 1];
    assert_eq!(
        packet::parse(&big, c.xid(), MAC),
        Err(PacketError::Oversized(MAX_MESSAGE + 1))
    );
    // Option lengths pointing past the end, a BOOTREQUEST echoed back, no server id.
    let mut bad = good.clone();
    let opt_start = 240;
    bad[opt_start + 1] = 250;
    bad.truncate(opt_start + 4);
    assert!(packet::parse(&bad, c.xid(), MAC).is_err());
    let Action::Send { packet: req, .. } = &c.clone().step(Input::Start, t0)[0] else {
        panic!()
    };
    assert!(packet::parse(req, 0, MAC).is_err());
    let no_sid = server_reply(
        MessageType::Offer,
        c.xid(),
        MAC,
        ADDR,
        vec![DhcpOption::AddressLeaseTime(60)],
    );
    assert_eq!(
        packet::parse(&no_sid, c.xid(), MAC),
        Err(PacketError::NoServerId)
    );
    let zero = server_reply(
        MessageType::Offer,
        c.xid(),
        MAC,
        Ipv4Addr::UNSPECIFIED,
        base_opts(60),
    );
    assert_eq!(
        packet::parse(&zero, c.xid(), MAC),
        Err(PacketError::NoAddress(MessageType::Offer))
    );
    // Random bytes behind a valid header: thousands of them, none may panic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        let mut p = good.clone();
        for b in p.iter_mut().skip(236) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 5 == 0 {
                *b = x as u8;
            }
        }
        let _ = c.clone().step(Input::Packet(&p), t0);
    }
    assert_eq!(c.state(), State::Selecting);
}

#[test]
fn mask_prefix_rejects_holes() {
    assert_eq!(
        packet::mask_prefix(Ipv4Addr::new(255, 255, 255, 0)),
        Some(24)
    );
    assert_eq!(packet::mask_prefix(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
    assert_eq!(packet::mask_prefix(Ipv4Addr::BROADCAST), Some(32));
    assert_eq!(packet::mask_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
}

#[test]
fn infinite_lease_has_no_timers() {
    let t0 = Instant::now();
    let c = bound(t0, u32::MAX);
    assert_eq!(c.deadline(), None);
    assert!(c.lease().is_some_and(Lease::infinite));
}

#[test]
fn random_option_soup_never_panics() {
    let t0 = Instant::now();
    let mut c = Client::new(MAC, 10, None);
    c.step(Input::Start, t0);
    let header = offer(&c)[..240].to_vec();
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut hostile = 0;
    for _ in 0..20_000 {
        let mut p = header.clone();
        // Message type and server id first, so the decoder gets to the rest.
        p.extend_from_slice(&[53, 1, 2, 54, 4, 10, 0, 2, 2]);
        for _ in 0..(next() % 6) {
            let code = (next() % 254 + 1) as u8;
            let len = (next() % 12) as u8;
            p.push(code);
            p.push(len);
            for _ in 0..len {
                p.push(next() as u8);
            }
        }
        if next() % 2 == 0 {
            p.push(255);
        }
        if matches!(
            packet::parse(&p, c.xid(), MAC),
            Err(PacketError::Hostile(_))
        ) {
            hostile += 1;
        }
        let _ = c.clone().step(Input::Packet(&p), t0);
    }
    assert!(hostile > 0, "the screen was exercised");
}

/// Found by fuzz/ (dhcp_packet): `dhcproto`'s `chaddr()` slices its 16-byte array by the
/// packet's `hlen`, so a reply claiming a hardware address longer than 16 bytes panicked the
/// parser (and PID 1's loop iteration) instead of being dropped.
#[test]
fn a_hardware_address_length_over_16_is_dropped_not_a_panic() {
    let t0 = Instant::now();
    let mut c = Client::new(MAC, 1, None);
    c.step(Input::Start, t0);
    let mut p = offer(&c);
    for hlen in [17u8, 70, 255] {
        p[2] = hlen;
        assert_eq!(
            packet::parse(&p, c.xid(), MAC).unwrap_err().to_string(),
            PacketError::Chaddr.to_string()
        );
        let acts = c.clone().step(Input::Packet(&p), t0);
        assert!(matches!(acts.as_slice(), [Action::Dropped(_)]), "{acts:?}");
    }
}
