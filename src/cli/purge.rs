//! `edge purge [--prefix] [--soft] URL...`: purge through the admin API (`POST /admin/purge`,
//! see [`crate::cache::purge`]) of a running edge, one request per URL over a few keep-alive
//! connections, and print one line per URL: `purged URL`, `purged URL on this edge only: ...`
//! (the edge's fleet database was unavailable, [`crate::fleet`]) or `refused URL: reason`.
//!
//! Without `--prefix` each URL must be absolute (`http://host/path`): that path on that host.
//! With `--prefix`, `http://host/v/title/` purges everything under `/v/title/` on that host and
//! `/v/title/` everything under it on every host. A URL `-` reads more URLs from standard
//! input, one a line. Exit status: 0 when every purge was applied (and reached the fleet, if
//! any), 1 when one was refused, failed or reached this edge only, 69 when the admin listener cannot be reached at all.
//!
//! The client is plain HTTP/1.1 on a `TcpStream` (the admin listener is HTTP on loopback or a
//! management network), its answers read with `httparse`: no HTTP client crate for one POST.

use std::io::{BufRead, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{load, EXIT_CONFIG, EXIT_START, EXIT_USAGE};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest admin answer read.
const MAX_ANSWER: usize = 1 << 20;

#[derive(Debug, clap::Args)]
pub struct PurgeArgs {
    /// Config to read `[server] admin` from (default: ./edge.toml, else the built-in one).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Admin listener address (default: the config's `[server] admin`).
    #[arg(long)]
    admin: Option<String>,
    /// Purge everything under each URL's path (on its host; on every host for a bare path).
    #[arg(long)]
    prefix: bool,
    /// Mark stale (revalidate on next use) instead of removing.
    #[arg(long)]
    soft: bool,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
    /// URLs to purge; `-` reads them from standard input, one a line.
    #[arg(required = true)]
    urls: Vec<String>,
}

/// The admin request body for one URL.
pub fn body_for(url: &str, prefix: bool, soft: bool) -> Result<String, String> {
    let mut body = serde_json::Map::new();
    if !prefix {
        body.insert("url".into(), url.into());
    } else if url.starts_with('/') {
        body.insert("prefix".into(), url.into());
    } else {
        const FORMS: &str =
            "a prefix is a path (/v/title/) or an absolute URL (http://host/v/title/)";
        let uri: http::Uri = url.parse().map_err(|_| FORMS.to_string())?;
        let Some(host) = uri.authority() else {
            return Err(FORMS.into());
        };
        body.insert("prefix".into(), uri.path().into());
        body.insert("host".into(), host.as_str().into());
    }
    if soft {
        body.insert("soft".into(), true.into());
    }
    Ok(serde_json::Value::Object(body).to_string())
}

/// One keep-alive connection to the admin listener (reopened when the server closes it).
pub(super) struct Admin {
    pub(super) addr: SocketAddr,
    pub(super) conn: Option<std::io::BufReader<TcpStream>>,
}

/// An admin answer: status and body.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: String,
    close: bool,
}

impl Admin {
    pub(super) fn connect(addr: SocketAddr) -> std::io::Result<std::io::BufReader<TcpStream>> {
        let s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        s.set_nodelay(true)?;
        Ok(std::io::BufReader::new(s))
    }

    pub(super) fn post(&mut self, path: &str, body: &str) -> std::io::Result<Answer> {
        // A kept connection may have been closed by the server meanwhile: one retry on a new one.
        let reused = self.conn.is_some();
        match self.try_post(path, body) {
            Err(_) if reused => {
                self.conn = None;
                self.try_post(path, body)
            }
            r => r,
        }
    }

    fn try_post(&mut self, path: &str, body: &str) -> std::io::Result<Answer> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self.conn.insert(Self::connect(self.addr)?),
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let s = conn.get_mut();
        s.write_all(head.as_bytes())?;
        s.write_all(body.as_bytes())?;
        let answer = read_answer(conn);
        if answer.as_ref().map_or(true, |a| a.close) {
            self.conn = None;
        }
        answer
    }
}

fn bad(what: impl Into<String>) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.into())
}

