//! Putting a lease or a static configuration into the kernel (addresses, routes, MTU) and the
//! resolver file, and taking a lease out again. Requests go out on rtnetlink; their ACKs come
//! back through `on_rtnl`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::SystemTime;

use super::{show_route, stamp, unix_now, NetManager};
use crate::net::config::LinkConfig;
use crate::net::dhcp::lease::{self, Lease};
use crate::net::dhcp::Route;
use crate::net::resolv;
use crate::supervisor::subsystem::Notice;

impl NetManager {
    pub(super) fn apply_lease(
        &mut self,
        index: u32,
        name: &str,
        l: &Lease,
        renewed: bool,
        out: &mut Vec<Notice>,
    ) {
        if renewed {
            log::info!(
                "net: {name}: lease {} renewed ({}s)",
                l.address,
                l.lease_time
            );
        } else {
            log::info!(
                "net: {name}: lease {}/{} from {} ({}s), routes {}, dns {:?}",
                l.address,
                l.prefix,
                l.server,
                l.lease_time,
                l.routes.len(),
                l.dns
            );
        }
        if let Some(r) = self.rtnl.as_mut() {
            let res = r.add_address(index, l.address, l.prefix, Some(l.broadcast_address()));
            self.request(format!("add {}/{} to {name}", l.address, l.prefix), res);
            if let Some(mtu) = l.mtu {
                let res = self
                    .rtnl
                    .as_mut()
                    .map(|r| r.set_link(index, Some(u32::from(mtu))));
                if let Some(res) = res {
                    self.request(format!("set {name} mtu {mtu}"), res);
                }
            }
            // On-link routes first: a gateway must be reachable before a route through it.
            let mut routes = l.routes.clone();
            crate::collections::sort::sort_by_key(&mut routes, |r| r.gateway.is_some());
            for rt in routes {
                let res = self.rtnl.as_mut().map(|r| r.add_route(index, &rt, true));
                if let Some(res) = res {
                    self.request(format!("add route {} on {name}", show_route(&rt)), res);
                }
            }
            // Routes and gateway configured for this link come after the lease's and replace
            // any of the same destination (a server that sends no router, like QEMU's with
            // restrict=on, still gets the node a default route this way).
            let cfg = self.links.get(&index).and_then(|m| m.cfg);
            let extra = cfg
                .and_then(|i| self.opts.config.links.get(i))
                .map(static_routes)
                .unwrap_or_default();
            for rt in extra {
                let res = self.rtnl.as_mut().map(|r| r.add_route(index, &rt, false));
                if let Some(res) = res {
                    self.request(format!("add route {} on {name}", show_route(&rt)), res);
                }
            }
        }
        let unix = unix_now();
        if let Err(e) = lease::save(&lease::lease_path(&self.opts.lease_dir, name), l, unix) {
            log::warn!("net: {e}");
        }
        if let Some(m) = self.links.get_mut(&index) {
            m.obtained = Some(SystemTime::now());
            if !m.bound_stamped {
                m.bound_stamped = true;
                out.push(stamp(&format!("lease {name} bound")));
                if let Some(at) = m.up_at {
                    log::info!(
                        "net: {name}: link up to lease bound in {} ms",
                        at.elapsed().as_millis()
                    );
                }
            }
        }
        if self.opts.set_hostname {
            if let Some(h) = &l.hostname {
                let current = nix::unistd::gethostname().unwrap_or_default();
                let current = current.to_string_lossy();
                if current.is_empty() || current == "(none)" || current == "localhost" {
                    match nix::unistd::sethostname(h) {
                        Ok(()) => log::info!("net: hostname {h} (from DHCP)"),
                        Err(e) => log::warn!("net: set hostname {h}: {e}"),
                    }
                }
            }
        }
        self.update_resolv();
    }

