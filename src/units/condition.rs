//! Unit conditions: `condition = { path-exists = "...", file-not-empty = "...", kernel-cmdline =
//! "flag" }`, each negated by a leading `!` (systemd's spelling, so an administrator's habit
//! applies). A unit whose condition does not hold is *skipped*, not failed: kubelet on a node that
//! has not joined yet waits for `/var/lib/kubelet/config.yaml` instead of crash-looping.
//!
//! Parsing (with line:col errors) and evaluation are both here and both pure: evaluation takes the
//! kernel command line as text and asks a closure about paths, so the supervisor supplies the
//! filesystem and tests supply a map.

use std::path::Path;

use toml::Value;

use super::fields::{span, Errors, SpTable};

/// What one condition tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionKind {
    /// The path exists (any file type; a symlink is followed).
    PathExists,
    /// The path is a regular file of at least one byte.
    FileNotEmpty,
    /// The kernel command line has this word, or `word=...` when the argument has no `=`.
    KernelCmdline,
}

impl ConditionKind {
    const KEYS: [(&'static str, ConditionKind); 3] = [
        ("path-exists", ConditionKind::PathExists),
        ("file-not-empty", ConditionKind::FileNotEmpty),
        ("kernel-cmdline", ConditionKind::KernelCmdline),
    ];

    pub fn key(self) -> &'static str {
        match self {
            ConditionKind::PathExists => "path-exists",
            ConditionKind::FileNotEmpty => "file-not-empty",
            ConditionKind::KernelCmdline => "kernel-cmdline",
        }
    }
}

/// One test; every condition of a unit must hold for it to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: ConditionKind,
    /// Written with a leading `!`: the test must fail.
    pub negate: bool,
    /// A path (absolute) or a kernel command-line word, without the `!`.
    pub arg: String,
}

impl Condition {
    /// The paths whose appearance or disappearance can change the outcome.
    pub fn path(&self) -> Option<&Path> {
        match self.kind {
            ConditionKind::PathExists | ConditionKind::FileNotEmpty => Some(Path::new(&self.arg)),
            ConditionKind::KernelCmdline => None,
        }
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bang = if self.negate { "!" } else { "" };
        write!(f, "{} = \"{bang}{}\"", self.kind.key(), self.arg)
    }
}

/// Reads `condition = { ... }`: each key once, each value a string or an array of strings.
pub(super) fn conditions(errs: &mut Errors, raw: Option<&SpTable>) -> Vec<Condition> {
    let mut out = Vec::new();
    for (k, v) in raw.map(|t| t.get_ref().iter()).into_iter().flatten() {
        let Some(kind) = ConditionKind::KEYS
            .iter()
            .find(|(n, _)| n == k.get_ref())
            .map(|(_, c)| *c)
        else {
            let known: Vec<&str> = ConditionKind::KEYS.iter().map(|(n, _)| *n).collect();
            errs.at(
                k.span(),
                format!(
                    "condition: unknown test {:?} (known: {})",
                    k.get_ref(),
                    known.join(", ")
                ),
            );
            continue;
        };
        let key = format!("condition.{}", kind.key());
        let args: Vec<&Value> = match v.get_ref() {
            Value::Array(a) if a.is_empty() => {
                errs.at(span(v), format!("{key}: must not be an empty array"));
                continue;
            }
            Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        for a in args {
            match one(kind, a) {
                Ok(c) => out.push(c),
                Err(m) => errs.at(span(v), format!("{key}: {m}")),
            }
        }
    }
    out
}

fn one(kind: ConditionKind, v: &Value) -> Result<Condition, String> {
    let Value::String(s) = v else {
        return Err(format!(
            "expected a string or an array of strings, found {}",
            v.type_str()
        ));
    };
    let (negate, arg) = match s.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, s.as_str()),
    };
    match kind {
        ConditionKind::PathExists | ConditionKind::FileNotEmpty => {
            if !arg.starts_with('/') {
                return Err(format!(
                    "must be an absolute path (with an optional leading '!'), got {s:?}"
                ));
            }
            if arg.contains('\0') {
                return Err("must not contain a NUL character".into());
            }
        }
        ConditionKind::KernelCmdline => {
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '"') {
                return Err(format!(
                    "must be one command-line word without spaces or quotes, got {s:?}"
                ));
            }
        }
    }
    Ok(Condition {
        kind,
        negate,
        arg: arg.to_string(),
    })
}

/// What evaluation needs to know about a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathState {
    Missing,
    /// Exists; `Some(len)` for a regular file, `None` for anything else.
    Present(Option<u64>),
}

/// Asks the filesystem (following symlinks).
pub fn stat_path(p: &Path) -> PathState {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => PathState::Present(Some(m.len())),
        Ok(_) => PathState::Present(None),
        Err(_) => PathState::Missing,
    }
}

/// Whether the word list of the kernel command line holds `arg`: an exact word, or for an `arg`
/// without `=`, also `arg=value`.
pub fn cmdline_has(words: &[String], arg: &str) -> bool {
    words.iter().any(|w| {
        w == arg || (!arg.contains('=') && w.strip_prefix(arg).is_some_and(|r| r.starts_with('=')))
    })
}

