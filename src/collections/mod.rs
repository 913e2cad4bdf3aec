//! Collections shared by the whole crate, each written once so the binary carries one copy of
//! its code: a stable sort over indices (`sort`), an ordered map whose tree code is shared per
//! key type (`strmap`) and an ordered set that reuses that tree (`keyset`). Why they exist:
//! docs/binary-size.md.

pub mod keyset;
pub mod sort;
pub mod strmap;
