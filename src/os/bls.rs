//! Boot Loader Specification (type #1) entries: the `key value` lines ostree writes into
//! `/boot/loader/entries/*.conf`, and the boot counter in the file name (`NAME+LEFT-DONE.conf`,
//! `NAME+LEFT.conf`). Pure: text in, data out; no file is read here.

use thiserror::Error;

/// Why an entry could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BlsError {
    #[error("{file}: not a .conf file name")]
    NotConf { file: String },
    #[error("{file}: empty entry name")]
    EmptyName { file: String },
    #[error("{file}: bad boot counter {counter:?} (want +LEFT or +LEFT-DONE, decimal)")]
    BadCounter { file: String, counter: String },
    #[error("{file}: '+' in the entry name (only the boot counter may follow a '+')")]
    PlusInName { file: String },
    #[error("{file}:{line}: {key} given twice")]
    Duplicate {
        file: String,
        line: usize,
        key: String,
    },
    #[error("{file}: no linux line")]
    NoLinux { file: String },
}

/// The boot counter of an entry's file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    /// Tries left; 0 means the entry is bad (sorted last, booted only when nothing else is left).
    pub left: u32,
    /// Tries done; absent in a fresh `+LEFT` name, where it counts as 0.
    pub done: Option<u32>,
}

/// A file name split into the entry's identity and its counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryName {
    /// The name without counter and `.conf` (the entry's stable identity: `ostree-2-debian`).
    pub id: String,
    pub counter: Option<Counter>,
}

/// One parsed entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Entry {
    /// The file name as found (with counter and `.conf`).
    pub file_name: String,
    pub id: String,
    pub counter: Option<Counter>,
    pub title: Option<String>,
    pub version: Option<String>,
    pub sort_key: Option<String>,
    pub machine_id: Option<String>,
    /// Every `options` line, joined with spaces (the specification allows several).
    pub options: String,
    pub linux: String,
    pub initrd: Vec<String>,
}

impl Entry {
    /// Tries left, when the entry counts at all.
    pub fn tries_left(&self) -> Option<u32> {
        self.counter.map(|c| c.left)
    }
    /// Blessed: no counter in the name (never counted, or counted and blessed).
    pub fn blessed(&self) -> bool {
        self.counter.is_none()
    }
    /// Bad: counted down to zero tries left.
    pub fn bad(&self) -> bool {
        self.counter.is_some_and(|c| c.left == 0)
    }
    /// The value of the first `key=value` word in `options` with this key.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .split_whitespace()
            .find_map(|w| w.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
    }
}

