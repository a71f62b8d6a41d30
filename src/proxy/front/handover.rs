//! One request handed from the front to the Pingora pipeline, and not a byte more.
//!
//! A client may send its next requests before the answer to this one (pipelining, RFC 9112
//! §9.3.2). Pingora 0.9.1 does not take them: bytes past the request it reads — with the head,
//! behind a body, or arriving while an answer streams — make it close the connection after
//! the answer (the requests behind are lost), or, while a response streams, end that response
//! early ("Sent data after end of body"). So the front gives the pipeline exactly one request:
//! [`Handover::split`] cuts the bytes it read at the request's end ([`super::framing`]), and
//! the connection's stream goes to Pingora wrapped in a [`Handover`] that lets the rest of the
//! request's body through and keeps everything after it — reading it off the socket, so a
//! client is never stuck, but showing Pingora nothing (its "is the client still there" read
//! just waits). When the pipeline is done, [`Handover::take_back`] returns the stream and the
//! kept bytes, and the front reads on from them: each request is answered in order, by the
//! front or the pipeline, one at a time.
//!
//! A client that closes its side right after its requests still gets them answered: the close
//! is kept with the bytes and seen by the front once it has read them; with nothing kept, the
//! close reaches Pingora at once (which ends the answer, as without a handover).

use std::any::Any;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::BytesMut;
use pingora_core::protocols::{Peek, Shutdown, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::framing::{BodyEnd, Framing, Scan};

/// Bytes of later requests kept while the pipeline works; beyond them the socket is not read
/// (the client waits, as for any server that reads one request at a time).
const KEEP_MAX: usize = 64 * 1024;

/// The connection's stream while the pipeline answers one request.
pub struct Handover {
    inner: Stream,
    /// The handed-over request's body, followed through the bytes read for it.
    body: BodyEnd,
    /// Bytes after the request: the start of the next one(s).
    kept: BytesMut,
    /// The client closed its side after `kept`.
    closed: bool,
}

impl Handover {
    /// `buf`: the bytes read so far, starting with a whole request head of `head` bytes whose
    /// body is framed by `framing`. Returns the stream for the pipeline and the bytes it is to
    /// read first (its pipelined prefix): the head and what `buf` holds of the body. The
    /// bytes after the request stay in the [`Handover`].
    pub fn split(
        inner: Stream,
        mut buf: BytesMut,
        head: usize,
        framing: Framing,
    ) -> (Stream, BytesMut) {
        let mut body = BodyEnd::new(framing);
        let kept = match body.feed(&buf[head.min(buf.len())..]) {
            Scan::End(n) => buf.split_off(head + n),
            Scan::More | Scan::Unknown => BytesMut::new(),
        };
        (
            Box::new(Handover {
                inner,
                body,
                kept,
                closed: false,
            }),
            buf,
        )
    }

    /// The stream back from the pipeline, and the bytes kept (empty if none). `None` if
    /// `stream` is not a [`Handover`] (it is then dropped: the connection closes).
    pub fn take_back(stream: Stream) -> Option<(Stream, BytesMut)> {
        let any: Box<dyn Any> = stream.into_any();
        let handover = any.downcast::<Handover>().ok()?;
        Some((handover.inner, handover.kept))
    }

    /// After the request: read what the client sends into `kept`, and show Pingora nothing
    /// but a close with nothing kept.
    fn keep(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut chunk = [0u8; 4096];
        loop {
            if self.closed || self.kept.len() >= KEEP_MAX {
                // No wake-up needed: Pingora only reads here alongside the work it waits on.
                return Poll::Pending;
            }
            let mut read = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.inner).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    if self.kept.is_empty() {
                        // The client closed with no request pending: Pingora sees the close.
                        return Poll::Ready(Ok(()));
                    }
                    self.closed = true;
                }
                Poll::Ready(Ok(())) => self.kept.extend_from_slice(read.filled()),
            }
        }
    }
}

impl AsyncRead for Handover {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.body.done() {
            return this.keep(cx);
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            let read = &buf.filled()[before..];
            if let Scan::End(n) = this.body.feed(read) {
                this.kept.extend_from_slice(&read[n..]);
                buf.set_filled(before + n);
                if n == 0 {
                    // Nothing of the body in this read (it cannot be: the body ended with its
                    // last byte); never let an empty read look like a close.
                    return this.keep(cx);
                }
            }
        }
        polled
    }
}

