//! A real HTTP/1.1 origin on 127.0.0.1 for tests: serves given bytes per path, counts
//! requests and connections, and on request can delay, fail, pace or cut a body mid-way.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How the origin answers one path.
#[derive(Clone, Debug)]
pub struct Route {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Wait this long before sending the response header.
    pub delay: Duration,
    /// Send the body in this many chunks spread over `pace` (0 = at once).
    pub chunks: usize,
    pub pace: Duration,
    /// Close the connection after this many body bytes (Content-Length still says all).
    pub cut_after: Option<usize>,
    /// Body is `host + path` of the request instead of `body`.
    pub echo_host: bool,
    /// Reset the connection (RST) after this many body bytes.
    pub reset_after: Option<usize>,
    /// Stop sending after this many body bytes and hold the connection open.
    pub stall_after: Option<usize>,
    /// Send this ETag, and answer a matching If-None-Match with 304.
    pub etag: Option<String>,
    /// When the request's `Accept-Encoding` names this coding, answer with this body and
    /// `Content-Encoding: <coding>` instead (and always `Vary: Accept-Encoding`).
    pub encoded: Option<(String, Bytes)>,
    /// From this request of a connection on (0 = its first), read the request, then close
    /// without answering: with 1, a keep-alive connection the origin gave up on just as it
    /// was reused.
    pub drop_from: Option<usize>,
    /// Answer `101 Switching Protocols` (`Upgrade: websocket`) whatever was asked, then echo
    /// every byte back until the client closes.
    pub switch: bool,
    /// Answer a single `Range: bytes=a-b` (or `a-`) on a 200 with its 206 and
    /// `Content-Range`, as a file server does (other ranges get the whole 200).
    pub ranges: bool,
}

impl Route {
    pub fn ok(body: impl Into<Bytes>) -> Route {
        Route {
            status: 200,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            chunks: 1,
            pace: Duration::ZERO,
            cut_after: None,
            echo_host: false,
            reset_after: None,
            stall_after: None,
            etag: None,
            encoded: None,
            drop_from: None,
            switch: false,
            ranges: false,
        }
    }

    pub fn ranges(mut self) -> Route {
        self.ranges = true;
        self
    }

    pub fn switch(mut self) -> Route {
        self.switch = true;
        self
    }

    pub fn encoded(mut self, coding: &str, body: impl Into<Bytes>) -> Route {
        self.encoded = Some((coding.to_string(), body.into()));
        self
    }

    /// Read and drop every request after the first of a connection.
    pub fn close_reused(self) -> Route {
        self.drop_from(1)
    }

    pub fn drop_from(mut self, nth: usize) -> Route {
        self.drop_from = Some(nth);
        self
    }

    pub fn reset_after(mut self, n: usize) -> Route {
        self.reset_after = Some(n);
        self
    }

    pub fn stall_after(mut self, n: usize) -> Route {
        self.stall_after = Some(n);
        self
    }

    pub fn etag(mut self, tag: &str) -> Route {
        self.etag = Some(tag.to_string());
        self
    }

