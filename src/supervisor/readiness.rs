//! Readiness probes for units that announce readiness by side effect: a path appearing, a Unix
//! socket accepting, a TCP port accepting. The event loop runs them on a short interval while the
//! unit is starting; the unit's ready-timeout bounds the total.

use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use crate::units::schema::Readiness;

/// How often a starting unit's probe runs.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(25);
/// A TCP connect attempt may take at most this long (it blocks the loop meanwhile, so keep it short;
/// a probe is meant for the unit's own, usually local, address).
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_millis(20);

/// Whether this readiness kind is detected by probing.
pub fn is_probe(r: &Readiness) -> bool {
    matches!(
        r,
        Readiness::Path(_) | Readiness::Unix(_) | Readiness::Tcp(_)
    )
}

/// Runs one probe; true when the unit looks ready.
pub fn probe(r: &Readiness) -> bool {
    match r {
        Readiness::Path(p) => p.exists(),
        Readiness::Unix(p) => UnixStream::connect(p).is_ok(),
        Readiness::Tcp(addr) => TcpStream::connect_timeout(addr, TCP_CONNECT_TIMEOUT).is_ok(),
        Readiness::Exec | Readiness::Notify | Readiness::Fd(_) => false,
    }
}

/// The readiness kind as shown by `initctl status`.
pub fn describe(r: &Readiness) -> String {
    match r {
        Readiness::Exec => "exec".into(),
        Readiness::Notify => "notify".into(),
        Readiness::Fd(n) => format!("fd {n}"),
        Readiness::Path(p) => format!("path {}", p.display()),
        Readiness::Unix(p) => format!("unix {}", p.display()),
        Readiness::Tcp(a) => format!("tcp {a}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_real_sockets_and_paths() {
        let dir = std::env::temp_dir().join(format!("lifsea-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("flag");
        assert!(!probe(&Readiness::Path(p.clone())));
        std::fs::write(&p, "").unwrap();
        assert!(probe(&Readiness::Path(p)));

        let sock = dir.join("s.sock");
        assert!(!probe(&Readiness::Unix(sock.clone())));
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(probe(&Readiness::Unix(sock)));

        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert!(probe(&Readiness::Tcp(addr)));
        drop(l);
        assert!(!probe(&Readiness::Tcp(addr)));
        assert_eq!(describe(&Readiness::Fd(3)), "fd 3");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
