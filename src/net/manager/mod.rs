//! `NetManager`, the "net" subsystem: follows the kernel's links through rtnetlink, brings the
//! configured ones up, runs a DHCP client or applies static addresses on each, writes
//! resolv.conf, and reports the facts `network` (configured links up) and `network-online`
//! (every required link has an address and there is a default route) — or, when the bounded
//! wait expires, `FactFailed` with the link and DHCP state to blame, on one console line.
//!
//! Everything runs on the event loop's thread through `Subsystem`: readiness of the rtnetlink
//! socket and of each link's DHCP socket, and `tick` for DHCP timers and the online deadline.

mod apply;
mod facts;

use crate::collections::strmap::KeyMap;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::config::NetworkConfig;
use super::dhcp::client::{Action, Client, Input};
use super::dhcp::lease;
use super::dhcp::packet::MAX_MESSAGE;
use super::dhcp::socket::DhcpSocket;
use super::dhcp::Route;
use super::link::{LinkState, Rtnl, RtnlEvent};
use crate::supervisor::subsystem::{Notice, PollFlags, Subsystem};
use crate::timeline::{SubjectKind, TimelineEvent};

/// Where things go; machine mode uses the defaults, container mode (tests) its run directory.
#[derive(Debug, Clone)]
pub struct NetOptions {
    pub config: NetworkConfig,
    /// The default plan configures physical links only (those with a device in sysfs), not
    /// bridges or veths that containers create later.
    pub physical_only: bool,
    /// `/run/lifsea/resolv.conf`.
    pub resolv_file: PathBuf,
    /// `/etc/resolv.conf`, made a symlink to `resolv_file`; `None` leaves it alone.
    pub etc_resolv: Option<PathBuf>,
    /// Where leases are remembered (`/var/lib/lifsea`).
    pub lease_dir: PathBuf,
    /// `/sys/class/net`, for drivers and physical-ness.
    pub sys_class_net: PathBuf,
    /// Set the hostname from DHCP when the machine has none.
    pub set_hostname: bool,
}

struct Dhcp {
    client: Client,
    socket: DhcpSocket,
}

struct Managed {
    kernel: LinkState,
    /// Index of the config entry that matched, `None` for a link we leave alone.
    cfg: Option<usize>,
    dhcp: Option<Dhcp>,
    static_done: bool,
    up_at: Option<Instant>,
    obtained: Option<SystemTime>,
    up_stamped: bool,
    bound_stamped: bool,
}

pub struct NetManager {
    opts: NetOptions,
    rtnl: Option<Rtnl>,
    online_deadline: Instant,
    /// When the wait for `network-online` began (for "no lease after Ns").
    online_since: Instant,
    links: KeyMap<u32, Managed>,
    addresses: Vec<(u32, Ipv4Addr, u8)>,
    routes: Vec<(Option<u32>, Route)>,
    pending: KeyMap<u32, String>,
    network_reached: bool,
    online_reached: bool,
    online_failed: bool,
    /// Link dump seen (DONE of the first dump): before that, "every configured link" is unknown.
    links_known: bool,
    resolv_text: String,
    seed: u64,
}

impl NetManager {
    pub fn new(opts: NetOptions, now: Instant) -> Self {
        let rtnl = match Rtnl::open() {
            Ok(mut r) => {
                if let Err(e) = r.dump_all() {
                    log::warn!("net: {e}");
                }
                Some(r)
            }
            Err(e) => {
                log::warn!("net: {e}; networking disabled");
                None
            }
        };
        let mut seed = [0u8; 8];
        let _ = crate::sys::random::fill_insecure(&mut seed);
        NetManager {
            // The timeout is bounded at parse time; checked anyway, as every deadline in PID 1.
            online_deadline: now.checked_add(opts.config.online_timeout).unwrap_or(now),
            online_since: now,
            opts,
            links: KeyMap::new(),
            addresses: Vec::new(),
            routes: Vec::new(),
            pending: KeyMap::new(),
            network_reached: false,
            online_reached: false,
            online_failed: false,
            // Without rtnetlink there is nothing to wait for: the facts are judged at once.
            links_known: rtnl.is_none(),
            resolv_text: String::new(),
            seed: u64::from_ne_bytes(seed) ^ u64::from(std::process::id()),
            rtnl,
        }
    }