    pub fn status(mut self, status: u16) -> Route {
        self.status = status;
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Route {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Route {
        self.delay = d;
        self
    }

    pub fn paced(mut self, chunks: usize, over: Duration) -> Route {
        self.chunks = chunks.max(1);
        self.pace = over;
        self
    }

    pub fn cut_after(mut self, n: usize) -> Route {
        self.cut_after = Some(n);
        self
    }

    pub fn echo_host(mut self) -> Route {
        self.echo_host = true;
        self
    }
}

/// One request as the origin saw it.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    /// When the request head was read.
    pub at: std::time::Instant,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// The request body (Content-Length or chunked; the chunked framing removed).
    pub body: Vec<u8>,
}

impl SeenRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<String, Route>>,
    /// Files under this folder answer paths without a route (read at each request).
    dir: Mutex<Option<std::path::PathBuf>>,
    seen: Mutex<Vec<SeenRequest>>,
    connections: AtomicUsize,
    /// Connection tasks, aborted when the origin is dropped (a dead origin drops them all).
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

/// A running test origin. Dropping it stops accepting.
pub struct Origin {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
        for t in self.shared.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

impl Origin {
    pub async fn start() -> Origin {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    pub async fn start_on(addr: SocketAddr) -> Origin {
        Self::listen(addr, |stream, shared| async move {
            let _ = serve_connection(stream, shared).await;
        })
        .await
    }

    /// Accept connections on `addr`, counting them, each handled by `handle` in its own task.
    async fn listen<F, Fut>(addr: SocketAddr, handle: F) -> Origin
    where
        F: Fn(TcpStream, Arc<Shared>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind(addr).await.expect("bind origin");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::SeqCst);
                let conn = tokio::spawn(handle(stream, s.clone()));
                s.tasks.lock().unwrap().push(conn.abort_handle());
            }
        });
        Origin { addr, shared, task }
    }

    pub fn route(&self, path: &str, route: Route) -> &Self {
        self.shared
            .routes
            .lock()
            .unwrap()
            .insert(path.to_string(), route);
        self
    }

    /// Answer a path without a route from the file of that name under `dir`, read when
    /// asked (a live encoder's folder), with a content type by extension and no caching
    /// headers; a missing file is a 404.
    pub fn serve_dir(&self, dir: &std::path::Path) -> &Self {
        *self.shared.dir.lock().unwrap() = Some(dir.to_path_buf());
        self
    }

    /// Requests seen for `path` (the request target without query).
    pub fn hits(&self, path: &str) -> usize {
        self.shared
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.target.split('?').next() == Some(path))
            .count()
    }

    pub fn total_hits(&self) -> usize {
        self.shared.seen.lock().unwrap().len()
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

/// A connection the origin can serve: plain TCP or TLS.
trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {
    /// Close abortively (RST) where the transport can.
    fn reset(self);
}

impl Conn for TcpStream {
    fn reset(self) {
        #[allow(deprecated)] // an abortive close (RST) is the point here
        let _ = self.set_linger(Some(Duration::ZERO));
    }
}

impl Conn for tokio_rustls::server::TlsStream<TcpStream> {
    fn reset(self) {
        let (tcp, _) = self.into_inner();
        tcp.reset();
    }
}

impl Origin {
    /// An origin that speaks TLS with the certificate and key in `dir` (`edge.pem`, `edge-key.pem`).
    pub async fn start_tls(dir: &std::path::Path) -> Origin {
        use rustls_pki_types::pem::PemObject;
        let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(dir.join("edge.pem"))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let key = rustls_pki_types::PrivateKeyDer::from_pem_file(dir.join("edge-key.pem")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        Self::listen("127.0.0.1:0".parse().unwrap(), move |stream, shared| {
            let acceptor = acceptor.clone();
            async move {
                if let Ok(tls) = acceptor.accept(stream).await {
                    let _ = serve_connection(tls, shared).await;
                }
            }
        })
        .await
    }
}

async fn serve_connection<S: Conn>(stream: S, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    for served in 0usize.. {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).await? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut req = SeenRequest {
            at: std::time::Instant::now(),
            method: method.clone(),
            target: target.clone(),
            headers,
            body: Vec::new(),
        };
        if req
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().ends_with("chunked"))
        {
            req.body = read_chunked(&mut reader).await?;
        } else if let Some(len) = req
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok())
        {
            req.body = vec![0u8; len];
            reader.read_exact(&mut req.body).await?;
        }
        let host = req.header("host").unwrap_or("").to_string();
        let accept_encoding = req
            .header("accept-encoding")
            .unwrap_or("")
            .to_ascii_lowercase();
        let if_none_match = req.header("if-none-match").map(str::to_string);
        let range = req.header("range").map(str::to_string);
        shared.seen.lock().unwrap().push(req);
        let path = target.split('?').next().unwrap_or("").to_string();
        let route = shared.routes.lock().unwrap().get(&path).cloned();
        let dir = shared.dir.lock().unwrap().clone();
        let route = route
            .or_else(|| file_route(dir.as_deref()?, &path))
            .unwrap_or_else(|| Route::ok("not found\n").status(404));
        if route.drop_from.is_some_and(|n| served >= n) {
            return Ok(());
        }
        let mut route = route;
        let mut body = if route.echo_host {
            Bytes::from(format!("{host}{path}"))
        } else {
            route.body.clone()
        };
        if let Some((coding, encoded)) = route.encoded.clone() {
            route
                .headers
                .push(("vary".into(), "Accept-Encoding".into()));
            if accept_encoding
                .split(',')
                .any(|c| c.split(';').next().unwrap_or("").trim() == coding)
            {
                route.headers.push(("content-encoding".into(), coding));
                body = encoded;
            }
        }

        if route.ranges && route.status == 200 {
            if let Some((a, b)) = range.as_deref().and_then(|r| single_range(r, body.len())) {
                route.status = 206;
                route.headers.push((
                    "content-range".into(),
                    format!("bytes {a}-{b}/{}", body.len()),
                ));
                body = body.slice(a..=b);
            }
        }
        tokio::time::sleep(route.delay).await;
        if route.switch {
            let head = "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
            reader.get_mut().write_all(head.as_bytes()).await?;
            let mut buf = [0u8; 4096];
            loop {
                let n = reader.read(&mut buf).await?;
                if n == 0 {
                    return Ok(());
                }
                reader.get_mut().write_all(&buf[..n]).await?;
            }
        }
        let stream = reader.get_mut();
        let not_modified = route.etag.is_some() && route.etag == if_none_match;
        let mut head = if not_modified {
            "HTTP/1.1 304 Not Modified\r\n".to_string()
        } else {
            format!(
                "HTTP/1.1 {} X\r\ncontent-length: {}\r\n",
                route.status,
                body.len()
            )
        };
        if let Some(tag) = &route.etag {
            head.push_str(&format!("etag: {tag}\r\n"));
        }
        for (k, v) in &route.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await?;
        if method == "HEAD" || not_modified {
            continue;
        }
        let early = route.cut_after.or(route.reset_after).or(route.stall_after);
        let limit = early.unwrap_or(body.len()).min(body.len());
        let chunk = limit.div_ceil(route.chunks).max(1);
        let gap = route.pace / route.chunks as u32;
        let mut sent = 0;
        while sent < limit {
            let end = (sent + chunk).min(limit);
            stream.write_all(&body[sent..end]).await?;
            stream.flush().await?;
            sent = end;
            if sent < limit && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
        }
        if route.cut_after.is_some() {
            stream.shutdown().await?;
            return Ok(());
        }
        if route.reset_after.is_some() {
            reader.into_inner().reset();
            return Ok(());
        }
        if route.stall_after.is_some() {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return Ok(());
        }
    }
    Ok(())
}

