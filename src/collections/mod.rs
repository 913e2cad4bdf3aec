//! Collections shared by the whole crate, each written once so the binary carries one copy of
//! its code: a stable sort over indices (`sort`) and an ordered map whose tree code is shared per
//! key type (`strmap`). Why they exist: docs/binary-size.md.

pub mod sort;
pub mod strmap;
