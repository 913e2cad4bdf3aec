//! modprobe.d: the configuration administrators already write for kmod, read with kmod's meaning
//! so that existing knowledge applies.
//!
//! Supported: `blacklist MODULE` (the module is not loaded through an alias: coldplug, hotplug and
//! alias requests skip it; asking for it by name still loads it, as with kmod), `options MODULE
//! PARAM=VALUE...` (passed to finit_module), `softdep MODULE pre: A B post: C` (A and B are loaded
//! before MODULE, C after it; a failure there does not stop MODULE) and `alias PATTERN MODULE`
//! (consulted before modules.alias). `install` and `remove` run shell commands, which this init
//! does not do: they are reported as unsupported, once, when the configuration is read.
//!
//! Files: every `*.conf` in `/usr/lib/modprobe.d` and `/etc/modprobe.d`, in file-name order across
//! both, a file in `/etc` replacing the same-named one in `/usr/lib`. Then the kernel command line:
//! `modprobe.blacklist=a,b` and `MODULE.PARAM=VALUE` (added after the files' options).

use crate::collections::keyset::StrSet;
use crate::collections::strmap::StrMap;
use std::path::{Path, PathBuf};

use super::modalias::normalize;

pub const VENDOR_DIR: &str = "/usr/lib/modprobe.d";
pub const ADMIN_DIR: &str = "/etc/modprobe.d";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModprobeDError {
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error("{file}:{line}: '{command}' is not supported (no shell commands); line ignored")]
    Unsupported {
        file: String,
        line: usize,
        command: String,
    },
    #[error("read {path}: {message}")]
    Read { path: PathBuf, message: String },
}

/// `softdep` lists for one module.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Softdep {
    pub pre: Vec<String>,
    pub post: Vec<String>,
}

/// Everything modprobe.d and the command line say, merged.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModprobeConfig {
    pub blacklist: StrSet,
    /// Module → parameters, in the order given (`a=1 b=2`).
    pub options: StrMap<Vec<String>>,
    pub softdeps: StrMap<Softdep>,
    /// `alias PATTERN MODULE`, in file order.
    pub aliases: Vec<(String, String)>,
}

impl ModprobeConfig {
    /// The parameter string for finit_module (`a=1 b=2`), empty when none.
    pub fn params_for(&self, module: &str) -> String {
        self.options
            .get(&normalize(module))
            .map(|v| v.join(" "))
            .unwrap_or_default()
    }

    pub fn is_blacklisted(&self, module: &str) -> bool {
        self.blacklist.contains(&normalize(module))
    }

    /// Parses one file's text (`file` names it in errors) into `self`; returns the problems,
    /// each line with a problem being ignored as a whole.
    pub fn parse_file(&mut self, file: &str, text: &str) -> Vec<ModprobeDError> {
        let mut errors = Vec::new();
        let syntax = |line: usize, message: String| ModprobeDError::Syntax {
            file: file.to_string(),
            line,
            message,
        };
        for (line_no, line) in logical_lines(text) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some((&cmd, args)) = words.split_first() else {
                continue;
            };
            match cmd {
                "blacklist" => match args {
                    [m] => {
                        self.blacklist.insert(normalize(m));
                    }
                    _ => errors.push(syntax(line_no, "blacklist takes one module name".into())),
                },
                "options" => match args {
                    [m, params @ ..] if !params.is_empty() => {
                        self.options
                            .entry(normalize(m))
                            .or_default()
                            .extend(params.iter().map(|p| p.to_string()));
                    }
                    _ => errors.push(syntax(
                        line_no,
                        "options takes a module name and at least one parameter".into(),
                    )),
                },
                "alias" => match args {
                    [pattern, m] => self.aliases.push((pattern.to_string(), normalize(m))),
                    _ => errors.push(syntax(
                        line_no,
                        "alias takes a pattern and a module name".into(),
                    )),
                },
                "softdep" => match parse_softdep(args) {
                    Ok((m, sd)) => {
                        let e = self.softdeps.entry(m).or_default();
                        e.pre.extend(sd.pre);
                        e.post.extend(sd.post);
                    }
                    Err(msg) => errors.push(syntax(line_no, msg)),
                },
                "install" | "remove" => errors.push(ModprobeDError::Unsupported {
                    file: file.to_string(),
                    line: line_no,
                    command: cmd.to_string(),
                }),
                other => errors.push(syntax(line_no, format!("unknown command '{other}'"))),
            }
        }
        errors
    }

    /// Applies the kernel command line: `modprobe.blacklist=a,b` and `MODULE.PARAM=VALUE`.
    pub fn apply_cmdline(&mut self, cmdline: &str) {
        for word in crate::procfs::cmdline_words(cmdline) {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            if key == "modprobe.blacklist" {
                self.blacklist
                    .extend(value.split(',').filter(|m| !m.is_empty()).map(normalize));
                continue;
            }
            let Some((module, param)) = key.split_once('.') else {
                continue;
            };
            if module.is_empty() || param.is_empty() || module == "modprobe" {
                continue;
            }
            let v = if value.contains(' ') {
                format!("{param}=\"{value}\"")
            } else {
                format!("{param}={value}")
            };
            self.options.entry(normalize(module)).or_default().push(v);
        }
    }
}

