//! Boot counting by the Boot Loader Specification, both halves as pure functions over parsed
//! entries: the bootloader's (order the entries, pick the first, decrement its counter by renaming
//! before booting it) and the init's (find its own entry, bless it by dropping the counter, give a
//! new deployment's entry its tries). The QEMU harness plays the bootloader with the same rules.
//!
//! Order, as the specification gives it: entries with tries left (or no counter) before entries
//! with zero tries left; within each group, entries with a `sort-key` first (by sort-key ascending,
//! then machine-id ascending, then version descending), then the others by entry id descending;
//! all comparisons of versions and ids use version comparison (digits as numbers). ostree writes no
//! sort-key and names the default deployment's entry with the highest number (`ostree-2-debian`),
//! so "newest first" falls out.

use std::cmp::Ordering;

use super::bls::{file_name, Counter, Entry};

/// Version comparison in the spirit of the UAPI version format: runs of digits compare as numbers,
/// other runs byte-wise, `~` sorts before anything (even the end), and a longer string with an
/// equal prefix is newer.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            _ => {}
        }
        let (da, ra) = split_run(a);
        let (db, rb) = split_run(b);
        let ord = match (da.first(), db.first()) {
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let ta = trim_zeros(da);
                let tb = trim_zeros(db);
                ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
            }
            // A number is newer than a word at the same place.
            (Some(x), Some(_)) if x.is_ascii_digit() => Ordering::Greater,
            (Some(_), Some(y)) if y.is_ascii_digit() => Ordering::Less,
            _ => da.cmp(db),
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = ra;
        b = rb;
    }
}

/// The leading run of digits or of non-digits (never `~`, handled by the caller).
fn split_run(s: &[u8]) -> (&[u8], &[u8]) {
    let digit = s.first().is_some_and(u8::is_ascii_digit);
    let n = s
        .iter()
        .position(|c| c.is_ascii_digit() != digit || *c == b'~')
        .unwrap_or(s.len());
    s.split_at(n.max(1))
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().position(|c| *c != b'0').unwrap_or(s.len());
    &s[n..]
}

/// The specification's order: the bootloader's menu, default first.
pub fn sort_entries(entries: &mut [Entry]) {
    crate::collections::sort::sort_by(entries, |a, b| {
        a.bad()
            .cmp(&b.bad())
            .then_with(|| match (&a.sort_key, &b.sort_key) {
                (Some(ka), Some(kb)) => ka
                    .cmp(kb)
                    .then_with(|| a.machine_id.cmp(&b.machine_id))
                    .then_with(|| {
                        vercmp(
                            b.version.as_deref().unwrap_or(""),
                            a.version.as_deref().unwrap_or(""),
                        )
                    })
                    .then_with(|| vercmp(&b.id, &a.id)),
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => vercmp(&b.id, &a.id),
            })
    });
}

/// What the bootloader does this boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The entry to boot, by its file name before any rename.
    pub file_name: String,
    /// The rename to make (and make durable) before booting, when the entry counts tries and has
    /// some left: `(old, new)`.
    pub rename: Option<(String, String)>,
}

/// The bootloader's half: the first entry in the specification's order; an entry with tries left
/// is decremented before it boots. When every entry is bad the first bad one boots anyway
/// (unchanged): a machine that boots something beats one that boots nothing.
pub fn choose(entries: &[Entry]) -> Option<Choice> {
    let mut sorted = entries.to_vec();
    sort_entries(&mut sorted);
    let first = sorted.first()?;
    let rename = decremented(first).map(|new| (first.file_name.clone(), new));
    Some(Choice {
        file_name: first.file_name.clone(),
        rename,
    })
}

/// `NAME+LEFT-DONE.conf` → `NAME+(LEFT-1)-(DONE+1).conf` (`+LEFT` counts as `-0`); `None` for
/// an entry without counter or without tries left.
pub fn decremented(e: &Entry) -> Option<String> {
    let c = e.counter?;
    if c.left == 0 {
        return None;
    }
    Some(file_name(
        &e.id,
        Some(Counter {
            left: c.left - 1,
            done: Some(c.done.unwrap_or(0).saturating_add(1)),
        }),
    ))
}

/// The init's own entry: the one whose `ostree=` option is the one the kernel was given (there is
/// no `LoaderBootCountPath` without EFI). `None` when no entry or more than one matches: blessing
/// the wrong entry would be worse than blessing none.
pub fn own_entry<'a>(entries: &'a [Entry], ostree_arg: &str) -> Option<&'a Entry> {
    let mut found = entries
        .iter()
        .filter(|e| e.option("ostree") == Some(ostree_arg));
    let first = found.next()?;
    match found.next() {
        None => Some(first),
        Some(_) => None,
    }
}

/// The blessing rename (as systemd-bless-boot does): the counter dropped. `None` when the entry
/// has no counter (already blessed, or never counted).
pub fn blessed_name(e: &Entry) -> Option<String> {
    e.counter.map(|_| file_name(&e.id, None))
}

/// A new deployment's entry with `tries` tries: `NAME.conf` → `NAME+TRIES.conf`.
pub fn with_tries(e: &Entry, tries: u32) -> String {
    file_name(
        &e.id,
        Some(Counter {
            left: tries,
            done: None,
        }),
    )
}

#[cfg(test)]
#[path = "bootcount_tests.rs"]
mod tests;
