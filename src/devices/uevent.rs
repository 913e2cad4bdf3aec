//! Parsing kernel uevents as they arrive on a NETLINK_KOBJECT_UEVENT socket:
//! `ACTION@DEVPATH\0KEY=VALUE\0KEY=VALUE\0...`.
//!
//! The bytes are untrusted (another process in the same network namespace may send to the uevent
//! multicast group), so the parser bounds the size, insists on a consistent header and environment,
//! and returns an error for anything odd instead of guessing. Messages that udevd re-broadcasts
//! (they start with `libudev\0` and carry a binary header) are not ours to read: they are reported
//! as `UeventError::Libudev` so the caller can drop them quietly.

use crate::collections::strmap::StrMap;

/// The largest message accepted. The kernel's own limit is `UEVENT_BUFFER_SIZE` (2048 bytes of
/// environment) plus the header, so anything much bigger did not come from the kernel.
pub const MAX_UEVENT_LEN: usize = 8192;

/// Keys in one message, at most: the kernel allows `UEVENT_NUM_ENVP` (64).
const MAX_KEYS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UeventError {
    #[error("empty uevent")]
    Empty,
    #[error("uevent of {0} bytes exceeds the {MAX_UEVENT_LEN}-byte limit")]
    TooLarge(usize),
    #[error("libudev message (not from the kernel)")]
    Libudev,
    #[error("uevent header {0:?} is not ACTION@DEVPATH")]
    BadHeader(String),
    #[error("unknown uevent action {0:?}")]
    BadAction(String),
    #[error("uevent is not valid UTF-8")]
    NotUtf8,
    #[error("uevent field {0:?} is not KEY=VALUE")]
    BadField(String),
    #[error("uevent has more than {MAX_KEYS} fields")]
    TooManyFields,
    #[error("uevent field {key} is {found:?} but the header says {header:?}")]
    Mismatch {
        key: &'static str,
        header: String,
        found: String,
    },
    #[error("uevent lacks the {0} field")]
    Missing(&'static str),
    #[error("uevent is truncated (no terminating NUL)")]
    Truncated,
}

/// What happened to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Add,
    Remove,
    Change,
    Move,
    Online,
    Offline,
    Bind,
    Unbind,
}

impl Action {
    pub fn parse(s: &str) -> Option<Action> {
        Some(match s {
            "add" => Action::Add,
            "remove" => Action::Remove,
            "change" => Action::Change,
            "move" => Action::Move,
            "online" => Action::Online,
            "offline" => Action::Offline,
            "bind" => Action::Bind,
            "unbind" => Action::Unbind,
            _ => return None,
        })
    }
}

/// One parsed kernel uevent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    pub action: Action,
    /// Path under /sys, starting with `/devices/` (or `/module/`, `/bus/`...).
    pub devpath: String,
    pub env: StrMap<String>,
}

impl Uevent {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.env.get(key).map(String::as_str)
    }
    pub fn subsystem(&self) -> Option<&str> {
        self.get("SUBSYSTEM")
    }
    pub fn modalias(&self) -> Option<&str> {
        self.get("MODALIAS")
    }
    /// The node name under /dev (`vda1`, `input/event3`), when the device has one.
    pub fn devname(&self) -> Option<&str> {
        self.get("DEVNAME")
    }
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}

/// Parses one datagram from the uevent socket.
pub fn parse(buf: &[u8]) -> Result<Uevent, UeventError> {
    if buf.is_empty() {
        return Err(UeventError::Empty);
    }
    if buf.len() > MAX_UEVENT_LEN {
        return Err(UeventError::TooLarge(buf.len()));
    }
    if buf.starts_with(b"libudev\0") {
        return Err(UeventError::Libudev);
    }
    // Every field, the last one included, ends with a NUL; a datagram cut short does not.
    let body = buf.strip_suffix(b"\0").ok_or(UeventError::Truncated)?;
    let text = std::str::from_utf8(body).map_err(|_| UeventError::NotUtf8)?;
    let mut fields = text.split('\0');
    let header = fields.next().unwrap_or("");
    let (action_s, devpath) = header
        .split_once('@')
        .filter(|(a, p)| !a.is_empty() && p.starts_with('/'))
        .ok_or_else(|| UeventError::BadHeader(header.chars().take(80).collect()))?;
    let action = Action::parse(action_s).ok_or_else(|| UeventError::BadAction(action_s.into()))?;
    if devpath.contains("/../") || devpath.ends_with("/..") {
        return Err(UeventError::BadHeader(header.chars().take(80).collect()));
    }
    let mut env = StrMap::new();
    for f in fields {
        let (k, v) = f
            .split_once('=')
            .filter(|(k, _)| valid_key(k))
            .ok_or_else(|| UeventError::BadField(f.chars().take(80).collect()))?;
        if env.len() >= MAX_KEYS {
            return Err(UeventError::TooManyFields);
        }
        env.insert(k.to_string(), v.to_string());
    }
    for (key, want) in [("ACTION", action_s), ("DEVPATH", devpath)] {
        match env.get(key) {
            None => return Err(UeventError::Missing(key)),
            Some(v) if v != want => {
                return Err(UeventError::Mismatch {
                    key,
                    header: want.to_string(),
                    found: v.clone(),
                })
            }
            Some(_) => {}
        }
    }
    if let Some(name) = env.get("DEVNAME") {
        // The node name is joined to a /dev root later: it must stay below it.
        if name.is_empty()
            || name.starts_with('/')
            || name.split('/').any(|c| c == ".." || c.is_empty())
        {
            return Err(UeventError::BadField(format!("DEVNAME={name}")));
        }
    }
    Ok(Uevent {
        action,
        devpath: devpath.to_string(),
        env,
    })
}

