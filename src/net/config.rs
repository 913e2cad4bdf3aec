//! `/etc/lifsea/network.toml`: which links to configure and how (DHCP or static addresses,
//! routes, DNS, MTU), matched by name, MAC or driver, and how long boot waits for
//! `network-online`. Documented in docs/network.md; validated offline by
//! `lifsea-init check --network FILE`.
//!
//! Like the unit parser (through `units::tomldoc`), unknown keys are refused and every value keeps its span, so each error
//! names a line and column; all semantic errors of a file are reported at once. Without the file
//! (and without `ip=`), every physical link gets DHCP and the first lease makes the node online.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::dhcp::Route;
use super::ipconfig::{valid_ifname, IpConfig};
use crate::units::parse::line_col;
use crate::units::tomldoc::{self, DeSp, DocError, Fields};
use crate::units::values::parse_duration;

pub const DEFAULT_PATH: &str = "/etc/lifsea/network.toml";
pub const DEFAULT_ONLINE_TIMEOUT: Duration = Duration::from_secs(60);

/// The whole network plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    pub online_timeout: Duration,
    /// In file order; a link takes the first entry that matches it.
    pub links: Vec<LinkConfig>,
}

/// Which links an entry applies to; every given criterion must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkMatch {
    /// An interface name, or a pattern with one trailing `*` (`eth*`, `*` for any).
    pub name: Option<String>,
    pub mac: Option<[u8; 6]>,
    /// The kernel driver, as in /sys/class/net/NAME/device/driver.
    pub driver: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    pub matcher: LinkMatch,
    pub dhcp: bool,
    pub addresses: Vec<(Ipv4Addr, u8)>,
    pub gateway: Option<Ipv4Addr>,
    pub routes: Vec<Route>,
    pub dns: Vec<IpAddr>,
    pub search: Vec<String>,
    pub mtu: Option<u32>,
    /// `network-online` waits for this link's address. When no link is required, one configured
    /// link with an address (and a default route) is enough.
    pub required: bool,
    /// Send DHCP RELEASE at shutdown.
    pub release: bool,
    /// Set the hostname from DHCP option 12 when /etc/hostname gave none.
    pub hostname: Option<String>,
}

impl LinkConfig {
    /// The default: DHCP on whatever matched, not required.
    pub fn dhcp_on(matcher: LinkMatch) -> Self {
        LinkConfig {
            matcher,
            dhcp: true,
            addresses: Vec::new(),
            gateway: None,
            routes: Vec::new(),
            dns: Vec::new(),
            search: Vec::new(),
            mtu: None,
            required: false,
            release: false,
            hostname: None,
        }
    }
}

impl LinkMatch {
    pub fn any() -> Self {
        LinkMatch {
            name: Some("*".into()),
            ..Default::default()
        }
    }

    pub fn matches(&self, name: &str, mac: Option<[u8; 6]>, driver: Option<&str>) -> bool {
        let name_ok = self
            .name
            .as_deref()
            .map_or(true, |p| match p.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => p == name,
            });
        let mac_ok = self.mac.map_or(true, |m| Some(m) == mac);
        let driver_ok = self.driver.as_deref().map_or(true, |d| Some(d) == driver);
        name_ok && mac_ok && driver_ok
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            online_timeout: DEFAULT_ONLINE_TIMEOUT,
            links: vec![LinkConfig::dhcp_on(LinkMatch::any())],
        }
    }
}

/// One error in network.toml.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", path.display(), position(*line, *column))]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

type S<T> = Spanned<T>;

#[derive(Default)]
struct RawConfig {
    online_timeout: Option<S<String>>,
    link: Vec<S<RawLink>>,
}

#[derive(Default)]
struct RawLink {
    name: Option<S<String>>,
    mac: Option<S<String>>,
    driver: Option<S<String>>,
    dhcp: Option<bool>,
    addresses: Vec<S<String>>,
    gateway: Option<S<String>>,
    routes: Vec<S<RawRoute>>,
    dns: Vec<S<String>>,
    search: Vec<S<String>>,
    mtu: Option<S<u32>>,
    required: Option<bool>,
    release: Option<bool>,
    hostname: Option<S<String>>,
}

struct RawRoute {
    to: S<String>,
    via: Option<S<String>>,
}

/// Sorts the file's keys into RawConfig; the first unknown key or wrongly shaped value ends it.
fn raw_config(text: &str) -> Result<RawConfig, DocError> {
    let doc = tomldoc::parse(text)?;
    let mut raw = RawConfig::default();
    let mut fields = Fields::new(doc.get_ref(), &["online-timeout", "link"]);
    while let Some((i, v)) = fields.next_field()? {
        match i {
            0 => raw.online_timeout = Some(tomldoc::to_string(v)?),
            _ => raw.link = tomldoc::array_of(v, raw_link)?,
        }
    }
    Ok(raw)
}

const LINK_KEYS: &[&str] = &[
    "name",
    "mac",
    "driver",
    "dhcp",
    "addresses",
    "gateway",
    "routes",
    "dns",
    "search",
    "mtu",
    "required",
    "release",
    "hostname",
];

