//! `lifsea-init bootloader DIR`: the bootloader's half of boot counting as a host tool, for the
//! QEMU harness (which plays the bootloader and cannot run EFI code). It reads the entries copied
//! out of an image into DIR and prints the entry to boot on the first line and, when the
//! specification says to decrement its counter before booting, the new name on the second. The
//! same `bootcount` code as the init's half, so the two cannot disagree on the rules.

use std::path::Path;

use super::bless::read_entries;
use super::bootcount::choose;

/// Runs the verb; returns the exit code (0, 1 when no entry can boot, 2 on usage errors).
pub fn main(args: &[String]) -> i32 {
    let [dir] = args else {
        eprintln!("usage: lifsea-init bootloader ENTRIES-DIR");
        return 2;
    };
    match plan(Path::new(dir)) {
        Ok(text) => {
            print!("{text}");
            0
        }
        Err(e) => {
            eprintln!("lifsea-init bootloader: {e}");
            1
        }
    }
}

/// The lines to print for the entries in `dir`.
pub fn plan(dir: &Path) -> Result<String, String> {
    let (entries, bad) = read_entries(dir).map_err(|e| e.to_string())?;
    for b in bad {
        eprintln!("lifsea-init bootloader: skipped: {b}");
    }
    let c = choose(&entries).ok_or_else(|| format!("no bootable entry in {}", dir.display()))?;
    Ok(match c.rename {
        Some((_, to)) => format!("{}\n{to}\n", c.file_name),
        None => format!("{}\n", c.file_name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_names_entry_and_rename() {
        let dir = std::env::temp_dir().join(format!("lifsea-bootloader-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ostree-1-d.conf"), "linux /a\n").unwrap();
        std::fs::write(dir.join("ostree-2-d+1-2.conf"), "linux /b\n").unwrap();
        std::fs::write(dir.join("junk+x.conf"), "linux /c\n").unwrap();
        assert_eq!(
            plan(&dir).unwrap(),
            "ostree-2-d+1-2.conf\nostree-2-d+0-3.conf\n"
        );
        std::fs::rename(
            dir.join("ostree-2-d+1-2.conf"),
            dir.join("ostree-2-d+0-3.conf"),
        )
        .unwrap();
        assert_eq!(plan(&dir).unwrap(), "ostree-1-d.conf\n");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(plan(&dir).is_err());
    }
}
