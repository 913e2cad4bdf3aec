//! Checks of units against an image root that is not the running system (`check --root DIR`):
//! does the program exist and is it executable, do `user` and `group` resolve in the image's
//! passwd/group files.
//!
//! An image builder runs `check` on the build host, where the image is just a directory: paths
//! (and absolute symlinks inside the image) must be resolved relative to that directory, never
//! against the host's `/`.

use crate::collections::strmap::StrMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::users::resolve_in;
use super::Unit;

/// Symlink hops followed before giving up, as the kernel's MAXSYMLINKS.
const MAX_HOPS: usize = 40;

/// Resolves `path` (absolute, as seen inside the image) to a host path below `root`, following
/// symlinks as the image would see them: absolute targets restart at `root`, `..` stops at it.
pub fn resolve_in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut todo: Vec<PathBuf> = path.components().rev().filter_map(name_of).collect();
    let mut done: Vec<PathBuf> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        if part.as_os_str() == ".." {
            done.pop();
            continue;
        }
        done.push(part);
        let host: PathBuf = root.join(done.iter().collect::<PathBuf>());
        let meta = std::fs::symlink_metadata(&host)?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > MAX_HOPS {
                return Err(io::Error::other("too many levels of symbolic links"));
            }
            let target = std::fs::read_link(&host)?;
            done.pop();
            if target.is_absolute() {
                done.clear();
            }
            todo.extend(target.components().rev().filter_map(name_of));
        }
    }
    Ok(root.join(done.iter().collect::<PathBuf>()))
}

/// Normal components and `..`; the root and `.` contribute nothing.
fn name_of(c: Component<'_>) -> Option<PathBuf> {
    match c {
        Component::Normal(n) => Some(PathBuf::from(n)),
        Component::ParentDir => Some(PathBuf::from("..")),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    }
}

/// The image's configuration directory: `etc`, or `usr/etc` in an ostree commit tree.
fn etc_dir(root: &Path) -> PathBuf {
    let etc = root.join("etc");
    if etc.join("passwd").exists() || !root.join("usr/etc").is_dir() {
        etc
    } else {
        root.join("usr/etc")
    }
}

/// Problems of each unit inside the image at `root`, as (unit, message), in unit order.
pub fn check_against_root(root: &Path, units: &StrMap<Unit>) -> Vec<(String, String)> {
    let etc = etc_dir(root);
    let mut problems = Vec::new();
    for (name, unit) in units {
        if let Some(program) = unit.exec.first() {
            let found = resolve_in_root(root, Path::new(program)).and_then(std::fs::metadata);
            let problem = match found {
                Err(e) => Some(format!(
                    "exec: program {program} not usable in the image: {e}"
                )),
                Ok(m) if !m.is_file() => Some(format!(
                    "exec: program {program} is not a regular file in the image"
                )),
                Ok(m) if m.permissions().mode() & 0o111 == 0 => Some(format!(
                    "exec: program {program} is not executable in the image"
                )),
                Ok(_) => None,
            };
            problems.extend(problem.map(|p| (name.clone(), p)));
        }
        if unit.user.is_some() || unit.group.is_some() {
            if let Err(e) = resolve_in(&etc, unit.user.as_deref(), unit.group.as_deref()) {
                problems.push((name.clone(), format!("user/group: {e}")));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::symlink;

    use super::*;
    use crate::units::parse::parse_unit;

    fn unit(name: &str, text: &str) -> (String, Unit) {
        (
            name.to_string(),
            parse_unit(name, Path::new("/t.toml"), text).unwrap(),
        )
    }

    #[test]
    fn resolves_symlinks_inside_the_root_and_checks_units() {
        let root = std::env::temp_dir().join(format!("lifsea-image-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::create_dir_all(root.join("usr/etc")).unwrap();
        fs::write(root.join("usr/bin/real"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(root.join("usr/bin/real"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(root.join("usr/bin/data"), "").unwrap();
        fs::set_permissions(root.join("usr/bin/data"), fs::Permissions::from_mode(0o644)).unwrap();
        // Absolute and relative links as an image has them; /bin -> usr/bin (merged /usr).
        symlink("usr/bin", root.join("bin")).unwrap();
        symlink("/usr/bin/real", root.join("usr/bin/abs")).unwrap();
        symlink("../../usr/bin/real", root.join("usr/bin/rel")).unwrap();
        symlink("/../../../usr/bin/real", root.join("usr/bin/escape")).unwrap();
        symlink("loop", root.join("usr/bin/loop")).unwrap();
        fs::write(root.join("usr/etc/passwd"), "svc:x:100:100::/:/bin/sh\n").unwrap();
        fs::write(root.join("usr/etc/group"), "svc:x:100:\n").unwrap();

        let real = root.join("usr/bin/real");
        for p in [
            "/bin/abs",
            "/usr/bin/rel",
            "/bin/escape",
            "/bin/../bin/./real",
        ] {
            assert_eq!(resolve_in_root(&root, Path::new(p)).unwrap(), real, "{p}");
        }
        assert_eq!(
            resolve_in_root(&root, Path::new("/bin/loop"))
                .unwrap_err()
                .to_string(),
            "too many levels of symbolic links"
        );

        let units: StrMap<Unit> = [
            unit("ok", "exec = [\"/bin/abs\"]\nuser = \"svc\"\n"),
            unit("absent", "exec = [\"/usr/bin/kubelet\"]\n"),
            unit("data", "exec = [\"/usr/bin/data\"]\ngroup = \"wheel\"\n"),
            unit("dir", "exec = [\"/usr/bin\"]\n"),
        ]
        .into_iter()
        .collect();
        let problems = check_against_root(&root, &units);
        let s = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            problems,
            vec![
                s("absent", "exec: program /usr/bin/kubelet not usable in the image: No such file or directory (os error 2)"),
                s("data", "exec: program /usr/bin/data is not executable in the image"),
                s("data", "user/group: unknown group \"wheel\" (not in group)"),
                s("dir", "exec: program /usr/bin is not a regular file in the image"),
            ]
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
