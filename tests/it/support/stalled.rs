//! Clients that ask for a response and then stop reading it, over plain HTTP/1.1, HTTP/1.1
//! over TLS and HTTP/2 over TLS, and an edge with a TLS listener for them.
//!
//! The HTTP/1.1 ones connect with a 4 KiB receive buffer, send one `GET` and never read a
//! byte: the edge's writes to them stop once the socket buffers are full. The HTTP/2 one
//! takes the response head and never reads the body: its stream's flow-control window
//! (reqwest's 2 MiB) fills and stays shut, as nothing returns it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use super::{free_port, Edge};

/// How a client reaches the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Plain,
    TlsH1,
    TlsH2,
}

/// The name the edge's development certificate is made for.
pub const HOST: &str = "a.test";

/// An edge in front of `origin_cfg` (its `[[origins]]` and other sections) with an HTTPS
/// listener next to the plain one, its development CA in `ca_dir`.
pub struct TlsEdge {
    pub edge: Edge,
    pub https: SocketAddr,
    pub ca_dir: tempfile::TempDir,
}

impl TlsEdge {
    /// `cache_extra`: lines added to `[cache]`.
    pub async fn start(origin_cfg: &str, cache_extra: &str) -> TlsEdge {
        TlsEdge::start_full(origin_cfg, "", cache_extra).await
    }

    /// As [`TlsEdge::start`], with `server_extra` lines added to `[server]`.
    pub async fn start_full(origin_cfg: &str, server_extra: &str, cache_extra: &str) -> TlsEdge {
        let ca_dir = tempfile::tempdir().unwrap();
        edge::tls::certs::generate_dev(ca_dir.path(), &[HOST.into()]).unwrap();
        let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let d = ca_dir.path().display();
        let cfg = format!("[tls]\ncerts = [{{ cert = \"{d}/edge.pem\", key = \"{d}/edge-key.pem\" }}]\n{origin_cfg}");
        let server = format!("https = \"{https}\"\n{server_extra}");
        let edge = Edge::start_full(&cfg, &server, cache_extra).await;
        TlsEdge {
            edge,
            https,
            ca_dir,
        }
    }

    /// The URL of `path` for `transport`.
    pub fn url(&self, transport: Transport, path: &str) -> String {
        match transport {
            Transport::Plain => format!("http://{HOST}:{}{path}", self.edge.http.port()),
            Transport::TlsH1 | Transport::TlsH2 => {
                format!("https://{HOST}:{}{path}", self.https.port())
            }
        }
    }

    /// A reqwest client for `transport` (HTTP/1.1 only, or HTTP/2 negotiated over ALPN), with
    /// [`HOST`] resolving to the edge.
    pub fn client(&self, transport: Transport) -> reqwest::Client {
        match transport {
            Transport::TlsH2 => self.builder(),
            Transport::Plain | Transport::TlsH1 => self.builder().http1_only(),
        }
        .build()
        .unwrap()
    }

    /// An HTTP/2 client whose streams open with a flow-control window of `window` bytes,
    /// given back only as the body is read (hyper returns what each read takes, and nothing
    /// more): reading one chunk per interval, it lets the edge send `window` bytes per interval.
    pub fn slow_h2_client(&self, window: u32) -> reqwest::Client {
        self.builder()
            .http2_initial_stream_window_size(window)
            .http2_adaptive_window(false)
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
    }

    /// A client builder trusting the edge's development CA, with [`HOST`] resolving to the
    /// HTTPS listener.
    fn builder(&self) -> reqwest::ClientBuilder {
        let ca = reqwest::Certificate::from_pem(
            &std::fs::read(self.ca_dir.path().join("edge-dev-ca.pem")).unwrap(),
        )
        .unwrap();
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .tls_built_in_root_certs(false)
            .add_root_certificate(ca)
            .resolve(HOST, self.https)
    }

    /// A client that asks for `path` over `transport` and never reads the body.
    pub async fn stalled(&self, transport: Transport, path: &str) -> Stalled {
        match transport {
            Transport::Plain => Stalled::Tcp(stalled_h1(self.edge.http, path).await),
            Transport::TlsH1 => {
                let mut tls = tls_connect(self.https, self.ca_dir.path(), b"http/1.1").await;
                tls.write_all(request(path, self.https.port()).as_bytes())
                    .await
                    .unwrap();
                tls.flush().await.unwrap();
                Stalled::Tls(Box::new(tls))
            }
            Transport::TlsH2 => {
                let r = self
                    .client(transport)
                    .get(self.url(transport, path))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.version(), reqwest::Version::HTTP_2, "negotiated h2");
                Stalled::H2(Box::new(r))
            }
        }
    }
}

/// A stalled client; dropping it closes its connection.
#[allow(dead_code)] // held only to keep the connection open
pub enum Stalled {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    H2(Box<reqwest::Response>),
}

/// A `GET` with the `Host` reqwest sends for a URL with an explicit port (the cache key
/// has the port, so the stalled client and the viewers must ask for the same object).
fn request(path: &str, port: u16) -> String {
    format!("GET {path} HTTP/1.1\r\nhost: {HOST}:{port}\r\n\r\n")
}

/// A TCP connection to `addr` with a 4 KiB receive buffer.
async fn small_buffer_connect(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Plain HTTP/1.1: `GET path` sent on a small-buffer connection that is never read.
pub async fn stalled_h1(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = small_buffer_connect(addr).await;
    s.write_all(request(path, addr.port()).as_bytes())
        .await
        .unwrap();
    s
}

/// A TLS connection (ALPN `alpn`) on a small-buffer socket, trusting the CA in `ca_dir`.
async fn tls_connect(
    addr: SocketAddr,
    ca_dir: &Path,
    alpn: &[u8],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(ca_dir.join("edge-dev-ca.pem")).unwrap();
    for cert in
        <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(
            &ca,
        )
    {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = small_buffer_connect(addr).await;
    let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(alpn));
    tls
}
