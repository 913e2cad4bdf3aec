//! `initctl ops [-- CMD [ARGS...]]`: asks the init for an ops container session and hands it this
//! process's stdin, stdout and stderr over the control socket (SCM_RIGHTS), so that the container
//! reads and writes the caller's terminal or pipes directly; initctl itself only waits for the one
//! reply and exits with the command's status. Killing initctl (or closing its terminal) ends the
//! session: the init notices the closed connection and removes the container.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::path::Path;

use super::connection::{ClientError, Connection};
use super::protocol::{Op, OpsRequest};
use super::server::socket_path;

pub const USAGE: &str = "usage: initctl ops [-- CMD [ARGS...]]";

/// The request for these arguments: none is an interactive shell, `-- CMD...` a command.
pub fn parse(rest: &[String], tty: bool, term: Option<String>) -> Result<OpsRequest, ClientError> {
    let argv = match rest {
        [] => Vec::new(),
        [dd, cmd @ ..] if dd == "--" && !cmd.is_empty() => cmd.to_vec(),
        _ => return Err(ClientError::Usage(USAGE.into())),
    };
    Ok(OpsRequest {
        argv,
        tty,
        term: term.filter(|_| tty),
    })
}

/// Runs the session; returns the command's exit status.
pub fn run(run_dir: &Path, rest: &[String]) -> Result<i32, ClientError> {
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    // A terminal only when both ends are one: `initctl ops -- cat f > out` must not get CR LF.
    let tty = stdin.is_terminal() && stdout.is_terminal();
    let req = parse(rest, tty, std::env::var("TERM").ok())?;
    let mut conn = Connection::open(&socket_path(run_dir))?;
    let id = conn.send_with_fds(
        Op::Ops(req),
        &[stdin.as_fd(), stdout.as_fd(), stderr.as_fd()],
    )?;
    // A session lasts as long as its command.
    conn.set_read_timeout(None)?;
    let r = conn.read_response(id)?;
    let result = r.result.unwrap_or_default();
    if result.get("removed").and_then(|v| v.as_bool()) == Some(false) {
        eprintln!(
            "initctl: ops container {} may not have been removed (see /var/log/lifsea/ops.log)",
            result.get("id").and_then(|v| v.as_str()).unwrap_or("?")
        );
    }
    match result.get("exit").and_then(|v| v.as_i64()) {
        Some(code) => Ok(code.clamp(0, 255) as i32),
        None => Err(ClientError::Reply(
            "ops reply without an exit status".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(
            parse(&[], true, Some("xterm".into()))
                .unwrap()
                .term
                .as_deref(),
            Some("xterm")
        );
        let r = parse(&w("-- cat /host/etc/hostname"), false, Some("xterm".into())).unwrap();
        assert_eq!(r.argv, w("cat /host/etc/hostname"));
        assert_eq!(r.term, None, "TERM only with a terminal");
        // Flags after -- belong to the command.
        assert_eq!(
            parse(&w("-- ls --all"), false, None).unwrap().argv,
            w("ls --all")
        );
        for bad in ["cat x", "--", "-t -- sh"] {
            assert!(parse(&w(bad), false, None).is_err(), "{bad}");
        }
    }
}
