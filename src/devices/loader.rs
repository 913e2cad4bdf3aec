//! Carrying out load plans (`index::plan`) with finit_module(2), and the record of every load:
//! who asked (coldplug, hotplug, the kernel, a command), for what, and how long it took.
//!
//! Loads happen in short-lived helper processes (the `modprobe` face of this binary), never in
//! PID 1, so the record is a file every helper appends one line to (`/run/lifsea/modules.log`,
//! `O_APPEND` writes of one short line are atomic) and the devices subsystem reads for
//! `initctl devices`. Format, one line per module: `ORIGIN\tMODULE\tMICROS\tRESULT\tREQUEST`
//! where RESULT is `ok` or the error.

use crate::collections::keyset::StrSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::index::{LoadStep, ModuleIndex, Resolved};
use super::modalias::parse_proc_modules;
use super::modprobe_d::ModprobeConfig;

/// The record file under the runtime directory.
pub const RECORD_FILE: &str = "modules.log";

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error("module {request} not found in directory {}", .module_dir.display())]
    NotFound {
        request: String,
        module_dir: PathBuf,
    },
    #[error("load module {path}: {source}")]
    Load {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One line of the record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoadRecord {
    pub origin: String,
    pub module: String,
    pub micros: u64,
    /// `ok`, or the error.
    pub result: String,
    pub request: String,
}

impl LoadRecord {
    pub fn to_line(&self) -> String {
        let clean = |s: &str| s.replace(['\t', '\n'], " ");
        format!(
            "{}\t{}\t{}\t{}\t{}\n",
            clean(&self.origin),
            clean(&self.module),
            self.micros,
            clean(&self.result),
            clean(&self.request)
        )
    }
}

/// Parses record text; malformed lines are skipped (the file is ours, but may be cut by a crash).
/// Split on `\n` alone, as `to_line` writes: `str::lines` would also take a `\r` off the end of
/// the last field, so a request ending in one (a modalias is kernel text, not ours) would read
/// back changed (found by fuzz/modules).
pub fn parse_records(text: &str) -> Vec<LoadRecord> {
    text.split('\n')
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let [origin, module, micros, result, request] = f.as_slice() else {
                return None;
            };
            Some(LoadRecord {
                origin: origin.to_string(),
                module: module.to_string(),
                micros: micros.parse().ok()?,
                result: result.to_string(),
                request: request.to_string(),
            })
        })
        .collect()
}

/// The module directory of the running kernel under `root` (`lib/modules/KVER` or
/// `usr/lib/modules/KVER`), the one holding modules.dep.
pub fn module_dir(root: &Path, kver: &str) -> Option<PathBuf> {
    ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| root.join(d).join(kver))
        .find(|d| d.join("modules.dep").exists())
}

/// Loads modules for one process's requests.
pub struct Loader {
    pub module_dir: PathBuf,
    pub index: ModuleIndex,
    pub cfg: ModprobeConfig,
    loaded: StrSet,
    origin: String,
    record: Option<PathBuf>,
    /// Plan only: nothing is loaded or recorded (`modprobe -n`).
    pub dry_run: bool,
}

impl Loader {
    pub fn new(
        module_dir: &Path,
        cfg: ModprobeConfig,
        proc_modules: &Path,
        origin: &str,
        record: Option<PathBuf>,
    ) -> Loader {
        Loader {
            index: ModuleIndex::read(module_dir),
            module_dir: module_dir.to_path_buf(),
            cfg,
            loaded: parse_proc_modules(&std::fs::read_to_string(proc_modules).unwrap_or_default()),
            origin: origin.to_string(),
            record,
            dry_run: false,
        }
    }

    pub fn is_loaded(&self, module: &str) -> bool {
        self.loaded.contains(module)
    }

    /// The steps a request needs now (already-loaded modules left out). `Ok(empty)` for a
    /// built-in or fully blacklisted request.
    pub fn steps_for(
        &self,
        request: &str,
        use_blacklist: bool,
    ) -> Result<Vec<LoadStep>, LoaderError> {
        let modules = match self.index.resolve(&self.cfg, request) {
            Resolved::Builtin => return Ok(Vec::new()),
            Resolved::Unknown => {
                return Err(LoaderError::NotFound {
                    request: request.to_string(),
                    module_dir: self.module_dir.clone(),
                })
            }
            Resolved::Modules(m) => m,
        };
        let modules: Vec<String> = modules
            .into_iter()
            .filter(|m| !use_blacklist || !self.cfg.is_blacklisted(m))
            .collect();
        Ok(self
            .index
            .plan(&self.cfg, &modules)
            .into_iter()
            .filter(|s| !self.loaded.contains(&s.module))
            .collect())
    }

