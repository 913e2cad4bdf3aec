//! The kernel's `ip=` parameter (Documentation/admin-guide/nfs/nfsroot.rst), so that a user's
//! existing command lines keep working: `ip=off`/`ip=none`, `ip=dhcp` (also `on`, `any`), and
//! `ip=<client>:<server>:<gw>:<netmask>:<hostname>:<device>:<autoconf>:<dns0>:<dns1>:<ntp0>`.
//! Several `ip=` words configure several devices (dracut's extension); `lifsea.net.timeout=SECS`
//! bounds the wait for `network-online`.
//!
//! The server and NTP fields are accepted and ignored (they serve NFS root and time, neither of
//! which is ours). BOOTP and RARP are refused with a clear message: only DHCP is built in.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::dhcp::packet::mask_prefix;

/// One `ip=` word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpConfig {
    /// `ip=off` / `ip=none`: no automatic configuration at all.
    Off,
    /// DHCP on `device`, or on every physical link when `None`.
    Dhcp {
        device: Option<String>,
    },
    Static(StaticIp),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticIp {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub hostname: Option<String>,
    /// `None`: the first physical link.
    pub device: Option<String>,
    pub dns: Vec<Ipv4Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpConfigError {
    #[error("ip={value}: too many fields ({count}, at most 10)")]
    TooManyFields { value: String, count: usize },
    #[error("ip={value}: {field} {text:?} is not an IPv4 address")]
    BadAddress {
        value: String,
        field: &'static str,
        text: String,
    },
    #[error("ip={value}: netmask {mask} is not contiguous")]
    BadNetmask { value: String, mask: Ipv4Addr },
    #[error("ip={value}: autoconf {text:?} is not supported (use dhcp, on, any, off or none)")]
    Autoconf { value: String, text: String },
    #[error("ip={value}: device name {text:?} is not valid")]
    BadDevice { value: String, text: String },
    #[error("ip={value}: hostname {text:?} is not valid")]
    BadHostname { value: String, text: String },
    #[error("lifsea.net.timeout={value}: expected a number of seconds")]
    BadTimeout { value: String },
    #[error("lifsea.net.timeout={value}: {reason}")]
    TimeoutTooLong { value: String, reason: String },
}

/// Parses the value of one `ip=` word.
pub fn parse(value: &str) -> Result<IpConfig, IpConfigError> {
    let v = || value.to_string();
    match value {
        "off" | "none" => return Ok(IpConfig::Off),
        "dhcp" | "on" | "any" => return Ok(IpConfig::Dhcp { device: None }),
        "bootp" | "rarp" | "both" => {
            return Err(IpConfigError::Autoconf {
                value: v(),
                text: value.to_string(),
            })
        }
        _ => {}
    }
    let fields: Vec<&str> = value.split(':').collect();
    if fields.len() > 10 {
        return Err(IpConfigError::TooManyFields {
            value: v(),
            count: fields.len(),
        });
    }
    let field = |i: usize| fields.get(i).copied().unwrap_or("");
    let addr = |i: usize, name: &'static str| -> Result<Option<Ipv4Addr>, IpConfigError> {
        let text = field(i);
        if text.is_empty() {
            return Ok(None);
        }
        text.parse()
            .map(Some)
            .map_err(|_| IpConfigError::BadAddress {
                value: v(),
                field: name,
                text: text.to_string(),
            })
    };
    let client = addr(0, "client address")?;
    addr(1, "server address")?;
    let gateway = addr(2, "gateway")?;
    let mask = addr(3, "netmask")?;
    let hostname = Some(field(4)).filter(|h| !h.is_empty()).map(str::to_string);
    if let Some(h) = &hostname {
        let ok = h.len() <= 64
            && !h.starts_with('-')
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            return Err(IpConfigError::BadHostname {
                value: v(),
                text: h.clone(),
            });
        }
    }
    let device = Some(field(5)).filter(|d| !d.is_empty()).map(str::to_string);
    if let Some(d) = &device {
        if !valid_ifname(d) {
            return Err(IpConfigError::BadDevice {
                value: v(),
                text: d.clone(),
            });
        }
    }
    let dhcp = match field(6) {
        "" => client.is_none(),
        "off" | "none" => false,
        "dhcp" | "on" | "any" => true,
        other => {
            return Err(IpConfigError::Autoconf {
                value: v(),
                text: other.to_string(),
            })
        }
    };
    let dns: Vec<Ipv4Addr> = [addr(7, "dns0")?, addr(8, "dns1")?]
        .into_iter()
        .flatten()
        .collect();
    addr(9, "ntp0")?;
    match client {
        Some(address) if !dhcp => {
            let prefix = match mask {
                Some(m) => mask_prefix(m).ok_or(IpConfigError::BadNetmask {
                    value: v(),
                    mask: m,
                })?,
                None => classful(address),
            };
            Ok(IpConfig::Static(StaticIp {
                address,
                prefix,
                gateway,
                hostname,
                device,
                dns,
            }))
        }
        _ if dhcp => Ok(IpConfig::Dhcp { device }),
        _ => Ok(IpConfig::Off),
    }
}

