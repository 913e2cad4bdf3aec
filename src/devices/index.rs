//! What to load for a request, the way modprobe decides it: resolve a name or modalias to modules
//! (modprobe.d aliases, then a module's own name, then modules.alias, then built-ins), drop
//! blacklisted alias matches, and order the result so that every softdep `pre:` module and every
//! modules.dep dependency comes before its user and `post:` modules after it. Pure: the module
//! tree's files are passed in as text.

use crate::collections::keyset::{KeySet, StrSet};
use crate::collections::strmap::StrMap;
use std::path::Path;

use super::modalias::{glob_match, modules_for, normalize, parse_aliases, Alias, DepTable};
use super::modprobe_d::{ModprobeConfig, Softdep};

/// The depmod files of one kernel.
#[derive(Debug, Clone, Default)]
pub struct ModuleIndex {
    pub aliases: Vec<Alias>,
    pub dep: DepTable,
    /// Names from modules.builtin: requests for them succeed without loading anything.
    pub builtin: StrSet,
    /// Softdeps the modules declare themselves (depmod's modules.softdep); a modprobe.d
    /// `softdep` for the same module replaces them, as with kmod.
    pub softdeps: StrMap<Softdep>,
}

/// How a request resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Modules to load (may be empty when every match was blacklisted).
    Modules(Vec<String>),
    /// Compiled into the kernel: nothing to do.
    Builtin,
    /// No module by that name or alias.
    Unknown,
}

/// One step of a load plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadStep {
    pub module: String,
    /// Path relative to the module directory.
    pub path: String,
    /// Parameters from `options` lines and the command line.
    pub params: String,
    /// A softdep: its failure does not fail the request.
    pub optional: bool,
}

impl ModuleIndex {
    pub fn parse(alias_text: &str, dep_text: &str, builtin_text: &str) -> ModuleIndex {
        ModuleIndex::parse_with_softdeps(alias_text, dep_text, builtin_text, "")
    }

    /// `parse`, plus modules.softdep text. Its lines that are not `softdep M pre: ... post: ...`
    /// (depmod copies some modules' free-form declarations, such as `softdep cifs gcm`) are
    /// skipped, as kmod does.
    pub fn parse_with_softdeps(
        alias_text: &str,
        dep_text: &str,
        builtin_text: &str,
        softdep_text: &str,
    ) -> ModuleIndex {
        let mut sd = ModprobeConfig::default();
        let _ = sd.parse_file("modules.softdep", softdep_text);
        ModuleIndex {
            softdeps: sd.softdeps,
            aliases: parse_aliases(alias_text),
            dep: DepTable::parse(dep_text),
            builtin: builtin_text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(super::modalias::module_name)
                .collect(),
        }
    }

    /// Reads modules.alias, modules.dep and modules.builtin from `module_dir` (missing files read
    /// as empty; the caller checks modules.dep exists).
    pub fn read(module_dir: &Path) -> ModuleIndex {
        let read = |f: &str| std::fs::read_to_string(module_dir.join(f)).unwrap_or_default();
        ModuleIndex::parse_with_softdeps(
            &read("modules.alias"),
            &read("modules.dep"),
            &read("modules.builtin"),
            &read("modules.softdep"),
        )
    }

    /// Resolves a module name, an alias (`fs-overlay`) or a device modalias, as modprobe does.
    pub fn resolve(&self, cfg: &ModprobeConfig, request: &str) -> Resolved {
        let from_config: Vec<String> = cfg
            .aliases
            .iter()
            .filter(|(p, _)| glob_match(p, request))
            .map(|(_, m)| m.clone())
            .collect();
        if !from_config.is_empty() {
            return Resolved::Modules(dedup(from_config));
        }
        let name = normalize(request);
        if self.dep.modules.contains_key(&name) {
            return Resolved::Modules(vec![name]);
        }
        let matched = modules_for(&self.aliases, request);
        if !matched.is_empty() {
            return Resolved::Modules(
                matched
                    .into_iter()
                    .filter(|m| !cfg.is_blacklisted(m))
                    .collect(),
            );
        }
        if self.builtin.contains(&name) {
            return Resolved::Builtin;
        }
        Resolved::Unknown
    }