    pub(super) fn remove_lease(&mut self, index: u32, l: &Lease) {
        let Some(r) = self.rtnl.as_mut() else {
            return;
        };
        for rt in &l.routes {
            let res = r.del_route(index, rt);
            if let Ok(seq) = res {
                self.pending
                    .insert(seq, format!("delete route {}", show_route(rt)));
            }
        }
        if let Some(r) = self.rtnl.as_mut() {
            let res = r.del_address(index, l.address, l.prefix);
            self.request(format!("delete {}/{}", l.address, l.prefix), res);
        }
    }

    pub(super) fn apply_static(&mut self, index: u32, cfg: &LinkConfig) {
        let Some(r) = self.rtnl.as_mut() else {
            return;
        };
        let mut reqs = Vec::new();
        for (a, p) in &cfg.addresses {
            let l = Lease {
                address: *a,
                prefix: *p,
                broadcast: None,
                server: Ipv4Addr::UNSPECIFIED,
                routes: vec![],
                dns: vec![],
                search: vec![],
                hostname: None,
                mtu: None,
                lease_time: u32::MAX,
                t1: 0,
                t2: 0,
            };
            reqs.push((
                format!("add {a}/{p}"),
                r.add_address(index, *a, *p, Some(l.broadcast_address())),
            ));
        }
        // On a DHCP link the configured routes wait for the lease: their gateways are reachable
        // only through its address (see `apply_lease`).
        let routes = if cfg.dhcp {
            Vec::new()
        } else {
            static_routes(cfg)
        };
        for rt in routes {
            reqs.push((
                format!("add route {}", show_route(&rt)),
                r.add_route(index, &rt, false),
            ));
        }
        for (what, res) in reqs {
            self.request(what, res);
        }
        if let Some(h) = cfg.hostname.as_deref().filter(|_| self.opts.set_hostname) {
            if let Err(e) = nix::unistd::sethostname(h) {
                log::warn!("net: set hostname {h}: {e}");
            }
        }
        self.update_resolv();
    }

    pub(super) fn update_resolv(&mut self) {
        let mut servers: Vec<IpAddr> = Vec::new();
        let mut search: Vec<String> = Vec::new();
        for m in self.links.values() {
            if let Some(c) = m.cfg.and_then(|i| self.opts.config.links.get(i)) {
                servers.extend(&c.dns);
                search.extend(c.search.iter().cloned());
            }
            if let Some(l) = m.dhcp.as_ref().and_then(|d| d.client.lease()) {
                servers.extend(l.dns.iter().map(|a| IpAddr::V4(*a)));
                search.extend(l.search.iter().cloned());
            }
        }
        if servers.is_empty() && search.is_empty() && self.resolv_text.is_empty() {
            return;
        }
        let text = resolv::render(&servers, &search);
        if text == self.resolv_text {
            return;
        }
        let res = match &self.opts.etc_resolv {
            Some(etc) => resolv::install(&text, &self.opts.resolv_file, etc),
            None => resolv::write_atomic(&self.opts.resolv_file, text.as_bytes())
                .map(|_| resolv::EtcResolv::Linked)
                .map_err(|source| resolv::ResolvError::Write {
                    path: self.opts.resolv_file.clone(),
                    source,
                }),
        };
        match res {
            Ok(resolv::EtcResolv::AdminFile) => {
                log::info!(
                    "net: /etc/resolv.conf is a regular file: left as the administrator wrote it"
                )
            }
            Ok(_) => {}
            Err(e) => log::warn!("net: {e}"),
        }
        self.resolv_text = text;
    }
}

/// A link's configured routes plus its default gateway, on-link ones first (a gateway must be
/// reachable before a route through it is added).
fn static_routes(cfg: &LinkConfig) -> Vec<Route> {
    let mut routes = cfg.routes.clone();
    if let Some(gw) = cfg.gateway {
        routes.push(Route {
            destination: Ipv4Addr::UNSPECIFIED,
            prefix: 0,
            gateway: Some(gw),
        });
    }
    crate::collections::sort::sort_by_key(&mut routes, |r| r.gateway.is_some());
    routes
}