    fn request(&mut self, what: String, r: Result<u32, super::link::LinkError>) {
        match r {
            Ok(seq) => {
                self.pending.insert(seq, what);
            }
            Err(e) => log::warn!("net: {what}: {e}"),
        }
    }

    fn on_link(&mut self, st: LinkState, now: Instant, out: &mut Vec<Notice>) {
        let index = st.index;
        if !self.links.contains_key(&index) {
            let cfg = if st.loopback {
                None
            } else {
                self.match_config(&st)
            };
            if st.loopback && !st.up {
                if let Some(r) = self.rtnl.as_mut() {
                    let res = r.set_link(index, None);
                    self.request(format!("set {} up", st.name), res);
                }
            }
            if let Some(i) = cfg {
                let mtu = self.opts.config.links.get(i).and_then(|c| c.mtu);
                log::info!("net: configuring {} (config entry {})", st.name, i + 1);
                if let Some(r) = self.rtnl.as_mut() {
                    let res = r.set_link(index, mtu);
                    self.request(format!("set {} up", st.name), res);
                }
            }
            self.links.insert(
                index,
                Managed {
                    kernel: st.clone(),
                    cfg,
                    dhcp: None,
                    static_done: false,
                    up_at: None,
                    obtained: None,
                    up_stamped: false,
                    bound_stamped: false,
                },
            );
        }
        let Some(m) = self.links.get_mut(&index) else {
            return;
        };
        let was = m.kernel.clone();
        m.kernel = st.clone();
        let Some(ci) = m.cfg else {
            return;
        };
        let Some(cfg) = self.opts.config.links.get(ci).cloned() else {
            return;
        };
        let first_up = st.up && !m.up_stamped;
        if first_up {
            m.up_stamped = true;
            m.up_at = Some(now);
        }
        let do_static = st.up && !m.static_done;
        if do_static {
            m.static_done = true;
        }
        let carrier_was = was.up && was.carrier && m.dhcp.is_some();
        if first_up {
            out.push(stamp(&format!("link {} up", st.name)));
            log::info!("net: link {} up", st.name);
        }
        if do_static {
            self.apply_static(index, &cfg);
        }
        let carrier_now = st.up && st.carrier;
        if cfg.dhcp && carrier_now && !carrier_was {
            self.start_or_resume_dhcp(index, now, out);
        } else if cfg.dhcp && carrier_now && st.oper_up && !was.oper_up {
            // Carrier came before operstate UP: what was sent then may have met the no-op qdisc
            // (`LinkState::oper_up`).
            self.dhcp_input(index, Input::LinkReady, now, out);
        } else if cfg.dhcp && !carrier_now && carrier_was {
            log::info!("net: {} lost carrier", st.name);
            self.dhcp_input(index, Input::CarrierDown, now, out);
        }
    }

    fn match_config(&self, st: &LinkState) -> Option<usize> {
        let dev = self.opts.sys_class_net.join(&st.name).join("device");
        if self.opts.physical_only && !dev.exists() {
            return None;
        }
        let driver = std::fs::read_link(dev.join("driver"))
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        self.opts
            .config
            .links
            .iter()
            .position(|c| c.matcher.matches(&st.name, st.mac, driver.as_deref()))
    }

    fn start_or_resume_dhcp(&mut self, index: u32, now: Instant, out: &mut Vec<Notice>) {
        let Some(m) = self.links.get_mut(&index) else {
            return;
        };
        let name = m.kernel.name.clone();
        if let Some(d) = &m.dhcp {
            // CarrierUp confirms the current or remembered address (INIT-REBOOT) when there is
            // one, else starts over with DISCOVER: say which.
            if let Some(l) = d.client.lease() {
                log::info!(
                    "net: {name} carrier regained: confirming the lease of {}",
                    l.address
                );
            } else {
                log::info!("net: {name} carrier regained: asking for a lease again");
            }
            self.dhcp_input(index, Input::CarrierUp, now, out);
            return;
        }
        let Some(mac) = m.kernel.mac else {
            log::warn!("net: {name} has no MAC address: no DHCP");
            return;
        };
        let socket = match DhcpSocket::open(&name) {
            Ok(s) => s,
            Err(e) => {
                log::warn!("net: {e}");
                return;
            }
        };
        let unix = unix_now();
        let remembered = lease::load(&lease::lease_path(&self.opts.lease_dir, &name), unix);
        self.seed = self
            .seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(u64::from(index));
        m.dhcp = Some(Dhcp {
            client: Client::new(mac, self.seed, remembered),
            socket,
        });
        self.dhcp_input(index, Input::Start, now, out);
    }

