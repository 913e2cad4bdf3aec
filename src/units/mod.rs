//! Unit files: the validated model (schema), reading one file (parse, fields, values), loading
//! directories with every error collected (load), the dependency graph (graph), user/group
//! resolution without NSS (users), and the offline `check` command (check, image).
//! See docs/units.md for the format reference.

pub mod check;
pub mod condition;
mod fields;
pub mod graph;
pub mod http_url;
pub mod image;
pub mod load;
pub mod parse;
pub mod schema;
pub mod tomldoc;
pub mod users;
pub mod values;

pub use schema::Unit;
pub use values::valid_unit_name;
