use super::*;

fn tmp(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("lifsea-unitlog-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    p
}

fn dir_bytes(dir: &Path) -> (u64, usize) {
    let mut total = 0;
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        total += e.unwrap().metadata().unwrap().len();
        n += 1;
    }
    (total, n)
}

/// write(2) calls made by the calling thread so far (`syscw` of /proc/thread-self/io: other test
/// threads do not count).
fn thread_writes() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/io").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("syscw: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn timestamps_are_rfc3339_utc() {
    assert_eq!(format_timestamp(0), "1970-01-01T00:00:00.000000Z");
    // 2000-02-29 12:34:56.789 UTC, a leap day in a year divisible by 400.
    assert_eq!(
        format_timestamp(951_827_696_789_000),
        "2000-02-29T12:34:56.789000Z"
    );
    assert_eq!(
        format_timestamp(1_795_750_000_000_001),
        "2026-11-27T03:26:40.000001Z"
    );
}

#[test]
fn rotation_bounds_disk_use() {
    let dir = tmp("rotate");
    let rot = Rotation {
        max_file_bytes: 4096,
        max_files: 3,
    };
    let mut logs = UnitLogs::with_rotation(100, rot);
    logs.set_dir(&dir).unwrap();
    for i in 0..5000 {
        logs.push(
            "svc",
            Stream::Stdout,
            format!("line number {i} with some padding text").as_bytes(),
        );
        if i % 100 == 0 {
            logs.flush();
        }
    }
    logs.flush();
    let (total, files) = dir_bytes(&dir);
    assert!(
        total <= rot.max_total_bytes(),
        "{total} > {}",
        rot.max_total_bytes()
    );
    assert_eq!(files, 3);
    assert!(
        total > rot.max_total_bytes() * 2 / 3,
        "rotation threw away too much: {total}"
    );
    // One huge line is cut to fit instead of overflowing a file.
    logs.push("svc", Stream::Stderr, &vec![b'x'; 10_000]);
    logs.push("svc", Stream::Stdout, b"the last line");
    logs.flush();
    let (total, files) = dir_bytes(&dir);
    assert!(
        total <= rot.max_total_bytes(),
        "{total} > {}",
        rot.max_total_bytes()
    );
    assert_eq!(files, 3);
    for n in ["svc.log", "svc.log.1", "svc.log.2"] {
        assert!(std::fs::metadata(dir.join(n)).unwrap().len() <= 4096, "{n}");
    }
    let live = std::fs::read_to_string(dir.join("svc.log")).unwrap();
    assert!(live.ends_with(" stdout the last line\n"), "{live}");
    let older = std::fs::read_to_string(dir.join("svc.log.2")).unwrap();
    assert!(
        older.contains("line number 4"),
        "oldest file holds older lines"
    );
    assert_eq!(logs.tail("svc", 1000).len(), 100, "memory ring unaffected");
    assert_eq!(logs.dropped("svc"), 0);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lines_before_set_dir_are_flushed_to_the_file() {
    let dir = tmp("flush");
    let mut logs = UnitLogs::new(10);
    logs.push("a", Stream::Stdout, b"early one");
    logs.push("a", Stream::Init, b"early two");
    assert!(!dir.exists());
    logs.set_dir(&dir).unwrap();
    logs.push("a", Stream::Stderr, b"late");
    logs.push("../escape", Stream::Stdout, b"never a file");
    logs.flush();
    let text = std::fs::read_to_string(dir.join("a.log")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].ends_with(" stdout early one"));
    assert!(lines[1].ends_with(" init early two"));
    assert!(lines[2].ends_with(" stderr late"));
    assert!(
        lines[0].len() > 28 && lines[0].as_bytes()[10] == b'T',
        "{}",
        lines[0]
    );
    assert_eq!(dir_bytes(&dir).1, 1);
    assert!(!dir.parent().unwrap().join("escape.log").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Finding 10 of issue 12: every line was its own write(2) on PID 1's thread. Lines now wait for
/// the loop's flush, which writes each unit's lines at once. Seen failing before (1000 writes).
#[test]
fn a_flush_writes_each_unit_once() {
    let dir = tmp("batch");
    let mut logs = UnitLogs::new(2000);
    logs.set_dir(&dir).unwrap();
    let before = thread_writes();
    for i in 0..1000 {
        logs.push("a", Stream::Stdout, format!("a line {i}").as_bytes());
        logs.push("b", Stream::Stderr, format!("b line {i}").as_bytes());
    }
    assert_eq!(thread_writes(), before, "pushing wrote already");
    assert!(!dir.join("a.log").exists() || std::fs::read(dir.join("a.log")).unwrap().is_empty());
    logs.flush();
    assert_eq!(thread_writes() - before, 2, "one write per unit");
    assert_eq!(
        std::fs::read_to_string(dir.join("a.log"))
            .unwrap()
            .lines()
            .count(),
        1000
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("b.log"))
            .unwrap()
            .lines()
            .count(),
        1000
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The queue is bounded: a unit writing more than `QUEUE_BYTES` between two flushes is written out
/// as the bound is reached, not held in memory.
#[test]
fn the_queue_is_bounded() {
    let dir = tmp("bound");
    let mut logs = UnitLogs::with_rotation(
        10,
        Rotation {
            max_file_bytes: 64 * 1024 * 1024,
            max_files: 2,
        },
    );
    logs.set_dir(&dir).unwrap();
    let line = vec![b'y'; 1000];
    let n = 3 * disk::QUEUE_BYTES / 1000;
    for _ in 0..n {
        logs.push("a", Stream::Stdout, &line);
    }
    let on_disk = std::fs::metadata(dir.join("a.log")).unwrap().len() as usize;
    let pushed = n * 1030;
    assert!(
        pushed - on_disk <= disk::QUEUE_BYTES,
        "{} bytes queued",
        pushed - on_disk
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A full disk (here /dev/full behind the log file's name: every write fails with ENOSPC) drops
/// lines from the file, never from memory; they are counted, the ring says so, and once writing
/// works again the file starts with how many lines it misses.
#[test]
fn a_full_disk_drops_counted_lines_and_says_so_when_it_recovers() {
    let dir = tmp("full");
    let mut logs = UnitLogs::new(100);
    logs.set_dir(&dir).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.join("a.log")).unwrap();
    for i in 0..5 {
        logs.push("a", Stream::Stdout, format!("lost {i}").as_bytes());
    }
    logs.push("b", Stream::Stdout, b"b is fine");
    logs.flush();
    logs.push("a", Stream::Stdout, b"lost 5");
    logs.flush();
    assert_eq!(logs.dropped("a"), 6);
    assert_eq!(logs.dropped("b"), 0);
    let ring: Vec<String> = logs.tail("a", 100).into_iter().map(|l| l.text).collect();
    assert_eq!(ring.len(), 7, "{ring:?}");
    assert!(
        ring[5].contains("log file not written") && ring[5].contains("No space left"),
        "{ring:?}"
    );
    // The disk has room again.
    std::fs::remove_file(dir.join("a.log")).unwrap();
    logs.push("a", Stream::Stdout, b"kept");
    logs.flush();
    let text = std::fs::read_to_string(dir.join("a.log")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].ends_with(
            " init 6 lines of this log are missing from its file (the disk refused them)"
        ),
        "{text}"
    );
    assert!(lines[1].ends_with(" stdout kept"), "{text}");
    assert_eq!(logs.dropped("a"), 6, "the count stays");
    let last = logs.tail("a", 1).pop().unwrap();
    assert!(
        last.text.starts_with("6 lines of this log are missing"),
        "{last:?}"
    );
    // A later flush does not repeat the note.
    logs.push("a", Stream::Stdout, b"more");
    logs.flush();
    let text = std::fs::read_to_string(dir.join("a.log")).unwrap();
    assert_eq!(text.lines().count(), 3, "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unwritable_dir_keeps_memory_log() {
    let dir = tmp("gone");
    let mut logs = UnitLogs::new(10);
    logs.set_dir(&dir).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    logs.push("a", Stream::Stdout, b"x");
    logs.push("a", Stream::Stdout, b"y");
    logs.flush();
    assert_eq!(logs.tail("a", 10).len(), 3, "both lines and the note");
    assert_eq!(logs.dropped("a"), 2);
    assert!(!dir.exists());
}
