//! What `initctl net` shows: the net subsystem's status as JSON (links, addresses, routes, DNS,
//! leases) and its text rendering for people.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::manager::{mac_text, show_route, NetManager};

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The JSON answer to the control op `subsystem` with name "net".
pub fn status(m: &NetManager) -> Value {
    let mut links = Vec::new();
    let mut leases = Vec::new();
    for l in m.view_links() {
        let k = l.kernel;
        links.push(json!({
            "name": k.name,
            "index": k.index,
            "state": if k.up { "up" } else { "down" },
            "carrier": k.carrier,
            "mac": k.mac.map(mac_text),
            "mtu": k.mtu,
            "managed": l.managed,
            "dhcp": l.client.map(|c| c.state().word()),
        }));
        if let (Some(c), Some(lease)) = (l.client, l.client.and_then(|c| c.lease())) {
            let obtained = l.obtained.map(unix).unwrap_or(0);
            let at = |s: u32| (!lease.infinite()).then(|| obtained + u64::from(s));
            let _ = c;
            leases.push(json!({
                "link": k.name,
                "address": format!("{}/{}", lease.address, lease.prefix),
                "server": lease.server.to_string(),
                "obtained": obtained,
                "t1": at(lease.t1),
                "t2": at(lease.t2),
                "expiry": at(lease.lease_time),
                "lease_time": lease.lease_time,
                "routes": lease.routes.iter().map(show_route).collect::<Vec<_>>(),
                "dns": lease.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                "search": lease.search,
                "hostname": lease.hostname,
                "mtu": lease.mtu,
            }));
        }
    }
    let name_of = |i: u32| {
        m.view_links()
            .find(|l| l.kernel.index == i)
            .map(|l| l.kernel.name.clone())
            .unwrap_or_else(|| format!("#{i}"))
    };
    let addresses: Vec<Value> = m
        .view_addresses()
        .iter()
        .map(|(i, a, p)| json!({"link": name_of(*i), "address": format!("{a}/{p}")}))
        .collect();
    let routes: Vec<Value> = m
        .view_routes()
        .iter()
        .map(|(i, r)| json!({"link": i.map(name_of), "route": show_route(r)}))
        .collect();
    let dns: Vec<&str> = m
        .view_resolv()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    let search: Vec<&str> = m
        .view_resolv()
        .lines()
        .filter_map(|l| l.strip_prefix("search "))
        .flat_map(|l| l.split(' '))
        .collect();
    let (network, online, failed) = m.view_facts();
    json!({
        "network": network,
        "network_online": online,
        "network_online_failed": failed,
        "links": links,
        "addresses": addresses,
        "routes": routes,
        "dns": dns,
        "search": search,
        "leases": leases,
        "lease_dir": m.lease_dir().display().to_string(),
    })
}

/// Text for `initctl net`; `None` when the report is not in the shape above (an older or newer
/// init), so the caller falls back to JSON.
pub fn render(v: &Value) -> Option<String> {
    let mut s = String::new();
    let b = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    s.push_str(&format!(
        "network: {}   network-online: {}\n",
        if b("network") { "reached" } else { "waiting" },
        if b("network_online") {
            "reached"
        } else if b("network_online_failed") {
            "failed"
        } else {
            "waiting"
        }
    ));
    s.push_str("\nLINK             STATE CARRIER MAC               MTU   DHCP\n");
    for l in v.get("links")?.as_array()? {
        let t = |k: &str| l.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
        s.push_str(&format!(
            "{:<16} {:<5} {:<7} {:<17} {:<5} {}\n",
            t("name"),
            t("state"),
            if l.get("carrier").and_then(Value::as_bool)? {
                "yes"
            } else {
                "no"
            },
            t("mac"),
            l.get("mtu").and_then(Value::as_u64).unwrap_or(0),
            t("dhcp"),
        ));
    }
    s.push_str("\nADDRESSES\n");
    for a in v.get("addresses")?.as_array()? {
        s.push_str(&format!(
            "  {:<16} {}\n",
            a.get("link")?.as_str()?,
            a.get("address")?.as_str()?
        ));
    }
    s.push_str("ROUTES\n");
    for r in v.get("routes")?.as_array()? {
        s.push_str(&format!(
            "  {:<16} {}\n",
            r.get("link").and_then(Value::as_str).unwrap_or("-"),
            r.get("route")?.as_str()?
        ));
    }
    let list = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    s.push_str(&format!("DNS      {}\n", list("dns").join(" ")));
    s.push_str(&format!("SEARCH   {}\n", list("search").join(" ")));
    for l in v.get("leases")?.as_array()? {
        let t = |k: &str| l.get(k).and_then(Value::as_u64);
        let rel = |k: &str| match (t(k), t("obtained")) {
            (Some(x), Some(o)) => format!("+{}s", x.saturating_sub(o)),
            _ => "never".into(),
        };
        s.push_str(&format!(
            "LEASE    {} {} from {}, T1 {} T2 {} expiry {}\n",
            l.get("link")?.as_str()?,
            l.get("address")?.as_str()?,
            l.get("server")?.as_str()?,
            rel("t1"),
            rel("t2"),
            rel("expiry"),
        ));
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_report() {
        let v = json!({
            "network": true, "network_online": true, "network_online_failed": false,
            "links": [{"name": "eth0", "index": 2, "state": "up", "carrier": true,
                       "mac": "52:54:00:12:34:56", "mtu": 1500, "managed": true, "dhcp": "bound"}],
            "addresses": [{"link": "eth0", "address": "10.0.2.15/24"}],
            "routes": [{"link": "eth0", "route": "default via 10.0.2.2"}],
            "dns": ["10.0.2.3"], "search": [],
            "leases": [{"link": "eth0", "address": "10.0.2.15/24", "server": "10.0.2.2",
                        "obtained": 1000, "t1": 1600, "t2": 2000, "expiry": 2200}],
        });
        let text = render(&v).unwrap();
        assert!(text.starts_with("network: reached   network-online: reached\n"));
        assert!(text.contains("eth0             up    yes     52:54:00:12:34:56 1500  bound\n"));
        assert!(text.contains("  eth0             default via 10.0.2.2\n"));
        assert!(text.contains("DNS      10.0.2.3\n"));
        assert!(text.contains(
            "LEASE    eth0 10.0.2.15/24 from 10.0.2.2, T1 +600s T2 +1000s expiry +1200s\n"
        ));
        assert_eq!(render(&json!({"other": 1})), None);
    }
}
