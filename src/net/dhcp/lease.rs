//! What a DHCP server granted, as plain data: the address, the routes and resolver settings to
//! apply, and the lease's timers. It is also what the init remembers across boots (INIT-REBOOT)
//! under `/var/lib/lifsea/`, so it serialises to JSON.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A route a lease asks for. `gateway: None` is an on-link route (option 121 with router 0.0.0.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub destination: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
}

/// A lease as granted by an ACK, with every value already checked (see `packet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    /// Option 28 when given; otherwise derived from address and prefix when applied.
    pub broadcast: Option<Ipv4Addr>,
    /// The server identifier (option 54): where RENEWING unicasts.
    pub server: Ipv4Addr,
    /// Option 121 when present, else a default route through the first router of option 3.
    pub routes: Vec<Route>,
    pub dns: Vec<Ipv4Addr>,
    pub search: Vec<String>,
    pub hostname: Option<String>,
    pub mtu: Option<u16>,
    /// Seconds; `u32::MAX` means infinite (RFC 2131 §3.3).
    pub lease_time: u32,
    pub t1: u32,
    pub t2: u32,
}

impl Lease {
    /// The broadcast address to configure: option 28, or the subnet's last address.
    pub fn broadcast_address(&self) -> Ipv4Addr {
        self.broadcast.unwrap_or_else(|| {
            let host_bits = u32::MAX.checked_shr(u32::from(self.prefix)).unwrap_or(0);
            Ipv4Addr::from(u32::from(self.address) | host_bits)
        })
    }

    /// Whether the lease never expires.
    pub fn infinite(&self) -> bool {
        self.lease_time == u32::MAX
    }
}

/// A lease remembered across boots: the lease and when it expires in wall-clock seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    pub lease: Lease,
    /// Unix time of expiry; `None` for an infinite lease.
    pub expires_unix: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseFileError {
    #[error("write lease {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("encode lease: {0}")]
    Encode(#[from] serde_json::Error),
}

/// The file remembering the lease of link `name` under `dir`.
pub fn lease_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("dhcp-{name}.lease"))
}

/// Reads a remembered lease; `None` when there is none, it cannot be read, or it has expired at
/// `now_unix` (a garbled file is not worth a boot delay: DISCOVER starts afresh).
pub fn load(path: &Path, now_unix: u64) -> Option<Lease> {
    let text = std::fs::read_to_string(path).ok()?;
    // from_slice, like every JSON reader in the binary: one copy of serde_json's parser.
    let saved: Saved = serde_json::from_slice(text.as_bytes())
        .map_err(|e| log::debug!("ignoring {}: {e}", path.display()))
        .ok()?;
    match saved.expires_unix {
        Some(t) if t <= now_unix => None,
        _ => Some(saved.lease),
    }
}

/// Remembers `lease`, bound at `now_unix`, atomically.
pub fn save(path: &Path, lease: &Lease, now_unix: u64) -> Result<(), LeaseFileError> {
    let saved = Saved {
        lease: lease.clone(),
        expires_unix: (!lease.infinite()).then(|| now_unix + u64::from(lease.lease_time)),
    };
    let text = serde_json::to_string_pretty(&saved)?;
    crate::net::resolv::write_atomic(path, text.as_bytes()).map_err(|source| {
        LeaseFileError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> Lease {
        Lease {
            address: Ipv4Addr::new(10, 0, 2, 15),
            prefix: 24,
            broadcast: None,
            server: Ipv4Addr::new(10, 0, 2, 2),
            routes: vec![],
            dns: vec![],
            search: vec![],
            hostname: None,
            mtu: None,
            lease_time: 3600,
            t1: 1800,
            t2: 3150,
        }
    }

    #[test]
    fn broadcast_derived_from_prefix() {
        let mut l = lease();
        assert_eq!(l.broadcast_address(), Ipv4Addr::new(10, 0, 2, 255));
        l.prefix = 32;
        assert_eq!(l.broadcast_address(), Ipv4Addr::new(10, 0, 2, 15));
        l.prefix = 0;
        assert_eq!(l.broadcast_address(), Ipv4Addr::BROADCAST);
        l.broadcast = Some(Ipv4Addr::new(10, 0, 2, 127));
        assert_eq!(l.broadcast_address(), Ipv4Addr::new(10, 0, 2, 127));
    }

    #[test]
    fn save_load_and_expiry() {
        let dir = std::env::temp_dir().join(format!("lifsea-lease-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = lease_path(&dir, "eth0");
        save(&p, &lease(), 1000).unwrap();
        assert_eq!(load(&p, 1000 + 3599), Some(lease()));
        assert_eq!(load(&p, 1000 + 3600), None);
        std::fs::write(&p, "{not json").unwrap();
        assert_eq!(load(&p, 0), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
