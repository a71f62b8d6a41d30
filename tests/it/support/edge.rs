//! A real `edge` process on free ports with a temp cache dir, driven over HTTP.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A free port on 127.0.0.1 (bound then released; the edge binds it right after), never one
/// this test process handed out before: the kernel may give a released port again at once,
/// and an edge's config got the same port for two listeners that way (CI: `server.admin:
/// must differ from server.http`).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if GIVEN.lock().unwrap_or_else(|e| e.into_inner()).insert(port) {
            return port;
        }
    }
    panic!("no port this process has not handed out before in 1000 tries");
}

/// The test config's origin pool (one node at `origin`) followed by `extra`.
fn origin_config(origin: SocketAddr, extra: &str) -> String {
    format!(
        "[[origins]]\nname = \"test\"\nnodes = [{{ addr = \"{origin}\" }}]\nconnect_timeout = \"1s\"\nread_timeout = \"5s\"\n{extra}"
    )
}

/// A running edge process. Killed on drop.
pub struct Edge {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub dir: TempDir,
    pub config_path: PathBuf,
    child: Option<Child>,
    /// `RUST_LOG` for the process (`None`: inherited).
    rust_log: Option<String>,
}

impl Edge {
    /// Start an edge in front of `origin` with extra TOML appended to a test config.
    /// `extra` may add sections (`[cors]`, `[[origins]]` ...) but not repeat `[server]`/`[cache]`
    /// keys set here; use `start_with_config` for full control.
    pub async fn start(origin: SocketAddr, extra: &str) -> Edge {
        Edge::start_with_config(&origin_config(origin, extra), "").await
    }

    /// As [`Edge::start`], with `cache_extra` lines added to `[cache]`.
    pub async fn start_cache(origin: SocketAddr, cache_extra: &str) -> Edge {
        Edge::start_full(&origin_config(origin, ""), "", cache_extra).await
    }

    /// As [`Edge::start`], with `RUST_LOG` set to `filter` for the process.
    pub async fn start_logging(origin: SocketAddr, extra: &str, filter: &str) -> Edge {
        let mut edge = Edge::configured(&origin_config(origin, extra), "", "");
        edge.rust_log = Some(filter.to_string());
        edge.spawn().await;
        edge
    }

    /// Start an edge whose config is the test `[server]`/`[cache]` sections (with `server_extra`
    /// lines added to `[server]`) followed by `rest`.
    pub async fn start_with_config(rest: &str, server_extra: &str) -> Edge {
        Edge::start_full(rest, server_extra, "").await
    }

    /// As [`Edge::start_with_config`], with `cache_extra` lines added to `[cache]` (they may
    /// end with `[[cache.rules]]` tables).
    pub async fn start_with_config_cache(rest: &str, cache_extra: &str) -> Edge {
        Edge::start_full(rest, "", cache_extra).await
    }

    /// The test config: `[server]` + `server_extra`, `[cache]` + `cache_extra`, then `rest`.
    /// Test defaults: 64 MiB memory, 128 MiB disk, 8 MiB max object, 1 s grace period.
    pub async fn start_full(rest: &str, server_extra: &str, cache_extra: &str) -> Edge {
        let mut edge = Edge::configured(rest, server_extra, cache_extra);
        edge.spawn().await;
        edge
    }

    /// The edge of [`Edge::start_full`], its config written, not started yet.
    fn configured(rest: &str, server_extra: &str, cache_extra: &str) -> Edge {
        let dir = tempfile::tempdir().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = config_text(http, admin, rest, server_extra, cache_extra);
        let http: SocketAddr = config
            .lines()
            .find_map(|l| l.strip_prefix("http = \"")?.strip_suffix('"')?.parse().ok())
            .unwrap_or(http);
        let config_path = dir.path().join("edge.toml");
        std::fs::write(&config_path, config).unwrap();
        Edge {
            http,
            admin,
            dir,
            config_path,
            child: None,
            rust_log: None,
        }
    }