    /// Loads a request's modules; returns the modules loaded. A failed optional step (a softdep)
    /// is recorded and skipped; a failed required one ends the request with its error.
    pub fn load(&mut self, request: &str, use_blacklist: bool) -> Result<Vec<String>, LoaderError> {
        let steps = self.steps_for(request, use_blacklist)?;
        self.run(request, &steps)
    }

    /// Carries out steps (skipping modules loaded meanwhile).
    pub fn run(&mut self, request: &str, steps: &[LoadStep]) -> Result<Vec<String>, LoaderError> {
        let mut done = Vec::new();
        for step in steps {
            if self.loaded.contains(&step.module) || self.dry_run {
                continue;
            }
            let path = self.module_dir.join(&step.path);
            let started = Instant::now();
            // Before the call: a driver that hangs in its init leaves this as the last clue.
            log::info!("loading module {} for {request}", path.display());
            let r = match crate::sys::module::finit_module_with(&path, &step.params) {
                Ok(()) => Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
                Err(source) => Err(LoaderError::Load { path, source }),
            };
            // A failed module is remembered too, so one process never retries it.
            self.loaded.insert(step.module.clone());
            self.write_record(&LoadRecord {
                origin: self.origin.clone(),
                module: step.module.clone(),
                micros: started.elapsed().as_micros() as u64,
                result: match &r {
                    Ok(()) => "ok".to_string(),
                    Err(e) => e.to_string(),
                },
                request: request.to_string(),
            });
            match r {
                Ok(()) => done.push(step.module.clone()),
                Err(e) if step.optional => log::warn!("softdep of {request}: {e}"),
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn write_record(&self, r: &LoadRecord) {
        let Some(path) = &self.record else { return };
        let line = r.to_line();
        let res = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = res {
            log::debug!("record {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_bad_lines_are_skipped() {
        let r = LoadRecord {
            origin: "kernel".into(),
            module: "overlay".into(),
            micros: 1234,
            result: "ok".into(),
            request: "fs-overlay".into(),
        };
        let mut text = r.to_line();
        text.push_str("garbage line\nhotplug\tx\tnotanumber\tok\ty\n");
        let tabbed = LoadRecord {
            result: "load module a\tb: failed\n".into(),
            ..r.clone()
        };
        text.push_str(&tabbed.to_line());
        let parsed = parse_records(&text);
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0], r);
        assert_eq!(parsed[1].result, "load module a b: failed ");
    }

    #[test]
    fn a_carriage_return_at_the_end_of_a_record_survives_the_round_trip() {
        let r = LoadRecord {
            origin: "T*Cv".into(),
            module: String::new(),
            micros: 0,
            result: String::new(),
            request: "irtytAF4\r".into(),
        };
        assert_eq!(parse_records(&r.to_line()), vec![r]);
    }

    #[test]
    fn steps_skip_loaded_modules_and_unknown_requests_fail() {
        let t = std::env::temp_dir().join(format!("lifsea-loader-{}", std::process::id()));
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(
            t.join("modules.dep"),
            "kernel/a.ko: kernel/b.ko\nkernel/b.ko:\nkernel/c.ko:\n",
        )
        .unwrap();
        std::fs::write(t.join("modules.alias"), "alias fs-a a\nalias pci:v1* c\n").unwrap();
        std::fs::write(t.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        std::fs::write(t.join("proc_modules"), "b 16384 0 - Live 0x0\n").unwrap();
        let mut cfg = ModprobeConfig::default();
        cfg.parse_file("t", "blacklist c\noptions a x=1\n");
        let l = Loader::new(&t, cfg, &t.join("proc_modules"), "command", None);
        let steps = l.steps_for("fs-a", false).unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(
            (steps[0].module.as_str(), steps[0].params.as_str()),
            ("a", "x=1")
        );
        assert!(l.steps_for("ext4", false).unwrap().is_empty());
        assert!(l.steps_for("pci:v1234", false).unwrap().is_empty());
        assert_eq!(l.steps_for("c", true).unwrap().len(), 0);
        assert_eq!(l.steps_for("c", false).unwrap().len(), 1);
        let e = l.steps_for("nope", false).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("module nope not found in directory {}", t.display())
        );
        assert_eq!(module_dir(&t, "x"), None);
        std::fs::remove_dir_all(&t).unwrap();
    }
}
