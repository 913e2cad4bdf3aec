//! A unit turned into plain data for its child (`Plan`): the C strings, ids, capability numbers
//! and limits the child's steps pass to the kernel, prepared in the parent because after the
//! fork only async-signal-safe calls are allowed. Also the unit's owner for a delegated cgroup,
//! which reads the same passwd and group files.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::Path;

use super::{SpawnError, SpawnRequest, DEFAULT_PATH};
use crate::sys::process::CStringArray;
use crate::units::schema::Readiness;
use crate::units::users::{self, Credentials};
use crate::units::Unit;

/// Resolved identity of the service: what setgroups/setgid/setuid receive, and what HOME, USER
/// and LOGNAME are set to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) groups: Vec<u32>,
    pub(super) name: Option<String>,
    pub(super) home: Option<String>,
}

/// Everything the child needs, prepared before fork.
pub(super) struct Plan {
    pub(super) path: CString,
    pub(super) argv: CStringArray,
    pub(super) envp: CStringArray,
    pub(super) workdir: CString,
    pub(super) oom_path: CString,
    pub(super) oom_value: Option<Vec<u8>>,
    /// (resource number, soft, hard)
    pub(super) limits: Vec<(i32, u64, u64)>,
    pub(super) identity: Option<Identity>,
    pub(super) drop_bounding: Vec<u8>,
    pub(super) ambient: Vec<u8>,
    pub(super) ambient_mask: u64,
    pub(super) no_new_privs: bool,
    pub(super) ready_target: Option<RawFd>,
    /// The nice value to put back in the child (`shield::inherited`).
    pub(super) nice: Option<i32>,
}

pub(super) fn cstring(unit: &str, what: &str, s: &str) -> Result<CString, SpawnError> {
    CString::new(s).map_err(|_| SpawnError::Prepare {
        unit: unit.to_string(),
        message: format!("{what} contains a NUL byte"),
    })
}

