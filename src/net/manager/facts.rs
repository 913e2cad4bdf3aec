//! The facts `network` and `network-online`: when they are reached, and when the bounded wait
//! for `network-online` gives up, which link to name in the reason.

use std::time::Instant;

use super::{mac_text, Managed, NetManager};
use crate::net::config::LinkConfig;
use crate::supervisor::subsystem::Notice;

impl NetManager {
    pub(super) fn check_facts(&mut self, now: Instant, out: &mut Vec<Notice>) {
        if !self.links_known {
            return;
        }
        let managed: Vec<&Managed> = self.links.values().filter(|m| m.cfg.is_some()).collect();
        if !self.network_reached && managed.iter().all(|m| m.kernel.up) {
            self.network_reached = true;
            out.push(Notice::FactReached("network".into()));
        }
        if self.online_reached {
            return;
        }
        match self.online_blocker(now) {
            None => {
                self.online_reached = true;
                log::info!("net: network-online");
                out.push(Notice::FactReached("network-online".into()));
            }
            Some(reason) if now >= self.online_deadline && !self.online_failed => {
                self.online_failed = true;
                eprintln!("lifsea-init: network-online not reached: {reason}");
                log::error!("net: network-online not reached: {reason}");
                out.push(Notice::FactFailed {
                    fact: "network-online".into(),
                    reason,
                });
            }
            Some(_) => {}
        }
    }

    /// Why the node is not online yet, naming the first link to blame; `None` when it is.
    fn online_blocker(&self, now: Instant) -> Option<String> {
        let waited = now.saturating_duration_since(self.online_since).as_secs();
        let has_addr = |i: u32| self.addresses.iter().any(|a| a.0 == i);
        let describe = |m: &Managed| match &m.dhcp {
            Some(d) => format!(
                "{}: no lease after {waited}s (state {})",
                m.kernel.name,
                d.client.state().word()
            ),
            None if !m.kernel.up => format!("{}: link not up after {waited}s", m.kernel.name),
            None if m.kernel.carrier => format!("{}: no address after {waited}s", m.kernel.name),
            None => format!("{}: no carrier after {waited}s", m.kernel.name),
        };
        let cfgs = &self.opts.config.links;
        let any_required = cfgs.iter().any(|c| c.required);
        if any_required {
            for (i, c) in cfgs.iter().enumerate().filter(|(_, c)| c.required) {
                let matched: Vec<&Managed> =
                    self.links.values().filter(|m| m.cfg == Some(i)).collect();
                if matched.is_empty() {
                    return Some(format!(
                        "no link matches required entry {} ({})",
                        i + 1,
                        describe_match(c)
                    ));
                }
                if let Some(m) = matched.iter().find(|m| !has_addr(m.kernel.index)) {
                    return Some(describe(m));
                }
            }
        } else {
            let managed: Vec<&Managed> = self.links.values().filter(|m| m.cfg.is_some()).collect();
            if !managed.iter().any(|m| has_addr(m.kernel.index)) {
                return Some(match managed.first() {
                    Some(m) => describe(m),
                    None => format!("no link to configure after {waited}s"),
                });
            }
        }
        if !self.routes.iter().any(|(_, r)| r.prefix == 0) {
            return Some(format!("no default route after {waited}s"));
        }
        None
    }
}

fn describe_match(c: &LinkConfig) -> String {
    let mut parts = Vec::new();
    if let Some(n) = &c.matcher.name {
        parts.push(format!("name {n}"));
    }
    if let Some(m) = c.matcher.mac {
        parts.push(format!("mac {}", mac_text(m)));
    }
    if let Some(d) = &c.matcher.driver {
        parts.push(format!("driver {d}"));
    }
    parts.join(", ")
}
