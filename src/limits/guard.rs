//! `send_timeout`: a player connection whose response writes make no progress for this long
//! is closed.
//!
//! [`SendGuard`] wraps the connection's stream before anything is read or written, so it holds
//! for every writer: the front's own answers, the Pingora pipeline (HTTP/1 headers and bodies,
//! which Pingora writes without a timeout of its own), the HTTP/2 codec and TLS. It measures
//! what nginx's `send_timeout` measures — the time since the last write that made progress —
//! not the duration of one write: a slow client reading a 64 MiB segment at a few hundred
//! kbit/s keeps its connection, a client that reads nothing loses it. A write that cannot
//! proceed starts the clock; any write-side call that completes stops it; when the clock runs
//! out, the pending call fails with `TimedOut` and so does every later write.
//!
//! It can also hold a connection's first bytes to `header_timeout`
//! ([`SendGuard::first_bytes_within`]): on HTTP/2 the connection preface is what the
//! connection's first head is on HTTP/1, and Pingora's HTTP/2 handshake waits for it without
//! a timeout of its own (nginx applies `client_header_timeout` to it).

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_core::protocols::{Peek, Shutdown, Stream};
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Sleep;

/// A player connection's stream with a send timeout.
pub struct SendGuard {
    inner: Stream,
    limit: Duration,
    /// The stall clock, made on the first write that could not proceed and reused after.
    clock: Option<Pin<Box<Sleep>>>,
    /// Whether the clock runs (a write-side call is pending since it was set).
    stalled: bool,
    timed_out: bool,
    /// `edge_connection_limits_total{limit="send_timeout"}`.
    counter: IntCounter,
    /// Bytes that must still arrive before a deadline, when set.
    first_bytes: Option<FirstBytes>,
    /// Small writes held until a flush, when set ([`SendGuard::batching_writes`]).
    batch: Option<Batch>,
}

/// [`SendGuard::batching_writes`]: what the writer wrote since the last flush.
#[derive(Default)]
struct Batch {
    /// Bytes accepted from the writer; those from `sent` on are not on the inner stream yet.
    held: Vec<u8>,
    sent: usize,
    /// Bytes were accepted since this flush last yielded.
    fresh: bool,
    /// Yields since the last flush went through.
    yields: u8,
}

/// Writes are held up to this many bytes; a larger one goes straight through.
const BATCH_MAX: usize = 16 * 1024;
/// A flush yields at most this many times (each time more was written meanwhile) before it
/// goes through.
const BATCH_YIELDS: u8 = 4;

/// [`SendGuard::first_bytes_within`]: `remaining` bytes to read before `clock` runs out.
struct FirstBytes {
    remaining: usize,
    clock: Pin<Box<Sleep>>,
    /// `edge_connection_limits_total{limit="header_timeout"}`.
    counter: IntCounter,
}

impl SendGuard {
    /// `inner` with writes that fail after `limit` without progress (counted in `counter`).
    pub fn new(inner: Stream, limit: Duration, counter: IntCounter) -> SendGuard {
        SendGuard {
            inner,
            limit,
            clock: None,
            stalled: false,
            timed_out: false,
            counter,
            first_bytes: None,
            batch: None,
        }
    }

    /// Small writes are held until the writer flushes, and a flush with bytes written since
    /// it last yielded first lets the runtime's other ready tasks run (up to
    /// [`BATCH_YIELDS`] times), so that what they write leaves in the same system call.
    ///
    /// For HTTP/2, where the connection's task writes the frames of every stream: each
    /// stream's answer wakes that task, which the runtime polls next, before the other
    /// streams' tasks, and the `h2` codec writes and flushes whatever it has each time — one
    /// TLS record and one `sendto` per answer, however many streams were answered together.
    /// Held and flushed after the other streams had their turn, the answers ready at that
    /// moment share one write (RFC 9113 §4: frames of any streams may share a write).
    pub fn batching_writes(mut self) -> SendGuard {
        self.batch = Some(Batch::default());
        self
    }

