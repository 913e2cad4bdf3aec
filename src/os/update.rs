//! `initctl os upgrade REF` and `initctl os rollback`: the ostree CLI run as a child of the init
//! (libostree never enters PID 1), reaped by the event loop, its output in
//! `/run/lifsea/os-update.log`. After a successful upgrade the new default entry gets its tries
//! (`NAME+N.conf`) so the bootloader counts them; a rollback redeploys the previous deployment's
//! commit as the new default (ostree 2022.7 has no `set-default`), which ostree three-way merges
//! /etc into like any deploy, and which gets no counter: it ran healthy before.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::bls::Entry;
use super::bootcount::{sort_entries, with_tries};

/// The job running now, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub pid: i32,
    pub action: String,
    pub target: String,
    pub reboot: bool,
}

/// The deployment path (`ostree/deploy/OS/deploy/CSUM.SERIAL`) an entry boots, when it resolves.
pub fn deployment_of(sysroot: &Path, e: &Entry) -> Option<crate::boot::ostree::Deployment> {
    crate::boot::ostree::resolve_deployment(sysroot, e.option("ostree")?).ok()
}

/// The rollback target: the first entry in the bootloader's order that is not ours and not bad.
pub fn rollback_target<'a>(entries: &'a [Entry], own_id: Option<&str>) -> Option<&'a Entry> {
    entries
        .iter()
        .find(|e| Some(e.id.as_str()) != own_id && !e.bad())
}

/// `ostree admin deploy` arguments for a ref or commit into a stateroot, keeping every
/// deployment (so the previous one stays the fallback). No prune: with `--retain` nothing becomes
/// unreachable, and walking the whole repo is the slow part of a deploy on a small node (minutes
/// under QEMU TCG); `ostree admin cleanup` reclaims space when the admin chooses.
pub fn deploy_args(stateroot: &str, refspec: &str) -> Vec<String> {
    vec![
        "admin".into(),
        "deploy".into(),
        "--retain".into(),
        "--no-prune".into(),
        format!("--os={stateroot}"),
        refspec.into(),
    ]
}

/// After a successful upgrade: the rename giving the new default entry its tries, `(from, to)`.
/// The new default is the first entry in the bootloader's order; it must be uncounted (ostree
/// writes fresh names) and not the deployment we booted.
pub fn tries_rename(
    entries: &[Entry],
    booted_ostree: Option<&str>,
    tries: u32,
) -> Option<(String, String)> {
    let mut sorted = entries.to_vec();
    sort_entries(&mut sorted);
    let first = sorted.first()?;
    if first.counter.is_some() {
        return None;
    }
    if booted_ostree.is_some() && first.option("ostree") == booted_ostree {
        return None;
    }
    Some((first.file_name.clone(), with_tries(first, tries)))
}

/// Starts `ostree ARGS` with output to `log`; returns its pid (the event loop reaps it).
pub fn spawn_ostree(args: &[String], log: &Path) -> std::io::Result<i32> {
    let out = std::fs::File::create(log)?;
    let err = out.try_clone()?;
    let child = Command::new(ostree_binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()?;
    Ok(child.id() as i32)
}

fn ostree_binary() -> PathBuf {
    for p in ["/usr/bin/ostree", "/bin/ostree"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("ostree")
}

/// The log's last lines, for the status and the console when a job fails.
pub fn log_tail(log: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::bls::parse_entry;

    fn entry(file: &str, ostree: &str) -> Entry {
        parse_entry(file, &format!("options ostree={ostree}\nlinux /k\n")).unwrap()
    }

    #[test]
    fn new_default_gets_its_tries() {
        let e = vec![
            entry("ostree-1-d.conf", "/ostree/boot.0/d/aa/0"),
            entry("ostree-2-d.conf", "/ostree/boot.0/d/bb/0"),
        ];
        assert_eq!(
            tries_rename(&e, Some("/ostree/boot.1/d/aa/0"), 3),
            Some(("ostree-2-d.conf".into(), "ostree-2-d+3.conf".into()))
        );
        // The deploy changed nothing we booted into a new default: nothing to count.
        assert_eq!(tries_rename(&e, Some("/ostree/boot.0/d/bb/0"), 3), None);
        let counted = vec![entry("ostree-2-d+1-2.conf", "/x")];
        assert_eq!(tries_rename(&counted, None, 3), None);
        assert_eq!(tries_rename(&[], None, 3), None);
    }

    #[test]
    fn rollback_skips_own_and_bad() {
        let mut e = vec![
            entry("ostree-3-d+0-3.conf", "/c"),
            entry("ostree-2-d.conf", "/b"),
            entry("ostree-1-d.conf", "/a"),
        ];
        sort_entries(&mut e);
        assert_eq!(
            rollback_target(&e, Some("ostree-2-d")).map(|e| e.file_name.as_str()),
            Some("ostree-1-d.conf")
        );
        // Ours and a bad one: nothing to roll back to.
        let own_and_bad = [e[0].clone(), e[2].clone()];
        assert_eq!(own_and_bad[1].file_name, "ostree-3-d+0-3.conf");
        assert_eq!(rollback_target(&own_and_bad, Some("ostree-2-d")), None);
    }

    #[test]
    fn deploy_args_retain_the_fallback() {
        assert_eq!(
            deploy_args("debian", "lifsea/next"),
            [
                "admin",
                "deploy",
                "--retain",
                "--no-prune",
                "--os=debian",
                "lifsea/next"
            ]
        );
    }
}
