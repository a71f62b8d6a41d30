//! Serving the API: [`serve`] opens the state and runs the router until shutdown, purging
//! expired sessions on the side.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::api::AppState;
use super::router::router;
use super::settings::{CdnHealth, ControlConfig, ControlError};
use crate::token::Keyring;

/// How often expired sessions are deleted.
const SESSION_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Opens (creating and migrating) the database, seeds, and serves the API on `listener` until
/// `shutdown` completes (then finishes in-flight requests and returns).
pub async fn serve(
    listener: tokio::net::TcpListener,
    cfg: ControlConfig,
    keyring: Arc<Keyring>,
    health: Arc<dyn CdnHealth>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControlError> {
    let state = AppState::open(cfg, keyring, health).await?;
    serve_state(listener, state, shutdown).await
}

/// [`serve`] with an already opened [`AppState`].
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
