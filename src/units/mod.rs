//! Unit files: the TOML format (schema), loading directories with every error collected (load),
//! and the dependency graph (graph). See docs/units.md for the format reference.

pub mod check;
mod fields;
pub mod graph;
pub mod load;
pub mod parse;
pub mod schema;
pub mod users;
pub mod values;

pub use schema::Unit;
pub use values::valid_unit_name;