fn raw_link(v: &DeSp) -> Result<S<RawLink>, DocError> {
    let t = tomldoc::table(v, "struct RawLink")?;
    let mut l = RawLink::default();
    let mut fields = Fields::new(t, LINK_KEYS);
    while let Some((i, v)) = fields.next_field()? {
        let string = || tomldoc::to_string(v).map(Some);
        let strings = || tomldoc::array_of(v, tomldoc::to_string);
        let boolean = || tomldoc::to_bool(v).map(Some);
        match i {
            0 => l.name = string()?,
            1 => l.mac = string()?,
            2 => l.driver = string()?,
            3 => l.dhcp = boolean()?,
            4 => l.addresses = strings()?,
            5 => l.gateway = string()?,
            6 => l.routes = tomldoc::array_of(v, raw_route)?,
            7 => l.dns = strings()?,
            8 => l.search = strings()?,
            9 => l.mtu = Some(tomldoc::to_u32(v)?),
            10 => l.required = boolean()?,
            11 => l.release = boolean()?,
            _ => l.hostname = string()?,
        }
    }
    Ok(S::new(v.span(), l))
}

fn raw_route(v: &DeSp) -> Result<S<RawRoute>, DocError> {
    let t = tomldoc::table(v, "struct RawRoute")?;
    let (mut to, mut via) = (None, None);
    let mut fields = Fields::new(t, &["to", "via"]);
    while let Some((i, v)) = fields.next_field()? {
        match i {
            0 => to = Some(tomldoc::to_string(v)?),
            _ => via = Some(tomldoc::to_string(v)?),
        }
    }
    let to = to.ok_or_else(|| tomldoc::missing_field(v.span(), "to"))?;
    Ok(S::new(v.span(), RawRoute { to, via }))
}

struct Errs<'a> {
    path: &'a Path,
    text: &'a str,
    list: Vec<ConfigError>,
}

impl Errs<'_> {
    fn at(&mut self, offset: Option<usize>, message: String) {
        let (line, column) = match offset.map(|o| line_col(self.text, o)) {
            Some((l, c)) => (Some(l), Some(c)),
            None => (None, None),
        };
        self.list.push(ConfigError {
            path: self.path.to_path_buf(),
            line,
            column,
            message,
        });
    }
}

/// Parses and validates network.toml text; `path` only names the file in messages.
pub fn parse(path: &Path, text: &str) -> Result<NetworkConfig, Vec<ConfigError>> {
    let mut errs = Errs {
        path,
        text,
        list: Vec::new(),
    };
    let raw: RawConfig = match raw_config(text) {
        Ok(r) => r,
        Err(e) => {
            let msg = e
                .message
                .trim()
                .replace("struct Raw", "table ")
                .replace('\n', ": ");
            errs.at(e.span.map(|s| s.start), msg);
            return Err(errs.list);
        }
    };
    let online_timeout = match &raw.online_timeout {
        Some(t) => parse_duration(t.get_ref()).unwrap_or_else(|m| {
            errs.at(Some(t.span().start), format!("online-timeout: {m}"));
            DEFAULT_ONLINE_TIMEOUT
        }),
        None => DEFAULT_ONLINE_TIMEOUT,
    };
    let mut links = Vec::new();
    for l in &raw.link {
        links.push(link(&mut errs, l));
    }
    if raw.link.is_empty() {
        links = NetworkConfig::default().links;
    }
    if errs.list.is_empty() {
        Ok(NetworkConfig {
            online_timeout,
            links,
        })
    } else {
        Err(errs.list)
    }
}