/// `bytes=a-b` or `bytes=a-` within a body of `len` bytes, as inclusive positions (the end
/// cut to the body's).
fn single_range(value: &str, len: usize) -> Option<(usize, usize)> {
    let (a, b) = value.strip_prefix("bytes=")?.split_once('-')?;
    let a: usize = a.parse().ok()?;
    let b = match b {
        "" => len.checked_sub(1)?,
        b => b.parse::<usize>().ok()?.min(len.checked_sub(1)?),
    };
    (a <= b).then_some((a, b))
}

/// The file for `path` under `dir` as a route (`..` never leaves `dir`).
fn file_route(dir: &std::path::Path, path: &str) -> Option<Route> {
    let rel = path.trim_start_matches('/');
    if rel.split('/').any(|s| s == ".." || s.is_empty()) {
        return None;
    }
    let file = dir.join(rel);
    let body = std::fs::read(&file).ok()?;
    Some(Route::ok(body).header("content-type", super::live::content_type(&file)))
}

/// A chunked request body (RFC 9112 §7.1), its framing removed; trailer fields are skipped.
async fn read_chunked<R: tokio::io::AsyncBufRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<Vec<u8>> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| bad("chunk size"))?;
        if size == 0 {
            // Trailer fields, then the empty line.
            loop {
                let mut t = String::new();
                if reader.read_line(&mut t).await? == 0 || t.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).await?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf).await?;
        if &crlf != b"\r\n" {
            return Err(bad("chunk end"));
        }
    }
}
