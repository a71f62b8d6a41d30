//! Serving the API: [`serve_state`] runs the router until shutdown, purging expired sessions
//! on the side.

use std::future::Future;
use std::time::Duration;

use super::api::AppState;
use super::router::router;
use super::settings::ControlError;

/// How often expired sessions are deleted.
const SESSION_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Serves the API of `state` (opened with [`AppState::open`]) on `listener` until `shutdown`
/// completes (then finishes in-flight requests and returns). Every request must carry
/// [`AppState::edge_secret`] (see [`super::edge_secret`]).
pub async fn serve_state(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControlError> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "control: API listening");
    }
    let purger = tokio::spawn({
        let state = state.clone();
        async move {
            let mut tick = tokio::time::interval(SESSION_PURGE_INTERVAL);
            loop {
                tick.tick().await;
                match state.store().purge_sessions(state.now()).await {
                    Ok(n) if n > 0 => tracing::debug!(n, "control: purged expired sessions"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "control: session purge failed"),
                }
            }
        }
    });
    let r = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await;
    purger.abort();
    r.map_err(ControlError::Io)
}
