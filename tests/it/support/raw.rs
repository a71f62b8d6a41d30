//! A raw HTTP/1.1 client connection for tests that need exact bytes on the wire.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One response read off a raw connection.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    /// Lower-cased names; repeated headers joined with ", " in arrival order.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// A raw HTTP/1.1 connection: exact bytes out, responses parsed one by one.
pub struct Conn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        Conn {
            s: TcpStream::connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    /// A connection from `local` (any 127.0.0.0/8 address on loopback), so one test can act
    /// as several client addresses.
    pub async fn open_from(addr: SocketAddr, local: std::net::IpAddr) -> Conn {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(local, 0)).unwrap();
        Conn {
            s: socket.connect(addr).await.unwrap(),
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    pub async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16384];
        let n = tokio::time::timeout(Duration::from_secs(10), self.s.read(&mut chunk))
            .await
            .expect("response in time")
            .unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// The next response; `head_only` for answers to HEAD.
    pub async fn response(&mut self, head_only: bool) -> Resp {
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(
                self.fill().await > 0,
                "connection closed before a response head"
            );
        };
        let head = String::from_utf8(self.buf.drain(..end).collect()).unwrap();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (k, v) = line.split_once(':').unwrap();
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_string());
            headers
                .entry(k)
                .and_modify(|old| *old = format!("{old}, {v}"))
                .or_insert(v);
        }
        let mut body = Vec::new();
        if !head_only && status != 304 && status != 204 {
            if headers
                .get("transfer-encoding")
                .is_some_and(|v| v == "chunked")
            {
                loop {
                    let line_end = loop {
                        if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                            break i;
                        }
                        assert!(self.fill().await > 0);
                    };
                    let size = usize::from_str_radix(
                        std::str::from_utf8(&self.buf[..line_end]).unwrap().trim(),
                        16,
                    )
                    .unwrap();
                    while self.buf.len() < line_end + 2 + size + 2 {
                        assert!(self.fill().await > 0);
                    }
                    body.extend_from_slice(&self.buf[line_end + 2..line_end + 2 + size]);
                    self.buf.drain(..line_end + 2 + size + 2);
                    if size == 0 {
                        break;
                    }
                }
            } else {
                let len: usize = headers
                    .get("content-length")
                    .map(|v| v.parse().unwrap())
                    .unwrap_or(0);
                while self.buf.len() < len {
                    assert!(self.fill().await > 0, "connection closed mid-body");
                }
                body = self.buf.drain(..len).collect();
            }
        }
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Close the sending side (FIN): answers can still be read.
    pub async fn shutdown_write(&mut self) {
        self.s.shutdown().await.unwrap();
    }

    /// The next `n` bytes as they arrive (after a response: a tunnel's bytes).
    pub async fn read_raw(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill().await > 0, "connection closed before {n} bytes");
        }
        self.buf.drain(..n).collect()
    }

    /// Whether the peer closed the connection (within a second).
    pub async fn closed(&mut self) -> bool {
        let mut b = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(1), self.s.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}
