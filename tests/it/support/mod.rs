//! Test support: a real origin ([`origin::Origin`]), a real edge process ([`edge::Edge`]),
//! a real nginx ([`nginx::Nginx`]), a real HTTP client, a small tmpfs ([`tmpfs::Tmpfs`]), a
//! throwaway PostgreSQL ([`postgres::PgServer`]), edges joined to a purge fleet on it
//! ([`purge_fleet`]) and live HLS sources ([`live`]: ffmpeg encoding live, a Low-Latency HLS
//! origin).

pub mod cloudfront;
pub mod edge;
pub mod fuse;
pub mod live;
pub mod nginx;
pub mod origin;
pub mod postgres;
pub mod purge_fleet;
pub mod raw;
pub mod stalled;
pub mod tmpfs;

pub use edge::{free_port, Edge};
pub use origin::{Origin, Route};

/// A client that never follows redirects and never pools across tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap()
}

/// Deterministic pseudo-random bytes (so bodies are not trivially compressible or alike).
pub fn bytes_of(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Send one GET with `target` exactly as given (HTTP clients normalise dot segments and
/// escapes before sending; attacks do not). Returns the status code and the raw head.
pub async fn raw_get(addr: std::net::SocketAddr, target: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nhost: edge.test\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
    (status, head)
}