    /// The load order for `modules`: softdep pre modules, then dependencies, the module, then
    /// softdep post modules; each module once. Names missing from modules.dep are skipped
    /// (a softdep on a module this kernel lacks is not an error, as with kmod).
    pub fn plan(&self, cfg: &ModprobeConfig, modules: &[String]) -> Vec<LoadStep> {
        let mut out = Vec::new();
        let mut seen = KeySet::new();
        let mut visiting = KeySet::new();
        for m in modules {
            let mut walk = Walk {
                seen: &mut seen,
                visiting: &mut visiting,
                out: &mut out,
            };
            self.plan_one(cfg, &normalize(m), false, &mut walk, 0);
        }
        out
    }

    fn plan_one(
        &self,
        cfg: &ModprobeConfig,
        name: &str,
        optional: bool,
        w: &mut Walk<'_>,
        depth: usize,
    ) {
        // Softdep cycles (a pre: b, b pre: a) are possible in bad configs: the modules being
        // walked and the depth bound stop them.
        if depth > 16 || w.seen.contains(name) || !w.visiting.insert(name.to_string()) {
            return;
        }
        let softdep = cfg.softdeps.get(name).or_else(|| self.softdeps.get(name));
        if let Some(sd) = softdep {
            for p in &sd.pre {
                for m in self.softdep_targets(cfg, p) {
                    self.plan_one(cfg, &m, true, w, depth + 1);
                }
            }
        }
        let (order, _) = self.dep.load_order(&[name.to_string()]);
        for dep in order {
            if !w.seen.insert(dep.clone()) {
                continue;
            }
            let Some(path) = self.dep.path_of(&dep) else {
                continue;
            };
            w.out.push(LoadStep {
                params: cfg.params_for(&dep),
                path: path.to_string(),
                optional: optional && dep == name,
                module: dep,
            });
        }
        if let Some(sd) = softdep {
            for p in &sd.post {
                for m in self.softdep_targets(cfg, p) {
                    self.plan_one(cfg, &m, true, w, depth + 1);
                }
            }
        }
    }
}

/// The state of one `plan` walk.
struct Walk<'a> {
    /// Modules already placed in the plan.
    seen: &'a mut StrSet,
    /// Modules whose softdeps are being walked (cycle guard).
    visiting: &'a mut StrSet,
    out: &'a mut Vec<LoadStep>,
}

impl ModuleIndex {
    /// A softdep names a module or an alias (`crypto-md5`); what it resolves to now.
    fn softdep_targets(&self, cfg: &ModprobeConfig, name: &str) -> Vec<String> {
        match self.resolve(cfg, name) {
            Resolved::Modules(m) => m,
            Resolved::Builtin | Resolved::Unknown => Vec::new(),
        }
    }
}