/// Every `ip=` word of a kernel command line (in order) and `lifsea.net.timeout=`; a bad word is
/// reported and skipped.
pub fn from_cmdline(words: &[String]) -> (Vec<IpConfig>, Option<Duration>, Vec<IpConfigError>) {
    let (mut configs, mut timeout, mut errors) = (Vec::new(), None, Vec::new());
    for w in words {
        if let Some(value) = w.strip_prefix("ip=") {
            match parse(value) {
                Ok(c) => configs.push(c),
                Err(e) => errors.push(e),
            }
        } else if let Some(value) = w.strip_prefix("lifsea.net.timeout=") {
            // Bounded like every duration: the deadline is an `Instant` sum in PID 1.
            match value.parse::<u64>() {
                Ok(s) => match crate::units::values::check_duration_secs(s) {
                    Ok(d) => timeout = Some(d),
                    Err(reason) => errors.push(IpConfigError::TimeoutTooLong {
                        value: value.to_string(),
                        reason,
                    }),
                },
                Err(_) => errors.push(IpConfigError::BadTimeout {
                    value: value.to_string(),
                }),
            }
        }
    }
    (configs, timeout, errors)
}

/// An interface name the kernel would accept: 1–15 bytes, no `/`, `:` or whitespace.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace() || b == 0)
}

fn classful(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn simple_forms() {
        assert_eq!(parse("off"), Ok(IpConfig::Off));
        assert_eq!(parse("none"), Ok(IpConfig::Off));
        for v in ["dhcp", "on", "any"] {
            assert_eq!(parse(v), Ok(IpConfig::Dhcp { device: None }));
        }
        assert_eq!(
            parse(":::::eth1:dhcp"),
            Ok(IpConfig::Dhcp {
                device: Some("eth1".into())
            })
        );
        assert_eq!(
            parse(":::::eth1"),
            Ok(IpConfig::Dhcp {
                device: Some("eth1".into())
            }),
            "no client address and no autoconf: the kernel's default, autoconfiguration"
        );
    }

    #[test]
    fn static_form_of_the_issue() {
        assert_eq!(
            parse("10.0.2.15::10.0.2.2:255.255.255.0:node1:eth0:none:10.0.2.3"),
            Ok(IpConfig::Static(StaticIp {
                address: ip("10.0.2.15"),
                prefix: 24,
                gateway: Some(ip("10.0.2.2")),
                hostname: Some("node1".into()),
                device: Some("eth0".into()),
                dns: vec![ip("10.0.2.3")],
            }))
        );
        assert_eq!(
            parse("192.168.1.5:10.9.9.9::::::1.1.1.1:8.8.8.8:9.9.9.9"),
            Ok(IpConfig::Static(StaticIp {
                address: ip("192.168.1.5"),
                prefix: 24,
                gateway: None,
                hostname: None,
                device: None,
                dns: vec![ip("1.1.1.1"), ip("8.8.8.8")],
            })),
            "classful prefix without a netmask; server and ntp ignored"
        );
    }

    #[test]
    fn exact_errors() {
        let e = |v: &str| parse(v).unwrap_err().to_string();
        assert_eq!(
            e("10.0.2.x::10.0.2.2:255.255.255.0::eth0:none"),
            "ip=10.0.2.x::10.0.2.2:255.255.255.0::eth0:none: client address \"10.0.2.x\" is not an IPv4 address"
        );
        assert_eq!(
            e("10.0.2.15::10.0.2.2:255.0.255.0::eth0:none"),
            "ip=10.0.2.15::10.0.2.2:255.0.255.0::eth0:none: netmask 255.0.255.0 is not contiguous"
        );
        assert_eq!(
            e("rarp"),
            "ip=rarp: autoconf \"rarp\" is not supported (use dhcp, on, any, off or none)"
        );
        assert_eq!(
            e(":::::eth0:bootp"),
            "ip=:::::eth0:bootp: autoconf \"bootp\" is not supported (use dhcp, on, any, off or none)"
        );
        assert_eq!(
            e(":::::a/b:dhcp"),
            "ip=:::::a/b:dhcp: device name \"a/b\" is not valid"
        );
        assert_eq!(
            e("1.2.3.4::::bad_host!::none"),
            "ip=1.2.3.4::::bad_host!::none: hostname \"bad_host!\" is not valid"
        );
        assert_eq!(
            e("1:2:3:4:5:6:7:8:9:10:11"),
            "ip=1:2:3:4:5:6:7:8:9:10:11: too many fields (11, at most 10)"
        );
        assert_eq!(
            e("1.2.3.4::::::none:8.8.8"),
            "ip=1.2.3.4::::::none:8.8.8: dns0 \"8.8.8\" is not an IPv4 address"
        );
    }

    #[test]
    fn cmdline_words() {
        let words: Vec<String> = [
            "quiet",
            "ip=dhcp",
            "ip=bogus:",
            "lifsea.net.timeout=5",
            "ip=off",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (c, t, e) = from_cmdline(&words);
        assert_eq!(c, vec![IpConfig::Dhcp { device: None }, IpConfig::Off]);
        assert_eq!(t, Some(Duration::from_secs(5)));
        assert_eq!(
            e.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            vec!["ip=bogus:: client address \"bogus\" is not an IPv4 address"]
        );
        let (_, _, e) = from_cmdline(&["lifsea.net.timeout=soon".to_string()]);
        assert_eq!(
            e[0].to_string(),
            "lifsea.net.timeout=soon: expected a number of seconds"
        );
        let (_, t, e) = from_cmdline(&["lifsea.net.timeout=18446744073709551615".to_string()]);
        assert_eq!(t, None);
        assert_eq!(
            e[0].to_string(),
            "lifsea.net.timeout=18446744073709551615: 18446744073709551615 seconds is longer than \
             the maximum of 1 year (8760h)"
        );
    }
}
