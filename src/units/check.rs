//! `lifsea-init check [--json] DIR...` / `initctl check DIR...`: validates unit directories offline,
//! the way the init would load them at boot, so that an image builder finds every mistake before
//! the image ever boots.
//!
//! With `--root DIR` the units are also checked against an image tree: the program exists and is
//! executable there, `user` and `group` resolve in its passwd/group files.
//!
//! With `--network FILE` a network.toml is validated too (see `net::config`), its errors reported
//! like unit-file errors with line and column.
//!
//! Exit status: 0 clean, 1 any error, 2 usage error (no directory, a directory that does not exist).

use std::path::PathBuf;

use serde::Serialize;

use super::graph::{self, GraphError};
use super::image::check_against_root;
use super::load::{load_dirs, LoadOutcome};

const USAGE: &str = "usage: check [--json] [--root IMAGE] [--network FILE] DIR...";

#[derive(Serialize)]
struct JsonError {
    /// "file" for an error in a unit file, "graph" for a dependency problem, "image" for a problem
    /// found against `--root`, "network" for an error in the `--network` file.
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    column: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
    message: String,
}

#[derive(Serialize)]
struct JsonReport {
    ok: bool,
    /// Valid units, in name order.
    units: Vec<String>,
    /// Valid units that are disabled (by `enabled = false` or a marker).
    disabled: Vec<String>,
    /// Units whose file exists but is invalid.
    broken: Vec<String>,
    errors: Vec<JsonError>,
}

/// Graph errors that matter for this outcome: a dependency on a broken unit is already reported
/// as that unit's file errors, so it is not repeated as "unknown unit".
fn graph_errors(outcome: &LoadOutcome) -> Vec<GraphError> {
    graph::check(&outcome.units)
        .into_iter()
        .filter(|e| !matches!(e, GraphError::Missing { missing, .. } if outcome.broken.contains_key(missing)))
        .collect()
}

/// Validates unit directories offline; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    let mut json = false;
    let mut root: Option<PathBuf> = None;
    let mut network: Option<PathBuf> = None;
    let mut dirs = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => json = true,
            "--root" => match it.next() {
                Some(r) => root = Some(PathBuf::from(r)),
                None => {
                    eprintln!("check: --root needs a directory\n{USAGE}");
                    return 2;
                }
            },
            "--network" => match it.next() {
                Some(f) => network = Some(PathBuf::from(f)),
                None => {
                    eprintln!("check: --network needs a file\n{USAGE}");
                    return 2;
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return 0;
            }
            opt if opt.starts_with('-') => {
                eprintln!("check: unknown option {opt}\n{USAGE}");
                return 2;
            }
            dir => dirs.push(PathBuf::from(dir)),
        }
    }
    if dirs.is_empty() && network.is_none() {
        eprintln!("{USAGE}");
        return 2;
    }
    let network_errors = match &network {
        Some(f) => match std::fs::read_to_string(f) {
            Ok(text) => crate::net::config::parse(f, &text)
                .err()
                .unwrap_or_default(),
            Err(e) => {
                eprintln!("check: {}: {e}", f.display());
                return 2;
            }
        },
        None => Vec::new(),
    };
    for d in dirs.iter().chain(&root) {
        if !d.is_dir() {
            eprintln!("check: {}: not a directory", d.display());
            return 2;
        }
    }
    let outcome = load_dirs(&dirs);
    let graph_errors = graph_errors(&outcome);
    let image_errors = root
        .as_deref()
        .map(|r| check_against_root(r, &outcome.units))
        .unwrap_or_default();
    let count =
        outcome.errors.len() + graph_errors.len() + image_errors.len() + network_errors.len();
    if json {
        let mut errors: Vec<JsonError> = outcome
            .errors
            .iter()
            .map(|e| JsonError {
                kind: "file",
                path: Some(e.path.display().to_string()),
                line: e.line,
                column: e.column,
                unit: e.unit.clone(),
                message: e.message.clone(),
            })
            .collect();
        errors.extend(graph_errors.iter().map(|e| JsonError {
            kind: "graph",
            path: None,
            line: None,
            column: None,
            unit: Some(e.unit().to_string()),
            message: e.to_string(),
        }));
        errors.extend(image_errors.iter().map(|(unit, message)| JsonError {
            kind: "image",
            path: None,
            line: None,
            column: None,
            unit: Some(unit.clone()),
            message: format!("unit {unit}: {message}"),
        }));
        errors.extend(network_errors.iter().map(|e| JsonError {
            kind: "network",
            path: Some(e.path.display().to_string()),
            line: e.line,
            column: e.column,
            unit: None,
            message: e.message.clone(),
        }));
        let report = JsonReport {
            ok: count == 0,
            units: outcome.units.keys().cloned().collect(),
            disabled: outcome
                .units
                .values()
                .filter(|u| !u.enabled)
                .map(|u| u.name.clone())
                .collect(),
            broken: outcome.broken.keys().cloned().collect(),
            errors,
        };
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("check: cannot encode the report: {e}");
                return 1;
            }
        }
    } else {
        for e in &outcome.errors {
            println!("{e}");
        }
        for e in &graph_errors {
            println!("{e}");
        }
        for (unit, message) in &image_errors {
            println!("unit {unit}: {message}");
        }
        for e in &network_errors {
            println!("{e}");
        }
        println!(
            "{} units, {count} errors",
            outcome.units.len() + outcome.broken.len()
        );
    }
    i32::from(count != 0)
}