    fn dhcp_input(&mut self, index: u32, input: Input<'_>, now: Instant, out: &mut Vec<Notice>) {
        let Some(d) = self.links.get_mut(&index).and_then(|m| m.dhcp.as_mut()) else {
            return;
        };
        let actions = d.client.step(input, now);
        self.perform(index, actions, out);
    }

    fn perform(&mut self, index: u32, actions: Vec<Action>, out: &mut Vec<Notice>) {
        let Some(m) = self.links.get(&index) else {
            return;
        };
        let name = m.kernel.name.clone();
        let state = m
            .dhcp
            .as_ref()
            .map(|d| d.client.state().word())
            .unwrap_or("");
        for a in actions {
            match a {
                Action::Send { dest, kind, packet } => {
                    if let Some(d) = self.links.get(&index).and_then(|m| m.dhcp.as_ref()) {
                        log::debug!("net: {name}: send {kind:?} to {dest:?}");
                        if let Err(e) = d.socket.send(dest, &packet) {
                            log::debug!("net: {e}");
                        }
                    }
                }
                Action::Apply { lease, renewed } => {
                    self.apply_lease(index, &name, &lease, renewed, out)
                }
                Action::Remove { lease, reason } => {
                    log::warn!(
                        "net: {name}: {reason}: removing {}/{}",
                        lease.address,
                        lease.prefix
                    );
                    self.remove_lease(index, &lease);
                    if let Some(m) = self.links.get_mut(&index) {
                        m.obtained = None;
                    }
                    self.update_resolv();
                }
                Action::Dropped(why) => log::debug!("net: {name} ({state}): dropped: {why}"),
            }
        }
    }

    fn on_rtnl(&mut self, now: Instant, out: &mut Vec<Notice>) {
        let Some(r) = self.rtnl.as_mut() else {
            return;
        };
        let events = r.read();
        let dumps_done = !r.dumping();
        for ev in events {
            match ev {
                RtnlEvent::Link(st) => self.on_link(st, now, out),
                RtnlEvent::LinkGone(i) => {
                    if let Some(m) = self.links.remove(&i) {
                        log::info!("net: link {} gone", m.kernel.name);
                    }
                    self.addresses.retain(|a| a.0 != i);
                    self.routes.retain(|r| r.0 != Some(i));
                }
                RtnlEvent::Address {
                    index,
                    address,
                    prefix,
                    added,
                } => {
                    self.addresses.retain(|a| *a != (index, address, prefix));
                    if added {
                        self.addresses.push((index, address, prefix));
                    }
                }
                RtnlEvent::Route {
                    index,
                    route,
                    added,
                } => {
                    self.routes.retain(|r| *r != (index, route));
                    if added {
                        self.routes.push((index, route));
                    }
                }
                RtnlEvent::Ack { seq, errno } => {
                    let what = self.pending.remove(&seq);
                    if let (Some(e), Some(w)) = (errno, what) {
                        if e != libc::EEXIST && !(w.starts_with("delete") && e == libc::ESRCH) {
                            log::warn!("net: {w}: {}", std::io::Error::from_raw_os_error(e));
                        }
                    }
                }
                RtnlEvent::Overrun => {
                    // Notifications were lost: the dump `read` queued rebuilds both tables.
                    log::warn!("net: rtnetlink overrun; dumping again");
                    self.addresses.clear();
                    self.routes.clear();
                }
            }
        }
        if dumps_done {
            self.links_known = true;
        }
    }
}

