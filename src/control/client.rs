//! initctl: the command-line client of the control API (the same binary, under another name).
//!
//! It turns a verb into protocol requests, waits for the answers with timeouts, and renders them as
//! tables for people or raw JSON (`--json`) for programs. Exit codes are part of the interface and
//! documented in docs/control-api.md: 0 ok, 1 operation or unit failed, 2 usage, 3 cannot reach the
//! init (or refused), 4 no such unit.

use std::io::Write;
use std::path::PathBuf;

use serde_json::Value;

use super::analyze::{analyze, render_text, Analysis};
pub use super::connection::{
    ClientError, Connection, EXIT_FAILED, EXIT_NO_SUCH_UNIT, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE,
};
use super::dispatch::EnableReport;
use super::names::valid_unit_name;
use super::ops::{ReloadReport, ShutdownKind, UnitStatus};
use super::protocol::Op;
use super::reply::{log_lines, unit_status, unit_statuses};
use super::server::socket_path;
use super::table::{fmt_bytes, fmt_duration_us, fmt_seconds_us, Table};
use super::views::{render_subsystem, SUBSYSTEM_VERBS};
use crate::timeline::{boottime_us, Stamp};
use crate::unitlog::{format_timestamp, LogLine, Stream};

pub const DEFAULT_RUN_DIR: &str = crate::paths::RUN_DIR;

const USAGE: &str = "usage: initctl [--run-dir DIR] [--json] VERB [ARGS]
verbs:
  status [UNIT]            state of one unit, or an overview of all
  list                     every unit, one line each
  start|stop|restart UNIT  queue a state change
  enable|disable UNIT      persist the choice in the admin unit directory, then start/stop
  reload                   re-read unit files; start new, stop removed, restart changed
  logs UNIT [-f] [-n N]    last N lines of a unit's output (default 50); -f follows
  analyze [--svg FILE]     boot timeline, critical chain and blame; --svg writes a boot chart
  poweroff|reboot|halt     orderly shutdown
  net                      links, addresses, routes, DNS and DHCP leases
  devices                  modules loaded (by whom, how long), device links
  modules                  the same as devices
  version                  protocol and init versions
  ops [-- CMD [ARGS...]]   a privileged toolbox container on this terminal (host root at /host);
                           no CMD: a shell; exits with CMD's status
  check DIR...             validate unit files offline (needs no running init)
exit codes: 0 ok, 1 failed, 2 usage, 3 cannot reach the init or refused, 4 no such unit";

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> Result<T, ClientError> {
    serde_json::from_value(v).map_err(|e| ClientError::Reply(e.to_string()))
}

struct Global {
    run_dir: PathBuf,
    json: bool,
}

/// Runs initctl with the arguments after its name; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    if let Some(code) = delegate_check(args) {
        return code;
    }
    let mut g = Global {
        run_dir: PathBuf::from(DEFAULT_RUN_DIR),
        json: false,
    };
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => g.json = true,
            "--run-dir" => match it.next() {
                Some(d) => g.run_dir = PathBuf::from(d),
                None => return usage_error("--run-dir needs a directory"),
            },
            // What follows `--` belongs to a command (`initctl ops -- ls --json`).
            "--" => {
                rest.push(a.clone());
                rest.extend(it.by_ref().cloned());
            }
            "-h" | "--help" | "help" => {
                println!("{USAGE}");
                return EXIT_OK;
            }
            _ => rest.push(a.clone()),
        }
    }
    match run(&g, &rest) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("initctl: {e}");
            if matches!(e, ClientError::Usage(_)) {
                eprintln!("{USAGE}");
            }
            e.exit_code()
        }
    }
}

/// `check` needs no running init: everything after the verb goes to the offline checker as is
/// (a global `--json` before the verb is passed on).
fn delegate_check(args: &[String]) -> Option<i32> {
    let mut json = false;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--json" => json = true,
            "--run-dir" => i += 1,
            "check" => {
                let mut rest: Vec<String> = Vec::new();
                if json {
                    rest.push("--json".into());
                }
                rest.extend_from_slice(&args[i + 1..]);
                return Some(crate::units::check::main(&rest));
            }
            _ => return None,
        }
        i += 1;
    }
    None
}

fn usage_error(msg: &str) -> i32 {
    eprintln!("initctl: {msg}\n{USAGE}");
    EXIT_USAGE
}