pub(super) fn prepare(req: &SpawnRequest<'_>) -> Result<Plan, SpawnError> {
    let unit = req.unit;
    let name = unit.name.as_str();
    let prep = |message: String| SpawnError::Prepare {
        unit: name.to_string(),
        message,
    };
    let exec0 = unit
        .exec
        .first()
        .ok_or_else(|| prep("exec is empty".to_string()))?;
    let argv = unit
        .exec
        .iter()
        .map(|a| cstring(name, "exec", a))
        .collect::<Result<Vec<_>, _>>()?;

    let privileged = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_RESOURCE,
    )
    .unwrap_or(true);
    let identity = resolve_identity(req).map_err(prep)?;
    let env = environment(unit, identity.as_ref(), req.notify_socket);
    let envp = env
        .iter()
        .map(|(k, v)| cstring(name, "env", &format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;

    let workdir = match &unit.working_dir {
        Some(d) => cstring(name, "working-dir", &d.to_string_lossy())?,
        None => cstring(name, "working-dir", "/")?,
    };

    let ready_target = match unit.ready {
        Readiness::Fd(n) if n < 3 => {
            return Err(prep(format!("readiness fd {n} would replace stdio")))
        }
        Readiness::Fd(n) => Some(n),
        _ => None,
    };

    let (drop_bounding, ambient, ambient_mask) = match &unit.capabilities {
        None => (Vec::new(), Vec::new(), 0),
        Some(spec) => {
            let drop = match &spec.bounding {
                None => Vec::new(),
                Some(keep) => {
                    let keep_mask = keep.iter().fold(0u64, |m, c| m | c.bitmask());
                    (0..=last_cap())
                        .filter(|i| keep_mask & (1u64 << i) == 0)
                        .collect()
                }
            };
            let ambient: Vec<u8> = spec.ambient.iter().map(|c| c.index()).collect();
            let mask = spec.ambient.iter().fold(0u64, |m, c| m | c.bitmask());
            (drop, ambient, mask)
        }
    };

    Ok(Plan {
        path: cstring(name, "exec", exec0)?,
        argv: CStringArray::new(argv),
        envp: CStringArray::new(envp),
        workdir,
        oom_path: cstring(name, "path", "/proc/self/oom_score_adj")?,
        oom_value: grantable_oom(unit, privileged).map(|v| v.to_string().into_bytes()),
        limits: grantable_limits(unit, privileged),
        identity,
        drop_bounding,
        ambient,
        ambient_mask,
        no_new_privs: unit.no_new_privileges,
        ready_target,
        nice: crate::supervisor::shield::inherited().nice,
    })
}

/// The oom_score_adj the service may get. Without CAP_SYS_RESOURCE (the init inside a container
/// that withholds it) the kernel refuses to go below the init's own floor; rather than failing
/// every unit that asks for that protection, the unit keeps the init's value and a warning says so.
/// As PID 1 of a machine the init holds every capability and nothing changes.
pub(super) fn grantable_oom(unit: &Unit, privileged: bool) -> Option<i32> {
    // Without the key the unit gets what the init itself was given, not the init's own -1000.
    let Some(want) = unit.oom_score_adjust else {
        return crate::supervisor::shield::inherited().oom_score_adj;
    };
    if privileged {
        return Some(want);
    }
    let own = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .unwrap_or(0);
    if want >= own {
        return Some(want);
    }
    log::warn!(
        "unit {}: oom-score-adjust {want} not applied: the init lacks CAP_SYS_RESOURCE (keeping {own})",
        unit.name
    );
    None
}

/// The rlimits the service may get: without CAP_SYS_RESOURCE a hard limit cannot be raised, so
/// each is capped at the init's own hard limit (with a warning) instead of failing the unit.
pub(super) fn grantable_limits(unit: &Unit, privileged: bool) -> Vec<(i32, u64, u64)> {
    let nofile = nix::sys::resource::Resource::RLIMIT_NOFILE;
    // The init raised its own descriptor limit (supervisor::shield); a unit that does not set
    // one gets what the init was started with.
    let reset = crate::supervisor::shield::inherited()
        .nofile
        .filter(|_| !unit.limits.iter().any(|l| l.resource == nofile))
        .map(|(soft, hard)| (nofile as i32, soft, hard));
    unit.limits
        .iter()
        .map(|l| {
            let (mut soft, mut hard) = (l.soft, l.hard);
            if !privileged {
                if let Ok((_, own_hard)) = nix::sys::resource::getrlimit(l.resource) {
                    if hard > own_hard {
                        log::warn!(
                            "unit {}: limit {:?} capped at {own_hard}: the init lacks CAP_SYS_RESOURCE",
                            unit.name,
                            l.resource
                        );
                        hard = own_hard;
                        soft = soft.min(hard);
                    }
                }
            }
            (l.resource as i32, soft, hard)
        })
        .chain(reset)
        .collect()
}

/// Highest capability number the running kernel knows; the bounding set is dropped up to it.
pub(super) fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .filter(|&n| n < 64)
        .unwrap_or_else(|| caps::all().iter().map(|c| c.index()).max().unwrap_or(40))
}

/// The service's environment: a fixed PATH, the identity variables, NOTIFY_SOCKET, then the
/// unit's own variables, which replace any of those of the same name.
pub(super) fn environment(
    unit: &Unit,
    identity: Option<&Identity>,
    notify_socket: Option<&Path>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![("PATH".into(), DEFAULT_PATH.into())];
    if let Some(id) = identity {
        if let Some(home) = &id.home {
            env.push(("HOME".into(), home.clone()));
        }
        if let Some(name) = &id.name {
            env.push(("USER".into(), name.clone()));
            env.push(("LOGNAME".into(), name.clone()));
        }
    }
    if let Some(sock) = notify_socket {
        env.push(("NOTIFY_SOCKET".into(), sock.to_string_lossy().into_owned()));
    }
    for (k, v) in &unit.env {
        env.retain(|(old, _)| old != k);
        env.push((k.clone(), v.clone()));
    }
    env
}
/// Looks up the unit's user and group in `etc_dir`'s passwd and group files. The primary gid
/// joins the supplementary list, as `initgroups` would do for a login.
pub(super) fn resolve_identity(req: &SpawnRequest<'_>) -> Result<Option<Identity>, String> {
    let unit = req.unit;
    if unit.user.is_none() && unit.group.is_none() {
        return Ok(None);
    }
    let creds = users::resolve_in(req.etc_dir, unit.user.as_deref(), unit.group.as_deref())
        .map_err(|e| e.to_string())?;
    Ok(Some(identity_from(creds)))
}