fn stamp(name: &str) -> Notice {
    Notice::Stamp {
        kind: SubjectKind::Stage,
        name: name.to_string(),
        event: TimelineEvent::Ready,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn show_route(r: &Route) -> String {
    let dest = if r.prefix == 0 {
        "default".to_string()
    } else {
        format!("{}/{}", r.destination, r.prefix)
    };
    match r.gateway {
        Some(g) => format!("{dest} via {g}"),
        None => format!("{dest} on-link"),
    }
}

impl Subsystem for NetManager {
    fn name(&self) -> &'static str {
        "net"
    }

    fn poll_fds(&self) -> Vec<(RawFd, PollFlags)> {
        let mut v: Vec<(RawFd, PollFlags)> = self
            .rtnl
            .iter()
            .map(|r| (r.fd(), PollFlags::POLLIN))
            .collect();
        for m in self.links.values() {
            if let Some(d) = &m.dhcp {
                v.push((d.socket.fd(), PollFlags::POLLIN));
            }
        }
        v
    }

    fn deadline(&self) -> Option<Instant> {
        let online = (!self.online_reached && !self.online_failed).then_some(self.online_deadline);
        self.links
            .values()
            .filter_map(|m| m.dhcp.as_ref().and_then(|d| d.client.deadline()))
            .chain(online)
            .min()
    }

    fn on_ready(&mut self, fd: RawFd, _revents: PollFlags, now: Instant, out: &mut Vec<Notice>) {
        if self.rtnl.as_ref().is_some_and(|r| r.fd() == fd) {
            self.on_rtnl(now, out);
        } else {
            let found = self
                .links
                .iter()
                .find(|(_, m)| m.dhcp.as_ref().is_some_and(|d| d.socket.fd() == fd))
                .map(|(i, m)| (*i, m.dhcp.as_ref().map(|d| d.socket.recv_all(MAX_MESSAGE))));
            if let Some((index, Some(packets))) = found {
                for p in packets {
                    self.dhcp_input(index, Input::Packet(&p), now, out);
                }
            }
        }
        self.check_facts(now, out);
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Notice>) {
        let due: Vec<u32> = self
            .links
            .iter()
            .filter(|(_, m)| {
                m.dhcp
                    .as_ref()
                    .and_then(|d| d.client.deadline())
                    .is_some_and(|t| t <= now)
            })
            .map(|(i, _)| *i)
            .collect();
        for i in due {
            self.dhcp_input(i, Input::Timer, now, out);
        }
        self.check_facts(now, out);
    }

    fn begin_shutdown(&mut self, out: &mut Vec<Notice>) {
        let now = Instant::now();
        let releasing: Vec<u32> = self
            .links
            .iter()
            .filter(|(_, m)| {
                m.cfg
                    .and_then(|i| self.opts.config.links.get(i))
                    .is_some_and(|c| c.release)
            })
            .map(|(i, _)| *i)
            .collect();
        for i in releasing {
            self.dhcp_input(i, Input::Release, now, out);
        }
    }

    fn status(&self) -> serde_json::Value {
        super::view::status(self)
    }
}

/// Read-only access for the status view.
impl NetManager {
    pub(super) fn view_links(&self) -> impl Iterator<Item = ViewLink<'_>> {
        self.links.values().map(|m| ViewLink {
            kernel: &m.kernel,
            managed: m.cfg.is_some(),
            client: m.dhcp.as_ref().map(|d| &d.client),
            obtained: m.obtained,
        })
    }
    pub(super) fn view_addresses(&self) -> &[(u32, Ipv4Addr, u8)] {
        &self.addresses
    }
    pub(super) fn view_routes(&self) -> &[(Option<u32>, Route)] {
        &self.routes
    }
    pub(super) fn view_resolv(&self) -> &str {
        &self.resolv_text
    }
    pub(super) fn view_facts(&self) -> (bool, bool, bool) {
        (
            self.network_reached,
            self.online_reached,
            self.online_failed,
        )
    }
    pub(super) fn lease_dir(&self) -> &Path {
        &self.opts.lease_dir
    }
}

pub(super) struct ViewLink<'a> {
    pub kernel: &'a LinkState,
    pub managed: bool,
    pub client: Option<&'a Client>,
    pub obtained: Option<SystemTime>,
}
