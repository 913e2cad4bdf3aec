//! Collections shared by the whole crate, each written once so the binary carries one copy of
//! its code: a stable sort over indices (`sort`), an ordered map whose tree code is shared per
//! key type (`strmap`), an ordered set that reuses that tree (`keyset`) and a sorted vector for
//! tables of a few entries (`vecmap`). Why they exist: docs/binary-size.md.

pub mod keyset;
pub mod sort;
pub mod strmap;
pub mod vecmap;

/// A deterministic xorshift64 stream for the collections' property tests: each compares a
/// collection with its standard counterpart under the same pseudo-random operations.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}
