//! The DHCPv4 client of one link as a pure state machine (RFC 2131 §4.4):
//! `step(input, now) -> actions`, with no sockets, no clock and no randomness of its own, so that
//! tests drive it with packets built by `dhcproto` and a simulated clock.
//!
//! States: INIT → SELECTING (DISCOVER sent) → REQUESTING (REQUEST for the first OFFER) → BOUND;
//! at T1 RENEWING (REQUEST unicast to the server), at T2 REBINDING (broadcast), at expiry the
//! address is removed and discovery starts again. A lease remembered from the last boot starts in
//! INIT-REBOOT instead (REQUEST for the old address, no DISCOVER round trip), and so does a carrier
//! regained while bound: the link may now be on another network, and a NAK says so at once.
//!
//! Retransmission follows RFC 2131 §4.1 — exponential backoff capped at 64 s with ±1 s of jitter —
//! except that the first retransmission comes after 2 s rather than 4 s: at boot the first DISCOVER
//! is the one most often lost (sent while the link or the server's side is still coming up), and
//! every second spent waiting for it is a second of boot time. The first OFFER is taken at once
//! rather than waiting to compare offers, for the same reason. DECLINE (ARP probing of the offered
//! address) is not implemented.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use dhcproto::v4::MessageType;
use serde::Serialize;

use super::lease::Lease;
use super::packet::{self, Reply, RequestFields};

/// A retransmission gives up on REQUESTING after this many tries and starts over with DISCOVER.
const REQUEST_TRIES: u32 = 4;
/// INIT-REBOOT sends one REQUEST and waits one backoff period (1–3 s) before falling back to
/// DISCOVER (or to the still-valid lease): a lost packet then costs one more round trip, while
/// a server that ignores INIT-REBOOT costs at most that period at every boot.
const REBOOT_TRIES: u32 = 1;
/// RENEWING and REBINDING retransmit no more often than this (RFC 2131 §4.4.5).
const MIN_RENEW_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Not started, or waiting for carrier or for a restart after a NAK.
    Init,
    Selecting,
    Requesting,
    InitReboot,
    Bound,
    Renewing,
    Rebinding,
    /// Released at shutdown: does nothing more.
    Stopped,
}