fn link(errs: &mut Errs, sl: &S<RawLink>) -> LinkConfig {
    let l = sl.get_ref();
    let mut matcher = LinkMatch::default();
    if let Some(n) = &l.name {
        let pat = n.get_ref();
        let base = pat.strip_suffix('*').unwrap_or(pat);
        if !(base.is_empty() && pat == "*") && (!valid_ifname(base) || base.contains('*')) {
            errs.at(
                Some(n.span().start),
                format!("name: {pat:?} is not an interface name or a pattern like \"eth*\""),
            );
        }
        matcher.name = Some(pat.clone());
    }
    if let Some(m) = &l.mac {
        match parse_mac(m.get_ref()) {
            Some(mac) => matcher.mac = Some(mac),
            None => errs.at(
                Some(m.span().start),
                format!(
                    "mac: {:?} is not a MAC address like 52:54:00:12:34:56",
                    m.get_ref()
                ),
            ),
        }
    }
    if let Some(d) = &l.driver {
        matcher.driver = Some(d.get_ref().clone());
    }
    if l.name.is_none() && l.mac.is_none() && l.driver.is_none() {
        errs.at(
            Some(sl.span().start),
            "link: give at least one of name, mac or driver to match".into(),
        );
    }
    let addresses: Vec<(Ipv4Addr, u8)> = l
        .addresses
        .iter()
        .filter_map(|a| match parse_cidr(a.get_ref()) {
            Some(c) => Some(c),
            None => {
                errs.at(
                    Some(a.span().start),
                    format!(
                        "addresses: {:?} is not an IPv4 address with a prefix like 10.0.0.5/24",
                        a.get_ref()
                    ),
                );
                None
            }
        })
        .collect();
    let gateway = l.gateway.as_ref().and_then(|g| ipv4(errs, "gateway", g));
    let routes = l
        .routes
        .iter()
        .filter_map(|r| {
            let r = r.get_ref();
            let dest = if r.to.get_ref() == "default" {
                Some((Ipv4Addr::UNSPECIFIED, 0))
            } else {
                parse_cidr(r.to.get_ref())
            };
            let Some((destination, prefix)) = dest else {
                errs.at(
                    Some(r.to.span().start),
                    format!(
                        "routes: to {:?} is not \"default\" or a prefix like 192.168.0.0/16",
                        r.to.get_ref()
                    ),
                );
                return None;
            };
            let gateway = r.via.as_ref().and_then(|v| ipv4(errs, "routes: via", v));
            Some(Route {
                destination,
                prefix,
                gateway,
            })
        })
        .collect();
    let dns = l
        .dns
        .iter()
        .filter_map(|d| match d.get_ref().parse::<IpAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errs.at(
                    Some(d.span().start),
                    format!("dns: {:?} is not an IP address", d.get_ref()),
                );
                None
            }
        })
        .collect();
    let search = l
        .search
        .iter()
        .filter_map(|s| {
            let v = s.get_ref();
            let ok = !v.is_empty()
                && v.len() <= 253
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            if !ok {
                errs.at(
                    Some(s.span().start),
                    format!("search: {v:?} is not a domain name"),
                );
            }
            ok.then(|| v.clone())
        })
        .collect();
    let mtu = l.mtu.as_ref().and_then(|m| {
        let v = *m.get_ref();
        if (68..=65535).contains(&v) {
            Some(v)
        } else {
            errs.at(
                Some(m.span().start),
                format!("mtu: {v} is outside 68..65535"),
            );
            None
        }
    });
    let hostname = l.hostname.as_ref().map(|h| h.get_ref().clone());
    let dhcp = l.dhcp.unwrap_or(addresses.is_empty());
    LinkConfig {
        matcher,
        dhcp,
        addresses,
        gateway,
        routes,
        dns,
        search,
        mtu,
        required: l.required.unwrap_or(true),
        release: l.release.unwrap_or(false),
        hostname,
    }
}

fn ipv4(errs: &mut Errs, key: &str, v: &S<String>) -> Option<Ipv4Addr> {
    match v.get_ref().parse() {
        Ok(a) => Some(a),
        Err(_) => {
            errs.at(
                Some(v.span().start),
                format!("{key}: {:?} is not an IPv4 address", v.get_ref()),
            );
            None
        }
    }
}

/// `10.0.0.5/24`.
pub fn parse_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (a, p) = s.split_once('/')?;
    let prefix: u8 = p.parse().ok().filter(|p| *p <= 32)?;
    Some((a.parse().ok()?, prefix))
}

/// `52:54:00:12:34:56` (case-insensitive).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut out {
        let p = parts.next().filter(|p| p.len() == 2)?;
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The plan from the file (when it has links) or else from the kernel's `ip=` words, or else the
/// default. `timeout` from `lifsea.net.timeout=` overrides the file's.
pub fn plan(
    file: Option<NetworkConfig>,
    cmdline: &[IpConfig],
    timeout: Option<Duration>,
) -> NetworkConfig {
    let mut cfg = match file {
        Some(f) => f,
        None if cmdline.is_empty() => NetworkConfig::default(),
        None => {
            let mut links = Vec::new();
            for c in cmdline {
                match c {
                    IpConfig::Off => {}
                    IpConfig::Dhcp { device } => {
                        let m = LinkMatch {
                            name: Some(device.clone().unwrap_or_else(|| "*".into())),
                            ..Default::default()
                        };
                        let mut l = LinkConfig::dhcp_on(m);
                        l.required = device.is_some();
                        links.push(l);
                    }
                    IpConfig::Static(s) => {
                        let m = LinkMatch {
                            name: Some(s.device.clone().unwrap_or_else(|| "*".into())),
                            ..Default::default()
                        };
                        let mut l = LinkConfig::dhcp_on(m);
                        l.dhcp = false;
                        l.required = true;
                        l.addresses = vec![(s.address, s.prefix)];
                        l.gateway = s.gateway;
                        l.dns = s.dns.iter().copied().map(IpAddr::V4).collect();
                        l.hostname = s.hostname.clone();
                        links.push(l);
                    }
                }
            }
            NetworkConfig {
                online_timeout: DEFAULT_ONLINE_TIMEOUT,
                links,
            }
        }
    };
    if let Some(t) = timeout {
        cfg.online_timeout = t;
    }
    cfg
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