fn one_unit(verb: &str, args: &[String]) -> Result<String, ClientError> {
    match args {
        [u] if valid_unit_name(u) => Ok(u.clone()),
        [u] => Err(ClientError::Usage(format!("invalid unit name: {u:?}"))),
        _ => Err(ClientError::Usage(format!(
            "{verb} takes exactly one unit name"
        ))),
    }
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

fn run(g: &Global, args: &[String]) -> Result<i32, ClientError> {
    let Some((verb, rest)) = args.split_first() else {
        return Err(ClientError::Usage("no verb given".into()));
    };
    let verb = verb.as_str();
    // Argument errors are reported before touching the socket.
    let op = match verb {
        "status" if rest.is_empty() => Op::List,
        "status" => Op::Status {
            unit: one_unit(verb, rest)?,
        },
        "list" if rest.is_empty() => Op::List,
        "start" => Op::Start {
            unit: one_unit(verb, rest)?,
        },
        "stop" => Op::Stop {
            unit: one_unit(verb, rest)?,
        },
        "restart" => Op::Restart {
            unit: one_unit(verb, rest)?,
        },
        "enable" => Op::Enable {
            unit: one_unit(verb, rest)?,
        },
        "disable" => Op::Disable {
            unit: one_unit(verb, rest)?,
        },
        "reload" if rest.is_empty() => Op::Reload,
        "poweroff" if rest.is_empty() => Op::Shutdown(ShutdownKind::Poweroff),
        "reboot" if rest.is_empty() => Op::Shutdown(ShutdownKind::Reboot),
        "halt" if rest.is_empty() => Op::Shutdown(ShutdownKind::Halt),
        "version" if rest.is_empty() => Op::Version,
        "logs" => parse_logs(rest)?,
        "analyze" => return analyze_verb(g, rest),
        "ops" => return super::ops_client::run(&g.run_dir, rest),
        "os" if !rest.is_empty() => parse_os(rest)?,
        v if rest.is_empty() && SUBSYSTEM_VERBS.iter().any(|(verb, _)| *verb == v) => {
            let name = SUBSYSTEM_VERBS
                .iter()
                .find(|(verb, _)| *verb == v)
                .map_or(v, |(_, n)| *n);
            Op::Subsystem { name: name.into() }
        }
        "list" | "reload" | "poweroff" | "reboot" | "halt" | "version" => {
            return Err(ClientError::Usage(format!("{verb} takes no arguments")))
        }
        other => return Err(ClientError::Usage(format!("unknown verb {other:?}"))),
    };
    let mut conn = Connection::open(&socket_path(&g.run_dir))?;
    if let Op::Logs { follow: true, .. } = op {
        return follow_logs(g, &mut conn, op);
    }
    let result = conn.call(op.clone())?;
    if g.json {
        print_json(&result);
        return Ok(match &op {
            Op::Status { .. } => status_exit(&unit_status(&result).map_err(ClientError::Reply)?),
            _ => EXIT_OK,
        });
    }
    render(&op, result)
}

/// `os status`, `os upgrade REF [--reboot]`, `os rollback [--reboot]`.
fn parse_os(rest: &[String]) -> Result<Op, ClientError> {
    let usage = || {
        ClientError::Usage(
            "usage: os [status] | os upgrade REF [--reboot] | os rollback [--reboot]".into(),
        )
    };
    let reboot = rest.iter().any(|a| a == "--reboot");
    let words: Vec<&String> = rest.iter().filter(|a| *a != "--reboot").collect();
    match words.as_slice() {
        [s] if s.as_str() == "status" && !reboot => Ok(Op::Subsystem { name: "os".into() }),
        [a, r] if a.as_str() == "upgrade" => Ok(Op::Os {
            action: "upgrade".into(),
            refspec: Some(r.to_string()),
            reboot,
        }),
        [a] if a.as_str() == "rollback" => Ok(Op::Os {
            action: "rollback".into(),
            refspec: None,
            reboot,
        }),
        _ => Err(usage()),
    }
}

fn parse_logs(rest: &[String]) -> Result<Op, ClientError> {
    let mut unit = None;
    let mut n = super::protocol::DEFAULT_LOG_LINES;
    let mut follow = false;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-f" | "--follow" => follow = true,
            "-n" | "--lines" => {
                n = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| ClientError::Usage("-n needs a number".into()))?
            }
            u if unit.is_none() && !u.starts_with('-') => unit = Some(u.to_string()),
            other => {
                return Err(ClientError::Usage(format!(
                    "logs: unexpected argument {other:?}"
                )))
            }
        }
    }
    let unit = one_unit("logs", &unit.into_iter().collect::<Vec<_>>())?;
    Ok(Op::Logs { unit, n, follow })
}