/// Builds a message in the kernel's format; tests and the fake sources use it.
pub fn encode(action: &str, devpath: &str, env: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("{action}@{devpath}\0ACTION={action}\0DEVPATH={devpath}\0").into_bytes();
    for (k, v) in env {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIRTIO_ADD: &[u8] = b"add@/devices/pci0000:00/0000:00:04.0/virtio2\0ACTION=add\0DEVPATH=/devices/pci0000:00/0000:00:04.0/virtio2\0SUBSYSTEM=virtio\0MODALIAS=virtio:d00000002v00001AF4\0SEQNUM=1234\0";

    #[test]
    fn parses_a_kernel_message() {
        let u = parse(VIRTIO_ADD).unwrap();
        assert_eq!(u.action, Action::Add);
        assert_eq!(u.devpath, "/devices/pci0000:00/0000:00:04.0/virtio2");
        assert_eq!(u.subsystem(), Some("virtio"));
        assert_eq!(u.modalias(), Some("virtio:d00000002v00001AF4"));
        assert_eq!(u.get("SEQNUM"), Some("1234"));
        assert_eq!(u.devname(), None);
        let b = encode(
            "remove",
            "/devices/virtual/block/vdb",
            &[("SUBSYSTEM", "block"), ("DEVNAME", "vdb"), ("EMPTY", "")],
        );
        let u = parse(&b).unwrap();
        assert_eq!(u.action, Action::Remove);
        assert_eq!(u.devname(), Some("vdb"));
        assert_eq!(u.get("EMPTY"), Some(""));
    }

    #[test]
    fn rejects_malformed_truncated_and_oversized_input() {
        assert_eq!(parse(b""), Err(UeventError::Empty));
        assert_eq!(
            parse(b"libudev\0\xfe\xed\xca\xfe"),
            Err(UeventError::Libudev)
        );
        // Cut in the middle of the last field.
        let cut = &VIRTIO_ADD[..VIRTIO_ADD.len() - 5];
        assert_eq!(parse(cut), Err(UeventError::Truncated));
        let mut big = VIRTIO_ADD.to_vec();
        big.extend(std::iter::repeat(b'A').take(MAX_UEVENT_LEN));
        assert_eq!(parse(&big), Err(UeventError::TooLarge(big.len())));
        assert!(matches!(
            parse(b"add/devices/x\0"),
            Err(UeventError::BadHeader(_))
        ));
        assert!(matches!(
            parse(b"add@devices\0"),
            Err(UeventError::BadHeader(_))
        ));
        assert_eq!(
            parse(b"explode@/devices/x\0ACTION=explode\0DEVPATH=/devices/x\0"),
            Err(UeventError::BadAction("explode".into()))
        );
        assert_eq!(
            parse(b"add@/devices/x\0\xff\xfe\0"),
            Err(UeventError::NotUtf8)
        );
        assert_eq!(
            parse(b"add@/devices/x\0ACTION=add\0novalue\0"),
            Err(UeventError::BadField("novalue".into()))
        );
        assert_eq!(
            parse(b"add@/devices/x\0ACTION=add\0lower=1\0DEVPATH=/devices/x\0"),
            Err(UeventError::BadField("lower=1".into()))
        );
        assert_eq!(
            parse(b"add@/devices/x\0DEVPATH=/devices/x\0"),
            Err(UeventError::Missing("ACTION"))
        );
        assert_eq!(
            parse(b"add@/devices/x\0ACTION=remove\0DEVPATH=/devices/x\0"),
            Err(UeventError::Mismatch {
                key: "ACTION",
                header: "add".into(),
                found: "remove".into()
            })
        );
        assert!(matches!(
            parse(&encode(
                "add",
                "/devices/x",
                &[("DEVNAME", "../etc/passwd")]
            )),
            Err(UeventError::BadField(_))
        ));
        assert!(matches!(
            parse(&encode("add", "/devices/x", &[("DEVNAME", "/etc")])),
            Err(UeventError::BadField(_))
        ));
        assert!(matches!(
            parse(b"add@/devices/../../etc\0ACTION=add\0DEVPATH=/devices/../../etc\0"),
            Err(UeventError::BadHeader(_))
        ));
        let many: Vec<(String, String)> = (0..70).map(|i| (format!("K{i}"), "v".into())).collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            parse(&encode("add", "/devices/x", &refs)),
            Err(UeventError::TooManyFields)
        );
    }

    #[test]
    fn never_panics_on_any_prefix_or_byte_flip() {
        for n in 0..=VIRTIO_ADD.len() {
            let _ = parse(&VIRTIO_ADD[..n]);
        }
        for i in 0..VIRTIO_ADD.len() {
            for b in [0u8, b'@', b'=', 0xff] {
                let mut m = VIRTIO_ADD.to_vec();
                m[i] = b;
                let _ = parse(&m);
            }
        }
    }
}
