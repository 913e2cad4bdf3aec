//! `lifsea-init check DIR...` / `initctl check DIR...`. CONTRACT STUB: the units helper replaces it.

/// Validates unit directories offline; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let _ = args;
    eprintln!("check: not implemented yet");
    2
}
