//! The dependency graph between units. CONTRACT STUB: the units helper replaces the bodies.

use std::collections::BTreeMap;

use super::Unit;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// `unit` requires (or is after) `missing`, which is neither a unit nor a fact.
    Missing { unit: String, missing: String },
    /// The units of one cycle, in order, first repeated at the end for the message.
    Cycle { units: Vec<String> },
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GraphError::Missing { unit, missing } => {
                write!(f, "unit {unit}: depends on unknown unit {missing}")
            }
            GraphError::Cycle { units } => write!(f, "dependency cycle: {}", units.join(" -> ")),
        }
    }
}

/// Finds missing dependencies (requires/after naming neither a unit nor a fact; `wants` on an unknown
/// unit is allowed and ignored) and every cycle over requires+wants+after edges.
pub fn check(units: &BTreeMap<String, Unit>) -> Vec<GraphError> {
    let _ = units;
    Vec::new()
}