pub(super) fn identity_from(creds: Credentials) -> Identity {
    let mut groups = vec![creds.gid];
    groups.extend(creds.supplementary.iter().filter(|&&g| g != creds.gid));
    Identity {
        uid: creds.uid,
        gid: creds.gid,
        groups,
        name: creds.name,
        home: creds.home.map(|h| h.to_string_lossy().into_owned()),
    }
}

/// The (uid, gid) a delegated cgroup is handed to: the unit's resolved user and group, or
/// `None` when the unit runs as root anyway.
pub fn unit_owner(unit: &Unit, etc_dir: &Path) -> Result<Option<(u32, u32)>, SpawnError> {
    if unit.user.is_none() && unit.group.is_none() {
        return Ok(None);
    }
    let creds =
        users::resolve_in(etc_dir, unit.user.as_deref(), unit.group.as_deref()).map_err(|e| {
            SpawnError::Prepare {
                unit: unit.name.clone(),
                message: e.to_string(),
            }
        })?;
    Ok(Some((creds.uid, creds.gid)))
}

#[cfg(test)]
#[path = "../../../tests/common/fixtures.rs"]
mod fixtures;

#[cfg(test)]
mod tests {
    use super::fixtures::test_unit;
    use super::*;
    use std::path::Path;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                          svc:x:1000:1000:Service:/var/lib/svc:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nsvc:x:1000:\ndisk:x:6:svc,other\nkvm:x:36:other\n";

    fn identity(user: Option<&str>, group: Option<&str>) -> Identity {
        identity_from(users::resolve(user, group, PASSWD, GROUP).unwrap())
    }

    #[test]
    fn environment_is_clean_and_unit_wins() {
        let mut unit = test_unit("t", &["/bin/true"]);
        unit.env = vec![("PATH".into(), "/opt/bin".into()), ("A".into(), "1".into())];
        let id = identity(Some("svc"), None);
        let env = environment(&unit, Some(&id), Some(Path::new("/run/n.sock")));
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some("/opt/bin"));
        assert_eq!(env.iter().filter(|(n, _)| n == "PATH").count(), 1);
        assert_eq!(get("HOME"), Some("/var/lib/svc"));
        assert_eq!(get("USER"), Some("svc"));
        assert_eq!(get("LOGNAME"), Some("svc"));
        assert_eq!(get("NOTIFY_SOCKET"), Some("/run/n.sock"));
        assert_eq!(get("A"), Some("1"));
        let bare = environment(&unit, None, None);
        assert!(bare
            .iter()
            .all(|(k, _)| k != "HOME" && k != "NOTIFY_SOCKET"));
    }

    #[test]
    fn primary_group_leads_the_group_list() {
        let id = identity(Some("svc"), None);
        assert_eq!((id.uid, id.gid, id.groups), (1000, 1000, vec![1000, 6]));
        let id = identity(Some("svc"), Some("kvm"));
        assert_eq!((id.gid, id.groups), (36, vec![36, 6]));
        let id = identity(None, Some("disk"));
        assert_eq!((id.uid, id.gid, id.groups), (0, 6, vec![6]));
    }

    #[test]
    fn without_cap_sys_resource_protections_are_kept_within_reach() {
        let mut unit = test_unit("t", &["/bin/true"]);
        unit.oom_score_adjust = Some(-999);
        unit.limits = vec![crate::units::schema::Limit {
            resource: nix::sys::resource::Resource::RLIMIT_NOFILE,
            soft: u64::MAX,
            hard: u64::MAX,
        }];
        assert_eq!(grantable_oom(&unit, true), Some(-999));
        let own: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            own > -999,
            "precondition: this test process is not already at -999"
        );
        assert_eq!(grantable_oom(&unit, false), None);
        unit.oom_score_adjust = Some(own + 1);
        assert_eq!(grantable_oom(&unit, false), Some(own + 1));
        let (_, own_hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
        let nofile = nix::sys::resource::Resource::RLIMIT_NOFILE as i32;
        assert_eq!(
            grantable_limits(&unit, true),
            vec![(nofile, u64::MAX, u64::MAX)]
        );
        if own_hard != u64::MAX {
            assert_eq!(
                grantable_limits(&unit, false),
                vec![(nofile, own_hard, own_hard)]
            );
        }
    }
}
