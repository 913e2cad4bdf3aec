//! Durable, all-or-nothing updates of the init's own state files (machine-id, the DHCP lease,
//! enable markers): after a power cut each is either its old or its new version, never empty or
//! half-written, and a change the init reported done survives.
//!
//! Why each step: data goes to a temporary file beside the target and is `fsync`ed before the
//! `rename` (ext4's delayed allocation may otherwise commit the rename before the data, leaving a
//! zero-length file after a crash); the rename swaps the name in one step; the directory is
//! `fsync`ed afterwards, because until then the rename itself may still be lost. Removal (the
//! other half of moving a marker) is made durable the same way. The temporary name is fixed per
//! target, so a crash leaves at most one stale `.NAME.tmp`, which the next write truncates.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct DurableError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> DurableError + 'a {
    move |source| DurableError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// The directory holding `path` (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The temporary file a write of `path` goes through: `.NAME.tmp` beside it.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent(path).join(format!(".{name}.tmp"))
}

/// Flushes a directory's entries (a rename, create or unlink in it) to disk.
pub fn sync_dir(dir: &Path) -> Result<(), DurableError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err("fsync directory", dir))
}

/// Replaces `path` with `data`: temporary file, fsync, rename, fsync of the directory. Creates
/// the directory when missing. On an error the old file is untouched (the temporary file is
/// removed when possible).
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), DurableError> {
    let dir = parent(path);
    std::fs::create_dir_all(dir).map_err(err("create directory", dir))?;
    let tmp = temp_path(path);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        })
        .map_err(err("write", &tmp));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(err("rename into", path)(e));
    }
    sync_dir(dir)
}

/// Removes `path` and flushes its directory; `Ok(false)` when it did not exist.
pub fn remove(path: &Path) -> Result<bool, DurableError> {
    match std::fs::remove_file(path) {
        Ok(()) => sync_dir(parent(path)).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(err("remove", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("durable-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary() {
        let d = scratch("replace");
        let f = d.join("machine-id");
        write_atomic(&f, b"a long first version of the file\n").unwrap();
        write_atomic(&f, b"short\n").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"short\n");
        assert_eq!(entries(&d), vec!["machine-id"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn creates_missing_directories_and_empty_files() {
        let d = scratch("mkdir");
        let f = d.join("a/b/x.enabled");
        write_atomic(&f, b"").unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().len(), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// What a crash between the temporary write and the rename leaves: the old file intact and a
    /// stale temporary, which the next write overwrites (not appends to) and consumes.
    #[test]
    fn a_stale_temporary_from_a_crash_is_replaced() {
        let d = scratch("stale");
        let f = d.join("lease.json");
        write_atomic(&f, b"{\"old\":1}").unwrap();
        std::fs::write(temp_path(&f), b"{\"half-writ").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"{\"old\":1}");
        write_atomic(&f, b"{\"new\":2}").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"{\"new\":2}");
        assert_eq!(entries(&d), vec!["lease.json"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_names_the_path() {
        let d = scratch("fail");
        let f = d.join("state");
        write_atomic(&f, b"old").unwrap();
        // A directory where the temporary file must go: creating it fails.
        std::fs::create_dir(temp_path(&f)).unwrap();
        let e = write_atomic(&f, b"new").unwrap_err();
        assert!(e.to_string().starts_with("write "), "{e}");
        assert!(e.to_string().contains(".state.tmp"), "{e}");
        assert_eq!(std::fs::read(&f).unwrap(), b"old");
        // A file where the directory must go.
        let e = write_atomic(&f.join("below"), b"x").unwrap_err();
        assert_eq!(e.op, "create directory");
        assert_eq!(e.path, f);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn remove_reports_whether_there_was_a_file() {
        let d = scratch("remove");
        let f = d.join("x.disabled");
        write_atomic(&f, b"").unwrap();
        assert!(remove(&f).unwrap());
        assert!(!f.exists());
        assert!(!remove(&f).unwrap());
        assert_eq!(remove(&d).unwrap_err().op, "remove");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bare_names_live_in_the_current_directory() {
        assert_eq!(temp_path(Path::new("x")), Path::new("./.x.tmp"));
        assert_eq!(
            temp_path(Path::new("/etc/machine-id")),
            Path::new("/etc/.machine-id.tmp")
        );
    }
}