    /// Write a new config file for this edge (the test config on its ports, as
    /// [`Edge::start_full`] builds it), for a reload to read.
    pub fn rewrite_config(&self, rest: &str, server_extra: &str, cache_extra: &str) {
        std::fs::write(
            &self.config_path,
            config_text(self.http, self.admin, rest, server_extra, cache_extra),
        )
        .unwrap();
    }

    /// `POST /admin/reload`: the status and the JSON answer.
    pub async fn reload(&self) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(self.admin_url("/admin/reload"))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("edge.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_edge"));
        if let Some(filter) = &self.rust_log {
            command.env("RUST_LOG", filter);
        }
        let child = command
            .args(["serve", "--config"])
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn edge");
        self.child = Some(child);
        self.wait_ready().await;
    }

    /// Start a second process of the same binary with `serve --upgrade` on this edge's config
    /// and cache folder (it asks this one for its listeners, README "Upgrade"). The edge now
    /// stands for the new process; the old one is returned to be waited for. Does not wait for
    /// readiness: the old process answers `/readyz` until it stops accepting.
    pub fn start_upgrade(&mut self) -> Child {
        let old = self.child.take().expect("edge running");
        // A file of its own: the old process still writes at its own offset in `edge.log`.
        let log = std::fs::File::create(self.dir.path().join("edge-upgraded.log")).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_edge"));
        if let Some(filter) = &self.rust_log {
            command.env("RUST_LOG", filter);
        }
        let child = command
            .args(["serve", "--upgrade", "--config"])
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn edge --upgrade");
        self.child = Some(child);
        old
    }

    /// Wait (at most `limit`) for a process this edge handed over from to exit.
    pub async fn wait_old_exit(&self, old: &mut Child, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = old.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > limit {
                let _ = old.kill();
                panic!(
                    "the old edge did not exit within {limit:?}:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Wait (up to 30 s) until `/readyz` answers 200; panics if the process exits first.
    pub async fn await_ready(&mut self) {
        self.wait_ready().await
    }

    /// The process id of the running edge.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("edge running").id()
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("http://{}/readyz", self.admin);
        let client = reqwest::Client::new();
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("edge exited during start ({status}):\n{}", self.log());
            }
            if let Ok(r) = client
                .get(&url)
                .timeout(Duration::from_millis(500))
                .send()
                .await
            {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("edge not ready after 30 s:\n{}", self.log());
    }

    /// The process's output; after an upgrade ([`Edge::start_upgrade`]), the old process's
    /// followed by the new one's.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        read("edge.log") + &read("edge-upgraded.log")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.http, path)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Send SIGTERM (graceful shutdown).
    pub fn terminate(&self) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "kill -TERM failed");
        }
    }

    /// Send a signal by name (`HUP`, `USR1`, ...).
    pub fn signal(&self, name: &str) {
        let c = self.child.as_ref().expect("edge running");
        let ok = Command::new("kill")
            .args([&format!("-{name}"), &c.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{name} failed");
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// Wait for the process to exit, at most `limit`. Returns its status and how long it took.
    pub async fn wait_exit(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        let child = self.child.as_mut().expect("edge running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return (status, start.elapsed());
            }
            if start.elapsed() > limit {
                panic!("edge did not exit within {limit:?}:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL: no graceful shutdown at all.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start again after a stop, on the same ports, config and cache dir.
    pub async fn restart_after_stop(&mut self) {
        assert!(self.child.is_none(), "edge still running");
        self.spawn().await;
    }

    /// Graceful stop, then start again on the same ports, config and cache dir.
    pub async fn restart(&mut self) {
        self.terminate();
        let (status, _) = self.wait_exit(Duration::from_secs(15)).await;
        assert!(
            status.success(),
            "edge exit status {status}:\n{}",
            self.log()
        );
        self.spawn().await;
    }

    /// The admin `/metrics` text.
    /// Wait (up to 5 s) until the cache admitted more bytes than `before` (the value of
    /// `edge_cache_admitted_bytes_total` read before a miss): a miss's response can reach the
    /// client a moment before its fill is committed to the cache.
    pub async fn await_admitted(&self, before: f64) {
        for _ in 0..250 {
            if self.metric("edge_cache_admitted_bytes_total").await > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no fill was committed within 5 s");
    }

    /// Wait (up to 5 s) until `sample` reaches `at_least`: a request is counted when its
    /// logging phase runs, which can be a moment after the client has the whole response.
    pub async fn await_metric(&self, sample: &str, at_least: f64) {
        for _ in 0..250 {
            if self.metric(sample).await >= at_least {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{sample} did not reach {at_least} within 5 s");
    }

    /// GET `path`, which must answer 200: its `x-cache` and its body.
    pub async fn get_cached(&self, path: &str) -> (String, Vec<u8>) {
        let r = super::client().get(self.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}:\n{}", self.log());
        let x = r.headers()["x-cache"].to_str().unwrap().to_string();
        (x, r.bytes().await.unwrap().to_vec())
    }

    /// Wait (at most 10 s) until foyer has written at least `bytes` to disk and writes no more
    /// for 300 ms: an entry is indexed (found on disk) a moment after its bytes are counted,
    /// and a lookup in between finds it in foyer's write queue instead. The bytes written.
    pub async fn disk_writes_settle(&self, bytes: f64) -> f64 {
        let mut last = f64::NAN;
        for _ in 0..33 {
            let now = self.metric("edge_cache_disk_write_bytes_total").await;
            if now >= bytes && now == last {
                return now;
            }
            last = now;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        last
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(self.admin_url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// The value of one sample line, e.g. `edge_cache_coalesced_total` or
    /// `edge_requests_total{cache="HIT",kind="content",status="200"}`. 0 when absent.
    pub async fn metric(&self, sample: &str) -> f64 {
        metric_value(&self.metrics().await, sample)
    }
}

/// The test config: `[server]` on `http` and `admin` + `server_extra`, `[cache]` +
/// `cache_extra`, then `rest`.
fn config_text(
    http: SocketAddr,
    admin: SocketAddr,
    rest: &str,
    server_extra: &str,
    cache_extra: &str,
) -> String {
    let server_defaults = [
        ("http", format!("\"{http}\"")),
        ("admin", format!("\"{admin}\"")),
        ("threads", "2".to_string()),
        ("grace_period", "\"1s\"".to_string()),
        ("shutdown_timeout", "\"1s\"".to_string()),
    ];
    let server = section(&server_defaults, server_extra);
    format!(
        "[server]\n{server}\n[cache]\n{cache}\n\n{rest}",
        cache = cache_section(cache_extra)
    )
}

/// The test `[cache]` body: defaults, each replaced by a line of `extra` with the same key.
fn cache_section(extra: &str) -> String {
    let defaults = [
        ("dir", "\"cache\""),
        ("memory", "\"64 MiB\""),
        ("disk", "\"128 MiB\""),
        ("max_object", "\"8 MiB\""),
    ]
    .map(|(k, v)| (k, v.to_string()));
    section(&defaults, extra)
}

/// A section body: `defaults` as `key = value` lines, except keys that `extra` sets, then `extra`.
fn section(defaults: &[(&str, String)], extra: &str) -> String {
    let set = |k: &str| {
        extra
            .lines()
            .any(|l| l.split('=').next().map(str::trim) == Some(k))
    };
    let mut out: String = defaults
        .iter()
        .filter(|(k, _)| !set(k))
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    out.push_str(extra);
    out.push('\n');
    out
}

/// Find `sample` (name plus exact label set, labels in any order) in Prometheus text.
pub fn metric_value(text: &str, sample: &str) -> f64 {
    let (name, labels) = split_sample(sample);
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, l) = split_sample(key);
        if n == name && l == labels {
            return value.parse().unwrap_or(f64::NAN);
        }
    }
    0.0
}

fn split_sample(s: &str) -> (&str, Vec<&str>) {
    match s.split_once('{') {
        Some((n, rest)) => {
            let mut labels: Vec<&str> = rest
                .trim_end_matches('}')
                .split(',')
                .filter(|l| !l.is_empty())
                .collect();
            labels.sort_unstable();
            (n, labels)
        }
        None => (s, Vec::new()),
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
