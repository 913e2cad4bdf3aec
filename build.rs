//! Link settings of the static binary (docs/binary-size.md, "Third pass").
//!
//! The init is a static PIE, so that the kernel places PID 1 at a random address (ASLR); musl's
//! start code (`rcrt1.o`) applies its relocations before `main`. Nearly all of them are
//! `R_X86_64_RELATIVE` ("add the load address to the word at X"), and the classic `.rela.dyn`
//! spends 24 bytes on each (offset, type, addend): ~2,270 entries, 54 KB, for the vtables and
//! static tables of a Rust program. `-z pack-relative-relocs` has the linker store the same
//! relocations as DT_RELR (addresses as bitmaps: under 1 KB here). musl reads DT_RELR since 1.2.4
//! (Rust's bundled musl is 1.2.5); binutils writes it since 2.38 and an older `ld` only warns
//! about the unknown `-z` option and writes `.rela.dyn` as before. The binary stays a static PIE
//! with the same relocations applied.

fn main() {
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    // glibc builds would need glibc 2.36 at run time for DT_RELR: only the static musl binary.
    if os == "linux" && env == "musl" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
