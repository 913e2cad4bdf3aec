//! Asks the kernel to read the init's own executable into the page cache in one go, at the very
//! start of stage 1 (issue 11 item 4).
//!
//! Why: the kernel maps the binary and reads it on demand, so the first run of each part of the
//! init (the mounts, the unit parser, the spawn path) faults its code in from the root disk in
//! readahead-sized pieces, each a synchronous disk read on the critical path; under TCG every
//! such read is costly. `POSIX_FADV_WILLNEED` queues reads of the whole file at once and returns
//! without waiting for them, so the later faults find the pages in memory (or already on their
//! way). A hint only: failure changes nothing but the timing, and is logged at debug level.

use std::path::Path;

/// Queues readahead of the whole file at `exe` (`/proc/self/exe` on a machine).
pub fn own_binary(exe: &Path) {
    use std::os::fd::AsRawFd;
    let file = match std::fs::File::open(exe) {
        Ok(f) => f,
        Err(e) => {
            log::debug!("prefetch {}: {e}", exe.display());
            return;
        }
    };
    if let Err(e) = nix::fcntl::posix_fadvise(
        file.as_raw_fd(),
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
    ) {
        log::debug!("prefetch {}: {e}", exe.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// Pages of `path` in the page cache, as util-linux's fincore counts them.
    fn resident_pages(path: &Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--noheadings", "--output", "PAGES"])
            .arg(path)
            .output()
            .expect("fincore (util-linux)");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
    }

    /// The hint brings a file that is not in memory into the page cache without anyone reading
    /// it; a missing path is only logged.
    #[test]
    fn willneed_reads_the_whole_file_into_the_page_cache() {
        // On the build's disk, not a tmpfs: dropped pages must really leave memory.
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join(format!("lifsea-prefetch-{}", std::process::id()));
        std::fs::write(&path, vec![7u8; 256 * 1024]).unwrap();
        let f = std::fs::File::open(&path).unwrap();
        nix::unistd::fsync(f.as_raw_fd()).unwrap();
        nix::fcntl::posix_fadvise(
            f.as_raw_fd(),
            0,
            0,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
        )
        .unwrap();
        let before = resident_pages(&path);
        own_binary(&path);
        // The reads are queued, not awaited: give them a moment.
        let mut after = resident_pages(&path);
        for _ in 0..100 {
            if after == 64 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            after = resident_pages(&path);
        }
        own_binary(Path::new("/nonexistent/lifsea-init"));
        let _ = std::fs::remove_file(&path);
        assert_eq!(before, 0, "the file's pages were not dropped first");
        assert_eq!(after, 64, "256 KiB in 4 KiB pages");
    }
}
