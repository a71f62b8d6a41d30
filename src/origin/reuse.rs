//! Stale pooled connections: when an origin closes an idle keep-alive connection just as the
//! edge sends a request on it (Node.js and Apache close after 5 s idle), the request fails
//! before any response arrives. That says nothing about the node's health, and RFC 9112
//! §9.3.1 expects the sender to retry: such a request goes once more to the *same* node, on a
//! fresh connection, and is not counted against the node.
//!
//! Which failures qualify ([`is_stale`]) is mostly Pingora's call: it marks an error
//! `RetryType::ReusedOnly` when a connection closed or reset while the response header was
//! being read, the signature of a connection the origin had already given up on. Over TLS it
//! marks nothing, yet an origin that closes without a close_notify (Node's `destroy()` does)
//! shows the same failure as an unexpected end of stream; that one qualifies too. The edge
//! adds the conditions of [`may_resend`] and one such retry per node attempt ([`FreshRetry`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::Method;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, RetryType};

/// The fresh-connection retry of one node attempt.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum FreshRetry {
    /// Not used by this attempt.
    #[default]
    Unused,
    /// The attempt failed on a stale connection: the next one goes to the same node, fresh.
    Pending,
    /// This attempt is the retry: a further failure is the node's.
    Used,
}

/// Whether an attempt failed on a pooled connection the origin had closed before answering.
pub fn is_stale(e: &Error, connection_reused: bool, header_received: bool) -> bool {
    connection_reused && !header_received && (e.retry == RetryType::ReusedOnly || tls_closed(e))
}

/// A read that ended without the TLS close_notify: the origin closed the TCP connection.
fn tls_closed(e: &Error) -> bool {
    e.etype == ErrorType::ReadError
        && e.root_cause()
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
}

/// Whether a request that failed on a stale connection may be sent again: only idempotent
/// methods (RFC 9110 §9.2.2: a proxy must not retry others on its own; the origin may have
/// acted on the request before closing), only while Pingora's retry buffer still holds the
/// request body, only before anything was sent to the client, and once per node attempt.
pub fn may_resend(
    method: &Method,
    body_truncated: bool,
    response_started: bool,
    retry: FreshRetry,
) -> bool {
    method.is_idempotent() && !body_truncated && !response_started && retry == FreshRetry::Unused
}

/// Group keys of fresh-connection peers: never 0 (the pooled connections' group), never
/// repeated, so the connection pool can hold nothing for them.
static FRESH_GROUP: AtomicU64 = AtomicU64::new(1 << 63);

/// Make `peer` open a new connection: a group key no pooled connection has, and no idle
/// keep-alive afterwards (the connection answers this one request, then closes, so nothing
/// accumulates under keys that are never looked up again).
pub fn fresh(peer: &mut HttpPeer) {
    peer.group_key = FRESH_GROUP.fetch_add(1, Ordering::Relaxed);
    peer.options.idle_timeout = Some(Duration::ZERO);
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora_core::upstreams::peer::Peer;

    fn closed_while_reading_header() -> Box<Error> {
        let mut e = Error::explain(
            ErrorType::ConnectionClosed,
            "while reading response headers, bytes already read: 0",
        );
        e.retry = RetryType::ReusedOnly;
        e
    }

    #[test]
    fn only_reuse_class_errors_on_reused_connections_are_stale() {
        assert!(is_stale(&closed_while_reading_header(), true, false));
        assert!(
            !is_stale(&closed_while_reading_header(), false, false),
            "a fresh connection that fails is the node's failure"
        );
        assert!(
            !is_stale(&closed_while_reading_header(), true, true),
            "once a response header arrived, the origin answered"
        );
        let timeout = Error::explain(ErrorType::ReadTimedout, "while reading response headers");
        assert!(
            !is_stale(&timeout, true, false),
            "a slow origin is not a stale connection"
        );
        let mut decided = closed_while_reading_header();
        decided.set_retry(false);
        assert!(!is_stale(&decided, true, false));
    }

    fn tls_read_error(kind: std::io::ErrorKind) -> Box<Error> {
        let io = std::io::Error::new(
            kind,
            "peer closed connection without sending TLS close_notify",
        );
        Error::because(
            ErrorType::ReadError,
            "while reading response headers, bytes already read: 0",
            io,
        )
        .more_context("Peer: x")
    }

    #[test]
    fn a_tls_close_without_close_notify_is_stale_other_tls_errors_are_not() {
        assert!(is_stale(
            &tls_read_error(std::io::ErrorKind::UnexpectedEof),
            true,
            false
        ));
        assert!(!is_stale(
            &tls_read_error(std::io::ErrorKind::UnexpectedEof),
            false,
            false
        ));
        assert!(
            !is_stale(
                &tls_read_error(std::io::ErrorKind::InvalidData),
                true,
                false
            ),
            "a bad record is not a close"
        );
    }

    #[test]
    fn resend_is_for_idempotent_whole_untouched_requests_once() {
        let ok = |m: Method| may_resend(&m, false, false, FreshRetry::Unused);
        for m in [
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::PUT,
            Method::DELETE,
        ] {
            assert!(ok(m.clone()), "{m}");
        }
        assert!(
            !ok(Method::POST) && !ok(Method::PATCH),
            "non-idempotent: never replayed"
        );
        assert!(
            !may_resend(&Method::PUT, true, false, FreshRetry::Unused),
            "body no longer held whole"
        );
        assert!(
            !may_resend(&Method::GET, false, true, FreshRetry::Unused),
            "response already started"
        );
        assert!(
            !may_resend(&Method::GET, false, false, FreshRetry::Used),
            "one fresh retry per attempt"
        );
        assert!(!may_resend(&Method::GET, false, false, FreshRetry::Pending));
    }

    #[test]
    fn a_fresh_peer_matches_no_pooled_connection_and_is_not_kept() {
        let base = HttpPeer::new("127.0.0.1:80", false, String::new());
        let mut a = base.clone();
        fresh(&mut a);
        let mut b = base.clone();
        fresh(&mut b);
        assert_ne!(a.reuse_hash(), base.reuse_hash());
        assert_ne!(a.reuse_hash(), b.reuse_hash());
        assert_eq!(a.idle_timeout(), Some(Duration::ZERO));
        assert_eq!(a.address(), base.address(), "same node");
    }
}
