use std::cmp::Ordering;

use super::*;
use crate::os::bls::parse_entry;

fn entry(file: &str, ostree: &str) -> Entry {
    parse_entry(
        file,
        &format!("title t\nversion 1\noptions root=LABEL=r ostree={ostree}\nlinux /k\n"),
    )
    .unwrap()
}

fn names(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.file_name.as_str()).collect()
}

#[test]
fn version_comparison() {
    use Ordering::*;
    let cases = [
        ("1", "2", Less),
        ("10", "9", Greater),
        ("ostree-10-debian", "ostree-9-debian", Greater),
        ("1.0", "1.0", Equal),
        ("001", "1", Equal),
        ("1.0~rc1", "1.0", Less),
        ("1.0", "1.0.1", Less),
        ("a", "b", Less),
        ("1a", "1", Greater),
        ("6.1.0-57", "6.1.0-9", Greater),
        ("", "", Equal),
        ("~", "", Less),
    ];
    for (a, b, want) in cases {
        assert_eq!(vercmp(a, b), want, "{a} vs {b}");
        assert_eq!(vercmp(b, a), want.reverse(), "{b} vs {a}");
    }
}

#[test]
fn newest_first_bad_last() {
    let mut e = vec![
        entry("ostree-1-debian.conf", "/a"),
        entry("ostree-3-debian+0-3.conf", "/c"),
        entry("ostree-2-debian+1-2.conf", "/b"),
        entry("ostree-10-debian+0.conf", "/d"),
    ];
    sort_entries(&mut e);
    assert_eq!(
        names(&e),
        [
            "ostree-2-debian+1-2.conf",
            "ostree-1-debian.conf",
            "ostree-10-debian+0.conf",
            "ostree-3-debian+0-3.conf"
        ]
    );
}

#[test]
fn sort_key_entries_come_first() {
    let mut a = entry("z.conf", "/z");
    a.sort_key = Some("debian".into());
    a.version = Some("1".into());
    let mut b = entry("y.conf", "/y");
    b.sort_key = Some("debian".into());
    b.version = Some("2".into());
    let mut c = entry("x.conf", "/x");
    c.sort_key = Some("arch".into());
    let d = entry("zz.conf", "/zz");
    let mut e = vec![d, a, b, c];
    sort_entries(&mut e);
    assert_eq!(names(&e), ["x.conf", "y.conf", "z.conf", "zz.conf"]);
}

#[test]
fn choose_decrements_the_newest_with_tries() {
    let e = vec![
        entry("ostree-1-debian.conf", "/a"),
        entry("ostree-2-debian+3.conf", "/b"),
    ];
    let c = choose(&e).unwrap();
    assert_eq!(c.file_name, "ostree-2-debian+3.conf");
    assert_eq!(
        c.rename,
        Some((
            "ostree-2-debian+3.conf".into(),
            "ostree-2-debian+2-1.conf".into()
        ))
    );
}

#[test]
fn three_tries_then_fallback() {
    // The bootloader's loop over a deployment that never gets blessed.
    let mut new = entry("ostree-2-debian+3.conf", "/b");
    let old = entry("ostree-1-debian.conf", "/a");
    let mut booted = Vec::new();
    for _ in 0..5 {
        let e = vec![old.clone(), new.clone()];
        let c = choose(&e).unwrap();
        booted.push(c.file_name.clone());
        if let Some((from, to)) = c.rename {
            assert_eq!(from, new.file_name);
            new = entry(&to, "/b");
        }
    }
    assert_eq!(
        booted,
        [
            "ostree-2-debian+3.conf",
            "ostree-2-debian+2-1.conf",
            "ostree-2-debian+1-2.conf",
            "ostree-1-debian.conf",
            "ostree-1-debian.conf"
        ]
    );
    assert_eq!(new.file_name, "ostree-2-debian+0-3.conf");
}

#[test]
fn blessed_entry_stays_default() {
    let e = vec![
        entry("ostree-1-debian.conf", "/a"),
        entry("ostree-2-debian+2-1.conf", "/b"),
    ];
    let own = own_entry(&e, "/b").unwrap();
    let blessed = blessed_name(own).unwrap();
    assert_eq!(blessed, "ostree-2-debian.conf");
    let e = vec![e[0].clone(), entry(&blessed, "/b")];
    for _ in 0..2 {
        let c = choose(&e).unwrap();
        assert_eq!(c.file_name, "ostree-2-debian.conf");
        assert_eq!(c.rename, None);
    }
}

#[test]
fn all_bad_boots_the_first_bad_unchanged() {
    let e = vec![entry("a+0-3.conf", "/a"), entry("b+0-1.conf", "/b")];
    let c = choose(&e).unwrap();
    assert_eq!(c.file_name, "b+0-1.conf");
    assert_eq!(c.rename, None);
    assert_eq!(choose(&[]), None);
}

#[test]
fn own_entry_matches_ostree_exactly_and_uniquely() {
    let e = vec![
        entry("ostree-1-debian.conf", "/ostree/boot.1/debian/aa/0"),
        entry("ostree-2-debian+1-2.conf", "/ostree/boot.1/debian/bb/0"),
    ];
    assert_eq!(
        own_entry(&e, "/ostree/boot.1/debian/bb/0").map(|e| e.file_name.as_str()),
        Some("ostree-2-debian+1-2.conf")
    );
    assert_eq!(own_entry(&e, "/ostree/boot.1/debian/bb"), None);
    assert_eq!(own_entry(&e, "/ostree/boot.0/debian/bb/0"), None);
    let twice = vec![
        e[1].clone(),
        entry("other.conf", "/ostree/boot.1/debian/bb/0"),
    ];
    assert_eq!(own_entry(&twice, "/ostree/boot.1/debian/bb/0"), None);
}

#[test]
fn blessing_and_tries_names() {
    assert_eq!(blessed_name(&entry("a.conf", "/")), None);
    assert_eq!(
        blessed_name(&entry("a+0-3.conf", "/")),
        Some("a.conf".into())
    );
    assert_eq!(blessed_name(&entry("a+3.conf", "/")), Some("a.conf".into()));
    assert_eq!(with_tries(&entry("a.conf", "/"), 3), "a+3.conf");
    assert_eq!(decremented(&entry("a.conf", "/")), None);
    assert_eq!(decremented(&entry("a+0-2.conf", "/")), None);
    assert_eq!(
        decremented(&entry("a+1.conf", "/")),
        Some("a+0-1.conf".into())
    );
}
