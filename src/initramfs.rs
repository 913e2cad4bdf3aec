//! Stage 0 and `mkinitramfs`. CONTRACT STUB: the boot helper replaces it.

/// `lifsea-init mkinitramfs ...`; returns the process exit code.
pub fn mkinitramfs_main(args: &[String]) -> i32 {
    let _ = args;
    eprintln!("mkinitramfs: not implemented yet");
    2
}