/// The first condition that does not hold, as the reason shown for a skipped unit; `None` when
/// every condition holds.
pub fn unmet(
    conds: &[Condition],
    cmdline_words: &[String],
    path_state: &mut dyn FnMut(&Path) -> PathState,
) -> Option<String> {
    for c in conds {
        let holds = match c.kind {
            ConditionKind::PathExists => path_state(Path::new(&c.arg)) != PathState::Missing,
            ConditionKind::FileNotEmpty => {
                matches!(path_state(Path::new(&c.arg)), PathState::Present(Some(n)) if n > 0)
            }
            ConditionKind::KernelCmdline => cmdline_has(cmdline_words, &c.arg),
        };
        if holds == c.negate {
            return Some(reason(c));
        }
    }
    None
}

/// "waiting for /var/lib/kubelet/config.yaml" reads better in `initctl status` than the key.
fn reason(c: &Condition) -> String {
    match (c.kind, c.negate) {
        (ConditionKind::PathExists, false) => format!("condition: {} does not exist", c.arg),
        (ConditionKind::PathExists, true) => format!("condition: {} exists", c.arg),
        (ConditionKind::FileNotEmpty, false) => {
            format!("condition: {} is missing or empty", c.arg)
        }
        (ConditionKind::FileNotEmpty, true) => format!("condition: {} is not empty", c.arg),
        (ConditionKind::KernelCmdline, false) => {
            format!("condition: kernel command line lacks {}", c.arg)
        }
        (ConditionKind::KernelCmdline, true) => {
            format!("condition: kernel command line has {}", c.arg)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;

    fn c(kind: ConditionKind, negate: bool, arg: &str) -> Condition {
        Condition {
            kind,
            negate,
            arg: arg.into(),
        }
    }

    fn fs(entries: &[(&str, PathState)]) -> impl FnMut(&Path) -> PathState {
        let m: BTreeMap<PathBuf, PathState> = entries
            .iter()
            .map(|(p, s)| (PathBuf::from(p), *s))
            .collect();
        move |p: &Path| m.get(p).copied().unwrap_or(PathState::Missing)
    }

    #[test]
    fn every_test_and_its_negation() {
        let words: Vec<String> = ["quiet", "lifsea.ops=1", "console=ttyS0"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let mut f = fs(&[
            ("/full", PathState::Present(Some(10))),
            ("/empty", PathState::Present(Some(0))),
            ("/dir", PathState::Present(None)),
        ]);
        let cases = [
            (c(ConditionKind::PathExists, false, "/full"), true),
            (c(ConditionKind::PathExists, false, "/dir"), true),
            (c(ConditionKind::PathExists, false, "/nope"), false),
            (c(ConditionKind::PathExists, true, "/nope"), true),
            (c(ConditionKind::PathExists, true, "/empty"), false),
            (c(ConditionKind::FileNotEmpty, false, "/full"), true),
            (c(ConditionKind::FileNotEmpty, false, "/empty"), false),
            (c(ConditionKind::FileNotEmpty, false, "/dir"), false),
            (c(ConditionKind::FileNotEmpty, false, "/nope"), false),
            (c(ConditionKind::FileNotEmpty, true, "/empty"), true),
            (c(ConditionKind::KernelCmdline, false, "quiet"), true),
            (c(ConditionKind::KernelCmdline, false, "lifsea.ops"), true),
            (c(ConditionKind::KernelCmdline, false, "lifsea.ops=1"), true),
            (
                c(ConditionKind::KernelCmdline, false, "lifsea.ops=0"),
                false,
            ),
            (c(ConditionKind::KernelCmdline, false, "console=tty"), false),
            (c(ConditionKind::KernelCmdline, false, "qui"), false),
            (c(ConditionKind::KernelCmdline, true, "quiet"), false),
            (c(ConditionKind::KernelCmdline, true, "debug"), true),
        ];
        for (cond, holds) in cases {
            let got = unmet(std::slice::from_ref(&cond), &words, &mut f);
            assert_eq!(got.is_none(), holds, "{cond}: {got:?}");
        }
    }

    #[test]
    fn first_unmet_condition_is_the_reason() {
        let conds = [
            c(ConditionKind::PathExists, false, "/etc/here"),
            c(
                ConditionKind::FileNotEmpty,
                false,
                "/var/lib/kubelet/config.yaml",
            ),
            c(ConditionKind::KernelCmdline, false, "missing"),
        ];
        let mut f = fs(&[("/etc/here", PathState::Present(None))]);
        assert_eq!(
            unmet(&conds, &[], &mut f).as_deref(),
            Some("condition: /var/lib/kubelet/config.yaml is missing or empty")
        );
        assert_eq!(unmet(&[], &[], &mut f), None);
    }

    #[test]
    fn stat_path_reads_the_filesystem() {
        let dir = std::env::temp_dir().join(format!("lifsea-cond-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("f");
        assert_eq!(stat_path(&f), PathState::Missing);
        std::fs::write(&f, "").unwrap();
        assert_eq!(stat_path(&f), PathState::Present(Some(0)));
        std::fs::write(&f, "x: 1\n").unwrap();
        assert_eq!(stat_path(&f), PathState::Present(Some(5)));
        assert_eq!(stat_path(&dir), PathState::Present(None));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
