//! The kernel command line (/proc/cmdline) → `BootParams`: which root to mount, which ostree
//! deployment to assemble, and the `lifsea.*` switches. Pure: takes the text, returns data and the
//! warnings to log, so every option is unit-tested without a machine.
//!
//! | option | meaning |
//! | --- | --- |
//! | `root=` | `/dev/...`, `LABEL=`, `UUID=`, `PARTUUID=`, `PARTLABEL=`, `/dev/disk/by-*/...` (stage 0 resolves them itself) |
//! | `rootfstype=`, `rootflags=` | filesystem type (default: try ext4, then the kernel's others) and mount data |
//! | `ro` / `rw` | how a plain (non-ostree) root is mounted; the last one wins |
//! | `ostree=` | `/ostree/boot.N/OS/BOOTCSUM/SERIAL`: the deployment to assemble |
//! | `init=` | what stage 0 executes in the new root (default `/sbin/init`) |
//! | `modprobe.blacklist=a,b` | modules coldplug never loads |
//! | `lifsea.debug` | debug logging (`=0/1/yes/no/true/false/on/off`) |
//! | `lifsea.break=shell` | on a fatal boot error exec `/bin/sh` if the image has one (else reboot after 10 s) |
//! | `lifsea.rootwait=SECS` | how long stage 0 waits for the root device (default 30) |
//! | `lifsea.sysroot=rw` | leave `/sysroot` writable (default read-only, ostree's `sysroot.readonly`) |
//! | `lifsea.coldplug=all` | also load modules for the CPU's modalias (kvm, cpufreq, crypto) |
//!
//! Unknown `lifsea.*` words and bad values become warnings; other unknown words are the kernel's or
//! another program's business and are ignored.

use std::time::Duration;

pub use crate::devices::blockdev::RootSpec;

/// How long stage 0 waits for the root device when `lifsea.rootwait=` does not say.
pub const DEFAULT_ROOTWAIT: Duration = Duration::from_secs(30);

/// What the kernel command line asks of the init.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootParams {
    /// `ostree=/ostree/boot.N/OS/BOOTCSUM/SERIAL`
    pub ostree: Option<String>,
    pub root: Option<RootSpec>,
    pub rootflags: Option<String>,
    pub rootfstype: Option<String>,
    /// An explicit `rw` (last of `ro`/`rw` wins): how a plain (non-ostree) root is mounted. An
    /// ostree root's filesystem is always writable (its /etc and /var live there); whether the
    /// `/sysroot` mount is read-only is `sysroot_rw`'s business, as ostree keeps the two apart.
    pub rw: bool,
    /// `lifsea.sysroot=rw`: leave `/sysroot` writable. By default it is read-only at the mount
    /// level, like ostree's `sysroot.readonly=true` (images should set that in the repo config so
    /// `ostree admin deploy` on the running system remounts it writable for itself).
    pub sysroot_rw: bool,
    /// `init=`: what stage 0 executes in the new root.
    pub init: Option<String>,
    /// `lifsea.debug`: debug-level logging.
    pub debug: bool,
    /// `lifsea.break=shell` (or bare `lifsea.break`): on a fatal boot error, exec a shell if the
    /// image has one instead of rebooting.
    pub break_to_shell: bool,
    /// `lifsea.rootwait=SECS`: how long stage 0 waits for the root device.
    pub rootwait: Duration,
    /// `modprobe.blacklist=a,b` (the modprobe convention): modules coldplug never loads.
    pub module_blacklist: Vec<String>,
    /// `lifsea.coldplug=all`: also load modules for `cpu:` modaliases (see `devices::coldplug`).
    pub coldplug_all: bool,
    /// Unknown `lifsea.*` options and bad values, to be logged.
    pub warnings: Vec<String>,
}

impl Default for BootParams {
    fn default() -> Self {
        BootParams {
            ostree: None,
            root: None,
            rootflags: None,
            rootfstype: None,
            rw: false,
            sysroot_rw: false,
            init: None,
            debug: false,
            break_to_shell: false,
            rootwait: DEFAULT_ROOTWAIT,
            module_blacklist: Vec::new(),
            coldplug_all: false,
            warnings: Vec::new(),
        }
    }
}

fn parse_bool(v: Option<&str>) -> Option<bool> {
    match v {
        None | Some("1" | "yes" | "true" | "on") => Some(true),
        Some("0" | "no" | "false" | "off") => Some(false),
        _ => None,
    }
}

