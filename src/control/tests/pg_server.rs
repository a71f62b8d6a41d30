//! A throwaway PostgreSQL server for tests: Debian's `postgresql` package (installed by
//! `.ci/deps test`), `initdb` on a temporary folder, `postgres` on 127.0.0.1 and a free port,
//! trust authentication, no Unix socket. PostgreSQL refuses to run as root, so as root the
//! server runs as `nobody` (`setpriv`); the folder is given to that user.
//!
//! The server runs under a small shell that stops it (fast shutdown) when its standard input
//! closes: on [`PgServer::stop`], on drop, and when the test process exits for any reason,
//! so no server outlives its tests.
//!
//! This file is shared by the library's tests (`src/control/tests/`) and the integration tests
//! (`tests/it/support/postgres.rs` includes it): std and `tempfile` only.

#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The superuser `initdb` creates (trust authentication on 127.0.0.1).
pub const PG_USER: &str = "edge";
/// How long a start may take before the test fails.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The newest `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server in /usr/lib/postgresql/*/bin: run `bash .ci/deps test` \
             (installs Debian's postgresql package)"
        ),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// `cmd args…`, as `nobody` when this process is root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--reset-env",
        ])
        .arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running (or stopped) throwaway server.
pub struct PgServer {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    /// The shell around `postgres`; its stdin is the stop switch.
    child: Option<Child>,
    /// Removed on drop (`None` for the shared server, whose shell removes its folder).
    dir: Option<tempfile::TempDir>,
    /// The folder the shell removes when the server has stopped (the shared server's).
    remove_on_exit: Option<PathBuf>,
}

impl PgServer {
    /// A new cluster in a new temporary folder, started.
    pub fn start() -> PgServer {
        let mut s = PgServer::init(tempfile::tempdir().expect("tempdir"));
        s.restart();
        s
    }

    fn init(dir: tempfile::TempDir) -> PgServer {
        let bin = bin_dir();
        let data = dir.path().join("data");
        if is_root() {
            std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).expect("chown");
        }
        let out = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                PG_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        PgServer {
            bin,
            data,
            port: 0,
            child: None,
            dir: Some(dir),
            remove_on_exit: None,
        }
    }

    /// Starts the server on its data folder (a new port the first time, the same one after
    /// [`PgServer::stop`]); waits until it accepts queries.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let first = self.port == 0;
        for _ in 0..5 {
            if first {
                self.port = free_port();
            }
            match self.spawn() {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                Err(e) if first => eprintln!("pg_server: retrying on another port: {e}"),
                Err(e) => panic!("PostgreSQL did not start again: {e}"),
            }
        }
        panic!("PostgreSQL did not start on 5 ports");
    }

    fn spawn(&self) -> Result<Child, String> {
        let log = self.data.join("server.log");
        // `read` returns when stdin closes: then a fast shutdown, and wait for it.
        let script = r#"bin="$1"; data="$2"; port="$3"; log="$4"; remove="$5"
"$bin/postgres" -D "$data" -p "$port" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories= -c fsync=off -c max_connections=300 >>"$log" 2>&1 &
pid=$!
read how
kill -"${how:-INT}" "$pid" 2>/dev/null
wait "$pid"
[ -n "$remove" ] && rm -rf "$remove"
"#;
        let mut child = as_server_user(Path::new("/bin/sh"))
            .args(["-c", script, "pg_server"])
            .arg(&self.bin)
            .arg(&self.data)
            .arg(self.port.to_string())
            .arg(&log)
            .arg(self.remove_on_exit.as_deref().unwrap_or(Path::new("")))
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn postgres: {e}"))?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if self.psql("postgres", "SELECT 1").is_ok() {
                return Ok(child);
            }
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                drop(child.stdin.take());
                let _ = child.kill();
                let _ = child.wait();
                let mut text = String::new();
                if let Ok(mut f) = std::fs::File::open(&log) {
                    let _ = f.read_to_string(&mut text);
                }
                return Err(format!("postgres on port {}: {text}", self.port));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (fast shutdown: open connections are cut), keeping its data.
    pub fn stop(&mut self) {
        self.stop_with("INT");
    }

    /// Stops the server as a crash would (immediate shutdown: no checkpoint, WAL replay at
    /// the next start), keeping its data.
    pub fn crash(&mut self) {
        self.stop_with("QUIT");
    }

    fn stop_with(&mut self, signal: &str) {
        if let Some(mut child) = self.child.take() {
            if let Some(mut stdin) = child.stdin.take() {
                use std::io::Write;
                let _ = writeln!(stdin, "{signal}");
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// Runs `sql` on database `db` with `psql`; returns its output (unaligned, tuples only).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                PG_USER,
            ])
            .args(["-d", db, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A new, empty database; returns its URL.
    pub fn create_database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))
            .expect("create database");
        self.url(&name)
    }

    /// The URL of database `db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
        drop(self.dir.take());
    }
}

/// One server shared by every test of this process (each test takes its own database with
/// [`PgServer::create_database`]). It stops when the process exits: its shell's stdin closes.
pub fn shared() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let mut s = PgServer::init(dir);
        // The static is never dropped: the shell removes the folder instead.
        if let Some(d) = s.dir.take() {
            let _ = d.keep();
        }
        s.remove_on_exit = Some(path);
        s.restart();
        s
    })
}