impl AsyncWrite for Handover {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Handover {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

crate::limits::delegate::delegate_stream_digests!(Handover);

#[async_trait]
impl Peek for Handover {
    /// Nothing to peek: the pipeline gets the request's bytes as its prefix (and Pingora only
    /// peeks before an HTTP/1 session, for an HTTP/2 preface).
    async fn try_peek(&mut self, _buf: &mut [u8]) -> io::Result<bool> {
        Ok(false)
    }
}

impl fmt::Debug for Handover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handover")
            .field("inner", &self.inner)
            .field("body", &self.body)
            .field("kept", &self.kept.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn next() -> &'static [u8] {
        b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    }

    /// The pipeline reads the request's body to its end and never the bytes after it, which
    /// come back with the stream.
    #[tokio::test]
    async fn the_pipeline_reads_one_request_and_the_rest_comes_back() {
        let head = b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let body = b"5\r\nhello\r\n0\r\n\r\n";
        let (client, server) = tokio::io::duplex(64 * 1024);
        let mut client = client;
        // Read so far: the head and the first 4 body bytes.
        let buf = BytesMut::from([head.as_slice(), &body[..4]].concat().as_slice());
        let (mut stream, prefix) =
            Handover::split(Box::new(server), buf, head.len(), Framing::Chunked);
        assert_eq!(prefix.len(), head.len() + 4);
        // The rest of the body and the next request in one write.
        client
            .write_all(&[&body[4..], next()].concat())
            .await
            .unwrap();
        let mut got = vec![0u8; body.len() - 4];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(got, &body[4..]);
        // Past the body the pipeline sees nothing (its idle read waits), more arriving or not.
        client.write_all(b"GET /third").await.unwrap();
        let mut probe = [0u8; 1];
        assert!(
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut probe))
                .await
                .is_err()
        );
        let (_, kept) = Handover::take_back(stream).expect("a handover");
        assert_eq!(kept, [next(), b"GET /third".as_slice()].concat());
    }

    #[tokio::test]
    async fn bytes_read_with_the_head_stay_out_of_the_prefix() {
        let head = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
        let (_client, server) = tokio::io::duplex(1024);
        let buf = BytesMut::from([head.as_slice(), next()].concat().as_slice());
        let (stream, prefix) =
            Handover::split(Box::new(server), buf, head.len(), Framing::Length(0));
        assert_eq!(prefix, head.as_slice());
        let (_, kept) = Handover::take_back(stream).expect("a handover");
        assert_eq!(kept, next());
    }

    /// A close with nothing kept reaches the pipeline (the client is gone); a close behind
    /// kept requests waits for the front, which answers them first.
    #[tokio::test]
    async fn a_close_reaches_the_pipeline_only_when_nothing_is_pending() {
        let head = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
        let (client, server) = tokio::io::duplex(1024);
        let (mut stream, _) = Handover::split(
            Box::new(server),
            BytesMut::from(head.as_slice()),
            head.len(),
            Framing::Length(0),
        );
        drop(client);
        let mut probe = [0u8; 1];
        assert_eq!(stream.read(&mut probe).await.unwrap(), 0);

        let (mut client, server) = tokio::io::duplex(1024);
        let (mut stream, _) = Handover::split(
            Box::new(server),
            BytesMut::from(head.as_slice()),
            head.len(),
            Framing::Length(0),
        );
        client.write_all(next()).await.unwrap();
        AsyncWriteExt::shutdown(&mut client).await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut probe))
                .await
                .is_err()
        );
        let (mut inner, kept) = Handover::take_back(stream).expect("a handover");
        assert_eq!(kept, next());
        assert_eq!(
            inner.read(&mut probe).await.unwrap(),
            0,
            "the close is still there for the front"
        );
    }

    #[tokio::test]
    async fn an_unknown_body_passes_through() {
        let head = b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (mut client, server) = tokio::io::duplex(1024);
        let (mut stream, _) = Handover::split(
            Box::new(server),
            BytesMut::from(head.as_slice()),
            head.len(),
            Framing::Chunked,
        );
        client
            .write_all(b"zz\r\nGET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        drop(client);
        let mut all = Vec::new();
        stream.read_to_end(&mut all).await.unwrap();
        assert_eq!(
            all, b"zz\r\nGET / HTTP/1.1\r\n\r\n",
            "Pingora sees the malformed body and fails on it"
        );
    }
}