    /// Writes what the batch holds to the inner stream.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let Some(batch) = &mut self.batch else {
                return Poll::Ready(Ok(()));
            };
            if batch.sent == batch.held.len() {
                // Released, not kept: an idle HTTP/2 connection holds no batch buffer.
                batch.held = Vec::new();
                batch.sent = 0;
                return Poll::Ready(Ok(()));
            }
            let polled = Pin::new(&mut self.inner).poll_write(cx, &batch.held[batch.sent..]);
            match self.watch(cx, polled) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    if let Some(batch) = &mut self.batch {
                        batch.sent += n;
                    }
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }

    /// A write when batching: held if it fits, straight through (after what is held) if it
    /// is large.
    fn poll_write_batched(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        let held = self.batch.as_ref().map_or(0, |b| b.held.len() - b.sent);
        if held + len > BATCH_MAX {
            std::task::ready!(self.poll_drain(cx))?;
            if len >= BATCH_MAX {
                let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
                return self.watch(cx, polled);
            }
        }
        if let Some(batch) = &mut self.batch {
            for b in bufs {
                batch.held.extend_from_slice(b);
            }
            batch.fresh |= len > 0;
        }
        Poll::Ready(Ok(len))
    }

    /// [`SendGuard::new`], boxed as a Pingora stream.
    pub fn wrap(inner: Stream, limit: Duration, counter: IntCounter) -> Stream {
        Box::new(SendGuard::new(inner, limit, counter))
    }

    /// Reads fail (`TimedOut`, counted in `counter`) when the first `n` bytes have not all
    /// arrived within `within`; after them, reads are not timed here.
    pub fn first_bytes_within(
        mut self,
        n: usize,
        within: Duration,
        counter: IntCounter,
    ) -> SendGuard {
        self.first_bytes = Some(FirstBytes {
            remaining: n,
            clock: Box::pin(tokio::time::sleep(within)),
            counter,
        });
        self
    }

    fn timed_out_error() -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "send timeout: the client took no data for too long",
        )
    }

    /// The outcome of a write-side call on the inner stream: progress stops the clock; a
    /// pending call starts it (or keeps it running) and fails once it has run out.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.stalled = false;
            return polled;
        }
        let deadline = tokio::time::Instant::now() + self.limit;
        let was_stalled = std::mem::replace(&mut self.stalled, true);
        let fresh = self.clock.is_none();
        let clock = self
            .clock
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !fresh && !was_stalled {
            clock.as_mut().reset(deadline);
        }
        // Polling the clock also registers this task to be woken when it runs out.
        if clock.as_mut().poll(cx).is_ready() {
            self.timed_out = true;
            self.counter.inc();
            return Poll::Ready(Err(Self::timed_out_error()));
        }
        Poll::Pending
    }
}

impl AsyncRead for SendGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(first) = &mut this.first_bytes else {
            return polled;
        };
        match &polled {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                first.remaining = first.remaining.saturating_sub(n);
                // All there, or the peer closed: nothing left to time.
                if first.remaining == 0 || n == 0 {
                    this.first_bytes = None;
                }
            }
            Poll::Ready(Err(_)) => this.first_bytes = None,
            Poll::Pending => {
                if first.clock.as_mut().poll(cx).is_ready() {
                    first.counter.inc();
                    this.first_bytes = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "header timeout: the connection's first bytes came too late",
                    )));
                }
            }
        }
        polled
    }
}