fn dedup(v: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for m in v {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Excerpts of the Debian cloud kernel's depmod output (6.1.0-57-cloud-amd64).
    const ALIAS: &str = include_str!("fixtures/debian-6.1.0-57-cloud-amd64.alias");
    const DEP: &str = include_str!("fixtures/debian-6.1.0-57-cloud-amd64.dep");
    const BUILTIN: &str = include_str!("fixtures/debian-6.1.0-57-cloud-amd64.builtin");
    const SOFTDEP: &str = include_str!("fixtures/debian-6.1.0-57-cloud-amd64.softdep");

    fn index() -> ModuleIndex {
        ModuleIndex::parse_with_softdeps(ALIAS, DEP, BUILTIN, SOFTDEP)
    }

    #[test]
    fn resolves_names_aliases_modaliases_and_builtins() {
        let ix = index();
        let cfg = ModprobeConfig::default();
        let m = |v: &[&str]| Resolved::Modules(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(ix.resolve(&cfg, "overlay"), m(&["overlay"]));
        assert_eq!(ix.resolve(&cfg, "fs-overlay"), m(&["overlay"]));
        assert_eq!(ix.resolve(&cfg, "qemu-fw-cfg"), m(&["qemu_fw_cfg"]));
        assert_eq!(ix.resolve(&cfg, "acpi:QEMU0002:"), m(&["qemu_fw_cfg"]));
        assert_eq!(ix.resolve(&cfg, "nf_conntrack-10"), m(&["nf_conntrack"]));
        assert_eq!(
            ix.resolve(&cfg, "virtio:d00000002v00001AF4"),
            m(&["virtio_blk"])
        );
        assert_eq!(ix.resolve(&cfg, "acpi:LNXPWRBN:"), m(&["button"]));
        assert_eq!(ix.resolve(&cfg, "ext4"), Resolved::Builtin);
        assert_eq!(ix.resolve(&cfg, "nosuchmodule"), Resolved::Unknown);
    }

    #[test]
    fn blacklist_applies_to_aliases_only_and_config_aliases_come_first() {
        let ix = index();
        let mut cfg = ModprobeConfig::default();
        cfg.parse_file("t", "blacklist virtio_blk\nalias my-disk virtio_blk\n");
        assert_eq!(
            ix.resolve(&cfg, "virtio:d00000002v00001AF4"),
            Resolved::Modules(vec![])
        );
        assert_eq!(
            ix.resolve(&cfg, "virtio_blk"),
            Resolved::Modules(vec!["virtio_blk".into()])
        );
        assert_eq!(
            ix.resolve(&cfg, "my-disk"),
            Resolved::Modules(vec!["virtio_blk".into()])
        );
    }

    #[test]
    fn plan_orders_softdeps_and_dependencies_with_options() {
        let ix = index();
        let mut cfg = ModprobeConfig::default();
        cfg.parse_file(
            "t",
            "softdep virtio_net pre: virtio_pci missing_mod post: qemu-fw-cfg fs-overlay\noptions virtio_net napi_tx=0\n",
        );
        let plan = ix.plan(&cfg, &["virtio_net".into(), "failover".into()]);
        let names: Vec<&str> = plan.iter().map(|s| s.module.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "virtio_pci_legacy_dev",
                "virtio_pci_modern_dev",
                "virtio_ring",
                "virtio",
                "virtio_pci",
                "failover",
                "net_failover",
                "virtio_net",
                "qemu_fw_cfg",
                "overlay"
            ]
        );
        let net = plan.iter().find(|s| s.module == "virtio_net").unwrap();
        assert_eq!(net.params, "napi_tx=0");
        assert_eq!(net.path, "kernel/drivers/net/virtio_net.ko");
        assert!(!net.optional);
        assert!(
            plan.iter()
                .find(|s| s.module == "virtio_pci")
                .unwrap()
                .optional
        );
        assert!(
            plan.iter()
                .find(|s| s.module == "qemu_fw_cfg")
                .unwrap()
                .optional
        );
        assert!(
            !plan
                .iter()
                .find(|s| s.module == "virtio_pci_modern_dev")
                .unwrap()
                .optional
        );
    }

    #[test]
    fn module_softdeps_from_depmod_are_read_leniently() {
        let ix = index();
        assert_eq!(ix.softdeps["nfsd"].pre, vec!["crypto-md5"]);
        assert!(
            !ix.softdeps.contains_key("cifs"),
            "free-form lines are skipped"
        );
        // modprobe.d replaces a module's own softdep.
        let mut cfg = ModprobeConfig::default();
        cfg.parse_file("t", "softdep nfsd post: evdev\n");
        let mut ix = ix;
        ix.dep
            .modules
            .insert("nfsd".into(), ("kernel/fs/nfsd/nfsd.ko".into(), vec![]));
        let names: Vec<String> = ix
            .plan(&cfg, &["nfsd".into()])
            .into_iter()
            .map(|s| s.module)
            .collect();
        assert_eq!(names, vec!["nfsd", "evdev"]);
    }

    #[test]
    fn softdep_cycles_terminate() {
        let ix = index();
        let mut cfg = ModprobeConfig::default();
        cfg.parse_file(
            "t",
            "softdep overlay pre: evdev\nsoftdep evdev pre: overlay\n",
        );
        let plan = ix.plan(&cfg, &["overlay".into()]);
        let names: Vec<&str> = plan.iter().map(|s| s.module.as_str()).collect();
        assert_eq!(names, vec!["evdev", "overlay"]);
    }
}
