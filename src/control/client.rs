//! initctl. CONTRACT STUB: the control helper replaces it.

/// Runs initctl with the arguments after its name; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let _ = args;
    eprintln!("initctl: not implemented yet");
    2
}