/// Parses /proc/cmdline text.
pub fn parse(text: &str) -> BootParams {
    let mut p = BootParams::default();
    for word in crate::procfs::cmdline_words(text) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word.as_str(), None),
        };
        let non_empty = value.filter(|v| !v.is_empty()).map(str::to_string);
        match key {
            "ostree" => p.ostree = non_empty,
            "root" => match value.and_then(RootSpec::parse) {
                Some(r) => p.root = Some(r),
                None => p.warnings.push(format!(
                    "root={}: not a path, LABEL=, UUID=, PARTUUID= or PARTLABEL=",
                    value.unwrap_or("")
                )),
            },
            "rootflags" => p.rootflags = non_empty,
            "rootfstype" => p.rootfstype = non_empty,
            "ro" if value.is_none() => p.rw = false,
            "rw" if value.is_none() => p.rw = true,
            "init" => p.init = non_empty,
            "modprobe.blacklist" => {
                p.module_blacklist.extend(
                    value
                        .unwrap_or("")
                        .split(',')
                        .filter(|m| !m.is_empty())
                        .map(|m| m.replace('-', "_")),
                );
            }
            "lifsea.debug" => match parse_bool(value) {
                Some(b) => p.debug = b,
                None => p.warnings.push(format!("{word}: expected a boolean")),
            },
            "lifsea.break" => match value {
                None | Some("shell") => p.break_to_shell = true,
                Some("0" | "no" | "off") => p.break_to_shell = false,
                Some(_) => p
                    .warnings
                    .push(format!("{word}: expected lifsea.break=shell")),
            },
            "lifsea.sysroot" => match value {
                Some("rw") => p.sysroot_rw = true,
                Some("ro") => p.sysroot_rw = false,
                _ => p
                    .warnings
                    .push(format!("{word}: expected lifsea.sysroot=ro or =rw")),
            },
            "lifsea.coldplug" => match value {
                Some("all") => p.coldplug_all = true,
                Some("default") => p.coldplug_all = false,
                _ => p
                    .warnings
                    .push(format!("{word}: expected lifsea.coldplug=all or =default")),
            },
            "lifsea.rootwait" => match value.and_then(|v| v.parse::<u64>().ok()) {
                Some(secs) => p.rootwait = Duration::from_secs(secs),
                None => p
                    .warnings
                    .push(format!("{word}: expected a number of seconds")),
            },
            // Read by the network subsystem (`net::ipconfig::from_cmdline`), like `ip=`.
            "lifsea.net.timeout" => {}
            k if k.starts_with("lifsea.") => p.warnings.push(format!("{word}: unknown option")),
            _ => {}
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_with_quotes_and_double_dash() {
        assert_eq!(
            crate::procfs::cmdline_words("a=1  b=\"x y\" \"c=d e\" -- single"),
            vec!["a=1", "b=x y", "c=d e"]
        );
        assert_eq!(crate::procfs::cmdline_words("  \n"), Vec::<String>::new());
        assert_eq!(crate::procfs::cmdline_words("x=\"\""), vec!["x="]);
    }

    #[test]
    fn parses_every_option() {
        let p = parse(
            "BOOT_IMAGE=/vmlinuz root=LABEL=root rootflags=\"data=ordered,commit=5\" rootfstype=ext4 rw \
             ostree=/ostree/boot.1/os/abc/0 init=/sbin/init lifsea.debug lifsea.break=shell \
             lifsea.rootwait=5 modprobe.blacklist=bochs,pcspkr lifsea.coldplug=all lifsea.sysroot=rw quiet\n",
        );
        assert_eq!(p.root, Some(RootSpec::Label("root".into())));
        assert_eq!(p.rootflags.as_deref(), Some("data=ordered,commit=5"));
        assert_eq!(p.rootfstype.as_deref(), Some("ext4"));
        assert!(p.rw);
        assert_eq!(p.ostree.as_deref(), Some("/ostree/boot.1/os/abc/0"));
        assert_eq!(p.init.as_deref(), Some("/sbin/init"));
        assert!(p.debug);
        assert!(p.break_to_shell);
        assert_eq!(p.rootwait, Duration::from_secs(5));
        assert_eq!(p.module_blacklist, vec!["bochs", "pcspkr"]);
        assert!(p.coldplug_all);
        assert!(p.sysroot_rw);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn defaults_and_last_of_ro_rw_wins() {
        let p = parse("");
        assert_eq!(p, BootParams::default());
        assert_eq!(p.rootwait, DEFAULT_ROOTWAIT);
        assert!(!parse("rw ro").rw);
        assert!(parse("ro rw").rw);
        assert!(!parse("lifsea.debug=0").debug);
    }

    #[test]
    fn root_forms() {
        assert_eq!(
            parse("root=/dev/vda1").root,
            Some(RootSpec::Path("/dev/vda1".into()))
        );
        assert_eq!(
            parse("root=UUID=ABCD-12").root,
            Some(RootSpec::Uuid("abcd-12".into()))
        );
        assert_eq!(
            parse("root=PARTUUID=0FC63DAF-8483").root,
            Some(RootSpec::PartUuid("0fc63daf-8483".into()))
        );
        assert_eq!(
            parse("root=PARTLABEL=sys").root,
            Some(RootSpec::PartLabel("sys".into()))
        );
        assert_eq!(RootSpec::Label("a b".into()).to_string(), "LABEL=a b");
        assert_eq!(
            parse("root=/dev/disk/by-label/root").root,
            Some(RootSpec::Label("root".into()))
        );
        assert_eq!(
            parse("root=/dev/disk/by-partuuid/ABC-1").root,
            Some(RootSpec::PartUuid("abc-1".into()))
        );
        assert_eq!(
            parse("root=/dev/disk/by-uuid/X").root,
            Some(RootSpec::Uuid("x".into()))
        );
        assert_eq!(
            parse("root=/dev/disk/by-partlabel/sys").root,
            Some(RootSpec::PartLabel("sys".into()))
        );
        assert_eq!(
            parse("root=\"LABEL=my root\"").root,
            Some(RootSpec::Label("my root".into()))
        );
    }

    #[test]
    fn bad_values_and_unknown_options_warn() {
        let p = parse("root=vda1 root=LABEL= lifsea.rootwait=soon lifsea.debug=maybe lifsea.break=gdb lifsea.frobnicate=1 lifsea.coldplug");
        assert_eq!(p.root, None);
        assert_eq!(p.rootwait, DEFAULT_ROOTWAIT);
        assert!(!p.debug);
        assert!(!p.break_to_shell);
        assert_eq!(p.warnings.len(), 7, "{:?}", p.warnings);
        assert!(p.warnings.iter().any(|w| w.contains("lifsea.frobnicate")));
        assert!(p
            .warnings
            .iter()
            .any(|w| w.contains("lifsea.rootwait=soon")));
    }
}
