//! Pure parsing of depmod's `modules.alias` and `modules.dep`, glob matching of device modaliases
//! against alias patterns (fnmatch's `*`, `?`, `[...]`), and the dependency closure/load order.

use crate::collections::keyset::StrSet;
use crate::collections::strmap::StrMap;
use std::collections::HashSet;

/// Normalises a module name the way the kernel does (`-` and `_` are the same).
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// The module name of a modules.dep path (`kernel/drivers/block/virtio_blk.ko.xz` → `virtio_blk`).
pub fn module_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.split(".ko").next().unwrap_or(base);
    normalize(stem)
}

/// One `alias PATTERN MODULE` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub pattern: String,
    pub module: String,
}

pub fn parse_aliases(text: &str) -> Vec<Alias> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            if w.next()? != "alias" {
                return None;
            }
            Some(Alias {
                pattern: w.next()?.to_string(),
                module: normalize(w.next()?),
            })
        })
        .collect()
}

/// modules.dep: module name → (path relative to the module dir, dependency paths).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DepTable {
    pub modules: StrMap<(String, Vec<String>)>,
}

impl DepTable {
    pub fn parse(text: &str) -> DepTable {
        let mut modules = StrMap::new();
        for line in text.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let deps = deps.split_whitespace().map(str::to_string).collect();
            modules.insert(module_name(path), (path.to_string(), deps));
        }
        DepTable { modules }
    }

    pub fn path_of(&self, name: &str) -> Option<&str> {
        self.modules.get(&normalize(name)).map(|(p, _)| p.as_str())
    }

    /// Module names in a loadable order (every dependency before its user), each once, for the
    /// requested modules and everything they depend on. Unknown names are returned separately.
    pub fn load_order(&self, wanted: &[String]) -> (Vec<String>, Vec<String>) {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        let mut unknown = Vec::new();
        for w in wanted {
            let n = normalize(w);
            if !self.modules.contains_key(&n) {
                unknown.push(n);
                continue;
            }
            self.visit(&n, &mut seen, &mut order, 0);
        }
        (order, unknown)
    }

    fn visit(&self, name: &str, seen: &mut HashSet<String>, order: &mut Vec<String>, depth: usize) {
        if depth > 64 || !seen.insert(name.to_string()) {
            return;
        }
        if let Some((_, deps)) = self.modules.get(name) {
            for d in deps {
                self.visit(&module_name(d), seen, order, depth + 1);
            }
        }
        order.push(name.to_string());
    }

    /// The subset of modules.dep text covering `names` (for an initramfs).
    pub fn render_subset(&self, names: &StrSet) -> String {
        let mut out = String::new();
        for n in names {
            if let Some((p, deps)) = self.modules.get(n) {
                out.push_str(p);
                out.push(':');
                for d in deps {
                    out.push(' ');
                    out.push_str(d);
                }
                out.push('\n');
            }
        }
        out
    }
}

/// fnmatch-style matching without flags: `*`, `?`, `[abc]`, `[a-z]`, `[!x]`/`[^x]`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    // Bytes, not chars: modaliases are ASCII, and this runs for every alias × every device
    // on each coldplug round, so it must not allocate.
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() {
            match p[pi] {
                b'*' => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                b'?' => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(p, pi, t[ti]) {
                        if matched {
                            pi = next;
                            ti += 1;
                            continue;
                        }
                    } else if t[ti] == b'[' {
                        pi += 1;
                        ti += 1;
                        continue;
                    }
                }
                c if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the bracket expression starting at `p[start] == b'['`; returns whether it
/// matched and the index after `]`, or None if the bracket is unterminated (then `[` is literal).
fn class_match(p: &[u8], start: usize, c: u8) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if i + 2 < p.len() && p[i + 1] == b'-' && p[i + 2] != b']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

/// Modules whose alias patterns match `modalias`, deduplicated, in alias-file order.
pub fn modules_for(aliases: &[Alias], modalias: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for a in aliases {
        if !out.contains(&a.module) && glob_match(&a.pattern, modalias) {
            out.push(a.module.clone());
        }
    }
    out
}

/// Loaded module names from /proc/modules text.
pub fn parse_proc_modules(text: &str) -> StrSet {
    text.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(normalize)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globbing() {
        assert!(glob_match(
            "virtio:d00000002v*",
            "virtio:d00000002v00001AF4"
        ));
        assert!(!glob_match(
            "virtio:d00000002v*",
            "virtio:d00000001v00001AF4"
        ));
        assert!(glob_match(
            "pci:v00001AF4d*sv*sd*bc*sc*i*",
            "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00"
        ));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("x[0-9]y", "x7y"));
        assert!(!glob_match("x[!0-9]y", "x7y"));
        assert!(glob_match("x[^0-9]y", "xay"));
        assert!(glob_match("x[]]y", "x]y"));
        assert!(glob_match("a[b", "a[b"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "aXXbYYbc"));
        assert!(!glob_match("a*b*c", "aXXbYYb"));
    }

    #[test]
    fn dep_closure_orders_dependencies_first() {
        let dep = DepTable::parse(
            "kernel/a.ko: kernel/b.ko kernel/c.ko\nkernel/b.ko: kernel/c.ko\nkernel/c.ko:\nkernel/d-x.ko.xz: kernel/c.ko\n",
        );
        let (order, unknown) = dep.load_order(&["a".into(), "d-x".into(), "nope".into()]);
        assert_eq!(order, vec!["c", "b", "a", "d_x"]);
        assert_eq!(unknown, vec!["nope"]);
        assert_eq!(dep.path_of("d_x"), Some("kernel/d-x.ko.xz"));
        let subset: StrSet = ["b".to_string(), "c".to_string()].into();
        assert_eq!(
            dep.render_subset(&subset),
            "kernel/b.ko: kernel/c.ko\nkernel/c.ko:\n"
        );
    }

    #[test]
    fn aliases_and_proc_modules() {
        let a = parse_aliases("# comment\nalias virtio:d00000001v* virtio_net\nalias pci:v*d*sv*sd*bc01sc08i02* nvme\nalias virtio:d00000001v* virtio-net\n");
        assert_eq!(a.len(), 3);
        assert_eq!(
            modules_for(&a, "virtio:d00000001v00001AF4"),
            vec!["virtio_net"]
        );
        assert!(modules_for(&a, "virtio:d00000009v00001AF4").is_empty());
        let m = parse_proc_modules(
            "virtio_net 61440 0 - Live 0x0\nfailover 16384 1 net_failover, Live 0x0\n",
        );
        assert!(m.contains("virtio_net") && m.contains("failover"));
    }
}
