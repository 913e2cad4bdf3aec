//! Where things live on a node: the on-disk layout documented in the README, in one place so the
//! boot stages, the supervisor, the control API and initctl cannot disagree about it; and how a
//! vendor directory and its /etc override combine.

/// Vendor unit files, part of the read-only ostree commit.
pub const VENDOR_UNIT_DIR: &str = "/usr/lib/lifsea/units";
/// Admin unit files; a same-named file replaces the vendor one; enable/disable marker files.
pub const ADMIN_UNIT_DIR: &str = "/etc/lifsea/units";
/// Runtime state: control and notify sockets, boot-timeline.json.
pub const RUN_DIR: &str = "/run/lifsea";
/// Service output, rotated by size.
pub const LOG_DIR: &str = "/var/log/lifsea";
/// Persistent state the init keeps across boots (DHCP leases, ...).
pub const STATE_DIR: &str = "/var/lib/lifsea";
/// sysctl settings (`key = value`), vendor then admin.
pub const VENDOR_SYSCTL_DIR: &str = "/usr/lib/lifsea/sysctl.d";
pub const ADMIN_SYSCTL_DIR: &str = "/etc/lifsea/sysctl.d";
/// The cgroup2 mount on a machine.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The init's own mount table.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Node prerequisites (`lifsea-init node-prep`, docs/node.md): vendor file and its admin override.
pub const VENDOR_NODE_CONFIG: &str = "/usr/lib/lifsea/node.toml";
pub const ADMIN_NODE_CONFIG: &str = "/etc/lifsea/node.toml";
/// modules-load.d(5) directories, vendor then admin (a same-named admin file replaces the vendor one).
pub const MODULES_LOAD_DIRS: [&str; 2] = ["/usr/lib/modules-load.d", "/etc/modules-load.d"];

/// The `*.conf` files of configuration directories given vendor first (`/usr/lib/...`, then
/// `/etc/...`), in file-name order, a later directory's file replacing an earlier one of the same
/// name (the rule of sysctl.d, modprobe.d and modules-load.d); hidden files are skipped.
pub fn conf_files(dirs: &[std::path::PathBuf]) -> Vec<std::path::PathBuf> {
    let mut by_name = crate::collections::strmap::StrMap::new();
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") && !name.starts_with('.') {
                by_name.insert(name, e.path());
            }
        }
    }
    by_name.into_iter().map(|(_, p)| p).collect()
}
