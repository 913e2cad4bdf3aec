//! The `ready = { http = "http://127.0.0.1:10248/healthz" }` URL: loopback only, because the probe
//! runs on PID 1's thread and a readiness check is about the unit's own local endpoint; a remote
//! host would make the init's progress depend on the network.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A parsed probe target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    pub addr: SocketAddr,
    /// The Host header as written in the URL (`127.0.0.1:10248`, `localhost:8080`, `[::1]:80`).
    pub host: String,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl std::fmt::Display for HttpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.host, self.path)
    }
}

/// Parses `http://HOST[:PORT][/PATH]` with HOST a loopback address or `localhost`.
pub fn parse_http_url(url: &str) -> Result<HttpTarget, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("expected a URL starting with http://, got {url:?}"))?;
    if url.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "must not contain spaces or control characters, got {url:?}"
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.contains('@') {
        return Err(format!("user information is not supported, got {url:?}"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("unclosed '[' in {url:?}"))?;
            (h, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let port = match port {
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 => n,
            _ => return Err(format!("invalid port {p:?} in {url:?}")),
        },
    };
    let ip: IpAddr = if host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().map_err(|_| {
            format!("the host must be a loopback address or localhost, got {host:?}")
        })?
    };
    if !ip.is_loopback() {
        return Err(format!(
            "the host must be a loopback address or localhost (the probe runs on PID 1's \
             thread), got {host:?}"
        ));
    }
    Ok(HttpTarget {
        addr: SocketAddr::new(ip, port),
        host: authority.to_string(),
        path: path.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls_parse() {
        let t = parse_http_url("http://127.0.0.1:10248/healthz").unwrap();
        assert_eq!(t.addr, "127.0.0.1:10248".parse().unwrap());
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:10248", "/healthz")
        );
        let t = parse_http_url("http://localhost").unwrap();
        assert_eq!(t.addr, "127.0.0.1:80".parse().unwrap());
        assert_eq!(t.path, "/");
        let t = parse_http_url("http://[::1]:8080/a?b=c").unwrap();
        assert_eq!(t.addr, "[::1]:8080".parse().unwrap());
        assert_eq!(t.path, "/a?b=c");
        assert_eq!(t.to_string(), "http://[::1]:8080/a?b=c");
        assert!(parse_http_url("http://127.1.2.3:1/").is_ok());
    }

    #[test]
    fn other_hosts_and_malformed_urls_are_refused() {
        for bad in [
            "https://127.0.0.1/",
            "127.0.0.1:80/healthz",
            "http://10.0.0.1:80/",
            "http://example.com/",
            "http://[2001:db8::1]:80/",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:99999/",
            "http://127.0.0.1:x/",
            "http://u@127.0.0.1/",
            "http://[::1/",
            "http://127.0.0.1/a b",
        ] {
            assert!(parse_http_url(bad).is_err(), "{bad} was accepted");
        }
        let e = parse_http_url("http://10.0.0.1:80/").unwrap_err();
        assert!(e.contains("loopback"), "{e}");
    }
}