/// Read one response with a `Content-Length` body (what the admin listener sends).
fn read_answer(conn: &mut std::io::BufReader<TcpStream>) -> std::io::Result<Answer> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read_until(b'\n', &mut head)? == 0 {
            return Err(bad("the admin listener closed the connection"));
        }
        if head.len() > MAX_ANSWER {
            return Err(bad("answer head too large"));
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    resp.parse(&head)
        .map_err(|e| bad(format!("unreadable answer: {e}")))?;
    let status = resp.code.ok_or_else(|| bad("answer without a status"))?;
    let field = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let len: usize = field("content-length")
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
        .ok_or_else(|| bad("answer without a Content-Length"))?;
    if len > MAX_ANSWER {
        return Err(bad("answer too large"));
    }
    let close = field("connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
    let mut body = vec![0; len];
    conn.read_exact(&mut body)?;
    Ok(Answer {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
        close,
    })
}

/// The line printed for one URL, and whether the purge was applied.
fn outcome(url: &str, answer: std::io::Result<Answer>) -> (String, bool) {
    match answer {
        Ok(a) if a.status == 200 => (format!("purged {url}"), true),
        // Applied on that edge, not sent to its fleet: a failure, so a script purges again.
        Ok(a) if a.status == 202 => (
            format!("purged {url} on this edge only: the fleet database is unavailable"),
            false,
        ),
        Ok(a) => {
            let reason = serde_json::from_str::<serde_json::Value>(&a.body)
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(str::to_string))
                .unwrap_or_else(|| a.body.trim().to_string());
            (format!("refused {url}: HTTP {}: {reason}", a.status), false)
        }
        Err(e) => (format!("failed {url}: {e}"), false),
    }
}

fn admin_addr(a: &PurgeArgs) -> Result<SocketAddr, (String, u8)> {
    admin_address("edge purge", a.admin.as_deref(), a.config.as_deref())
}

/// The admin listener's address: `--admin`, else the config's `[server] admin`.
pub(super) fn admin_address(
    command: &str,
    admin: Option<&str>,
    config: Option<&std::path::Path>,
) -> Result<SocketAddr, (String, u8)> {
    let text = match admin {
        Some(t) => t.to_string(),
        None => match load(config) {
            Ok((_, c)) => c.server.admin.to_string(),
            Err((file, e)) => return Err((format!("{file}: {e}"), EXIT_CONFIG)),
        },
    };
    text.to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| {
            (
                format!("{command}: --admin {text:?} is not a host:port address"),
                EXIT_USAGE,
            )
        })
}

fn urls(args: Vec<String>) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    for u in args {
        if u == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line?;
                if !line.trim().is_empty() {
                    out.push(line.trim().to_string());
                }
            }
        } else {
            out.push(u);
        }
    }
    Ok(out)
}

pub fn run(a: PurgeArgs) -> ExitCode {
    let addr = match admin_addr(&a) {
        Ok(addr) => addr,
        Err((line, code)) => {
            eprintln!("{line}");
            return ExitCode::from(code);
        }
    };
    let (prefix, soft, jobs) = (a.prefix, a.soft, usize::from(a.jobs));
    let list = match urls(a.urls) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("edge purge: reading URLs from standard input: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // One connection first: an unreachable admin listener is one clear line, not one per URL.
    let first = match Admin::connect(addr) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("edge purge: cannot reach the admin listener at {addr}: {e}");
            return ExitCode::from(EXIT_START);
        }
    };
    let mut first = Some(first);
    let chunk = list.len().div_ceil(jobs).max(1);
    let lines: Vec<(String, bool)> = std::thread::scope(|scope| {
        let workers: Vec<_> = list
            .chunks(chunk)
            .map(|urls| {
                let mut admin = Admin {
                    addr,
                    conn: first.take(),
                };
                scope.spawn(move || {
                    urls.iter()
                        .map(|url| match body_for(url, prefix, soft) {
                            Ok(body) => outcome(url, admin.post("/admin/purge", &body)),
                            Err(e) => (format!("refused {url}: {e}"), false),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let mut out = std::io::stdout().lock();
    let mut ok = lines.len() == list.len();
    for (line, applied) in &lines {
        ok &= applied;
        let _ = writeln!(out, "{line}");
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_for_urls_and_prefixes() {
        assert_eq!(
            body_for("http://h/v/a.ts", false, false).unwrap(),
            r#"{"url":"http://h/v/a.ts"}"#
        );
        assert_eq!(
            body_for("http://h:8080/v/t/", true, true).unwrap(),
            r#"{"host":"h:8080","prefix":"/v/t/","soft":true}"#
        );
        assert_eq!(
            body_for("/v/t/", true, false).unwrap(),
            r#"{"prefix":"/v/t/"}"#
        );
        for bad in ["v/t/", "h/v/t/", "not a url"] {
            assert!(
                body_for(bad, true, false)
                    .unwrap_err()
                    .contains("a prefix is a path"),
                "{bad}"
            );
        }
    }
}
