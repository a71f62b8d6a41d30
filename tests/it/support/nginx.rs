//! A real nginx (Debian's `/usr/sbin/nginx`, installed by `.ci/deps test`) as an origin:
//! serves a temp folder on a free 127.0.0.1 port, gzips playlists (and brotlis them with
//! Debian's `libnginx-mod-http-brotli-filter` when asked), with a configurable keep-alive
//! timeout. Everything it writes (config, pid, logs, temp files) stays in its temp dir. Works
//! as root (workers run as root, so they can read the temp dir) and as any other user.
//! Stopped on drop.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const NGINX: &str = "/usr/sbin/nginx";
const BROTLI_MODULE: &str = "/usr/lib/nginx/modules/ngx_http_brotli_filter_module.so";

/// The MIME types nginx compresses: HLS playlists (both names) and plain text.
const COMPRESSED_TYPES: &str = "application/vnd.apple.mpegurl application/x-mpegURL text/plain";

/// How to run nginx.
#[derive(Clone, Debug)]
pub struct NginxOptions {
    /// `keepalive_timeout`: how long nginx keeps an idle client connection open.
    pub keepalive_timeout: Duration,
    /// Load the brotli filter module and turn `brotli on` for the same types as gzip.
    pub brotli: bool,
    /// More directives for the `http` block (e.g. a `sub_filter`, which makes static files
    /// chunked).
    pub extra_http: String,
    /// Be a reverse proxy to this origin (`proxy_pass`, nginx's defaults otherwise) rather
    /// than serve files: nginx's own answers to what players send, to set beside the edge's.
    pub proxy_to: Option<SocketAddr>,
}

impl Default for NginxOptions {
    fn default() -> Self {
        NginxOptions {
            keepalive_timeout: Duration::from_secs(75),
            brotli: false,
            extra_http: String::new(),
            proxy_to: None,
        }
    }
}

/// A running nginx. Killed (gracefully, then for good) on drop.
pub struct Nginx {
    pub addr: SocketAddr,
    dir: TempDir,
    child: Option<Child>,
}

impl Nginx {
    /// Start nginx with `options`, serving an empty folder (fill it with [`Nginx::put`]).
    pub async fn start(options: NginxOptions) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} missing: run `bash .ci/deps test` (installs Debian's nginx)"
        );
        assert!(
            !options.brotli || Path::new(BROTLI_MODULE).exists(),
            "{BROTLI_MODULE} missing: run `bash .ci/deps test` (installs libnginx-mod-http-brotli-filter)"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("www")).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", super::free_port()).parse().unwrap();
        let conf = config(dir.path(), addr, &options);
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            // Before it reads the config, nginx opens its compiled-in error log; point it here.
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx {
            addr,
            dir,
            child: Some(child),
        };
        nginx.wait_ready().await;
        nginx
    }

    async fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("nginx exited during start ({status}):\n{}", self.log());
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "nginx not listening on {} after 10 s:\n{}",
            self.addr,
            self.log()
        );
    }

    /// Serve `body` at `path` (e.g. `/v/a/index.m3u8`); the extension decides the type.
    pub fn put(&self, path: &str, body: impl AsRef<[u8]>) -> &Self {
        let file = self.root().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, body).unwrap();
        self
    }

    /// The folder nginx serves.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// Requests nginx answered for `path` (from its access log; query ignored).
    pub fn hits(&self, path: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        log.lines()
            .filter(|l| {
                l.split('"')
                    .nth(1)
                    .and_then(|r| r.split(' ').nth(1))
                    .and_then(|t| t.split('?').next())
                    == Some(path)
            })
            .count()
    }

    /// nginx's stderr and error log.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("stderr.log"), read("error.log"))
    }
}

fn config(dir: &Path, addr: SocketAddr, o: &NginxOptions) -> String {
    let d = dir.display();
    // As root, nginx would switch its workers to `nobody`, who cannot read the temp dir.
    let user = if is_root() { "user root;" } else { "" };
    let (brotli_module, brotli) = if o.brotli {
        (
            format!("load_module {BROTLI_MODULE};"),
            format!("brotli on;\n    brotli_types {COMPRESSED_TYPES};\n    brotli_min_length 0;"),
        )
    } else {
        (String::new(), String::new())
    };
    let proxy = o
        .proxy_to
        .map(|a| format!("location / {{ proxy_pass http://{a}; }}"))
        .unwrap_or_default();
    format!(
        r#"{brotli_module}
{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{
    worker_connections 256;
}}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
        video/iso.segment m4s;
        text/plain txt;
    }}
    default_type application/octet-stream;
    keepalive_timeout {keepalive}ms;
    gzip on;
    gzip_vary on;
    gzip_types {COMPRESSED_TYPES};
    gzip_min_length 0;
    gzip_proxied any;
    {brotli}
    {extra}
    server {{
        listen {addr};
        root {d}/www;
        {proxy}
    }}
}}
"#,
        keepalive = o.keepalive_timeout.as_millis(),
        extra = o.extra_http,
    )
}

/// Whether this process runs as root (the owner of `/proc/self` is the process's user).
fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SIGTERM: the master stops its workers too (a SIGKILL would orphan them).
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
