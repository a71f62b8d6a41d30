//! `edge reload` and `edge drain`: the admin API's `POST /admin/reload` and `POST /admin/drain`
//! from the command line (a Kubernetes `preStop` hook, a deploy script, an operator's shell),
//! over the same plain HTTP/1.1 client as `edge purge`.
//!
//! `edge reload` prints what was applied and what needs a restart, and exits 1 with the
//! config's error line (the same as `edge check`'s) when the file was refused. `edge drain`
//! turns `/readyz` to 503 while requests are still served. Both exit 69 when the admin
//! listener cannot be reached.

use std::path::PathBuf;
use std::process::ExitCode;

use super::purge::{admin_address, Admin};
use super::EXIT_START;

#[derive(Debug, clap::Args)]
pub struct AdminArgs {
    /// Config to read `[server] admin` from (default: ./edge.toml, else the built-in one).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Admin listener address (default: the config's `[server] admin`).
    #[arg(long)]
    admin: Option<String>,
}

/// The text printed for a reload's JSON answer.
pub fn reload_lines(status: u16, body: &str) -> (String, bool) {
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    let list = |k: &str| {
        v.get(k)
            .and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "nothing".to_string())
    };
    match (status, v.get("error").and_then(|e| e.as_str())) {
        (200, _) => (
            format!(
                "reloaded: applied {}; needs a restart: {}",
                list("applied"),
                list("needs_restart")
            ),
            true,
        ),
        (_, Some(e)) => (
            format!("reload refused (the running config stays): {e}"),
            false,
        ),
        _ => (
            format!("reload refused: HTTP {status}: {}", body.trim()),
            false,
        ),
    }
}

fn post(command: &str, a: AdminArgs, path: &str) -> Result<(u16, String), ExitCode> {
    let addr = admin_address(command, a.admin.as_deref(), a.config.as_deref()).map_err(
        |(line, code)| {
            eprintln!("{line}");
            ExitCode::from(code)
        },
    )?;
    let mut admin = Admin { addr, conn: None };
    match admin.post(path, "") {
        Ok(answer) => Ok((answer.status, answer.body)),
        Err(e) => {
            eprintln!("{command}: cannot reach the admin listener at {addr}: {e}");
            Err(ExitCode::from(EXIT_START))
        }
    }
}

pub fn reload(a: AdminArgs) -> ExitCode {
    match post("edge reload", a, "/admin/reload") {
        Ok((status, body)) => {
            let (line, ok) = reload_lines(status, &body);
            if ok {
                println!("{line}");
                ExitCode::SUCCESS
            } else {
                eprintln!("{line}");
                ExitCode::FAILURE
            }
        }
        Err(code) => code,
    }
}

pub fn drain(a: AdminArgs) -> ExitCode {
    match post("edge drain", a, "/admin/drain") {
        Ok((200, _)) => {
            println!(
                "draining: /readyz answers 503; requests are still served until the process stops"
            );
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("edge drain: HTTP {status}: {}", body.trim());
            ExitCode::FAILURE
        }
        Err(code) => code,
    }
}

#[cfg(test)]
mod tests {
    use super::reload_lines;

    #[test]
    fn reload_answers_become_one_line() {
        assert_eq!(
            reload_lines(
                200,
                r#"{"applied":["tokens","origins"],"needs_restart":[]}"#
            ),
            (
                "reloaded: applied tokens, origins; needs a restart: nothing".to_string(),
                true
            )
        );
        assert_eq!(
            reload_lines(400, r#"{"error":"edge.toml: cache.default_ttl: not a duration"}"#),
            ("reload refused (the running config stays): edge.toml: cache.default_ttl: not a duration".to_string(), false)
        );
        assert!(!reload_lines(409, "running on the built-in config").1);
    }
}
