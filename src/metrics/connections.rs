//! Connections per listener: `edge_open_connections{listener}` (open now) and
//! `edge_connections_accepted_total{listener}`, for the player listeners (`http`, `https`) and
//! the admin listener (`admin`).
//!
//! [`Counted`] wraps a listener's Pingora app: every connection the listener hands it is
//! counted as accepted, and as open until the app is done with it. The open count is a guard
//! ([`OpenConnection`]) whose `Drop` gives it back, so no way out of the app (an answer, a
//! refusal at a connection cap, an error, a panic unwinding the task) leaves it counted.
//! A TLS connection reaches the app after its handshake: one still shaking hands is not
//! counted yet.

use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

/// The listener a connection arrived on: the `listener` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// The player listener, plain HTTP (`[server] http`).
    Http,
    /// The player listener, TLS (`[server] https`).
    Https,
    /// The admin listener (`[server] admin`).
    Admin,
}

impl Listener {
    pub const ALL: [Listener; 3] = [Listener::Http, Listener::Https, Listener::Admin];

    pub fn label(self) -> &'static str {
        match self {
            Listener::Http => "http",
            Listener::Https => "https",
            Listener::Admin => "admin",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The two families, with each listener's series bound once: a connection costs two atomic
/// increments, no label lookup.
#[derive(Clone)]
pub struct Connections {
    bound: [(IntGauge, IntCounter); 3],
}

impl Connections {
    /// Register both families, every listener exported at 0 from the start.
    pub fn register(registry: &Registry) -> Result<Connections, prometheus::Error> {
        let open = IntGaugeVec::new(
            Opts::new(
                "edge_open_connections",
                "Connections open now, by listener: http and https (player connections, HTTP/1 and HTTP/2; TLS ones after the handshake), admin",
            ),
            &["listener"],
        )?;
        let accepted = IntCounterVec::new(
            Opts::new(
                "edge_connections_accepted_total",
                "Connections accepted, by listener (http, https, admin), including those a connection cap closed at once",
            ),
            &["listener"],
        )?;
        registry.register(Box::new(open.clone()))?;
        registry.register(Box::new(accepted.clone()))?;
        let bound = Listener::ALL.map(|l| {
            (
                open.with_label_values(&[l.label()]),
                accepted.with_label_values(&[l.label()]),
            )
        });
        Ok(Connections { bound })
    }

    /// Count a connection accepted on `listener`, open until the guard is dropped.
    pub fn accept(&self, listener: Listener) -> OpenConnection {
        let (open, accepted) = &self.bound[listener.index()];
        accepted.inc();
        open.inc();
        OpenConnection(open.clone())
    }

    /// Connections open now on `listener`.
    pub fn open(&self, listener: Listener) -> i64 {
        self.bound[listener.index()].0.get()
    }
}

/// One open connection, counted in `edge_open_connections` until dropped.
pub struct OpenConnection(IntGauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Which listener a connection handed to a [`Counted`] app came from.
#[derive(Debug, Clone, Copy)]
pub enum Source {
    /// A service with one listener.
    One(Listener),
    /// The player service: `https` when the stream is TLS, else `http`.
    Player,
}

impl Source {
    fn of(self, stream: &Stream) -> Listener {
        match self {
            Source::One(l) => l,
            Source::Player if stream.get_ssl_digest().is_some() => Listener::Https,
            Source::Player => Listener::Http,
        }
    }
}

/// A listener's app with each of its connections counted ([`Connections`]) while it is open.
pub struct Counted<A> {
    app: Arc<A>,
    source: Source,
    connections: Connections,
}

impl<A> Counted<A> {
    pub fn new(app: A, source: Source, connections: Connections) -> Counted<A> {
        Counted {
            app: Arc::new(app),
            source,
            connections,
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for Counted<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let _open = self.connections.accept(self.source.of(&stream));
        // An app hands a kept-alive connection back for its next request (Pingora's listener
        // loop would call it again): called again here instead, so the connection stays
        // counted between its requests, exactly as long as it is open.
        let mut next = self.app.process_new(stream, shutdown).await;
        while let Some(stream) = next {
            next = self.app.process_new(stream, shutdown).await;
        }
        None
    }

    async fn cleanup(&self) {
        self.app.cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connections() -> (Registry, Connections) {
        let registry = Registry::new();
        let c = Connections::register(&registry).unwrap();
        (registry, c)
    }

    fn text(registry: &Registry) -> String {
        prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap()
    }

    #[test]
    fn every_listener_is_exported_at_zero() {
        let (registry, _c) = connections();
        let text = text(&registry);
        for l in Listener::ALL {
            for family in ["edge_open_connections", "edge_connections_accepted_total"] {
                let line = format!("{family}{{listener=\"{}\"}} 0", l.label());
                assert!(text.lines().any(|x| x == line), "missing {line}:\n{text}");
            }
        }
    }

    #[test]
    fn a_connection_is_open_until_its_guard_drops() {
        let (registry, c) = connections();
        let a = c.accept(Listener::Http);
        let b = c.accept(Listener::Http);
        let t = c.accept(Listener::Https);
        assert_eq!(
            Listener::ALL.map(|l| c.open(l)),
            [2, 1, 0],
            "counted on its own listener"
        );
        drop(a);
        drop(t);
        assert_eq!(Listener::ALL.map(|l| c.open(l)), [1, 0, 0]);
        drop(b);
        assert_eq!(Listener::ALL.map(|l| c.open(l)), [0, 0, 0]);
        let text = text(&registry);
        assert!(text
            .lines()
            .any(|x| x == r#"edge_connections_accepted_total{listener="http"} 2"#));
        assert!(text
            .lines()
            .any(|x| x == r#"edge_connections_accepted_total{listener="https"} 1"#));
    }

    #[test]
    fn early_returns_and_panics_give_the_count_back() {
        let (_registry, c) = connections();
        let serve = |fail: bool| -> Result<(), ()> {
            let _open = c.accept(Listener::Admin);
            if fail {
                return Err(());
            }
            Ok(())
        };
        assert!(serve(true).is_err());
        assert!(serve(false).is_ok());
        assert_eq!(c.open(Listener::Admin), 0);
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _open = c.accept(Listener::Admin);
            panic!("a task dies while serving");
        }));
        assert!(unwound.is_err());
        assert_eq!(c.open(Listener::Admin), 0, "the panic dropped the guard");
    }
}
