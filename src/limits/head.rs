//! `header_timeout`: a request head must arrive whole within it.
//!
//! nginx's `client_header_timeout` (60 s) works the same way: one timer for the whole head,
//! not reset by each byte that arrives, so a client trickling a head a byte at a time cannot
//! hold a connection (and a slot under the caps) for longer than the limit. The first head of
//! a connection counts from the connection's start (after the TLS handshake); a later one from
//! its first byte — between requests the keep-alive idle timeout applies (nginx:
//! `keepalive_timeout`). Bytes of a next head that arrived with the previous request count
//! from the moment its response was sent.
//!
//! The front reads every HTTP/1 head itself under this clock, also heads it hands to the Pingora
//! pipeline: Pingora's own head reads only time out per read (and not at all on a keep-alive
//! connection), so it gets each head whole ([`pipeline_reads_more`] says when it would read on).

use std::time::{Duration, Instant};

/// Pingora's largest HTTP/1 request head (`MAX_HEADER_SIZE`): with more buffered, its parser
/// answers 400 without reading further.
pub const PIPELINE_HEAD_MAX: usize = 1_048_575;
/// Pingora's most header fields per request (`MAX_HEADERS`).
pub const PIPELINE_MAX_HEADERS: usize = 256;

/// When the request head being read must be whole.
#[derive(Debug, Clone, Copy)]
pub struct HeadClock {
    limit: Duration,
    deadline: Option<Instant>,
}

/// How long the next read of a head may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Between requests: no head has started (the idle timeout applies).
    Idle,
    /// Until the head's deadline.
    For(Duration),
    /// The deadline has passed.
    Expired,
}

impl HeadClock {
    /// A new connection: its first head counts from `now`.
    pub fn start(limit: Duration, now: Instant) -> HeadClock {
        HeadClock {
            limit,
            deadline: Some(now + limit),
        }
    }

    /// A response was sent at `now`; `pending`: bytes of the next request are already read.
    pub fn next_request(&mut self, pending: bool, now: Instant) {
        self.deadline = pending.then(|| now + self.limit);
    }

    /// Bytes of a head arrived at `now`: its clock runs from the first of them.
    pub fn arrived(&mut self, now: Instant) {
        self.deadline.get_or_insert(now + self.limit);
    }

    pub fn wait(&self, now: Instant) -> Wait {
        match self.deadline {
            None => Wait::Idle,
            Some(d) if d > now => Wait::For(d - now),
            Some(_) => Wait::Expired,
        }
    }
}

/// Whether Pingora's HTTP/1 parser, handed `buf` as the start of a request, would read more
/// of the head: no end of head yet, under its size and field limits, and not malformed in a
/// way it could already see. `checked`: a prefix of `buf` already known to hold no end of
/// head, so a long head is parsed again only when a blank line arrives, not on every read.
pub fn pipeline_reads_more(buf: &[u8], checked: usize) -> bool {
    if buf.len() > PIPELINE_HEAD_MAX {
        return false;
    }
    // A head ends with an empty line: "\n\n" or "\n\r\n" (httparse takes bare LF too).
    let tail = &buf[checked.saturating_sub(2).min(buf.len())..];
    if memchr::memmem::find(tail, b"\n\n").is_none()
        && memchr::memmem::find(tail, b"\n\r\n").is_none()
    {
        return true;
    }
    let mut headers = vec![httparse::EMPTY_HEADER; PIPELINE_MAX_HEADERS];
    matches!(
        httparse::Request::new(&mut headers).parse(buf),
        Ok(httparse::Status::Partial)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_head_counts_from_the_start_later_ones_from_their_first_byte() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut c = HeadClock::start(Duration::from_secs(10), t0);
        assert_eq!(c.wait(t0 + 4 * s), Wait::For(6 * s));
        c.arrived(t0 + 5 * s);
        assert_eq!(
            c.wait(t0 + 5 * s),
            Wait::For(5 * s),
            "bytes do not restart the clock"
        );
        assert_eq!(c.wait(t0 + 10 * s), Wait::Expired);
        c.next_request(false, t0 + 11 * s);
        assert_eq!(
            c.wait(t0 + 100 * s),
            Wait::Idle,
            "between requests only the idle timeout applies"
        );
        c.arrived(t0 + 100 * s);
        assert_eq!(c.wait(t0 + 101 * s), Wait::For(9 * s));
        c.next_request(true, t0 + 200 * s);
        assert_eq!(
            c.wait(t0 + 203 * s),
            Wait::For(7 * s),
            "a pipelined head counts from the response"
        );
    }

    #[test]
    fn the_pipeline_gets_whole_heads() {
        let big = format!("GET / HTTP/1.1\r\nhost: a\r\nx: {}\r\n", "v".repeat(20_000));
        assert!(pipeline_reads_more(big.as_bytes(), 0), "no end of head yet");
        let whole = format!("{big}\r\n");
        assert!(
            !pipeline_reads_more(whole.as_bytes(), big.len()),
            "complete"
        );
        assert!(
            !pipeline_reads_more(format!("{big}\n").as_bytes(), big.len()),
            "bare LF ends a head too"
        );
        let many: String = (0..300).map(|i| format!("h{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\n{many}\r\n");
        assert!(
            !pipeline_reads_more(many.as_bytes(), 0),
            "too many fields: Pingora answers 400 at once"
        );
        let bad = format!(
            "GET / HTTP/1.1\r\nbad header\r\n{}\r\n\r\n",
            "x".repeat(10_000)
        );
        assert!(
            !pipeline_reads_more(bad.as_bytes(), 0),
            "malformed: Pingora answers 400 at once"
        );
        let huge = vec![b'a'; PIPELINE_HEAD_MAX + 1];
        assert!(
            !pipeline_reads_more(&huge, 0),
            "over Pingora's limit: 400 at once"
        );
        // A checked prefix is not scanned again, but an end of head across its edge is seen.
        let split = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n";
        assert!(!pipeline_reads_more(split, split.len() - 1));
        assert!(pipeline_reads_more(b"GET / HTTP/1.1\r\nhost: a\r\n", 10));
    }
}
