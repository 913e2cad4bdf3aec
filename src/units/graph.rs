//! The dependency graph between units: what is missing, what is circular, what must fail with what,
//! and in which order things can start.
//!
//! Pure functions over the loaded units, so that `check` (offline, for image builders) and the
//! supervisor (at boot) judge a unit set the same way. Edges point from a unit to what it depends on;
//! facts (`network`, ...) are not nodes: the init itself makes them true.

use crate::collections::keyset::{KeySet, StrSet};
use crate::collections::strmap::{KeyMap, StrMap};
use std::collections::VecDeque;

use super::values::is_fact;
use super::Unit;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// `unit` requires (or is after) `missing`, which is neither a unit nor a fact.
    Missing { unit: String, missing: String },
    /// The units of one cycle, in order, first repeated at the end for the message.
    Cycle { units: Vec<String> },
}

impl GraphError {
    /// The unit the error is reported against (the first of a cycle).
    pub fn unit(&self) -> &str {
        match self {
            GraphError::Missing { unit, .. } => unit,
            GraphError::Cycle { units } => units.first().map_or("", String::as_str),
        }
    }
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GraphError::Missing { unit, missing } => {
                write!(f, "unit {unit}: depends on unknown unit {missing}")
            }
            GraphError::Cycle { units } => write!(
                f,
                "unit {}: dependency cycle: {}",
                self.unit(),
                units.join(" -> ")
            ),
        }
    }
}

/// Everything `unit` waits for: requires ∪ wants ∪ after, first occurrence order, no duplicates.
/// Names may be units, facts, or (for `wants`) nothing at all.
pub fn dependencies(unit: &Unit) -> impl Iterator<Item = &str> {
    let mut seen: Vec<&str> = Vec::new();
    for dep in unit.requires.iter().chain(&unit.wants).chain(&unit.after) {
        if !seen.contains(&dep.as_str()) {
            seen.push(dep);
        }
    }
    seen.into_iter()
}

/// Edges to existing units only, sorted and deduplicated.
fn edges(units: &StrMap<Unit>) -> KeyMap<&str, KeySet<&str>> {
    units
        .iter()
        .map(|(name, u)| {
            let deps = dependencies(u).filter(|d| units.contains_key(*d)).collect();
            (name.as_str(), deps)
        })
        .collect()
}

/// Units reachable from `start` in one or more steps.
fn reachable<'a>(graph: &KeyMap<&'a str, KeySet<&'a str>>, start: &'a str) -> KeySet<&'a str> {
    let mut seen = KeySet::new();
    let mut queue: VecDeque<&str> = graph.get(start).into_iter().flatten().copied().collect();
    while let Some(n) = queue.pop_front() {
        if seen.insert(n) {
            queue.extend(graph.get(n).into_iter().flatten().copied());
        }
    }
    seen
}

/// The shortest path from `start` back to itself using only nodes of `within`.
fn shortest_cycle<'a>(
    graph: &KeyMap<&'a str, KeySet<&'a str>>,
    start: &'a str,
    within: &KeySet<&'a str>,
) -> Vec<String> {
    let mut parent: KeyMap<&str, &str> = KeyMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(n) = queue.pop_front() {
        for &next in graph.get(n).into_iter().flatten() {
            if next == start {
                let mut back = Vec::new();
                let mut cur = n;
                while cur != start {
                    back.push(cur.to_string());
                    cur = parent.get(cur).copied().unwrap_or(start);
                }
                let mut path = vec![start.to_string()];
                path.extend(back.into_iter().rev());
                path.push(start.to_string());
                return path;
            }
            if within.contains(next) && !parent.contains_key(next) && next != start {
                parent.insert(next, n);
                queue.push_back(next);
            }
        }
    }
    vec![start.to_string(), start.to_string()]
}

/// Finds missing dependencies (requires/after naming neither a unit nor a fact; `wants` on an unknown
/// unit is allowed and ignored) and every cycle over requires+wants+after edges: one error per
/// strongly connected component, with a shortest cycle through its alphabetically first unit.
/// Deterministic order: missing dependencies by unit, then cycles by first unit.
pub fn check(units: &StrMap<Unit>) -> Vec<GraphError> {
    let mut errors = Vec::new();
    for (name, unit) in units {
        let mut reported = KeySet::new();
        for dep in unit.requires.iter().chain(&unit.after) {
            if !units.contains_key(dep) && !is_fact(dep) && reported.insert(dep) {
                errors.push(GraphError::Missing {
                    unit: name.clone(),
                    missing: dep.clone(),
                });
            }
        }
    }
    let graph = edges(units);
    let reach: KeyMap<&str, KeySet<&str>> =
        graph.keys().map(|&n| (n, reachable(&graph, n))).collect();
    let mut done: KeySet<&str> = KeySet::new();
    for (&node, from_node) in &reach {
        if done.contains(node) || !from_node.contains(node) {
            continue;
        }
        // Its strongly connected component: reachable from it and reaching back to it.
        let component: KeySet<&str> = from_node
            .iter()
            .copied()
            .filter(|other| reach.get(other).is_some_and(|r| r.contains(node)))
            .collect();
        done.extend(component.iter().copied());
        // `node` is the smallest member: BTreeMap iteration visits names in order.
        errors.push(GraphError::Cycle {
            units: shortest_cycle(&graph, node, &component),
        });
    }
    errors
}

/// Every unit that lies on some dependency cycle: the members of every cyclic strongly connected
/// component, not only the path a `Cycle` error shows. The supervisor must not start these.
pub fn cyclic_units(units: &StrMap<Unit>) -> StrSet {
    let graph = edges(units);
    graph
        .keys()
        .filter(|&&n| reachable(&graph, n).contains(n))
        .map(|n| n.to_string())
        .collect()
}

/// The names of every unit on a reported cycle path. A component can hold units off the reported
/// path (`a -> b -> c -> a` plus `a -> c` reports `a -> c -> a`); [`cyclic_units`] finds them all.
pub fn in_cycles(errors: &[GraphError]) -> StrSet {
    errors
        .iter()
        .filter_map(|e| match e {
            GraphError::Cycle { units } => Some(units.iter().cloned()),
            GraphError::Missing { .. } => None,
        })
        .flatten()
        .collect()
}

/// Units that `requires`, directly or through other units, a unit in `failed` or a name that is
/// neither a unit nor a fact: they cannot start and fail with it. Members of `failed` are not
/// repeated in the result.
pub fn transitive_requirers(units: &StrMap<Unit>, failed: &StrSet) -> StrSet {
    let is_bad = |dep: &String, found: &StrSet| {
        failed.contains(dep) || found.contains(dep) || (!units.contains_key(dep) && !is_fact(dep))
    };
    let mut found = KeySet::new();
    loop {
        let newly: Vec<String> = units
            .iter()
            .filter(|(name, _)| !found.contains(*name) && !failed.contains(*name))
            .filter(|(_, u)| u.requires.iter().any(|d| is_bad(d, &found)))
            .map(|(name, _)| name.clone())
            .collect();
        if newly.is_empty() {
            return found;
        }
        found.extend(newly);
    }
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
