//! Coldplug: read every device's `modalias` (through /sys/bus), match them against modules.alias and
//! load the matching modules in dependency order. Repeated until a round loads nothing, because
//! loading a bus driver (virtio_pci) makes new devices (virtio0, ...) with their own modaliases.
//!
//! `Coldplug` runs in-process in stage 0 (the initramfs, before the supervisor exists); on the
//! running machine the devices subsystem runs `lifsea-init modprobe --coldplug` (`modprobe.rs`)
//! instead, which shares `collect_modaliases` and honours modprobe.d.
//!
//! `cpu:` modaliases are skipped unless asked (`lifsea.coldplug=all`): they select CPU-feature
//! modules (kvm, cpufreq drivers, crypto acceleration) that a container node either does not need
//! or that the kernel loads itself on first use (the crypto API calls request_module). On the
//! Debian cloud kernel under QEMU TCG, kvm and kvm_amd alone cost seconds of boot.

use crate::collections::keyset::{KeySet, StrSet};
use std::path::Path;

use super::kmod::{self, KmodError};
use super::modalias::{modules_for, parse_aliases, Alias, DepTable};

/// Every device modalias under `sys` (/sys): `bus/*/devices/*/modalias`, the input class's
/// `class/input/*/modalias` (input devices are class devices, and evdev matches them), plus the
/// CPU's `devices/system/cpu/modalias`. Reading through the bus links touches a few hundred entries
/// where a walk of /sys/devices touches thousands, which matters under TCG (0.1–0.2 s a round).
pub fn collect_modaliases(sys: &Path) -> StrSet {
    let mut out = KeySet::new();
    let mut add = |p: &Path| {
        if let Ok(s) = std::fs::read_to_string(p) {
            let s = s.trim();
            if !s.is_empty() {
                out.insert(s.to_string());
            }
        }
    };
    let entries = |d: &Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(d)
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    for bus in entries(&sys.join("bus")) {
        for dev in entries(&bus.join("devices")) {
            add(&dev.join("modalias"));
        }
    }
    for dev in entries(&sys.join("class/input")) {
        add(&dev.join("modalias"));
    }
    add(&sys.join("devices/system/cpu/modalias"));
    out
}

/// Modalias prefixes coldplug ignores by default.
pub const SKIPPED_BY_DEFAULT: &[&str] = &["cpu:"];

/// Modules wanted for a set of modaliases, minus the blacklist and the modaliases starting with
/// one of `skip_prefixes`.
pub fn wanted_modules(
    aliases: &[Alias],
    modaliases: &StrSet,
    blacklist: &[String],
    skip_prefixes: &[&str],
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in modaliases
        .iter()
        .filter(|m| !skip_prefixes.iter().any(|p| m.starts_with(p)))
    {
        for name in modules_for(aliases, m) {
            if !out.contains(&name) && !blacklist.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The module tree and the modules loaded so far; one per boot stage.
pub struct Coldplug {
    module_dir: std::path::PathBuf,
    aliases: Vec<Alias>,
    dep: DepTable,
    loaded: StrSet,
    blacklist: Vec<String>,
    skip_prefixes: &'static [&'static str],
    /// Modaliases matched in earlier rounds: only new devices are matched again.
    seen: StrSet,
}

impl Coldplug {
    /// Reads modules.alias and modules.dep from `module_dir` and what is loaded from /proc/modules.
    /// `all` also loads modules for the modaliases in `SKIPPED_BY_DEFAULT`.
    pub fn new(
        module_dir: &Path,
        proc_modules: &Path,
        blacklist: Vec<String>,
        all: bool,
    ) -> Coldplug {
        let read = |f: &str| std::fs::read_to_string(module_dir.join(f)).unwrap_or_default();
        Coldplug {
            module_dir: module_dir.to_path_buf(),
            aliases: parse_aliases(&read("modules.alias")),
            dep: DepTable::parse(&read("modules.dep")),
            loaded: kmod::loaded_modules(proc_modules),
            blacklist,
            skip_prefixes: if all { &[] } else { SKIPPED_BY_DEFAULT },
            seen: KeySet::new(),
        }
    }

    /// One round: load every not-yet-loaded module matching a device under `sys`.
    pub fn round(&mut self, sys: &Path) -> (Vec<String>, Vec<KmodError>) {
        let mut fresh = collect_modaliases(sys);
        fresh.retain(|m| !self.seen.contains(m));
        let wanted: Vec<String> =
            wanted_modules(&self.aliases, &fresh, &self.blacklist, self.skip_prefixes)
                .into_iter()
                .filter(|m| !self.loaded.contains(m))
                .collect();
        self.seen.extend(fresh);
        if wanted.is_empty() {
            return (Vec::new(), Vec::new());
        }
        kmod::load_modules(&self.module_dir, &self.dep, &wanted, &mut self.loaded)
    }

    /// Rounds until one loads nothing (at most `max_rounds`); returns every module loaded and
    /// logs each failure.
    pub fn run(&mut self, sys: &Path, max_rounds: usize) -> Vec<String> {
        let mut all = Vec::new();
        for _ in 0..max_rounds {
            let (loaded, errors) = self.round(sys);
            for e in &errors {
                log::warn!("coldplug: {e}");
            }
            if loaded.is_empty() {
                break;
            }
            log::info!("coldplug: loaded {}", loaded.join(" "));
            all.extend(loaded);
        }
        all
    }
}