fn decimal(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Splits `NAME+LEFT-DONE.conf` / `NAME+LEFT.conf` / `NAME.conf`. The counter is the text after
/// the last `+`; a name whose last `+` is followed by something that is not a counter is refused
/// rather than taken as part of the name, so a mangled counter is never silently "blessed".
pub fn parse_file_name(file: &str) -> Result<EntryName, BlsError> {
    let stem = file
        .strip_suffix(".conf")
        .ok_or_else(|| BlsError::NotConf {
            file: file.to_string(),
        })?;
    let (id, counter) = match stem.rsplit_once('+') {
        None => (stem, None),
        Some((id, counter)) => {
            let bad = || BlsError::BadCounter {
                file: file.to_string(),
                counter: counter.to_string(),
            };
            let parsed = match counter.split_once('-') {
                None => Counter {
                    left: decimal(counter).ok_or_else(bad)?,
                    done: None,
                },
                Some((l, d)) => Counter {
                    left: decimal(l).ok_or_else(bad)?,
                    done: Some(decimal(d).ok_or_else(bad)?),
                },
            };
            (id, Some(parsed))
        }
    };
    // Blessing drops the counter: `a+b+3.conf` would become `a+b.conf`, which reads as a mangled
    // counter, so the blessed entry would vanish from the init's view (found by fuzz/).
    if id.contains('+') {
        return Err(BlsError::PlusInName {
            file: file.to_string(),
        });
    }
    if id.is_empty() {
        return Err(BlsError::EmptyName {
            file: file.to_string(),
        });
    }
    Ok(EntryName {
        id: id.to_string(),
        counter,
    })
}

/// The file name for an entry id with an optional counter.
pub fn file_name(id: &str, counter: Option<Counter>) -> String {
    match counter {
        None => format!("{id}.conf"),
        Some(Counter { left, done: None }) => format!("{id}+{left}.conf"),
        Some(Counter {
            left,
            done: Some(done),
        }) => format!("{id}+{left}-{done}.conf"),
    }
}

/// Parses an entry's text. Unknown keys are ignored (the specification has more than the init
/// uses: `devicetree`, `architecture`, ...); comments start with `#`.
pub fn parse_entry(file: &str, text: &str) -> Result<Entry, BlsError> {
    let name = parse_file_name(file)?;
    let mut e = Entry {
        file_name: file.to_string(),
        id: name.id,
        counter: name.counter,
        ..Entry::default()
    };
    let mut linux = None;
    let mut options = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((k, v)) => (k, v.trim()),
            None => (line, ""),
        };
        let single = |slot: &mut Option<String>| {
            if slot.is_some() {
                return Err(BlsError::Duplicate {
                    file: file.to_string(),
                    line: i + 1,
                    key: key.to_string(),
                });
            }
            *slot = Some(value.to_string());
            Ok(())
        };
        match key {
            "title" => single(&mut e.title)?,
            "version" => single(&mut e.version)?,
            "sort-key" => single(&mut e.sort_key)?,
            "machine-id" => single(&mut e.machine_id)?,
            "linux" => single(&mut linux)?,
            "options" => options.push(value.to_string()),
            "initrd" => e.initrd.push(value.to_string()),
            _ => {}
        }
    }
    e.linux = linux.ok_or_else(|| BlsError::NoLinux {
        file: file.to_string(),
    })?;
    e.options = options.join(" ");
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OSTREE_ENTRY: &str = "title Debian GNU/Linux 12 (bookworm) (ostree:0)\n\
        version 2\n\
        options root=LABEL=lifsea-root console=ttyS0 ostree=/ostree/boot.1/debian/0b1c/0\n\
        linux /ostree/debian-0b1c/vmlinuz-6.1.0-57-cloud-amd64\n";

    #[test]
    fn file_names_with_and_without_counters() {
        let n = parse_file_name("ostree-2-debian.conf").unwrap();
        assert_eq!(n.id, "ostree-2-debian");
        assert_eq!(n.counter, None);
        let n = parse_file_name("ostree-2-debian+3.conf").unwrap();
        assert_eq!(n.id, "ostree-2-debian");
        assert_eq!(
            n.counter,
            Some(Counter {
                left: 3,
                done: None
            })
        );
        let n = parse_file_name("ab+0-3.conf").unwrap();
        assert_eq!(n.id, "ab");
        assert_eq!(
            n.counter,
            Some(Counter {
                left: 0,
                done: Some(3)
            })
        );
    }

    #[test]
    fn every_name_the_init_writes_reads_back() {
        // `a+b+3.conf` blessed would be `a+b.conf`, refused as a mangled counter: refuse the `+`
        // in the name up front instead.
        assert_eq!(
            parse_file_name("a+b+3.conf"),
            Err(BlsError::PlusInName {
                file: "a+b+3.conf".into()
            })
        );
        for name in ["x+3.conf", "x+0-3.conf", "x.conf"] {
            let n = parse_file_name(name).unwrap();
            for c in [None, n.counter] {
                assert_eq!(parse_file_name(&file_name(&n.id, c)).unwrap().id, n.id);
            }
        }
    }

    #[test]
    fn bad_file_names_are_refused() {
        assert!(matches!(
            parse_file_name("x.cfg"),
            Err(BlsError::NotConf { .. })
        ));
        assert!(matches!(
            parse_file_name("+3.conf"),
            Err(BlsError::EmptyName { .. })
        ));
        for bad in [
            "x+.conf",
            "x+a.conf",
            "x+3-.conf",
            "x+-1.conf",
            "x+3-b.conf",
            "x+1-2-3.conf",
        ] {
            assert!(
                matches!(parse_file_name(bad), Err(BlsError::BadCounter { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_file_name("x+99999999999.conf"),
            Err(BlsError::BadCounter { .. })
        ));
    }

    #[test]
    fn file_name_round_trips() {
        for f in [
            "a.conf",
            "a+3.conf",
            "a+0-3.conf",
            "ostree-1-debian+2-1.conf",
        ] {
            let n = parse_file_name(f).unwrap();
            assert_eq!(file_name(&n.id, n.counter), f);
        }
    }

    #[test]
    fn ostree_entry_parses() {
        let e = parse_entry("ostree-2-debian+3.conf", OSTREE_ENTRY).unwrap();
        assert_eq!(
            e.title.as_deref(),
            Some("Debian GNU/Linux 12 (bookworm) (ostree:0)")
        );
        assert_eq!(e.version.as_deref(), Some("2"));
        assert_eq!(e.linux, "/ostree/debian-0b1c/vmlinuz-6.1.0-57-cloud-amd64");
        assert!(e.initrd.is_empty());
        assert_eq!(e.option("ostree"), Some("/ostree/boot.1/debian/0b1c/0"));
        assert_eq!(e.option("root"), Some("LABEL=lifsea-root"));
        assert_eq!(e.option("roo"), None);
        assert_eq!(e.tries_left(), Some(3));
        assert!(!e.blessed());
        assert!(!e.bad());
    }

    #[test]
    fn several_options_and_initrd_lines_accumulate() {
        let text =
            "# comment\n\nlinux /k\ninitrd /a\ninitrd /b\noptions a=1\noptions  b=2 \nfoo bar\n";
        let e = parse_entry("x.conf", text).unwrap();
        assert_eq!(e.options, "a=1 b=2");
        assert_eq!(e.initrd, vec!["/a", "/b"]);
        assert!(e.blessed());
    }

    #[test]
    fn duplicates_and_missing_linux_are_errors() {
        assert_eq!(
            parse_entry("x.conf", "linux /a\nversion 1\nversion 2\n"),
            Err(BlsError::Duplicate {
                file: "x.conf".into(),
                line: 3,
                key: "version".into()
            })
        );
        assert_eq!(
            parse_entry("x.conf", "title t\n"),
            Err(BlsError::NoLinux {
                file: "x.conf".into()
            })
        );
    }
}
