//! A connection to the fleet database: connected on the fleet's runtime, its messages
//! driven by a task there, notifications turned into wake-ups.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// Connecting (when the URL sets no `connect_timeout`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The driver's settings for `url` (validated by the config already).
pub fn config(url: &str) -> Result<tokio_postgres::Config, String> {
    let mut cfg: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("invalid PostgreSQL URL: {e}"))?;
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(CONNECT_TIMEOUT);
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("edge-fleet");
    }
    Ok(cfg)
}

/// Connect; `wake` is notified on each notification the connection receives. Must run on the
/// runtime that keeps the connection (the fleet's).
pub async fn connect(
    cfg: &tokio_postgres::Config,
    wake: Option<Arc<Notify>>,
) -> Result<Client, tokio_postgres::Error> {
    let (client, mut conn) = cfg.connect(NoTls).await?;
    tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => {
                    if let Some(w) = &wake {
                        w.notify_one();
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "fleet: database connection ended");
                    break;
                }
                None => break,
            }
        }
        // Dropping the connection closes the client: its next call fails and reconnects.
    });
    Ok(client)
}