impl AsyncWrite for SendGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(Err(Self::timed_out_error()));
        }
        if this.batch.is_some() {
            return this.poll_write_batched(cx, &[io::IoSlice::new(buf)]);
        }
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(Err(Self::timed_out_error()));
        }
        if this.batch.is_some() {
            return this.poll_write_batched(cx, bufs);
        }
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.batch.is_some() || self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(Err(Self::timed_out_error()));
        }
        if let Some(batch) = &mut this.batch {
            if batch.fresh && batch.yields < BATCH_YIELDS {
                // Let the other ready tasks run first; polled again after them.
                batch.fresh = false;
                batch.yields += 1;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            std::task::ready!(this.poll_drain(cx))?;
            if let Some(batch) = &mut this.batch {
                batch.fresh = false;
                batch.yields = 0;
            }
        }
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.timed_out {
            // Nothing more will be sent: close without waiting on a client that reads nothing.
            return Poll::Ready(Ok(()));
        }
        std::task::ready!(this.poll_drain(cx))?;
        let polled = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, polled)
    }
}

#[async_trait]
impl Shutdown for SendGuard {
    async fn shutdown(&mut self) {
        // Through this guard's own poll_shutdown, so a close (a TLS close_notify, buffered
        // bytes) cannot wait on the client longer than the send timeout either.
        if let Err(e) = AsyncWriteExt::shutdown(self).await {
            tracing::debug!(error = %e, "closing a player connection");
        }
    }
}

crate::limits::delegate::delegate_stream_digests!(SendGuard);

#[async_trait]
impl Peek for SendGuard {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        self.inner.try_peek(buf).await
    }
}

impl fmt::Debug for SendGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendGuard")
            .field("inner", &self.inner)
            .field("limit", &self.limit)
            .field("timed_out", &self.timed_out)
            .finish()
    }
}

