//! Loading unit directories: which file wins for each name, which markers apply, and every error
//! of every file collected at once (an image builder fixes them all in one round, and the
//! supervisor shows a broken unit as failed instead of refusing to boot).
//!
//! Precedence: directories are read in the order given (vendor `/usr/lib/lifsea/units`, then admin
//! `/etc/lifsea/units`); a `<name>.toml` in a later directory replaces the earlier file entirely.
//! `<name>.disabled` / `<name>.enabled` marker files (written by `initctl disable/enable`) override
//! the `enabled` key of the winning file when they sit in the same directory or a later one.

use crate::collections::keyset::KeySet;
use crate::collections::strmap::StrMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::parse::{check_unit_name, parse_unit, UnitFileError};
use super::Unit;

#[derive(Debug, Default)]
pub struct LoadOutcome {
    /// Valid units by name (disabled ones included, with `enabled == false`).
    pub units: StrMap<Unit>,
    /// Names of units whose file exists but is invalid: the supervisor shows them as failed.
    pub broken: StrMap<Vec<UnitFileError>>,
    /// Every error, in path order.
    pub errors: Vec<UnitFileError>,
}

/// Loads `*.toml` from each directory in order; a later directory's file replaces an earlier one of
/// the same name. A missing directory is not an error.
///
/// Deterministic: names are processed in byte order, errors are sorted by path (and by position
/// inside a file). Files in a directory other than `*.toml` and markers are ignored.
pub fn load_dirs(dirs: &[PathBuf]) -> LoadOutcome {
    parse_files(read_dirs(dirs))
}

/// The unit files' text, read from disk and not parsed yet: the I/O half of `load_dirs`, apart so
/// that the boot timeline can tell cold reads from the parser's first run (issue 11 item 4).
#[derive(Debug, Default)]
pub struct UnitFiles {
    /// (name, path, text or why it could not be read, the `enabled` marker that applies), by name.
    files: Vec<(String, PathBuf, io::Result<String>, Option<bool>)>,
    /// Directory and file-name errors found while listing.
    errors: Vec<UnitFileError>,
}

/// Lists the directories and reads every winning `*.toml` (see `load_dirs`).
pub fn read_dirs(dirs: &[PathBuf]) -> UnitFiles {
    let mut out = UnitFiles::default();
    // name -> (index of the directory holding the winning file, its path)
    let mut files: StrMap<(usize, PathBuf)> = StrMap::new();
    // name -> (index of the last directory holding a marker, enabled?)
    let mut markers: StrMap<(usize, bool)> = StrMap::new();
    for (index, dir) in dirs.iter().enumerate() {
        let names = match list_dir(dir) {
            Ok(names) => names,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                out.errors
                    .push(file_error(dir, None, format!("cannot read directory: {e}")));
                continue;
            }
        };
        let mut enabled_here = KeySet::new();
        let mut disabled_here = KeySet::new();
        for os_name in names {
            let Some(file_name) = os_name.to_str() else {
                let lossy = os_name.to_string_lossy().into_owned();
                if lossy.ends_with(".toml") {
                    out.errors.push(file_error(
                        &dir.join(&os_name),
                        None,
                        format!("invalid unit name {lossy:?}: file name is not UTF-8"),
                    ));
                }
                continue;
            };
            if let Some(stem) = file_name.strip_suffix(".toml") {
                files.insert(stem.to_string(), (index, dir.join(file_name)));
            } else if let Some(stem) = file_name.strip_suffix(".disabled") {
                disabled_here.insert(stem.to_string());
            } else if let Some(stem) = file_name.strip_suffix(".enabled") {
                enabled_here.insert(stem.to_string());
            }
        }
        for name in enabled_here.iter().chain(disabled_here.iter()) {
            // Both markers in one directory: disabled wins (the safer reading of a conflict).
            markers.insert(name.clone(), (index, !disabled_here.contains(name)));
        }
    }
    for (name, (index, path)) in files {
        if let Err(message) = check_unit_name(&name) {
            out.errors.push(file_error(&path, None, message));
            continue;
        }
        let text = read_unit_file(&path);
        let marker = markers
            .get(&name)
            .filter(|&&(marker_index, _)| marker_index >= index)
            .map(|&(_, enabled)| enabled);
        out.files.push((name, path, text, marker));
    }
    out
}

/// Parses what `read_dirs` read (see `load_dirs`).
pub fn parse_files(read: UnitFiles) -> LoadOutcome {
    let mut out = LoadOutcome {
        errors: read.errors,
        ..LoadOutcome::default()
    };
    for (name, path, text, marker) in read.files {
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                let err = file_error(&path, Some(&name), format!("cannot read: {e}"));
                out.broken.insert(name, vec![err.clone()]);
                out.errors.push(err);
                continue;
            }
        };
        match parse_unit(&name, &path, &text) {
            Ok(mut unit) => {
                if let Some(enabled) = marker {
                    unit.enabled = enabled;
                }
                out.units.insert(name, unit);
            }
            Err(errors) => {
                out.errors.extend(errors.iter().cloned());
                out.broken.insert(name, errors);
            }
        }
    }
    // Stable: errors of one file keep their in-file order.
    crate::collections::sort::sort_by(&mut out.errors, |a, b| a.path.cmp(&b.path));
    out
}

/// The entry names of `dir`, sorted so that the outcome never depends on readdir order.
/// The largest unit file read (real ones are a few hundred bytes).
pub const MAX_UNIT_FILE: u64 = 1024 * 1024;

/// Reads a unit file without ever blocking: opened O_NONBLOCK (a FIFO named `*.toml` would
/// otherwise wait in open(2) for a writer, stalling PID 1), then only a regular file of at most
/// `MAX_UNIT_FILE` bytes is read.
fn read_unit_file(path: &Path) -> io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        return Err(io::Error::from_raw_os_error(libc::EISDIR));
    }
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_UNIT_FILE {
        return Err(io::Error::other(format!(
            "larger than {} KiB",
            MAX_UNIT_FILE / 1024
        )));
    }
    let mut text = String::new();
    file.take(MAX_UNIT_FILE).read_to_string(&mut text)?;
    Ok(text)
}

fn list_dir(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name());
    }
    crate::collections::sort::sort(&mut names);
    Ok(names)
}

fn file_error(path: &Path, unit: Option<&str>, message: String) -> UnitFileError {
    UnitFileError {
        path: path.to_path_buf(),
        line: None,
        column: None,
        unit: unit.map(str::to_string),
        message,
    }
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
