//! Tests of the dependency graph checks: missing and cyclic dependencies reported once each,
//! failure propagating to requirers, and start layers that honour every edge kind.

use std::path::Path;

use super::*;
use crate::units::parse::parse_unit;

fn quoted(list: &[&str]) -> String {
    let items: Vec<String> = list.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(", "))
}

/// (name, requires, wants, after)
type Spec<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);

/// Builds units from their dependency lists through the real parser.
fn units(spec: &[Spec]) -> crate::collections::strmap::StrMap<Unit> {
    spec.iter()
        .map(|(name, requires, wants, after)| {
            let text = format!(
                "exec = [\"/bin/true\"]\nrequires = {}\nwants = {}\nafter = {}\n",
                quoted(requires),
                quoted(wants),
                quoted(after)
            );
            let u = parse_unit(name, Path::new("/t.toml"), &text).unwrap();
            (name.to_string(), u)
        })
        .collect()
}

fn messages(errors: &[GraphError]) -> Vec<String> {
    errors.iter().map(|e| e.to_string()).collect()
}

fn set(names: &[&str]) -> StrSet {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn clean_graph_with_facts_and_unknown_wants() {
    let u = units(&[
        ("containerd", &[], &[], &["network"]),
        (
            "kubelet",
            &["containerd"],
            &["metrics-agent"],
            &["network-online"],
        ),
    ]);
    assert_eq!(check(&u), vec![]);
    assert_eq!(
        start_layers(&u),
        vec![vec!["containerd".to_string()], vec!["kubelet".to_string()]]
    );
}

#[test]
fn missing_requires_and_after_are_reported_once_each() {
    let u = units(&[
        ("a", &["ghost", "b"], &["also-ghost"], &["ghost", "phantom"]),
        ("b", &[], &[], &[]),
    ]);
    assert_eq!(
        messages(&check(&u)),
        vec![
            "unit a: depends on unknown unit ghost",
            "unit a: depends on unknown unit phantom",
        ]
    );
}

#[test]
fn self_cycle() {
    let u = units(&[("a", &["a"], &[], &[]), ("b", &[], &[], &["a"])]);
    let e = check(&u);
    assert_eq!(messages(&e), vec!["unit a: dependency cycle: a -> a"]);
    assert_eq!(in_cycles(&e), set(&["a"]));
    assert_eq!(cyclic_units(&u), set(&["a"]));
    assert_eq!(start_layers(&u), Vec::<Vec<String>>::new());
}

#[test]
fn two_separate_cycles_over_all_edge_kinds() {
    // c1: x -requires-> y -wants-> z -after-> x ; c2: p <-> q ; r depends on both but is outside.
    let u = units(&[
        ("x", &["y"], &[], &[]),
        ("y", &[], &["z"], &[]),
        ("z", &[], &[], &["x"]),
        ("p", &[], &[], &["q"]),
        ("q", &["p"], &[], &[]),
        ("r", &["x", "p"], &[], &[]),
        ("solo", &[], &[], &[]),
    ]);
    let e = check(&u);
    assert_eq!(
        messages(&e),
        vec![
            "unit p: dependency cycle: p -> q -> p",
            "unit x: dependency cycle: x -> y -> z -> x",
        ]
    );
    assert_eq!(in_cycles(&e), set(&["p", "q", "x", "y", "z"]));
    assert_eq!(cyclic_units(&u), set(&["p", "q", "x", "y", "z"]));
    assert_eq!(start_layers(&u), vec![vec!["solo".to_string()]]);
}

#[test]
fn one_error_per_component_with_the_shortest_cycle() {
    // a -> b -> c -> a and a -> c directly: one component, shortest path through a is a -> c -> a.
    let u = units(&[
        ("a", &["b", "c"], &[], &[]),
        ("b", &["c"], &[], &[]),
        ("c", &["a"], &[], &[]),
    ]);
    let e = check(&u);
    assert_eq!(messages(&e), vec!["unit a: dependency cycle: a -> c -> a"]);
    assert_eq!(in_cycles(&e), set(&["a", "c"]));
    assert_eq!(cyclic_units(&u), set(&["a", "b", "c"]));
}

#[test]
fn dependencies_are_deduplicated_in_order() {
    let u = units(&[("a", &["b", "c"], &["c", "d"], &["network", "b"])]);
    let deps: Vec<&str> = dependencies(&u["a"]).collect();
    assert_eq!(deps, vec!["b", "c", "d", "network"]);
}

#[test]
fn requirers_of_failed_units_fail_transitively() {
    let u = units(&[
        ("db", &[], &[], &[]),
        ("api", &["db"], &[], &[]),
        ("web", &["api"], &[], &[]),
        ("metrics", &[], &["db"], &["db"]), // wants/after only: unaffected
        ("orphan", &["never-defined"], &[], &[]),
        ("netuser", &["network-online"], &[], &[]),
    ]);
    assert_eq!(
        transitive_requirers(&u, &set(&["db"])),
        set(&["api", "web", "orphan"])
    );
    assert_eq!(transitive_requirers(&u, &set(&[])), set(&["orphan"]));
    assert_eq!(
        transitive_requirers(&u, &set(&["api", "db"])),
        set(&["web", "orphan"])
    );
}

#[test]
fn layers_follow_every_dependency_kind() {
    let u = units(&[
        ("a", &[], &[], &[]),
        ("b", &[], &["a"], &[]),
        ("c", &[], &[], &["b", "network"]),
        ("d", &["a"], &[], &[]),
    ]);
    let layers = start_layers(&u);
    assert_eq!(
        layers,
        vec![
            vec!["a".to_string()],
            vec!["b".to_string(), "d".to_string()],
            vec!["c".to_string()],
        ]
    );
}

/// Test oracle over `edges`: topological layers: layer 0 depends on no unit (facts are ignored), layer k only on earlier
/// layers. Units in a cycle, or depending on one, appear in no layer. Each layer is sorted.
fn start_layers(units: &crate::collections::strmap::StrMap<Unit>) -> Vec<Vec<String>> {
    let graph = edges(units);
    let mut placed: KeySet<&str> = KeySet::new();
    let mut layers = Vec::new();
    loop {
        let layer: Vec<&str> = graph
            .iter()
            .filter(|(n, deps)| !placed.contains(*n) && deps.iter().all(|d| placed.contains(d)))
            .map(|(n, _)| *n)
            .collect();
        if layer.is_empty() {
            return layers;
        }
        placed.extend(layer.iter().copied());
        layers.push(layer.into_iter().map(str::to_string).collect());
    }
}