fn status_exit(s: &UnitStatus) -> i32 {
    if s.state == "failed" {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

fn ago(since_us: u64) -> String {
    let now = boottime_us();
    if since_us == 0 || since_us > now {
        return "-".into();
    }
    format!("{} ago", fmt_duration_us(now - since_us))
}

fn render(op: &Op, result: Value) -> Result<i32, ClientError> {
    match op {
        Op::List => {
            let units = unit_statuses(&result).map_err(ClientError::Reply)?;
            print!("{}", list_table(&units));
            Ok(if units.iter().any(|u| u.state == "failed") {
                EXIT_FAILED
            } else {
                EXIT_OK
            })
        }
        Op::Status { .. } => {
            let s = unit_status(&result).map_err(ClientError::Reply)?;
            print!("{}", status_text(&s));
            Ok(status_exit(&s))
        }
        Op::Start { unit } | Op::Stop { unit } | Op::Restart { unit } => {
            println!(
                "{unit}: {} queued (see `initctl status {unit}`)",
                super::protocol::op_name(op)
            );
            Ok(EXIT_OK)
        }
        Op::Enable { .. } | Op::Disable { .. } => {
            let r: EnableReport = decode(result)?;
            println!("{}: wrote {}", r.unit, r.marker.display());
            if let Some(p) = &r.removed {
                println!("{}: removed {}", r.unit, p.display());
            }
            match &r.action_error {
                None => {
                    println!("{}: {} queued", r.unit, r.action);
                    Ok(EXIT_OK)
                }
                Some(e) => {
                    eprintln!("initctl: {}: {} refused: {e}", r.unit, r.action);
                    Ok(EXIT_FAILED)
                }
            }
        }
        Op::Reload => {
            let r: ReloadReport = decode(result)?;
            for (what, names) in [
                ("started", &r.started),
                ("stopped", &r.stopped),
                ("restarted", &r.restarted),
                ("unchanged", &r.unchanged),
            ] {
                println!(
                    "{what:>9}: {}",
                    if names.is_empty() {
                        "-".into()
                    } else {
                        names.join(", ")
                    }
                );
            }
            for e in &r.errors {
                eprintln!("initctl: reload: {e}");
            }
            Ok(if r.errors.is_empty() {
                EXIT_OK
            } else {
                EXIT_FAILED
            })
        }
        Op::Logs { .. } => {
            let lines = log_lines(Some(&result)).map_err(ClientError::Reply)?;
            for l in &lines {
                println!("{}", log_line_text(l));
            }
            Ok(EXIT_OK)
        }
        Op::Shutdown(kind) => {
            println!(
                "{} requested",
                super::protocol::op_name(&Op::Shutdown(*kind))
            );
            Ok(EXIT_OK)
        }
        Op::Subsystem { name } => {
            print!("{}", render_subsystem(name, &result));
            Ok(EXIT_OK)
        }
        Op::Os { .. } => {
            println!(
                "{}",
                result
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("requested")
            );
            Ok(EXIT_OK)
        }
        Op::Version | Op::Timeline | Op::Ops(_) => {
            print_json(&result);
            Ok(EXIT_OK)
        }
    }
}

pub fn list_table(units: &[UnitStatus]) -> String {
    let mut t = Table::new(&[
        "UNIT",
        "STATE",
        "ENABLED",
        "PID",
        "SINCE",
        "RESTARTS",
        "DESCRIPTION",
    ]);
    for u in units {
        t.row(vec![
            u.name.clone(),
            u.state.clone(),
            if u.enabled { "yes" } else { "no" }.into(),
            u.pid.map_or_else(|| "-".into(), |p| p.to_string()),
            ago(u.since_us),
            u.restarts.to_string(),
            u.description.clone(),
        ]);
    }
    t.render()
}

pub fn status_text(s: &UnitStatus) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let list = |v: &Vec<String>| {
        if v.is_empty() {
            "-".into()
        } else {
            v.join(", ")
        }
    };
    let rows: Vec<(&str, String)> = vec![
        (
            "state",
            format!(
                "{} (since {} after boot, {})",
                s.state,
                fmt_seconds_us(s.since_us),
                ago(s.since_us)
            ),
        ),
        ("enabled", if s.enabled { "yes" } else { "no" }.into()),
        ("pid", s.pid.map_or_else(|| "-".into(), |p| p.to_string())),
        ("restarts", s.restarts.to_string()),
        ("last exit", opt(&s.last_exit)),
        ("failure", opt(&s.failure)),
        ("readiness", s.readiness.clone()),
        ("status", opt(&s.status_text)),
        ("cgroup", opt(&s.cgroup)),
        (
            "memory",
            s.memory_bytes.map_or_else(|| "-".into(), fmt_bytes),
        ),
        (
            "cpu",
            s.cpu_usec.map_or_else(|| "-".into(), fmt_duration_us),
        ),
        ("requires", list(&s.requires)),
        ("wants", list(&s.wants)),
        ("after", list(&s.after)),
    ];
    let mut rows = rows;
    if let Some(why) = &s.skipped {
        rows.insert(5, ("skipped", why.clone()));
    }
    if s.log_lines_dropped > 0 {
        let n = s.log_lines_dropped;
        rows.push((
            "log",
            format!("{n} lines not written to disk (kept in memory)"),
        ));
    }
    let mut out = format!("{} - {}\n", s.name, s.description);
    for (k, v) in rows {
        out.push_str(&format!("{k:>10}: {v}\n"));
    }
    out
}

fn log_line_text(l: &LogLine) -> String {
    let stream = match l.stream {
        Stream::Stdout => "out",
        Stream::Stderr => "err",
        Stream::Init => "init",
    };
    format!("{} {stream:<4} {}", format_timestamp(l.realtime_us), l.text)
}

fn follow_logs(g: &Global, conn: &mut Connection, op: Op) -> Result<i32, ClientError> {
    let id = conn.send(op)?;
    conn.set_read_timeout(None)?;
    let mut out = std::io::stdout();
    loop {
        let r = match conn.read_response(id) {
            Ok(r) => r,
            // The init went away (shutdown): following is over, not failed.
            Err(ClientError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::UnexpectedEof =>
            {
                return Ok(EXIT_OK)
            }
            Err(e) => return Err(e),
        };
        let lines = log_lines(r.result.as_ref()).map_err(ClientError::Reply)?;
        for l in &lines {
            let text = if g.json {
                serde_json::to_string(l).unwrap_or_default()
            } else {
                log_line_text(l)
            };
            if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
                // Our reader went away (`| head`): stop quietly.
                return Ok(EXIT_OK);
            }
        }
        if !r.more {
            return Ok(EXIT_OK);
        }
    }
}

fn analyze_verb(g: &Global, rest: &[String]) -> Result<i32, ClientError> {
    let mut svg: Option<PathBuf> = None;
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--svg" => {
                svg = Some(PathBuf::from(it.next().ok_or_else(|| {
                    ClientError::Usage("--svg needs a file name".into())
                })?))
            }
            other => {
                return Err(ClientError::Usage(format!(
                    "analyze: unexpected argument {other:?}"
                )))
            }
        }
    }
    let mut conn = Connection::open(&socket_path(&g.run_dir))?;
    // Read from text with the very reader the init uses for stage 0's stamps (boot/mod.rs): one
    // compiled `Vec<Stamp>` deserializer in the binary, not a second one over `Value`.
    let stamps: Vec<Stamp> =
        serde_json::from_slice(conn.call(Op::Timeline)?.to_string().as_bytes())
            .map_err(|e| ClientError::Reply(e.to_string()))?;
    let units = unit_statuses(&conn.call(Op::List)?).map_err(ClientError::Reply)?;
    let a: Analysis = analyze(&stamps, &units);
    if let Some(path) = svg {
        let chart = super::svg::render(&a);
        if path.as_os_str() == "-" {
            print!("{chart}");
            return Ok(EXIT_OK);
        }
        std::fs::write(&path, chart).map_err(|source| ClientError::WriteFile {
            path: path.clone(),
            source,
        })?;
        eprintln!(
            "initctl: boot chart written to {} ({} bars)",
            path.display(),
            a.entries.len()
        );
        if !g.json {
            return Ok(EXIT_OK);
        }
    }
    if g.json {
        print_json(&serde_json::to_value(&a).unwrap_or(Value::Null));
    } else {
        print!("{}", render_text(&a));
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod os_verb_tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn os_verbs() {
        assert_eq!(
            parse_os(&words("status")).unwrap(),
            Op::Subsystem { name: "os".into() }
        );
        assert_eq!(
            parse_os(&words("upgrade lifsea/next --reboot")).unwrap(),
            Op::Os {
                action: "upgrade".into(),
                refspec: Some("lifsea/next".into()),
                reboot: true
            }
        );
        assert_eq!(
            parse_os(&words("rollback")).unwrap(),
            Op::Os {
                action: "rollback".into(),
                refspec: None,
                reboot: false
            }
        );
        for bad in ["upgrade", "rollback x", "status --reboot", "frobnicate"] {
            assert!(parse_os(&words(bad)).is_err(), "{bad}");
        }
    }
}
