//! What each operator signal does (README, "Operating it"):
//!
//! | signal | action |
//! |--------|--------|
//! | `TERM` | graceful stop: `/readyz` turns 503, in-flight requests get `grace_period`, the cache is flushed, exit 0 |
//! | `QUIT` | with a new process waiting on `[server] upgrade_socket` (`edge serve --upgrade`): hand the listeners over, then the graceful stop ([`crate::upgrade`]); otherwise the same graceful stop as `TERM` |
//! | `INT`  | fast stop: no grace period for in-flight requests; the cache is still flushed |
//! | `HUP`  | reload: `edge.toml` ([`crate::reload`]), then the certificates and the GeoIP database |
//! | `USR1` | reopen the access-log file (`[log] access`; [`crate::access_log`]) |
//! | `USR2` | logged, ignored |
//!
//! Pingora's own watcher reads every `QUIT` as a graceful upgrade: it first tries to send the
//! listening sockets to the upgrade socket (for 5 s, then it waits 5 s more) and only then
//! stops. [`EdgeSignals`] asks for that only when a new process is there to take them.

use async_trait::async_trait;
use pingora_core::server::{ShutdownSignal, ShutdownSignalWatch};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// The shutdown signals, for `RunArgs::shutdown_signal`.
pub struct EdgeSignals {
    pub handoff: &'static crate::upgrade::Handoff,
}

/// The next delivery of a signal this process listens for (never, when it could not listen).
pub async fn next(s: &mut Option<Signal>) -> Option<()> {
    match s.as_mut() {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Listen for `kind`; `None` (logged) when the process cannot.
pub fn listen(kind: SignalKind) -> Option<Signal> {
    signal(kind).inspect_err(|e| tracing::warn!(error = %e, signal = kind.as_raw_value(), "cannot listen for a signal")).ok()
}

#[async_trait]
impl ShutdownSignalWatch for EdgeSignals {
    async fn recv(&self) -> ShutdownSignal {
        let mut quit = listen(SignalKind::quit());
        let mut term = listen(SignalKind::terminate());
        let mut int = listen(SignalKind::interrupt());
        tokio::select! {
            Some(_) = next(&mut term) => ShutdownSignal::GracefulTerminate,
            Some(_) = next(&mut quit) => {
                if self.handoff.waiting() {
                    tracing::info!(socket = %self.handoff.socket.display(), "SIGQUIT: a new edge waits on the upgrade socket: handing the listeners over, then a graceful stop");
                    self.handoff.begin();
                    ShutdownSignal::GracefulUpgrade
                } else {
                    tracing::info!("SIGQUIT: graceful stop, as SIGTERM (no new edge waits on the upgrade socket)");
                    ShutdownSignal::GracefulTerminate
                }
            }
            Some(_) = next(&mut int) => ShutdownSignal::FastShutdown,
            // Every stream ended (the signal driver is gone): nothing will ever arrive.
            else => std::future::pending().await,
        }
    }
}

/// Take over SIGHUP, SIGUSR1 and SIGUSR2 before anything else runs: their default action ends
/// the process, and an operator's `systemctl reload` (HUP) or log rotation (USR1) must never
/// do that. tokio keeps a signal's handler installed for the life of the process once it is
/// registered; the server's reloader then acts on them. (TERM, INT and QUIT: [`EdgeSignals`].)
pub fn keep(rt: &tokio::runtime::Runtime) {
    let _enter = rt.enter();
    for kind in [
        SignalKind::hangup(),
        SignalKind::user_defined1(),
        SignalKind::user_defined2(),
    ] {
        if signal(kind).is_err() {
            tracing::warn!(
                signal = kind.as_raw_value(),
                "cannot take over a signal; its default action stays"
            );
        }
    }
}