/// Lines with comments removed and `\`-continuations joined, with the number of their first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if cur.is_empty() {
            start = i + 1;
        }
        let line = if raw.trim_start().starts_with('#') {
            ""
        } else {
            raw
        };
        match line.strip_suffix('\\') {
            Some(l) => {
                cur.push_str(l);
                cur.push(' ');
            }
            None => {
                cur.push_str(line);
                out.push((start, std::mem::take(&mut cur)));
            }
        }
    }
    if !cur.is_empty() {
        out.push((start, cur));
    }
    out
}

fn parse_softdep(args: &[&str]) -> Result<(String, Softdep), String> {
    let Some((m, rest)) = args.split_first() else {
        return Err("softdep takes a module name and pre:/post: lists".into());
    };
    if m.ends_with(':') {
        return Err("softdep takes a module name before pre:/post:".into());
    }
    let mut sd = Softdep::default();
    let mut target: Option<&mut Vec<String>> = None;
    for w in rest {
        match *w {
            "pre:" => target = Some(&mut sd.pre),
            "post:" => target = Some(&mut sd.post),
            name => match target.as_mut() {
                // Module names or aliases (`crypto-md5`): resolved when a plan is made.
                Some(t) => t.push(name.to_string()),
                None => return Err(format!("softdep: '{name}' is not after pre: or post:")),
            },
        }
    }
    if sd.pre.is_empty() && sd.post.is_empty() {
        return Err("softdep names no pre: or post: modules".into());
    }
    Ok((normalize(m), sd))
}

/// Reads the configuration from `dirs` and the command line text; returns it with every problem.
pub fn load(dirs: &[PathBuf], cmdline: &str) -> (ModprobeConfig, Vec<ModprobeDError>) {
    let mut cfg = ModprobeConfig::default();
    let mut errors = Vec::new();
    for path in crate::paths::conf_files(dirs) {
        match std::fs::read_to_string(&path) {
            Ok(text) => errors.extend(cfg.parse_file(&path.to_string_lossy(), &text)),
            Err(e) => errors.push(ModprobeDError::Read {
                path: path.clone(),
                message: e.to_string(),
            }),
        }
    }
    cfg.apply_cmdline(cmdline);
    (cfg, errors)
}

