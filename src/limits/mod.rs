//! Limits on player connections: how long a request head and a stalled response write may
//! last, and how many connections are open at once — overall and per client address.
//!
//! Every player connection (HTTP and HTTPS, HTTP/1 and HTTP/2) enters the edge in
//! `proxy::front::Front::process_new`, which applies them in one place:
//! - [`caps::Caps`]: `max_connections` and `max_connections_per_ip`, checked as the
//!   connection arrives (over a cap it is closed at once); the [`caps::Permit`] it hands out
//!   keeps the connection counted against the caps until it closes (the open connections
//!   per listener are counted around the whole app: [`crate::metrics::connections`]).
//! - [`guard::SendGuard`] wraps the connection's stream: a write that makes no progress for
//!   `send_timeout` fails, whoever writes (the front, the Pingora pipeline, the HTTP/2 codec,
//!   TLS) and whatever the size of the write; on HTTP/2 it also holds the connection preface
//!   to `header_timeout`.
//! - [`head`]: `header_timeout`, one deadline for a whole request head. The front reads
//!   every HTTP/1 head itself, up to the end of the head or to the pipeline parser's limits,
//!   so the pipeline never reads a head without it.
//!
//! - [`size`]: `max_request_line`, `max_header_field`, `max_head`: a head over one is answered
//!   414 or 431 and the connection closed; checked by the gate on every parsed head, and by
//!   the front on HTTP/1 heads still arriving.
//!
//! Each limit that fires is counted in `edge_connection_limits_total{limit}`.

pub mod caps;
pub(crate) mod delegate;
pub mod guard;
pub mod head;
pub mod size;

/// A limit that ended (or refused) a connection: the `limit` label of
/// `edge_connection_limits_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A request head did not arrive whole within `header_timeout`.
    HeaderTimeout,
    /// A response write made no progress for `send_timeout`.
    SendTimeout,
    /// `max_connections` were open.
    MaxConnections,
    /// `max_connections_per_ip` were open from the client's address.
    MaxConnectionsPerIp,
    /// A request line over `max_request_line` (414).
    RequestLine,
    /// A header field over `max_header_field` (431).
    HeaderField,
    /// A request head over `max_head` (431).
    HeadSize,
}

impl Limit {
    pub const ALL: [Limit; 7] = [
        Limit::HeaderTimeout,
        Limit::SendTimeout,
        Limit::MaxConnections,
        Limit::MaxConnectionsPerIp,
        Limit::RequestLine,
        Limit::HeaderField,
        Limit::HeadSize,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Limit::HeaderTimeout => "header_timeout",
            Limit::SendTimeout => "send_timeout",
            Limit::MaxConnections => "max_connections",
            Limit::MaxConnectionsPerIp => "max_connections_per_ip",
            Limit::RequestLine => "request_line",
            Limit::HeaderField => "header_field",
            Limit::HeadSize => "head_size",
        }
    }
}