impl State {
    pub fn word(self) -> &'static str {
        match self {
            State::Init => "init",
            State::Selecting => "selecting",
            State::Requesting => "requesting",
            State::InitReboot => "init-reboot",
            State::Bound => "bound",
            State::Renewing => "renewing",
            State::Rebinding => "rebinding",
            State::Stopped => "stopped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// Begin (the link is up).
    Start,
    /// A datagram arrived on the client port.
    Packet(&'a [u8]),
    /// The deadline passed.
    Timer,
    CarrierUp,
    CarrierDown,
    /// The link has just become able to send (operstate UP after carrier): a first message sent
    /// before that may have been dropped by the kernel.
    LinkReady,
    /// Shutdown: release the lease to the server.
    Release,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    Broadcast,
    Server(Ipv4Addr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send {
        dest: Dest,
        kind: MessageType,
        packet: Vec<u8>,
    },
    /// Configure this lease (address, routes, MTU, resolver). `renewed` when the same address
    /// was bound before, so only lifetimes changed.
    Apply { lease: Lease, renewed: bool },
    /// Remove this lease's address and routes.
    Remove { lease: Lease, reason: &'static str },
    /// A packet was dropped (for the debug log).
    Dropped(String),
}

/// One link's DHCP client.
#[derive(Debug, Clone)]
pub struct Client {
    mac: [u8; 6],
    state: State,
    xid: u32,
    rng: u64,
    attempt: u32,
    next: Option<Instant>,
    exchange_start: Option<Instant>,
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
    lease: Option<Lease>,
    bound_at: Option<Instant>,
    remembered: Option<Lease>,
    naks: u32,
}

impl Client {
    /// A client for hardware address `mac`; `seed` feeds the transaction ids and the jitter;
    /// `remembered` is the last boot's lease, tried first with INIT-REBOOT.
    pub fn new(mac: [u8; 6], seed: u64, remembered: Option<Lease>) -> Self {
        Client {
            mac,
            state: State::Init,
            xid: 0,
            rng: seed | 1,
            attempt: 0,
            next: None,
            exchange_start: None,
            offer: None,
            lease: None,
            bound_at: None,
            remembered,
            naks: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }
    /// The lease currently configured, if any.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }
    pub fn bound_at(&self) -> Option<Instant> {
        self.bound_at
    }
    pub fn xid(&self) -> u32 {
        self.xid
    }
    /// When `step(Timer)` must run next.
    pub fn deadline(&self) -> Option<Instant> {
        self.next
    }

    /// The lease's T1, T2 and expiry as instants (none for an infinite lease).
    pub fn lease_times(&self) -> Option<(Instant, Instant, Instant)> {
        let (l, at) = (self.lease.as_ref()?, self.bound_at?);
        if l.infinite() {
            return None;
        }
        let s = |secs: u32| at + Duration::from_secs(u64::from(secs));
        Some((s(l.t1), s(l.t2), s(l.lease_time)))
    }

    pub fn step(&mut self, input: Input<'_>, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.state == State::Stopped {
            return out;
        }
        match input {
            Input::Start => self.start(now, &mut out),
            Input::Packet(bytes) => self.on_packet(bytes, now, &mut out),
            Input::Timer => {
                if self.next.is_some_and(|t| t <= now) {
                    self.on_timer(now, &mut out)
                }
            }
            Input::CarrierDown => {
                // Without carrier nothing can be sent; a lease keeps counting down meanwhile.
                if matches!(
                    self.state,
                    State::Init | State::Selecting | State::Requesting | State::InitReboot
                ) && self.lease.is_none()
                {
                    self.state = State::Init;
                    self.next = None;
                }
            }
            Input::LinkReady => self.resend_first(now, &mut out),
            Input::CarrierUp => {
                if let Some(l) = self.lease.clone() {
                    self.remembered = Some(l);
                }
                self.start(now, &mut out)
            }
            Input::Release => {
                if let Some(l) = &self.lease {
                    let f = RequestFields {
                        ciaddr: Some(l.address),
                        server: Some(l.server),
                        ..Default::default()
                    };
                    let dest = Dest::Server(l.server);
                    self.xid = self.random() as u32;
                    self.send(MessageType::Release, dest, f, &mut out);
                }
                self.state = State::Stopped;
                self.next = None;
            }
        }
        out
    }

    /// Starts an exchange: INIT-REBOOT with a remembered lease, else DISCOVER.
    fn start(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.attempt = 0;
        self.xid = self.random() as u32;
        self.exchange_start = Some(now);
        if self.remembered.is_some() {
            self.state = State::InitReboot;
            self.send_reboot_request(now, out);
        } else {
            self.state = State::Selecting;
            self.offer = None;
            self.send_discover(now, out);
        }
        self.next = Some(now + self.backoff());
    }

    /// Sends the exchange's first message again, with its transaction id and deadline, when
    /// nothing has answered it and it has not been retransmitted yet (`Input::LinkReady`).
    fn resend_first(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.attempt != 0 {
            return;
        }
        match self.state {
            State::Selecting if self.offer.is_none() => self.send_discover(now, out),
            State::InitReboot => self.send_reboot_request(now, out),
            _ => {}
        }
    }

    fn send_discover(&mut self, now: Instant, out: &mut Vec<Action>) {
        let f = RequestFields {
            broadcast: true,
            secs: self.secs(now),
            ..Default::default()
        };
        self.send(MessageType::Discover, Dest::Broadcast, f, out);
    }

    /// INIT-REBOOT's REQUEST for the remembered address (nothing without one).
    fn send_reboot_request(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Some(address) = self.remembered.as_ref().map(|l| l.address) else {
            return;
        };
        let f = RequestFields {
            requested: Some(address),
            broadcast: true,
            secs: self.secs(now),
            ..Default::default()
        };
        self.send(MessageType::Request, Dest::Broadcast, f, out);
    }

    fn on_packet(&mut self, bytes: &[u8], now: Instant, out: &mut Vec<Action>) {
        let waiting = matches!(
            self.state,
            State::Selecting
                | State::Requesting
                | State::InitReboot
                | State::Renewing
                | State::Rebinding
        );
        if !waiting {
            out.push(Action::Dropped(format!(
                "packet in state {}",
                self.state.word()
            )));
            return;
        }
        let reply = match packet::parse(bytes, self.xid, self.mac) {
            Ok(r) => r,
            Err(e) => {
                out.push(Action::Dropped(e.to_string()));
                return;
            }
        };
        match (self.state, reply) {
            (State::Selecting, Reply::Offer { server, address }) => {
                self.offer = Some((server, address));
                self.state = State::Requesting;
                self.attempt = 0;
                self.send_select_request(out);
                self.next = Some(now + self.backoff());
            }
            (State::Requesting, Reply::Ack(l)) if self.offer.is_some_and(|o| o.0 == l.server) => {
                self.bind(l, now, out)
            }
            (State::InitReboot | State::Renewing | State::Rebinding, Reply::Ack(l)) => {
                self.bind(l, now, out)
            }
            (
                State::Requesting | State::InitReboot | State::Renewing | State::Rebinding,
                Reply::Nak { server, message },
            ) => {
                if self.state == State::Requesting && self.offer.is_some_and(|o| o.0 != server) {
                    out.push(Action::Dropped(format!("NAK from another server {server}")));
                    return;
                }
                self.nak(now, message, out)
            }
            (state, reply) => out.push(Action::Dropped(format!(
                "unexpected {} in state {}",
                match reply {
                    Reply::Offer { .. } => "OFFER",
                    Reply::Ack(_) => "ACK",
                    Reply::Nak { .. } => "NAK",
                },
                state.word()
            ))),
        }
    }

    fn on_timer(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.attempt += 1;
        match self.state {
            State::Init => self.start(now, out),
            State::Selecting => {
                self.send_discover(now, out);
                self.next = Some(now + self.backoff());
            }
            State::Requesting if self.attempt < REQUEST_TRIES => {
                self.send_select_request(out);
                self.next = Some(now + self.backoff());
            }
            State::Requesting => {
                self.remembered = None;
                self.start(now, out)
            }
            State::InitReboot if self.attempt < REBOOT_TRIES => {
                self.send_reboot_request(now, out);
                self.next = Some(now + self.backoff());
            }
            State::InitReboot => {
                self.remembered = None;
                // No answer: a lease still configured and valid is kept (RFC 2131 §3.2);
                // otherwise discover afresh.
                match self.lease_times() {
                    Some((t1, t2, exp)) if now < exp => {
                        self.state = if now < t1 {
                            State::Bound
                        } else if now < t2 {
                            State::Renewing
                        } else {
                            State::Rebinding
                        };
                        self.next = Some(if now < t1 { t1 } else { now });
                    }
                    None if self.lease.is_some() => {
                        self.state = State::Bound;
                        self.next = None;
                    }
                    _ => self.start(now, out),
                }
            }
            State::Bound => {
                self.state = State::Renewing;
                self.xid = self.random() as u32;
                self.renew_or_rebind(now, out);
            }
            State::Renewing | State::Rebinding => self.renew_or_rebind(now, out),
            State::Stopped => {}
        }
    }

    /// RENEWING until T2, REBINDING until expiry, then the address goes.
    fn renew_or_rebind(&mut self, now: Instant, out: &mut Vec<Action>) {
        let (Some(l), Some((_, t2, exp))) = (self.lease.clone(), self.lease_times()) else {
            self.next = None;
            return;
        };
        if now >= exp {
            self.lease = None;
            self.bound_at = None;
            out.push(Action::Remove {
                lease: l,
                reason: "lease expired",
            });
            self.start(now, out);
            return;
        }
        let (dest, until) = if now < t2 {
            self.state = State::Renewing;
            (Dest::Server(l.server), t2)
        } else {
            self.state = State::Rebinding;
            (Dest::Broadcast, exp)
        };
        let f = RequestFields {
            ciaddr: Some(l.address),
            secs: self.secs(now),
            ..Default::default()
        };
        self.send(MessageType::Request, dest, f, out);
        let half = (until - now) / 2;
        self.next = Some((now + half.max(MIN_RENEW_RETRY)).min(until));
    }

    fn send_select_request(&mut self, out: &mut Vec<Action>) {
        if let Some((server, address)) = self.offer {
            let f = RequestFields {
                requested: Some(address),
                server: Some(server),
                broadcast: true,
                ..Default::default()
            };
            self.send(MessageType::Request, Dest::Broadcast, f, out);
        }
    }

    fn bind(&mut self, l: Lease, now: Instant, out: &mut Vec<Action>) {
        let renewed = self.lease.as_ref().is_some_and(|old| {
            old.address == l.address && old.prefix == l.prefix && old.routes == l.routes
        });
        if let Some(old) = self.lease.take() {
            if !renewed {
                out.push(Action::Remove {
                    lease: old,
                    reason: "replaced by a new lease",
                });
            }
        }
        self.state = State::Bound;
        self.remembered = None;
        self.naks = 0;
        self.bound_at = Some(now);
        self.next = (!l.infinite()).then(|| now + Duration::from_secs(u64::from(l.t1)));
        self.lease = Some(l.clone());
        out.push(Action::Apply { lease: l, renewed });
    }

    /// A NAK: drop whatever we had and start over. The first restart is immediate (a remembered
    /// lease from another network is the usual cause); repeated NAKs back off so a confused
    /// server cannot make us loop.
    fn nak(&mut self, now: Instant, message: Option<String>, out: &mut Vec<Action>) {
        out.push(Action::Dropped(format!(
            "NAK: {}",
            message.as_deref().unwrap_or("no message")
        )));
        if let Some(l) = self.lease.take() {
            out.push(Action::Remove {
                lease: l,
                reason: "server sent NAK",
            });
        }
        self.bound_at = None;
        self.remembered = None;
        self.offer = None;
        self.state = State::Init;
        let delay = if self.naks == 0 {
            Duration::ZERO
        } else {
            Duration::from_secs(1 << self.naks.min(6))
        };
        self.naks += 1;
        self.attempt = 0;
        self.next = Some(now + delay);
    }

    fn send(&mut self, kind: MessageType, dest: Dest, f: RequestFields, out: &mut Vec<Action>) {
        match packet::build(kind, self.xid, self.mac, f) {
            Ok(packet) => out.push(Action::Send { dest, kind, packet }),
            Err(e) => out.push(Action::Dropped(e.to_string())),
        }
    }

    fn secs(&self, now: Instant) -> u16 {
        self.exchange_start
            .map_or(0, |s| now.saturating_duration_since(s).as_secs())
            .min(u64::from(u16::MAX)) as u16
    }

    /// 2, 4, 8 .. 64 s for attempt 0, 1, 2 .., each ±1 s.
    fn backoff(&mut self) -> Duration {
        let base = 2000u64 << self.attempt.min(5);
        let jitter = self.random() % 2001;
        Duration::from_millis(base + jitter - 1000)
    }

    /// xorshift64*: jitter and transaction ids only need to differ between clients and boots.
    fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