/// The machine's configuration (`/usr/lib/modprobe.d`, `/etc/modprobe.d`, /proc/cmdline).
pub fn load_system(root: &Path) -> (ModprobeConfig, Vec<ModprobeDError>) {
    let dirs = [
        root.join(VENDOR_DIR.trim_start_matches('/')),
        root.join(ADMIN_DIR.trim_start_matches('/')),
    ];
    let cmdline = std::fs::read_to_string(root.join("proc/cmdline")).unwrap_or_default();
    load(&dirs, &cmdline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command() {
        let mut c = ModprobeConfig::default();
        let errors = c.parse_file(
            "/etc/modprobe.d/a.conf",
            "# comment\n\nblacklist pcspkr\nblacklist floppy-x\noptions nvme poll_queues=2 \\\n  io_queue_depth=64\noptions nvme x=1\nsoftdep virtio_net pre: failover post: virtio-rng\nalias my-net virtio_net\n",
        );
        assert_eq!(errors, vec![]);
        assert!(
            c.is_blacklisted("pcspkr")
                && c.is_blacklisted("floppy_x")
                && c.is_blacklisted("floppy-x")
        );
        assert_eq!(c.params_for("nvme"), "poll_queues=2 io_queue_depth=64 x=1");
        assert_eq!(c.params_for("virtio_blk"), "");
        assert_eq!(
            c.softdeps["virtio_net"],
            Softdep {
                pre: vec!["failover".into()],
                post: vec!["virtio-rng".into()]
            }
        );
        assert_eq!(
            c.aliases,
            vec![("my-net".to_string(), "virtio_net".to_string())]
        );
    }

    #[test]
    fn exact_errors_with_file_and_line() {
        let mut c = ModprobeConfig::default();
        let errors = c.parse_file(
            "/usr/lib/modprobe.d/x.conf",
            "blacklist\ninstall foo /bin/true\nremove foo /bin/false\nfrobnicate foo\noptions nvme\nsoftdep a b\nsoftdep pre: x\nalias a\nblacklist ok\n",
        );
        let msgs: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            msgs,
            vec![
                "/usr/lib/modprobe.d/x.conf:1: blacklist takes one module name",
                "/usr/lib/modprobe.d/x.conf:2: 'install' is not supported (no shell commands); line ignored",
                "/usr/lib/modprobe.d/x.conf:3: 'remove' is not supported (no shell commands); line ignored",
                "/usr/lib/modprobe.d/x.conf:4: unknown command 'frobnicate'",
                "/usr/lib/modprobe.d/x.conf:5: options takes a module name and at least one parameter",
                "/usr/lib/modprobe.d/x.conf:6: softdep: 'b' is not after pre: or post:",
                "/usr/lib/modprobe.d/x.conf:7: softdep takes a module name before pre:/post:",
                "/usr/lib/modprobe.d/x.conf:8: alias takes a pattern and a module name",
            ]
        );
        // Bad lines change nothing; the good one still counts.
        assert_eq!(c.blacklist.len(), 1);
        assert!(c.options.is_empty() && c.softdeps.is_empty() && c.aliases.is_empty());
    }

    #[test]
    fn continuation_lines_report_their_first_line() {
        let mut c = ModprobeConfig::default();
        let e = c.parse_file("f", "blacklist a\nbogus \\\n more\n");
        assert_eq!(e[0].to_string(), "f:2: unknown command 'bogus'");
    }

    #[test]
    fn command_line_blacklist_and_parameters() {
        let mut c = ModprobeConfig::default();
        c.parse_file("f", "options nvme a=1\n");
        c.apply_cmdline(
            "root=LABEL=root ro modprobe.blacklist=bochs,pcspkr-x nvme.b=2 virtio-net.napi_tx=0 quiet x.y=\"p q\"\n",
        );
        assert!(c.is_blacklisted("bochs") && c.is_blacklisted("pcspkr_x"));
        assert_eq!(c.params_for("nvme"), "a=1 b=2");
        assert_eq!(c.params_for("virtio_net"), "napi_tx=0");
        assert_eq!(c.params_for("x"), "y=\"p q\"");
        assert!(!c.options.contains_key("root") && !c.options.contains_key("modprobe"));
    }

    #[test]
    fn admin_file_replaces_vendor_file_of_the_same_name() {
        let t = std::env::temp_dir().join(format!("lifsea-modprobe-d-{}", std::process::id()));
        let (v, a) = (t.join("usr"), t.join("etc"));
        std::fs::create_dir_all(&v).unwrap();
        std::fs::create_dir_all(&a).unwrap();
        std::fs::write(v.join("10-x.conf"), "blacklist vendor_only\n").unwrap();
        std::fs::write(v.join("20-y.conf"), "blacklist kept\n").unwrap();
        std::fs::write(a.join("10-x.conf"), "blacklist admin\n").unwrap();
        std::fs::write(a.join("notes.txt"), "blacklist ignored\n").unwrap();
        let (c, errors) = load(&[v.clone(), a.clone()], "modprobe.blacklist=cmd");
        assert!(errors.is_empty());
        let bl: Vec<&str> = c.blacklist.iter().map(String::as_str).collect();
        assert_eq!(bl, vec!["admin", "cmd", "kept"]);
        std::fs::remove_dir_all(&t).unwrap();
    }
}