/// The peer's IP address, if the stream knows it.
pub fn peer_ip(stream: &Stream) -> Option<std::net::IpAddr> {
    stream
        .get_socket_digest()
        .and_then(|d| d.peer_addr().and_then(SocketAddr::as_inet).map(|a| a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn counter() -> IntCounter {
        IntCounter::new("send_timeouts", "send timeouts").unwrap()
    }

    /// A write to a peer that reads nothing fails after the limit, once the socket's buffers
    /// are full; the failure is counted once.
    #[tokio::test]
    async fn a_peer_that_reads_nothing_times_out() {
        let (a, _b) = tokio::io::duplex(64 * 1024);
        let c = counter();
        let mut s = SendGuard::wrap(Box::new(a), Duration::from_millis(200), c.clone());
        let started = tokio::time::Instant::now();
        let chunk = vec![7u8; 16 * 1024];
        let mut err = None;
        for _ in 0..100 {
            if let Err(e) = s.write_all(&chunk).await {
                err = Some(e);
                break;
            }
        }
        let err = err.expect("the write fails");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert_eq!(c.get(), 1);
        assert!(
            s.write_all(b"x").await.is_err(),
            "later writes fail at once"
        );
        assert_eq!(c.get(), 1, "counted once");
    }

    /// A peer that reads slowly but steadily never trips the clock, even when one write takes
    /// many times the limit.
    #[tokio::test]
    async fn a_slow_reader_that_makes_progress_keeps_the_connection() {
        let (a, mut b) = tokio::io::duplex(4 * 1024);
        let c = counter();
        let mut s = SendGuard::wrap(Box::new(a), Duration::from_millis(150), c.clone());
        let reader = tokio::spawn(async move {
            let mut got = 0usize;
            let mut buf = [0u8; 1024];
            while got < 64 * 1024 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                let n = b.read(&mut buf).await.unwrap();
                assert!(n > 0);
                got += n;
            }
            got
        });
        // One 64 KiB write through a 4 KiB pipe read at ~100 KiB/s: ~640 ms, over 4× the limit.
        let started = tokio::time::Instant::now();
        s.write_all(&vec![1u8; 64 * 1024])
            .await
            .expect("progressing writes never time out");
        assert!(
            started.elapsed() > Duration::from_millis(300),
            "the write outlasted the limit"
        );
        assert_eq!(reader.await.unwrap(), 64 * 1024);
        assert_eq!(c.get(), 0);
    }

    /// A peer that sends less than the required first bytes in time gets a failed read
    /// (counted); one that sends them in time reads on without a clock.
    #[tokio::test]
    async fn first_bytes_must_arrive_in_time() {
        let (a, mut b) = tokio::io::duplex(1024);
        let late = counter();
        let mut s = SendGuard::new(Box::new(a), Duration::from_secs(5), counter())
            .first_bytes_within(24, Duration::from_millis(200), late.clone());
        b.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(s.read(&mut buf).await.unwrap(), 16);
        let started = tokio::time::Instant::now();
        let err = s
            .read(&mut buf)
            .await
            .expect_err("the rest of the preface never came");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(late.get(), 1);

        let (a, mut b) = tokio::io::duplex(1024);
        let late = counter();
        let mut s = SendGuard::new(Box::new(a), Duration::from_secs(5), counter())
            .first_bytes_within(4, Duration::from_millis(100), late.clone());
        b.write_all(b"PRI * ").await.unwrap();
        assert_eq!(s.read(&mut buf).await.unwrap(), 6);
        let reader = tokio::spawn(async move { s.read(&mut [0u8; 8]).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.write_all(b"x").await.unwrap();
        assert_eq!(
            reader.await.unwrap().unwrap(),
            1,
            "after its first bytes a connection may idle"
        );
        assert_eq!(late.get(), 0);
    }

    #[tokio::test]
    async fn reads_pass_through() {
        let (a, mut b) = tokio::io::duplex(1024);
        let mut s = SendGuard::wrap(Box::new(a), Duration::from_millis(100), counter());
        b.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut buf = [0u8; 18];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"GET / HTTP/1.1\r\n\r\n");
    }

    /// Batching: small writes wait for the flush and then leave in order; the flush first
    /// yields (woken at once) while more keeps arriving, at most `BATCH_YIELDS` times; a large
    /// write goes through after what is held; a shutdown sends what is held.
    #[tokio::test]
    async fn batched_writes_leave_at_the_flush_in_order() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let mut s =
            SendGuard::new(Box::new(a), Duration::from_secs(5), counter()).batching_writes();
        s.write_all(b"one ").await.unwrap();
        s.write_all(b"two ").await.unwrap();
        let mut buf = [0u8; 64];
        assert!(
            tokio::time::timeout(Duration::from_millis(50), b.read(&mut buf))
                .await
                .is_err(),
            "nothing is sent before the flush"
        );
        // Polled by hand: a flush with fresh bytes yields once (and wakes itself), then goes
        // through.
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(Pin::new(&mut s).poll_flush(&mut cx).is_pending());
        assert!(Pin::new(&mut s).poll_flush(&mut cx).is_ready());
        let n = b.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"one two ");
        // More written between yields keeps it yielding, up to the bound.
        let mut pending = 0;
        for _ in 0..10 {
            assert!(Pin::new(&mut s).poll_write(&mut cx, b"x").is_ready());
            if Pin::new(&mut s).poll_flush(&mut cx).is_pending() {
                pending += 1;
            } else {
                break;
            }
        }
        assert_eq!(pending, usize::from(BATCH_YIELDS));
        let n = b.read(&mut buf).await.unwrap();
        assert_eq!(
            &buf[..n],
            "x".repeat(usize::from(BATCH_YIELDS) + 1).as_bytes()
        );
        // A large write goes through after the held bytes, without a flush.
        s.write_all(b"head").await.unwrap();
        let big = vec![b'z'; BATCH_MAX];
        s.write_all(&big).await.unwrap();
        let mut got = vec![0u8; 4 + BATCH_MAX];
        b.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..4], b"head");
        assert!(got[4..].iter().all(|&c| c == b'z'));
        // A shutdown sends what is held.
        s.write_all(b"tail").await.unwrap();
        AsyncWriteExt::shutdown(&mut s).await.unwrap();
        let mut rest = Vec::new();
        b.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"tail");
    }
}
