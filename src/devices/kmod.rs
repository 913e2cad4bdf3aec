//! Loading kernel modules with finit_module(2), in dependency order, skipping what is loaded.

use crate::collections::keyset::StrSet;
use std::path::{Path, PathBuf};

use super::modalias::{parse_proc_modules, DepTable};

#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    #[error("load module {path}: {source}")]
    Load {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("module {0} is not in modules.dep")]
    Unknown(String),
}

/// Names of loaded modules (/proc/modules), plus built-in ones that show in /sys/module.
pub fn loaded_modules(proc_modules: &Path) -> StrSet {
    parse_proc_modules(&std::fs::read_to_string(proc_modules).unwrap_or_default())
}

/// Loads one module file; EEXIST (already loaded, or a race) counts as success. The attempt is
/// logged first: a driver whose init hangs never returns from finit_module(2), and the last line
/// in the kernel log then names it.
pub fn load_file(path: &Path) -> Result<(), KmodError> {
    log::info!("loading module {}", path.display());
    match crate::sys::module::finit_module(path) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(KmodError::Load {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// Loads `wanted` and their dependencies from `module_dir` (`/lib/modules/KVER`) in order,
/// skipping names in `loaded` (which is updated). Returns the names loaded now and the errors;
/// a failed dependency does not stop unrelated modules.
pub fn load_modules(
    module_dir: &Path,
    dep: &DepTable,
    wanted: &[String],
    loaded: &mut StrSet,
) -> (Vec<String>, Vec<KmodError>) {
    let (order, unknown) = dep.load_order(wanted);
    let mut done = Vec::new();
    let mut errors: Vec<KmodError> = unknown.into_iter().map(KmodError::Unknown).collect();
    for name in order {
        if loaded.contains(&name) {
            continue;
        }
        let Some(rel) = dep.path_of(&name) else {
            continue;
        };
        match load_file(&module_dir.join(rel)) {
            Ok(()) => {
                loaded.insert(name.clone());
                done.push(name);
            }
            Err(e) => {
                // Remember it as attempted so the next coldplug round does not retry forever.
                loaded.insert(name);
                errors.push(e);
            }
        }
    }
    (done, errors)
}
