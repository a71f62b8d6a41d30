//! A fill runs at the origin's pace, not at its first requester's.
//!
//! Pingora reads a miss from the origin, writes it to the cache and writes it to the client
//! that asked in one loop per request. When that client's socket (or HTTP/2 window) takes no
//! more data, the loop waits in the write, so it stops reading the origin and stops writing
//! the fill — and every other viewer of the object, reading the fill
//! ([`crate::cache::store`]), waits with it. Issue 13: one client that never read held a
//! whole audience of a cold segment.
//!
//! - HTTP/1 (plain and TLS): Pingora's cancel-safe proxy-task writes
//!   ([`queue_writes`]): the client's next write is queued and the loop keeps reading the
//!   origin into the fill meanwhile. The client reads its own bytes from the fill, as any
//!   viewer does, at its own pace; its connection is bounded by `send_timeout` as always.
//! - HTTP/2: Pingora 0.9 has no such writes for HTTP/2 streams, so the loop still waits on a
//!   stream's flow-control window. While the response's fill is in flight, a write that
//!   makes no progress for `[cache] fill_stall` fails ([`stall_timeout`]); the stream is
//!   reset and the fill goes on without it. Once the fill is complete, the usual
//!   `send_timeout` applies again.

use std::time::Duration;

use pingora_cache::CachePhase;
use pingora_proxy::Session;

/// Let an HTTP/1 response be written by queued (cancel-safe) writes, so the loop serving a
/// miss keeps filling while its client is slow. No effect on HTTP/2 sessions.
pub fn queue_writes(session: &mut Session) {
    session.set_proxy_tasks_enabled(true);
}

/// The write timeout an HTTP/2 response needs now: `fill_stall` while this request is the
/// one filling the cache (a miss whose fill is in flight), else `send_timeout`. `None` for
/// every other response (HTTP/1, hits, uncached).
pub fn stall_timeout(
    http2: bool,
    phase: CachePhase,
    filling: bool,
    fill_stall: Duration,
    send_timeout: Duration,
) -> Option<Duration> {
    if !http2 || !matches!(phase, CachePhase::Miss | CachePhase::Expired) {
        return None;
    }
    Some(if filling { fill_stall } else { send_timeout })
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_millis(250);
    const SEND: Duration = Duration::from_secs(60);

    #[test]
    fn an_http2_fill_writer_waits_at_most_fill_stall_while_the_fill_is_in_flight() {
        assert_eq!(
            stall_timeout(true, CachePhase::Miss, true, STALL, SEND),
            Some(STALL)
        );
        assert_eq!(
            stall_timeout(true, CachePhase::Expired, true, STALL, SEND),
            Some(STALL)
        );
        // The fill is stored: nobody waits on this client any more.
        assert_eq!(
            stall_timeout(true, CachePhase::Miss, false, STALL, SEND),
            Some(SEND)
        );
    }

    #[test]
    fn other_responses_keep_their_timeouts() {
        assert_eq!(
            stall_timeout(false, CachePhase::Miss, true, STALL, SEND),
            None,
            "HTTP/1 queues its writes"
        );
        assert_eq!(
            stall_timeout(true, CachePhase::Hit, true, STALL, SEND),
            None,
            "a reader holds no fill"
        );
        assert_eq!(
            stall_timeout(true, CachePhase::Bypass, false, STALL, SEND),
            None
        );
    }
}
